/**
 * SQL of the bus tables (see migrations/0001_bus.sql): one statement per function. Batches are
 * passed as parallel arrays (`unnest`), which both PGlite and `pg` serialise. Every time
 * comparison uses the database clock, so app servers with skewed clocks agree on leases.
 */
import type { Queryable } from '../db/db.js';

export interface JobRow {
  id: number;
  queue: string;
  payload: string;
  attempt: number;
  enqueued_at: Date;
  last_error: string | null;
}

export interface StatsRow {
  queue: string;
  depth: number;
  ready: number;
  delayed: number;
  in_flight: number;
  dead_lettered: number;
  oldest_age_ms: number;
}

export interface DeadLetterRow {
  id: string;
  queue: string;
  payload: string;
  attempts: number;
  error: string;
  failed_at: Date;
  enqueued_at: Date;
}

/** The LISTEN channel this schema's triggers notify for `kind` ('bus' or 'outbox'). */
export async function notifyChannel(db: Queryable, kind: 'bus' | 'outbox' | 'live'): Promise<string> {
  const res = await db.query<{ channel: string }>('SELECT bus_channel($1, current_schema()) AS channel', [kind]);
  return res.rows[0]!.channel;
}

/** Jobs due within this long wake the consumers of their queue; later ones are found by polling. */
const WAKE_WITHIN_MS = 1_000;

/**
 * Inserts jobs in one statement; returns their ids in input order. Payloads are JSON texts and
 * travel as one JSON array, not a text[]: an array literal would escape every quote of every
 * payload, and PostgreSQL would unescape them again. A `json` value keeps its text as given.
 */
export async function insertJobs(
  db: Queryable,
  queues: readonly string[],
  payloads: readonly string[],
  delaysMs: readonly number[],
  ackIds: readonly number[] = [],
  held?: readonly boolean[],
): Promise<number[]> {
  // Consumers are woken for the queues with a job due within a second (migration 0003).
  const due = new Set<string>();
  queues.forEach((q, i) => {
    if (delaysMs[i]! <= WAKE_WITHIN_MS) due.add(q);
  });
  const anyHeld = held?.some(Boolean) ?? false;
  const params: unknown[] = [queues, `[${payloads.join(',')}]`, delaysMs, due.size > 0 ? [...due].join(',') : null];
  if (ackIds.length > 0) params.push(ackIds);
  if (anyHeld) params.push(held);
  const heldParam = `$${params.length}`;
  const res = await db.query<{ id: number }>(
    // Acks waiting to be stored ride along (see SqlBus.flushEnqueues): one statement less.
    // A held job (EnqueueOptions.held) is stored leased: in flight until its delay ends.
    `WITH ${ackIds.length > 0 ? 'acked AS (DELETE FROM bus_jobs WHERE id = ANY($5::bigint[])),' : ''}
     ins AS (
       INSERT INTO bus_jobs (queue, payload, visible_at${anyHeld ? ', in_flight' : ''})
       SELECT ($1::text[])[p.n], p.payload::text, now() + ($3::float8[])[p.n] * interval '1 millisecond'${anyHeld ? `, (${heldParam}::boolean[])[p.n]` : ''}
       FROM json_array_elements($2::json) WITH ORDINALITY AS p(payload, n)
       ORDER BY p.n
       RETURNING id)
     SELECT id FROM ins WHERE (SELECT bus_wake($4))`,
    params,
  );
  // Identity values are drawn in insertion order, which ORDER BY n fixes; RETURNING order is
  // not promised, so sort rather than trust it.
  return res.rows.map((r) => r.id).sort((a, b) => a - b);
}

/** Copies each event into the queue of every subscription whose regex matches its name. */
export async function fanOutEvents(db: Queryable, names: readonly string[], envelopes: readonly string[]): Promise<string[]> {
  const res = await db.query<{ queue: string }>(
    `WITH ins AS (
       INSERT INTO bus_jobs (queue, payload)
       SELECT s.queue, e.envelope
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS e(name, envelope, n)
       JOIN bus_subscriptions s ON e.name ~ s.regex
       ORDER BY e.n, s.queue
       RETURNING queue)
     SELECT queue FROM ins WHERE (SELECT bus_wake(string_agg(DISTINCT queue, ',')) FROM ins)`,
    [names, envelopes],
  );
  return [...new Set(res.rows.map((r) => r.queue))];
}

export async function insertSubscription(db: Queryable, group: string, pattern: string, queue: string, regex: string): Promise<void> {
  await db.query(
    `INSERT INTO bus_subscriptions (group_name, pattern, queue, regex) VALUES ($1, $2, $3, $4)
     ON CONFLICT (group_name, pattern) DO NOTHING`,
    [group, pattern, queue, regex],
  );
}

