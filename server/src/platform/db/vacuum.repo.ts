/** SQL of the embedded database's housekeeping (see vacuum.ts). */
import type { Queryable } from './db.js';

/** The tables of the current schema (schema-qualified and quoted): the ones the hub writes. */
export async function listOwnTables(db: Queryable): Promise<string[]> {
  const res = await db.query<{ name: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')
      ORDER BY 1`,
  );
  return res.rows.map((r) => r.name);
}

/** VACUUM of the given tables (names as listOwnTables returns them). */
export async function vacuumTables(db: Queryable, names: readonly string[]): Promise<void> {
  if (names.length > 0) await db.exec(`VACUUM ${names.join(', ')}`);
}

/** VACUUM of every table the role can vacuum, the system catalogs included. */
export async function vacuumDatabase(db: Queryable): Promise<void> {
  await db.exec('VACUUM');
}

/** Refreshes planner statistics of every table. */
export async function analyzeDatabase(db: Queryable): Promise<void> {
  await db.exec('ANALYZE');
}
