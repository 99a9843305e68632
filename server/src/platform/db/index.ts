/** Storage: open the configured database and bring its schema up to date. */
import type { Config } from '../config.js';
import type { Db } from './db.js';
import { migrate } from './migrate.js';

export type { Db, Queryable, QueryResult, Row, Dialect } from './db.js';
export { migrate, readMigrations } from './migrate.js';
// openPglite / openPostgres: import them from their own files, so that loading this one loads
// neither driver (openDb picks one).
export { startAutovacuum, type Autovacuum } from './vacuum.js';

export interface OpenDbOptions {
  url?: string | undefined;
  poolSize?: number;
  /** Directory for embedded PGlite; in memory when undefined and no url. */
  dataDir?: string | undefined;
  schema?: string | undefined;
  /** Embedded PGlite's `shared_buffers`, in bytes (default: PGlite's own, 16 MB here). */
  sharedBufferBytes?: number | undefined;
  /** Embedded PGlite: let V8 optimize its WASM (see pglite.db.ts). */
  optimizeWasm?: boolean | undefined;
}

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  // Each driver is loaded only when used: a hub holds one of them in memory, not both.
  const db = opts.url
    ? await (await import('./postgres.db.js')).openPostgres({ url: opts.url, poolSize: opts.poolSize ?? 10, schema: opts.schema })
    : await (await import('./pglite.db.js')).openPglite(opts.dataDir, { sharedBufferBytes: opts.sharedBufferBytes, optimizeWasm: opts.optimizeWasm });
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

export function dbOptionsFrom(config: Config): OpenDbOptions {
  return { url: config.db.url, poolSize: config.db.poolSize, dataDir: config.db.url ? undefined : config.dataDir, sharedBufferBytes: config.embeddedDb.sharedBufferBytes, optimizeWasm: config.embeddedDb.optimizeWasm };
}
