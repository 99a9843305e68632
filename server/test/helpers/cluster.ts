/**
 * Several hubs in one test process as a deployment of several processes would run them: each with
 * its own PostgreSQL pool, bus (PostgreSQL + NATS JetStream) and data directory, all sharing one
 * database schema, one NATS prefix and one PLEXUS_SECRET_KEY.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHub, type Hub } from '../../src/entrypoints/hub.js';
import { createBus } from '../../src/platform/bus/index.js';
import { loadConfig } from '../../src/platform/config.js';
import { openDb, type Db } from '../../src/platform/db/index.js';
import { createLogger } from '../../src/platform/logger.js';
import type { TestDb } from './db.js';
import { TEST_ADMIN_PASSWORD, TEST_ALLOWED_HOSTS } from './hub.js';
import { TEST_NATS_URL } from './services.js';

export class TestCluster {
  /** The hubs running now, in the order they started. */
  readonly hubs: Hub[] = [];
  private readonly dbs: Db[] = [];
  private readonly dirs: string[] = [];
  private readonly secretKey = randomBytes(32).toString('hex');
  private readonly prefix = `c${Math.random().toString(36).slice(2, 8)}`;

  /** `testDb` is read at each start: suites open their database in beforeAll. */
  constructor(private readonly testDb: () => TestDb, private readonly serviceName: string) {}

  async start(opts: { listen?: boolean } = {}): Promise<Hub> {
    const { url, schema } = this.testDb();
    const db = await openDb({ url, schema, poolSize: 5 });
    this.dbs.push(db);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `plexus-${this.serviceName}-`));
    this.dirs.push(dir);
    const config = loadConfig({
      PLEXUS_DATA_DIR: dir,
      PLEXUS_HTTP_PORT: '0',
      PLEXUS_MTLS_PORT: '0',
      PLEXUS_GRPC_PORT: '0',
      PLEXUS_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
      PLEXUS_LOG_LEVEL: 'silent',
      PLEXUS_BUS_LEASE: '2s',
      PLEXUS_STEPS_ALLOWED_HOSTS: TEST_ALLOWED_HOSTS,
      PLEXUS_SECRET_KEY: this.secretKey,
    });
    const logger = createLogger('silent');
    const bus = await createBus({ db, natsUrl: TEST_NATS_URL, prefix: this.prefix, serviceName: this.serviceName, logger, maxAttempts: 5, leaseMs: 2_000 });
    const hub = await createHub(config, { db, bus, logger });
    if (opts.listen) await hub.listen();
    this.hubs.push(hub);
    return hub;
  }

  /**
   * The environment of a real `plexus start` process joining this cluster (runPlexus): the same
   * database schema, NATS prefix and secrets key. Add a data directory and ports.
   */
  processEnv(): Record<string, string> {
    const { url, schema } = this.testDb();
    if (!url || !schema) throw new Error('a process joins a cluster on PostgreSQL only');
    return {
      PLEXUS_DATABASE_URL: `${url}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
      PLEXUS_NATS_URL: TEST_NATS_URL,
      PLEXUS_NATS_PREFIX: this.prefix,
      PLEXUS_SECRET_KEY: this.secretKey,
      PLEXUS_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
      PLEXUS_BUS_LEASE: '2s',
      PLEXUS_STEPS_ALLOWED_HOSTS: TEST_ALLOWED_HOSTS,
    };
  }

  /** Stops one hub as its process would stop (its database pool stays open until close()). */
  async stop(hub: Hub): Promise<void> {
    this.hubs.splice(this.hubs.indexOf(hub), 1);
    await hub.stop();
    await hub.bus.close();
  }

  async close(): Promise<void> {
    for (const hub of [...this.hubs]) await this.stop(hub).catch(() => undefined);
    for (const db of this.dbs) await db.close().catch(() => undefined);
    for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}
