import { describe, expect, it } from 'vitest';
import type { Outbound } from '../../platform/outbound/index.js';
import { ApiTokenCache } from './connector.apitokens.js';

/** An outbound whose token endpoint answers `answer()`; counts the requests. */
function fakeOutbound(answer: () => { status: number; body: unknown }): { outbound: Outbound; calls: () => number } {
  let calls = 0;
  const outbound = {
    async request() {
      calls++;
      const a = answer();
      return { status: a.status, statusText: '', url: 'http://tokens.test/token', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(a.body)), method: 'POST' };
    },
  } as unknown as Outbound;
  return { outbound, calls: () => calls };
}

const client = { tokenUrl: 'http://tokens.test/token', clientId: 'c', clientSecret: 'very-secret', label: 'application erp (API orders, runtime local)' };

describe('ApiTokenCache', () => {
  it('keeps a token until shortly before it expires, shares one request among concurrent callers, and keys on the secret', async () => {
    let now = 1_000_000;
    let n = 0;
    const { outbound, calls } = fakeOutbound(() => ({ status: 200, body: { access_token: `t${++n}`, expires_in: 600 } }));
    const cache = new ApiTokenCache(outbound, () => now);
    expect(await Promise.all([cache.bearer('t1', client), cache.bearer('t1', client)])).toEqual(['t1', 't1']);
    expect(calls()).toBe(1);
    now += 500_000; // 100 s left: still good
    expect(await cache.bearer('t1', client)).toBe('t1');
    now += 50_000; // 50 s left: inside the 60 s margin
    expect(await cache.bearer('t1', client)).toBe('t2');
    // Another tenant or another secret never reuses the token.
    expect(await cache.bearer('t2', client)).toBe('t3');
    expect(await cache.bearer('t1', { ...client, clientSecret: 'rotated' })).toBe('t4');
  });

  it('a refused grant names the application and the answer, never the secret', async () => {
    const { outbound } = fakeOutbound(() => ({ status: 401, body: { error: 'invalid_client' } }));
    const err = await new ApiTokenCache(outbound).bearer('t1', client).catch((e: Error) => e);
    expect(String((err as Error).message)).toMatch(/could not get an OAuth access token for application erp \(API orders, runtime local\): .*invalid_client/);
    expect(String((err as Error).message)).not.toContain('very-secret');
  });
});
