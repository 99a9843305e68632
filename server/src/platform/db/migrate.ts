/**
 * Forward-only numbered migrations from `server/migrations/NNNN_name.sql`.
 * Safe when several processes boot at once: each migration runs in its own transaction
 * under an advisory lock, and its row is inserted first, so exactly one process applies it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../errors.js';
import type { Db } from './db.js';
import { claimMigration, ensureMigrationsTable, listAppliedMigrations, lockMigrations } from './migrations.repo.js';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations');

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const seen = new Map<number, string>();
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((file) => {
      const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
      if (!m) throw new AppError('INTERNAL', `migration file ${file} must be named NNNN_name.sql`, 'bug');
      const id = Number(m[1]);
      const clash = seen.get(id);
      if (clash) throw new AppError('INTERNAL', `migrations ${clash} and ${file} share number ${id}`, 'bug');
      seen.set(id, file);
      return { id, name: m[2]!, sql: fs.readFileSync(path.join(dir, file), 'utf8') };
    });
}

/** Applies every migration not yet applied; returns the ids it applied itself. */
export async function migrate(db: Db, migrations = readMigrations()): Promise<number[]> {
  await db.transaction(async (tx) => {
    await lockMigrations(tx);
    await ensureMigrationsTable(tx);
  });
  const applied = new Set(await listAppliedMigrations(db));
  const done: number[] = [];
  for (const m of migrations) {
    if (applied.has(m.id)) continue;
    await db.transaction(async (tx) => {
      await lockMigrations(tx);
      if (!(await claimMigration(tx, m.id, m.name))) return;
      await tx.exec(m.sql);
      done.push(m.id);
    });
  }
  return done;
}
