/** Embedded PostgreSQL (WASM) under the data directory: the zero-dependency default. */
import fs from 'node:fs';
import path from 'node:path';
import { PGlite, types } from '@electric-sql/pglite';
import { AppError } from '../errors.js';
import type { Db, Queryable, QueryResult, Row } from './db.js';

const parsers = {
  [types.INT8]: (v: string) => Number(v),
  [types.NUMERIC]: (v: string) => Number(v),
};

interface PGliteLike {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[]; affectedRows?: number }>;
  exec(sql: string): Promise<unknown>;
}

function wrap(conn: PGliteLike): Queryable {
  return {
    async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      const res = await conn.query<R>(sql, params as unknown[]);
      return { rows: res.rows, rowCount: res.affectedRows ?? res.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await conn.exec(sql);
    },
  };
}

/**
 * Opens PGlite in `dataDir`, or in memory when `dataDir` is undefined (tests).
 * PGlite cannot share a directory between processes, so a lock file guards it.
 */
export async function openPglite(dataDir: string | undefined): Promise<Db> {
  let releaseLock = (): void => {};
  let pg: PGlite;
  if (dataDir) {
    fs.mkdirSync(dataDir, { recursive: true });
    releaseLock = lockDataDir(dataDir);
    try {
      pg = await PGlite.create(path.join(dataDir, 'pgdata'), { parsers });
    } catch (err) {
      releaseLock();
      throw new AppError('UNAVAILABLE', `cannot open the embedded database in ${dataDir}: ${(err as Error).message}`, 'transient', undefined, { cause: err });
    }
  } else {
    pg = await PGlite.create({ parsers });
  }
  const base = wrap(pg);
  return {
    dialect: 'pglite',
    ...base,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return pg.transaction((tx) => fn(wrap(tx)));
    },
    async ping(): Promise<void> {
      if (pg.closed) throw new AppError('UNAVAILABLE', 'embedded database is closed', 'transient');
      await pg.query('SELECT 1');
    },
    async listen(channel, onNotify) {
      const unlisten = await pg.listen(channel, onNotify);
      return async () => {
        if (!pg.closed) await unlisten();
      };
    },
    async close(): Promise<void> {
      if (!pg.closed) await pg.close();
      releaseLock();
    },
  };
}

function lockDataDir(dataDir: string): () => void {
  const lockPath = path.join(dataDir, 'plexus.lock');
  try {
    const holder = Number(fs.readFileSync(lockPath, 'utf8').trim());
    if (holder && holder !== process.pid && isAlive(holder)) {
      throw new AppError('CONFIG_INVALID', `PLEXUS_DATA_DIR=${dataDir} is in use by another Plexus process (pid ${holder}); use PLEXUS_DATABASE_URL to run several processes`, 'user');
    }
  } catch (err) {
    if (err instanceof AppError) throw err;
  }
  fs.writeFileSync(lockPath, String(process.pid), { mode: 0o600 });
  return () => {
    try {
      if (fs.readFileSync(lockPath, 'utf8').trim() === String(process.pid)) fs.unlinkSync(lockPath);
    } catch {
      /* already gone */
    }
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