/**
 * A condition that turns off synchronous_commit for the statement's own transaction. Only for
 * writes whose loss in a crash is harmless under at-least-once: a lost claim leaves the job
 * claimable, a lost ack or heartbeat redelivers it. They then skip the WAL flush, which is most
 * of their cost on PostgreSQL. Enqueues never use it: they must be durable when they resolve.
 */
const WITHOUT_WAL_FLUSH = `(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL`;

/** Claims up to `max` visible jobs (ready, or with an expired lease), oldest first. */
export async function claimJobs(db: Queryable, queue: string, max: number, leaseMs: number): Promise<JobRow[]> {
  const res = await db.query<JobRow>(
    `UPDATE bus_jobs j
     SET attempt = j.attempt + 1, in_flight = true, visible_at = now() + $3::float8 * interval '1 millisecond'
     FROM (
       SELECT id FROM bus_jobs
       WHERE queue = $1 AND visible_at <= now()
       ORDER BY visible_at, id
       LIMIT $2
       FOR UPDATE SKIP LOCKED
     ) c
     WHERE j.id = c.id AND ${WITHOUT_WAL_FLUSH}
     RETURNING j.id, j.queue, j.payload, j.attempt, j.enqueued_at, j.last_error`,
    [queue, max, leaseMs],
  );
  return res.rows.sort((a, b) => a.id - b.id);
}

