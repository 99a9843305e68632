/** A fresh database per test file: an in-memory PGlite, or a new schema on PostgreSQL. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDb, type Db } from '../../src/platform/db/index.js';
import { hasPostgres, TEST_DATABASE_URL } from './services.js';

export type DbTarget = 'pglite' | 'postgres';

/** The targets to run a storage suite on: `describe.each(dbTargets)(...)`. */
export const dbTargets: DbTarget[] = hasPostgres ? ['pglite', 'postgres'] : ['pglite'];

export interface TestDb {
  db: Db;
  /** PostgreSQL only: the URL and schema, for a second process/connection on the same data. */
  url?: string;
  schema?: string;
  drop(): Promise<void>;
}

export async function openTestDb(target: DbTarget): Promise<TestDb> {
  if (target === 'pglite') {
    const db = await openDb({});
    return { db, drop: () => db.close() };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const db = await openDb({ url: TEST_DATABASE_URL, poolSize: 10, schema });
  return {
    db,
    url: TEST_DATABASE_URL,
    schema,
    async drop() {
      await db.close();
      await dropSchema(schema);
    },
  };
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
