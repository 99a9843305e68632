/** SQL of the migration runner: its bookkeeping table and the lock that serialises boots. */
import type { Queryable } from './db.js';

export async function ensureMigrationsTable(db: Queryable): Promise<void> {
  await db.exec(`CREATE TABLE IF NOT EXISTS plexus_migrations (
    id integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
}

/** Transaction-scoped advisory lock: concurrent boots take turns, released at commit. */
export async function lockMigrations(tx: Queryable): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.plexus_migrations'))`);
}

/** Inserts the migration row first; false when another process already applied it. */
export async function claimMigration(tx: Queryable, id: number, name: string): Promise<boolean> {
  const res = await tx.query('INSERT INTO plexus_migrations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id', [id, name]);
  return res.rows.length === 1;
}

export async function listAppliedMigrations(db: Queryable): Promise<number[]> {
  const res = await db.query<{ id: number }>('SELECT id FROM plexus_migrations ORDER BY id');
  return res.rows.map((r) => r.id);
}
