/** Embedded PostgreSQL (WASM) under the data directory: the zero-dependency default. */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { parse, PGlite, types } from '@electric-sql/pglite';
import { serialize as wire } from 'pg-protocol';
import { AppError } from '../errors.js';
import type { Db, Queryable, QueryResult, Row } from './db.js';
import { lockDataDir } from './datadir.lock.js';
import { PreparedStatements, type BoundStatement } from './pglite.statements.js';

const parsers = {
  [types.INT8]: (v: string) => Number(v),
  [types.NUMERIC]: (v: string) => Number(v),
};

interface PGliteLike {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[]; affectedRows?: number }>;
  exec(sql: string): Promise<Array<{ rows: unknown[]; affectedRows?: number }>>;
}

/** Describe (the portal) + Execute + Sync: the same after every Bind. */
const DESCRIBE_EXECUTE_SYNC = Buffer.concat([wire.describe({ type: 'P' }), wire.execute(), wire.sync()]);

/**
 * Runs a prepared statement with bound parameters: Bind + Describe + Execute + Sync in one trip
 * through the engine, under PGlite's locks as its own `query` takes them (the transaction lock
 * outside a transaction, so the statement never lands inside another caller's transaction; the
 * statement lock always).
 *
 * The Bind message is serialised by node-postgres's `pg-protocol` (Buffer.byteLength and one
 * native UTF-8 write per value). PGlite's own serialiser measures each value's UTF-8 length in a
 * JavaScript loop twice and grows its buffer by copies: measured on a batch of executions with
 * their step runs as the engine binds it, 15 µs against 1.5 µs for one execution (1 kB) and
 * 244 µs against 31 µs for 64 (62 kB). The messages differ only in how they say "results in
 * text": no result format code (PGlite) or one code 0 for all (pg-protocol).
 */
function runBound(pg: PGlite, bound: BoundStatement, isInTransaction: boolean): Promise<{ rows: unknown[]; affectedRows?: number }> {
  const bind = wire.bind({ statement: bound.name, values: bound.values });
  const message = Buffer.concat([bind, DESCRIBE_EXECUTE_SYNC], bind.length + DESCRIBE_EXECUTE_SYNC.length);
  const run = async (): Promise<{ rows: unknown[]; affectedRows?: number }> => {
    const { messages } = await pg.execProtocol(message, { syncToFs: !isInTransaction });
    return parse.parseResults(messages, pg.parsers)[0] ?? { rows: [] };
  };
  return isInTransaction ? pg.runExclusive(run) : pg._runExclusiveTransaction(() => pg.runExclusive(run));
}

function wrap(conn: PGliteLike, pg: PGlite, statements: PreparedStatements | undefined, isTransaction: boolean): Queryable {
  return {
    async query<R = Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
      const bound = statements?.bind(sql, params);
      const res = bound ? await runBound(pg, bound, isTransaction) : await conn.query<R>(sql, params as unknown[]);
      return { rows: res.rows as R[], rowCount: res.affectedRows ?? res.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await conn.exec(sql);
    },
  };
}

export interface PgliteOptions {
  /** PostgreSQL `shared_buffers`, in bytes; PGlite's default (128 MB) when undefined. */
  sharedBufferBytes?: number | undefined;
  /**
   * false: V8 runs PGlite's WASM with its baseline compiler only (`--liftoff-only`), for the whole
   * process. V8's default recompiles hot functions with its optimizing compiler, which held
   * ~40–60 MB of a hub's memory for no speed measured on the engine's short statements
   * (docs/adr/0010-compiled-at-install.md). Undefined: V8's default.
   */
  optimizeWasm?: boolean | undefined;
}

/** PGlite's own start parameters, plus the buffer cache size (whole kB, as PostgreSQL takes it). */
function startParamsFor(opts: PgliteOptions): string[] | undefined {
  if (opts.sharedBufferBytes === undefined) return undefined;
  return [...PGlite.defaultStartParams, '-c', `shared_buffers=${Math.max(128, Math.floor(opts.sharedBufferBytes / 1024))}kB`];
}

/**
 * Opens PGlite in `dataDir`, or in memory when `dataDir` is undefined (tests).
 * PGlite cannot share a directory between processes, so a lock file guards it (datadir.lock.ts),
 * which also makes the database `exclusive`.
 */
