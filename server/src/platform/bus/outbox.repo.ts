/**
 * SQL of the NATS adapter's outbox (`bus_outbox`): messages written inside a caller's
 * transaction or scheduled for later, relayed to JetStream once committed and due; and its
 * `bus_payloads`, bodies too large for one NATS message.
 */
import type { Queryable } from '../db/db.js';

export interface OutboxInsert {
  subject: string;
  msgId: string;
  queue: string;
  /** JSON object of extra NATS headers. */
  headers: string;
  body: string;
  delayMs: number;
}

export interface OutboxRow {
  id: number;
  subject: string;
  msg_id: string;
  headers: string;
  body: string;
  enqueued_at: Date;
}

export async function insertOutbox(db: Queryable, rows: readonly OutboxInsert[]): Promise<void> {
  await db.query(
    `INSERT INTO bus_outbox (subject, msg_id, queue, headers, body, not_before)
     SELECT x.subject, x.msg_id, x.queue, x.headers, x.body, now() + x.delay_ms * interval '1 millisecond'
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[]) WITH ORDINALITY
       AS x(subject, msg_id, queue, headers, body, delay_ms, n)
     ORDER BY x.n`,
    [rows.map((r) => r.subject), rows.map((r) => r.msgId), rows.map((r) => r.queue), rows.map((r) => r.headers), rows.map((r) => r.body), rows.map((r) => r.delayMs)],
  );
}

/**
 * Takes due rows, oldest first, inside the relay's transaction: rows locked by another relay are
 * skipped, and if publishing fails the transaction rolls back and the rows come back.
 */
export async function takeDueOutbox(tx: Queryable, limit: number): Promise<OutboxRow[]> {
  const res = await tx.query<OutboxRow>(
    `DELETE FROM bus_outbox WHERE id IN (
       SELECT id FROM bus_outbox WHERE not_before <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
     )
     RETURNING id, subject, msg_id, headers, body, enqueued_at`,
    [limit],
  );
  return res.rows.sort((a, b) => a.id - b.id);
}

/** Milliseconds until the next outbox row is due (≤ 0: now); null when the outbox is empty. */
export async function msUntilNextOutboxDue(db: Queryable): Promise<number | null> {
  const res = await db.query<{ ms: number | null }>(`SELECT (extract(epoch FROM min(not_before) - now()) * 1000)::float8 AS ms FROM bus_outbox`);
  return res.rows[0]?.ms ?? null;
}

/** Jobs of each queue waiting in the outbox for their time (the NATS adapter's "delayed"). */
export async function countDelayedByQueue(db: Queryable): Promise<{ queue: string; n: number; oldest_age_ms: number }[]> {
  const res = await db.query<{ queue: string; n: number; oldest_age_ms: number }>(
    `SELECT queue, count(*)::int AS n, (extract(epoch FROM now() - min(enqueued_at)) * 1000)::float8 AS oldest_age_ms
     FROM bus_outbox GROUP BY queue`,
  );
  return res.rows;
}

// ---- bodies too large for a NATS message (bus_payloads, migration 0004) ----

export async function insertPayloads(db: Queryable, rows: ReadonlyArray<{ id: string; payload: string }>): Promise<void> {
  await db.query('INSERT INTO bus_payloads (id, payload) SELECT * FROM unnest($1::text[], $2::text[])', [rows.map((r) => r.id), rows.map((r) => r.payload)]);
}

export async function findPayloads(db: Queryable, ids: readonly string[]): Promise<Map<string, string>> {
  const res = await db.query<{ id: string; payload: string }>('SELECT id, payload FROM bus_payloads WHERE id = ANY($1::text[])', [ids]);
  return new Map(res.rows.map((r) => [r.id, r.payload]));
}

export async function settlePayloads(db: Queryable, ids: readonly string[]): Promise<void> {
  await db.query('UPDATE bus_payloads SET settled_at = now() WHERE id = ANY($1::text[]) AND settled_at IS NULL', [ids]);
}

/** Deletes bodies settled over `settledMs` ago, and any older than `maxAgeMs`; returns how many. */
export async function sweepPayloads(db: Queryable, settledMs: number, maxAgeMs: number): Promise<number> {
  const res = await db.query(
    `DELETE FROM bus_payloads
      WHERE settled_at < now() - $1::float8 * interval '1 millisecond' OR created_at < now() - $2::float8 * interval '1 millisecond'`,
    [settledMs, maxAgeMs],
  );
  return res.rowCount;
}
