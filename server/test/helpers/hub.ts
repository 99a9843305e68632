/**
 * A whole hub on a fresh database for end-to-end tests: `inject` for requests without a
 * socket, `listen()` when a real client is needed. The admin is logged in already.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBus, type Bus } from '../../src/platform/bus/index.js';
import { loadConfig } from '../../src/platform/config.js';
import { openDb, type Db } from '../../src/platform/db/index.js';
import { createLogger } from '../../src/platform/logger.js';
import { createHub, type Hub, type HubOptions } from '../../src/entrypoints/hub.js';
import { openTestDb, type DbTarget, type TestDb } from './db.js';
import { TEST_NATS_URL } from './services.js';

export const TEST_ADMIN_PASSWORD = 'test-admin-password';
/** The loopback sinks and token endpoints tests call, allowed through the operator's allow-list. */
export const TEST_ALLOWED_HOSTS = '127.0.0.1';

export interface TestHub extends Hub {
  adminToken: string;
  testDb: TestDb;
  /** Logs in (to tenant `default` unless another is named) and returns a bearer token. */
  login(username: string, password: string, tenant?: string): Promise<string>;
  /** Shorthand for an authorised JSON request through `app.inject`. */
  api(method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE' | 'HEAD', url: string, body?: unknown, token?: string | null, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface TestHubOptions {
  target?: DbTarget;
  /** Run the bus on NATS JetStream instead of the SQL adapter. */
  nats?: boolean;
  env?: Record<string, string>;
  roles?: HubOptions['roles'];
  /** Wraps the hub's database (a test counting statements, say). */
  wrapDb?: (db: Db) => Db;
}

export async function createTestHub(opts: TestHubOptions = {}): Promise<TestHub> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-test-'));
  const config = loadConfig({
    PLEXUS_HTTP_PORT: '0',
    // Any free port: many test hubs run at once (the Connector's mTLS port too: its 8443 default
    // made a second listening test hub fail with EADDRINUSE).
    PLEXUS_GRPC_PORT: '0',
    PLEXUS_MTLS_PORT: '0',
    PLEXUS_DATA_DIR: dataDir,
    PLEXUS_LOG_LEVEL: process.env.PLEXUS_TEST_LOG_LEVEL ?? 'silent',
    PLEXUS_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
    PLEXUS_BUS_LEASE: '2s',
    // Tests run under the default outbound policy (no private networks); their sinks are allowed.
    PLEXUS_STEPS_ALLOWED_HOSTS: TEST_ALLOWED_HOSTS,
    ...opts.env,
  });
  const logger = createLogger(config.log.level);
  const testDb = await openTestDb(opts.target ?? 'pglite');
  const bus: Bus = await createBus({
    db: testDb.db,
    natsUrl: opts.nats ? TEST_NATS_URL : undefined,
    serviceName: 'plexus-test',
    logger,
    maxAttempts: config.bus.maxAttempts,
    leaseMs: config.bus.leaseMs,
    ...(opts.nats ? { prefix: `t${Math.random().toString(36).slice(2, 8)}` } : {}),
  });
  const hub = await createHub(config, { logger, db: opts.wrapDb ? opts.wrapDb(testDb.db) : testDb.db, bus, roles: opts.roles });

  const api: TestHub['api'] = async (method, url, body, token, headers = {}) => {
    const auth = token === null ? {} : { authorization: `Bearer ${token ?? adminToken}` };
    const res = await hub.app.inject({
      method,
      url,
      headers: { ...auth, ...headers },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    let parsed: unknown = res.body;
    try {
      parsed = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.statusCode, body: parsed, headers: res.headers };
  };
  const login = async (username: string, password: string, tenant?: string): Promise<string> => {
    const res = await api('POST', '/api/v1/login', { username, password, ...(tenant ? { tenant } : {}) }, null);
    if (res.status !== 200) throw new Error(`login ${username} failed: ${res.status} ${JSON.stringify(res.body)}`);
    return (res.body as { token: string }).token;
  };
  const adminToken = await login('admin', TEST_ADMIN_PASSWORD);

  return {
    ...hub,
    adminToken,
    testDb,
    login,
    api,
    async close() {
      await hub.stop();
      await bus.close();
      await testDb.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Hubs sharing one PostgreSQL schema, each with its own pool and bus: processes of one installation. */
export interface HubGroup {
  hubs: Hub[];
  /** The first hub's database, for looking at shared tables. */
  db: Db;
  close(): Promise<void>;
}

export async function createHubsOnOneDatabase(count: number, opts: { adminPassword: string; serviceName: string; roles?: ReadonlyArray<HubOptions['roles']>; env?: Record<string, string> }): Promise<HubGroup> {
  const testDb = await openTestDb('postgres');
  const dbs: Db[] = [testDb.db];
  for (let i = 1; i < count; i++) dbs.push(await openDb({ url: testDb.url, schema: testDb.schema, poolSize: 5 }));
  const logger = createLogger('silent');
  const hubs: Hub[] = [];
  const dirs: string[] = [];
  // One installation, one secrets key: a secret one process stored, another must read.
  const secretKey = randomBytes(32).toString('hex');
  for (const [i, db] of dbs.entries()) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-group-'));
    dirs.push(dir);
    const config = loadConfig({ PLEXUS_DATA_DIR: dir, PLEXUS_HTTP_PORT: '0', PLEXUS_GRPC_PORT: '0', PLEXUS_MTLS_PORT: '0', PLEXUS_ADMIN_PASSWORD: opts.adminPassword, PLEXUS_LOG_LEVEL: 'silent', PLEXUS_BUS_LEASE: '2s', PLEXUS_STEPS_ALLOWED_HOSTS: TEST_ALLOWED_HOSTS, PLEXUS_SECRET_KEY: secretKey, ...opts.env });
    const bus = await createBus({ db, serviceName: opts.serviceName, logger, maxAttempts: 5, leaseMs: 2_000 });
    hubs.push(await createHub(config, { db, bus, logger, roles: opts.roles?.[i] }));
  }
  return {
    hubs,
    db: testDb.db,
    async close() {
      for (const hub of hubs) await hub.stop();
      for (const hub of hubs) await hub.bus.close();
      for (const db of dbs.slice(1)) await db.close();
      await testDb.drop();
      for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