/** Milliseconds until the next job of `queue` becomes visible (≤ 0: now); null when it is empty. */
export async function msUntilNextVisible(db: Queryable, queue: string): Promise<number | null> {
  const res = await db.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM min(visible_at) - now()) * 1000)::float8 AS ms FROM bus_jobs WHERE queue = $1`,
    [queue],
  );
  return res.rows[0]?.ms ?? null;
}

/** Ack: the jobs are done, whoever holds them now. */
export async function deleteJobs(db: Queryable, ids: readonly number[]): Promise<void> {
  await db.query(`DELETE FROM bus_jobs WHERE id = ANY($1::bigint[]) AND ${WITHOUT_WAL_FLUSH}`, [ids]);
}

/** Nack: back after `delayMs`, if the caller still holds this delivery. */
export async function retryJob(db: Queryable, id: number, attempt: number, delayMs: number, error: string | null): Promise<boolean> {
  const res = await db.query(
    `UPDATE bus_jobs
     SET in_flight = false, visible_at = now() + $3::float8 * interval '1 millisecond', last_error = coalesce($4, last_error)
     WHERE id = $1 AND attempt = $2`,
    [id, attempt, delayMs, error],
  );
  return res.rowCount > 0;
}

/**
 * Gives back deliveries that never reached a handler: visible at once, and the delivery does
 * not count. Notifies other processes in the same statement (an UPDATE fires no insert trigger).
 */
export async function releaseJobs(db: Queryable, ids: readonly number[], attempts: readonly number[], channel: string): Promise<void> {
  await db.query(
    `WITH released AS (
       UPDATE bus_jobs j SET in_flight = false, visible_at = now(), attempt = j.attempt - 1
       FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
       WHERE j.id = r.id AND j.attempt = r.attempt
       RETURNING j.queue
     )
     SELECT pg_notify($3, q) FROM (SELECT string_agg(DISTINCT queue, ',') AS q FROM released) s WHERE q IS NOT NULL`,
    [ids, attempts, channel],
  );
}

/**
 * Gives back every lease in the database: for a database only this process can open (embedded
 * PGlite under the data-directory lock), whoever held them is gone. Claimed deliveries keep
 * their attempt (the crash may have been theirs); held hand-offs become plain ready jobs.
 * Returns how many jobs became claimable.
 */
export async function releaseAllLeases(db: Queryable): Promise<number> {
  const res = await db.query(`UPDATE bus_jobs SET in_flight = false, visible_at = now() WHERE in_flight`);
  return res.rowCount;
}

/** Heartbeat: pushes the leases of deliveries still held further out; returns the ids extended. */
export async function extendLeases(db: Queryable, ids: readonly number[], attempts: readonly number[], leaseMs: number): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `UPDATE bus_jobs j SET visible_at = now() + $3::float8 * interval '1 millisecond'
     FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
     WHERE j.id = r.id AND j.attempt = r.attempt AND j.in_flight AND ${WITHOUT_WAL_FLUSH}
     RETURNING j.id`,
    [ids, attempts, leaseMs],
  );
  return res.rows.map((r) => r.id);
}

/** Moves a held delivery to the dead letters, keeping payload, attempts and the error. */
export async function moveJobToDeadLetters(db: Queryable, id: number, attempt: number, error: string): Promise<boolean> {
  const res = await db.query(
    `WITH gone AS (DELETE FROM bus_jobs WHERE id = $1 AND attempt = $2 RETURNING id, queue, payload, attempt, enqueued_at)
     INSERT INTO bus_dead_letters (id, queue, payload, attempts, error, enqueued_at)
     SELECT id::text, queue, payload, attempt, $3, enqueued_at FROM gone
     ON CONFLICT (id) DO UPDATE SET queue = EXCLUDED.queue, payload = EXCLUDED.payload, attempts = EXCLUDED.attempts,
       error = EXCLUDED.error, enqueued_at = EXCLUDED.enqueued_at, failed_at = now()
     RETURNING id`,
    [id, attempt, error],
  );
  return res.rowCount > 0;
}

/** Records a dead letter for a message that lives outside bus_jobs (NATS). Idempotent per id. */
export async function insertDeadLetter(db: Queryable, dl: Omit<DeadLetterRow, 'failed_at'>): Promise<void> {
  await db.query(
    `INSERT INTO bus_dead_letters (id, queue, payload, attempts, error, enqueued_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (id) DO NOTHING`,
    [dl.id, dl.queue, dl.payload, dl.attempts, dl.error, dl.enqueued_at],
  );
}

export async function listDeadLetters(db: Queryable, queue: string, limit: number): Promise<DeadLetterRow[]> {
  const res = await db.query<DeadLetterRow>(
    `SELECT id, queue, payload, attempts, error, failed_at, enqueued_at FROM bus_dead_letters
     WHERE queue = $1 ORDER BY failed_at DESC, id DESC LIMIT $2`,
    [queue, limit],
  );
  return res.rows;
}

/** Removes a dead letter and returns it (NATS requeues it through the outbox in the same transaction). */
export async function takeDeadLetter(db: Queryable, id: string): Promise<DeadLetterRow | undefined> {
  const res = await db.query<DeadLetterRow>(
    'DELETE FROM bus_dead_letters WHERE id = $1 RETURNING id, queue, payload, attempts, error, failed_at, enqueued_at',
    [id],
  );
  return res.rows[0];
}

/** Moves a dead letter back to its queue under the same job id, with a fresh attempt count. */
export async function requeueDeadLetter(db: Queryable, id: string): Promise<string | undefined> {
  const res = await db.query<{ queue: string }>(
    `WITH dl AS (DELETE FROM bus_dead_letters WHERE id = $1 RETURNING id, queue, payload, enqueued_at),
     ins AS (
       INSERT INTO bus_jobs (id, queue, payload, enqueued_at)
       SELECT CASE WHEN id ~ '^[0-9]{1,18}$' THEN id::bigint ELSE nextval(pg_get_serial_sequence('bus_jobs', 'id')) END,
              queue, payload, enqueued_at
       FROM dl
       RETURNING queue)
     SELECT queue FROM ins WHERE (SELECT bus_wake(string_agg(queue, ',')) FROM ins)`,
    [id],
  );
  return res.rows[0]?.queue;
}

const STATS_COLUMNS = `count(*)::int AS depth,
  (count(*) FILTER (WHERE visible_at <= now()))::int AS ready,
  (count(*) FILTER (WHERE visible_at > now() AND NOT in_flight))::int AS delayed,
  (count(*) FILTER (WHERE visible_at > now() AND in_flight))::int AS in_flight,
  coalesce(extract(epoch FROM now() - min(enqueued_at)) * 1000, 0)::float8 AS oldest_age_ms`;

export async function queueStats(db: Queryable, queue: string): Promise<StatsRow> {
  const res = await db.query<StatsRow>(
    `SELECT $1::text AS queue, ${STATS_COLUMNS},
       (SELECT count(*)::int FROM bus_dead_letters WHERE queue = $1) AS dead_lettered
     FROM bus_jobs WHERE queue = $1`,
    [queue],
  );
  return res.rows[0]!;
}

export async function allQueueStats(db: Queryable): Promise<StatsRow[]> {
  const res = await db.query<StatsRow>(
    `WITH j AS (SELECT queue, ${STATS_COLUMNS} FROM bus_jobs GROUP BY queue),
          d AS (SELECT queue, count(*)::int AS dead_lettered FROM bus_dead_letters GROUP BY queue)
     SELECT queue, coalesce(j.depth, 0) AS depth, coalesce(j.ready, 0) AS ready, coalesce(j.delayed, 0) AS delayed,
            coalesce(j.in_flight, 0) AS in_flight, coalesce(d.dead_lettered, 0) AS dead_lettered,
            coalesce(j.oldest_age_ms, 0) AS oldest_age_ms
     FROM j FULL JOIN d USING (queue)
     ORDER BY queue`,
  );
  return res.rows;
}

export async function countDeadLetters(db: Queryable, queue: string): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM bus_dead_letters WHERE queue = $1', [queue]);
  return res.rows[0]!.n;
}

export async function countDeadLettersByQueue(db: Queryable): Promise<{ queue: string; n: number }[]> {
  const res = await db.query<{ queue: string; n: number }>('SELECT queue, count(*)::int AS n FROM bus_dead_letters GROUP BY queue');
  return res.rows;
}
