/** Storage: open the configured database and bring its schema up to date. */
import type { Config } from '../config.js';
import type { Db } from './db.js';
import { migrate } from './migrate.js';
import { openPglite } from './pglite.db.js';
import { openPostgres } from './postgres.db.js';

export type { Db, Queryable, QueryResult, Row, Dialect } from './db.js';
export { migrate, readMigrations } from './migrate.js';
export { openPglite } from './pglite.db.js';
export { openPostgres } from './postgres.db.js';
export { startAutovacuum, type Autovacuum } from './vacuum.js';

export interface OpenDbOptions {
  url?: string | undefined;
  poolSize?: number;
  /** Directory for embedded PGlite; in memory when undefined and no url. */
  dataDir?: string | undefined;
  schema?: string | undefined;
}

export async function openDb(opts: OpenDbOptions): Promise<Db> {
  const db = opts.url
    ? await openPostgres({ url: opts.url, poolSize: opts.poolSize ?? 10, schema: opts.schema })
    : await openPglite(opts.dataDir);
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

export function dbOptionsFrom(config: Config): OpenDbOptions {
  return { url: config.db.url, poolSize: config.db.poolSize, dataDir: config.db.url ? undefined : config.dataDir };
}
