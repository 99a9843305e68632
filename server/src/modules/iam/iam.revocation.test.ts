/**
 * Two hub processes on one PostgreSQL database, each caching token introspections: a token
 * revoked through one stops working in the other at once, not after the other's cache TTL.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHub, type Hub } from '../../entrypoints/hub.js';
import { createBus } from '../../platform/bus/index.js';
import { loadConfig } from '../../platform/config.js';
import { openDb, type Db } from '../../platform/db/index.js';
import { createLogger } from '../../platform/logger.js';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { hasPostgres } from '../../../test/helpers/services.js';
import { DEFAULT_CACHE_TTL_MS } from './iam.authenticator.js';

const PASSWORD = 'revocation-admin-password';

describe.skipIf(!hasPostgres)('token revocation across processes on PostgreSQL', () => {
  let testDb: TestDb;
  let secondDb: Db;
  const hubs: Hub[] = [];
  const dirs: string[] = [];

  const call = async (hub: Hub, method: 'GET' | 'POST' | 'DELETE', url: string, token: string | undefined, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await hub.app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  };

  beforeAll(async () => {
    testDb = await openTestDb('postgres');
    secondDb = await openDb({ url: testDb.url, schema: testDb.schema, poolSize: 5 });
    const logger = createLogger('silent');
    for (const db of [testDb.db, secondDb]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-revocation-'));
      dirs.push(dir);
      const config = loadConfig({ PLEXUS_DATA_DIR: dir, PLEXUS_HTTP_PORT: '0', PLEXUS_ADMIN_PASSWORD: PASSWORD, PLEXUS_LOG_LEVEL: 'silent', PLEXUS_BUS_LEASE: '2s' });
      const bus = await createBus({ db, serviceName: 'revocation-test', logger, maxAttempts: 5, leaseMs: 2_000 });
      hubs.push(await createHub(config, { db, bus, logger }));
    }
  }, 60_000);

  afterAll(async () => {
    for (const hub of hubs) await hub.stop();
    for (const hub of hubs) await hub.bus.close();
    await secondDb?.close();
    await testDb?.drop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a token in the other process as soon as it is revoked', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const admin = (await call(a, 'POST', '/api/v1/login', undefined, { username: 'admin', password: PASSWORD })).body.token as string;
    const session = (await call(a, 'POST', '/api/v1/login', undefined, { username: 'admin', password: PASSWORD })).body.token as string;
    // Both processes have the session in their caches now.
    expect((await call(a, 'GET', '/api/v1/flows', session)).status).toBe(200);
    expect((await call(b, 'GET', '/api/v1/flows', session)).status).toBe(200);

    const loggedOut = await call(a, 'POST', '/api/v1/logout', session);
    expect(loggedOut.status).toBeLessThan(300);
    const startedAt = Date.now();
    await waitFor('the other process to refuse the revoked session', async () => (await call(b, 'GET', '/api/v1/flows', session)).status === 401, DEFAULT_CACHE_TTL_MS / 5, 20);
    expect(Date.now() - startedAt).toBeLessThan(DEFAULT_CACHE_TTL_MS);
    // Other tokens are untouched.
    expect((await call(b, 'GET', '/api/v1/flows', admin)).status).toBe(200);
  });
});
