/** SQL of the embedded database's housekeeping (see vacuum.ts). */
import type { Queryable } from './db.js';

/** VACUUM of every table the role can vacuum: reclaims dead rows so tables stop growing. */
export async function vacuumDatabase(db: Queryable): Promise<void> {
  await db.exec('VACUUM');
}

/** Refreshes planner statistics of every table. */
export async function analyzeDatabase(db: Queryable): Promise<void> {
  await db.exec('ANALYZE');
}
