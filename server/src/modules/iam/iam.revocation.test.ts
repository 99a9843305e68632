/**
 * Hub processes on one PostgreSQL database, each caching token introspections: a token revoked
 * through one stops working in the others at once, not after their cache TTL — also in a
 * process that does not run the iam role (a gateway in front of other modules).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../entrypoints/hub.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { createHubsOnOneDatabase, type HubGroup } from '../../../test/helpers/hub.js';
import { hasPostgres } from '../../../test/helpers/services.js';
import { DEFAULT_CACHE_TTL_MS } from './iam.authenticator.js';

const PASSWORD = 'revocation-admin-password';

describe.skipIf(!hasPostgres)('token revocation across processes on PostgreSQL', () => {
  let group: HubGroup;
  let hubs: Hub[] = [];

  const call = async (hub: Hub, method: 'GET' | 'POST' | 'DELETE', url: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await hub.app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  };

  beforeAll(async () => {
    group = await createHubsOnOneDatabase(3, { adminPassword: PASSWORD, serviceName: 'revocation-test', roles: [undefined, undefined, ['gateway', 'flows']] });
    hubs = group.hubs;
  }, 60_000);

  afterAll(async () => group?.close());

  it('refuses a token in the other process as soon as it is revoked', async () => {
    const [a, b, c] = hubs as [Hub, Hub, Hub];
    const admin = (await call(a, 'POST', '/api/v1/login', undefined, { username: 'admin', password: PASSWORD })).body.token as string;
    const session = (await call(a, 'POST', '/api/v1/login', undefined, { username: 'admin', password: PASSWORD })).body.token as string;
    // Both processes have the session in their caches now.
    expect((await call(a, 'GET', '/api/v1/flows', session)).status).toBe(200);
    expect((await call(b, 'GET', '/api/v1/flows', session)).status).toBe(200);
    expect((await call(c, 'GET', '/api/v1/flows', session)).status).toBe(200);

    const loggedOut = await call(a, 'POST', '/api/v1/logout', session);
    expect(loggedOut.status).toBeLessThan(300);
    const startedAt = Date.now();
    await waitFor('the other process to refuse the revoked session', async () => (await call(b, 'GET', '/api/v1/flows', session)).status === 401, DEFAULT_CACHE_TTL_MS / 5, 20);
    await waitFor('the process without the iam role to refuse it', async () => (await call(c, 'GET', '/api/v1/flows', session)).status === 401, DEFAULT_CACHE_TTL_MS / 5, 20);
    expect(Date.now() - startedAt).toBeLessThan(DEFAULT_CACHE_TTL_MS);
    // Other tokens are untouched.
    expect((await call(b, 'GET', '/api/v1/flows', admin)).status).toBe(200);
    expect((await call(c, 'GET', '/api/v1/flows', admin)).status).toBe(200);
  });
});
