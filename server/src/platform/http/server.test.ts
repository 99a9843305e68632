import { setTimeout as sleep } from 'node:timers/promises';
import type { InjectOptions } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../logger.js';
import { createMetrics } from './metrics.js';
import { createHttpServer, type HttpApp } from './server.js';
import type { Principal } from './auth.js';
import { AppError } from '../errors.js';
import { openTestDb, dbTargets } from '../../../test/helpers/db.js';

const principal = (permissions: string[]): Principal => ({
  accountId: 'a1',
  username: 'u',
  tenantId: 't',
  homeTenantId: 't',
  permissions,
  roles: [],
  kind: 'user',
  tokenId: 'tok',
});

let app: HttpApp | undefined;
// Resolved by /slow once its handler runs, so a test can close the server while a request is
// known to be in flight rather than guessing how long the client takes to send it.
let slowStarted: () => void = () => undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function build(permissions: string[] = ['flows.read']): Promise<{ app: HttpApp; denied: string[] }> {
  const denied: string[] = [];
  const a = await createHttpServer({
    logger: createLogger('silent'),
    metrics: createMetrics(),
    authenticate: () => async (req) => {
      if (req.headers.authorization !== 'Bearer good') throw new AppError('UNAUTHENTICATED', 'bad token');
      return principal(permissions);
    },
    onDenied: (d) => denied.push(`${d.permission} ${d.url}`),
  });
  a.post(
    '/things',
    { config: { permission: 'flows.write' }, schema: { body: z.strictObject({ name: z.string().max(5), size: z.number().int() }) } },
    async (req) => ({ data: req.body }),
  );
  a.get('/things', { config: { permission: 'flows.read' } }, async () => ({ data: [] }));
  a.get('/boom', { config: { permission: 'public' } }, async () => {
    throw new Error('secret internals at /srv/x.ts:10');
  });
  a.get('/slow', { config: { permission: 'public' } }, async () => {
    slowStarted();
    await sleep(300);
    return { done: true };
  });
  app = a;
  return { app: a, denied };
}