export async function openPglite(dataDir: string | undefined, opts: PgliteOptions = {}): Promise<Db> {
  let releaseLock = (): void => {};
  let pg: PGlite;
  const startParams = startParamsFor(opts);
  // Before the module is compiled (on the first create): V8 reads the flag at compile time.
  if (opts.optimizeWasm === false) v8.setFlagsFromString('--liftoff-only');
  if (dataDir) {
    fs.mkdirSync(dataDir, { recursive: true });
    releaseLock = lockDataDir(dataDir);
    try {
      const pgdata = path.join(dataDir, 'pgdata');
      if (!fs.existsSync(pgdata) && !copyTemplateDir(pgdata)) {
        const template = readTemplate();
        if (template) {
          // No directory template (install script not run since): load the tarball, close, and
          // reopen the directory — PGlite keeps the loaded tarball (~40 MB) reachable for the
          // life of the instance, and the process's malloc heap stays grown by it.
          await (await PGlite.create(pgdata, { startParams, loadDataDir: new Blob([template]) })).close();
        }
      }
      pg = await PGlite.create(pgdata, { parsers, startParams });
    } catch (err) {
      releaseLock();
      throw new AppError('UNAVAILABLE', `cannot open the embedded database in ${dataDir}: ${(err as Error).message}`, 'transient', undefined, { cause: err });
    }
  } else {
    const template = readTemplate();
    pg = await PGlite.create({ parsers, startParams, ...(template ? { loadDataDir: new Blob([template]) } : {}) });
  }
  const statements = new PreparedStatements((sql) => pg.exec(sql));
  const base = wrap(pg, pg, statements, false);
  return {
    dialect: 'pglite',
    exclusive: dataDir !== undefined,
    ...base,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return pg.transaction((tx) => fn(wrap(tx, pg, statements, true)));
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

/**
 * An empty cluster prepared after install (`npm ci` runs scripts/prepare-pglite-template.ts):
 * copying it on first start takes ~0.4 s where initdb in WASM takes ~2 s. Keyed by PGlite's
 * version, because a cluster is only valid for the PostgreSQL build that made it.
 */
export function pgliteTemplatePath(): string {
  const require = createRequire(import.meta.url);
  let dir = path.dirname(require.resolve('@electric-sql/pglite'));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string };
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../.cache', `pglite-template-${version}.tar`);
}

/**
 * The same empty cluster as a directory (`pgdata` as PGlite leaves it after loading the tarball
 * and closing): a first start copies its files and never holds the tarball in memory (~40 MB of
 * the process's RSS, kept after the load). Beside the tarball, which in-memory databases load.
 */
export function pgliteTemplateDir(): string {
  return pgliteTemplatePath().replace(/\.tar$/, '');
}

/**
 * Copies the directory template to `pgdata` (through a temporary name, so a copy cut short never
 * looks like a cluster); false when there is no directory template.
 */
function copyTemplateDir(pgdata: string): boolean {
  const template = pgliteTemplateDir();
  if (!fs.existsSync(path.join(template, 'PG_VERSION'))) return false;
  const partial = `${pgdata}.copying`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.cpSync(template, partial, { recursive: true });
  fs.renameSync(partial, pgdata);
  return true;
}

function readTemplate(): Buffer | undefined {
  try {
    return fs.readFileSync(pgliteTemplatePath());
  } catch {
    return undefined;
  }
}

/** Writes the template (tarball and directory) unless it exists; returns the tarball's path. */
export async function preparePgliteTemplate(): Promise<string> {
  const target = pgliteTemplatePath();
  if (!fs.existsSync(target)) {
    const pg = await PGlite.create();
    const blob = await pg.dumpDataDir('none');
    await pg.close();
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.from(await blob.arrayBuffer()));
    fs.renameSync(tmp, target);
  }
  const dir = pgliteTemplateDir();
  if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) {
    const tmp = `${dir}.${process.pid}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    await (await PGlite.create(tmp, { loadDataDir: new Blob([fs.readFileSync(target)]) })).close();
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      // Another process prepared it meanwhile (two installs or tests at once): theirs is as good.
      fs.rmSync(tmp, { recursive: true, force: true });
      if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) throw err;
    }
  }
  return target;
}
