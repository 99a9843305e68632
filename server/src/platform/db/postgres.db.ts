/** A PostgreSQL server through a `pg` pool: the scale-out storage. */
import pg from 'pg';
import { AppError } from '../errors.js';
import type { Db, Queryable, QueryResult, Row } from './db.js';

const typeParsers: pg.CustomTypesConfig = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    // int8 (20) and numeric (1700) as numbers: counts and sequence ids stay far below 2^53.
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      const res = await client.query(sql, params as unknown[]);
      return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

export interface PostgresOptions {
  url: string;
  poolSize: number;
  /** Every query runs with this search_path; tests give each file its own schema. */
  schema?: string | undefined;
}

export async function openPostgres(opts: PostgresOptions): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize,
    types: typeParsers,
    connectionTimeoutMillis: 5_000,
    ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
  });
  // An idle client that loses its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  if (opts.schema) {
    const admin = new pg.Client({ connectionString: opts.url, connectionTimeoutMillis: 5_000 });
    await connectOrExplain(() => admin.connect(), opts.url);
    try {
      await admin.query(`CREATE SCHEMA IF NOT EXISTS "${opts.schema.replace(/"/g, '')}"`);
    } finally {
      await admin.end();
    }
  }
  await connectOrExplain(async () => (await pool.connect()).release(), opts.url);
  const base = wrap(pool);
  let closed = false;
  return {
    dialect: 'postgres',
    ...base,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      // A checked-out client whose socket dies emits 'error'; without a listener that would
      // crash the process. The failing query rejects on its own, so the event can be ignored.
      const ignore = (): void => {};
      client.on('error', ignore);
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        client.off('error', ignore);
        client.release();
      }
    },
    async ping(): Promise<void> {
      await pool.query('SELECT 1');
    },
    async listen(channel, onNotify) {
      // LISTEN needs one dedicated connection for as long as we listen; reconnect when it drops.
      let client: pg.Client | undefined;
      let stopped = false;
      const connect = async (): Promise<void> => {
        if (stopped || closed) return;
        const c = new pg.Client({ connectionString: opts.url, types: typeParsers });
        c.on('error', () => {});
        c.on('end', () => {
          if (!stopped && !closed) setTimeout(() => void connect().catch(() => {}), 1_000).unref();
        });
        c.on('notification', (n) => {
          if (n.channel === channel) onNotify(n.payload ?? '');
        });
        await c.connect();
        await c.query(`LISTEN "${channel.replace(/"/g, '')}"`);
        client = c;
      };
      await connect();
      return async () => {
        stopped = true;
        await client?.end().catch(() => {});
      };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

async function connectOrExplain(connect: () => Promise<unknown>, url: string): Promise<void> {
  try {
    await connect();
  } catch (err) {
    const safeUrl = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
    throw new AppError('CONFIG_INVALID', `PLEXUS_DATABASE_URL=${safeUrl} does not answer: ${(err as Error).message || (err as NodeJS.ErrnoException).code}`, 'user', undefined, { cause: err });
  }
}