describe('HTTP platform', () => {
  it('takes the client address from X-Forwarded-For only from a trusted proxy (PLEXUS_TRUST_PROXY)', async () => {
    const ipOf = async (trustProxy: boolean | number | string[] | undefined, remoteAddress: string): Promise<string> => {
      const a = await createHttpServer({ logger: createLogger('silent'), metrics: createMetrics(), ...(trustProxy === undefined ? {} : { trustProxy }) });
      a.get('/ip', { config: { permission: 'public' } }, async (req) => ({ ip: req.ip }));
      const res = await a.inject({ method: 'GET', url: '/ip', remoteAddress, headers: { 'x-forwarded-for': '203.0.113.7, 10.0.0.5' } });
      await a.close();
      return (res.json() as { ip: string }).ip;
    };
    expect(await ipOf(undefined, '10.0.0.9')).toBe('10.0.0.9');
    expect(await ipOf(['10.0.0.0/8'], '10.0.0.9')).toBe('203.0.113.7');
    expect(await ipOf(['10.0.0.0/8'], '192.0.2.1')).toBe('192.0.2.1');
    expect(await ipOf(1, '10.0.0.9')).toBe('10.0.0.5');
    expect(await ipOf(true, '192.0.2.1')).toBe('203.0.113.7');
  });

  it('refuses to start with a route that declares no permission', async () => {
    const a = await createHttpServer({ logger: createLogger('silent'), metrics: createMetrics() });
    expect(() => a.get('/naked', async () => ({}))).toThrow(/declares no permission/);
    await a.close();
  });

  it('answers 401 without a token, 403 without the permission (and reports it), 200 with it', async () => {
    const { app, denied } = await build(['flows.read']);
    const none = await app.inject({ method: 'GET', url: '/things' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toEqual({ errors: [{ code: 'UNAUTHENTICATED', message: 'bad token' }] });
    const forbidden = await app.inject({ method: 'POST', url: '/things', headers: { authorization: 'Bearer good' }, payload: { name: 'a', size: 1 } });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().errors[0].code).toBe('FORBIDDEN');
    expect(denied).toEqual(['flows.write /things']);
    const ok = await app.inject({ method: 'GET', url: '/things', headers: { authorization: 'Bearer good' } });
    expect(ok.statusCode).toBe(200);
  });

  it('names each invalid field, rejects unknown fields, malformed JSON and wrong media types with 4xx', async () => {
    const { app } = await build(['all']);
    const auth = { authorization: 'Bearer good' };
    const bad = await app.inject({ method: 'POST', url: '/things', headers: auth, payload: { name: 'toolong', size: 'x', extra: 1 } });
    expect(bad.statusCode).toBe(400);
    const msg = bad.json().errors[0].message as string;
    expect(bad.json().errors[0].code).toBe('VALIDATION_FAILED');
    expect(msg).toContain('body.name');
    expect(msg).toContain('body.size');
    expect(msg).toMatch(/extra/);
    const malformed = await app.inject({ method: 'POST', url: '/things', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"name":' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().errors[0].code).toBe('INVALID_JSON');
    const media = await app.inject({ method: 'POST', url: '/things', headers: { ...auth, 'content-type': 'application/x-unknown' }, payload: 'x' });
    expect(media.statusCode).toBe(415);
    expect(media.json().errors[0].code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses NUL, unpaired surrogates and deep nesting in params, query and body with a 400 naming the field', async () => {
    const { app: a } = await build(['all']);
    a.get('/items/:id', { config: { permission: 'public' } }, async () => ({ reached: true }));
    a.post('/echo', { config: { permission: 'public' } }, async () => ({ reached: true }));
    const problem = async (opts: InjectOptions): Promise<[number, string]> => {
      const res = await a.inject(opts);
      return [res.statusCode, res.statusCode === 400 ? (res.json().errors[0].message as string) : res.body];
    };
    expect(await problem({ method: 'GET', url: '/items/abc%00def' })).toEqual([400, 'params.id: contains a NUL character (U+0000), which cannot be stored']);
    expect(await problem({ method: 'GET', url: '/items/x?search=a%00b' })).toEqual([400, 'querystring.search: contains a NUL character (U+0000), which cannot be stored']);
    const json = { 'content-type': 'application/json' };
    expect((await problem({ method: 'POST', url: '/echo', headers: json, payload: '{"name":"a\\ud800"}' }))[1]).toMatch(/^body\.name: contains an unpaired UTF-16 surrogate/);
    const deep = `{"graph":{"fields":${'['.repeat(5_000)}${']'.repeat(5_000)}}}`;
    expect((await problem({ method: 'POST', url: '/echo', headers: json, payload: deep }))[1]).toMatch(/^body\.graph\.fields\[0\]\[0\].*: nests deeper than 256 levels/);
    expect(await problem({ method: 'POST', url: '/echo', headers: json, payload: '{"name":"a\\\\u0000b 😀"}' })).toEqual([200, '{"reached":true}']);
  });

  it.each(dbTargets)('answers 400 for database input errors (SQLSTATE class 22, 54001) on %s, whichever route meets them', async (target) => {
    const testDb = await openTestDb(target);
    try {
      const { app: a } = await build(['all']);
      // Values a route builds itself, past the request check: the database is the last line.
      a.get('/int', { config: { permission: 'public' } }, async () => testDb.db.query('SELECT $1::int AS n', ['x']));
      a.get('/nul', { config: { permission: 'public' } }, async () => testDb.db.query('SELECT $1::text AS t', ['a\u0000b']));
      a.get('/jsonb', { config: { permission: 'public' } }, async () => testDb.db.query('SELECT $1::jsonb AS j', ['"\\u0000"']));
      for (const [url, sqlstate] of [['/int', '22P02'], ['/nul', '22021'], ['/jsonb', '22P05']] as const) {
        const res = await a.inject({ method: 'GET', url });
        expect(res.statusCode, url).toBe(400);
        expect(res.json().errors[0]).toMatchObject({ code: 'VALIDATION_FAILED', details: { sqlstate } });
        expect(res.json().errors[0].message).toMatch(/the database cannot store/);
      }
    } finally {
      await testDb.drop();
    }
  });

  it('hides internals of unexpected errors behind a generic 500', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ errors: [{ code: 'INTERNAL', message: 'internal error' }] });
    expect(res.body).not.toContain('/srv');
  });

  it('lets in-flight requests finish when it closes', async () => {
    const { app: a } = await build();
    await a.listen({ port: 0, host: '127.0.0.1' });
    const addr = a.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const started = new Promise<void>((resolve) => (slowStarted = resolve));
    const pending = fetch(`http://127.0.0.1:${port}/slow`);
    await started;
    const closing = a.close();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ done: true });
    await closing;
    app = undefined;
    await expect(fetch(`http://127.0.0.1:${port}/slow`)).rejects.toThrow();
  });
});
