/**
 * The bus: events (publish/subscribe with wildcard topics) and durable work queues, behind one
 * interface with two adapters — SQL (the default; the same database as everything else) and
 * NATS JetStream (scale-out). One contract suite (`bus.contract.test.ts`) runs against both.
 *
 * Glossary
 * - Event: `{headers:{name,createdAt,serviceName},payload}` (seed 002). Names are dot-separated
 *   tokens (`flow.started`, `audit.iam.login`).
 * - Pattern: an event name where `*` matches exactly one token and `>` (last only) one or more.
 * - Group: a named set of competing subscribers. Every group gets every matching event; within
 *   a group each event goes to one subscriber. A group's subscription is durable: events
 *   published while none of its subscribers runs wait for it.
 * - Queue: a named durable FIFO of jobs (`[A-Za-z0-9_-]` tokens joined by dots).
 * - Job: one queued message. Claimed with a lease; acked (gone), nacked (back after a delay),
 *   or dead-lettered (kept with its last error) after `maxAttempts` deliveries.
 */
import type { Queryable } from '../db/db.js';
import type { LiveEvents } from './live.js';

export interface EventHeaders {
  name: string;
  createdAt: string;
  serviceName: string;
}

export interface BusEvent<P = unknown> {
  headers: EventHeaders;
  payload: P;
}

export interface Job<T = unknown> {
  id: string;
  queue: string;
  payload: T;
  /** 1 on first delivery, counting every delivery including this one. */
  attempt: number;
  enqueuedAt: Date;
  /**
   * Set on a job handed over in process (never claimed): when its stored copy becomes claimable
   * (ms since the epoch). Work on it must end by then; a claimed job's lease is extended instead.
   */
  leaseEndsAt?: number;
}

export interface EnqueueOptions {
  /** Deliver no sooner than this many milliseconds from now. */
  delayMs?: number;
  /**
   * Enqueue inside the caller's transaction: the job exists if and only if the caller's own
   * writes commit (outbox). The SQL adapter writes the job row itself; the NATS adapter writes
   * an outbox row and relays it after commit.
   */
  tx?: Queryable;
  /**
   * The caller runs the job itself (an in-process hand-off) and holds it for `delayMs`, like a
   * lease: stored in flight, so it is ack'd, nack'd or dead-lettered like a claimed job, and a
   * restart on a database no other process can open (embedded) makes it claimable at once
   * instead of after the delay. The SQL adapter only; NATS ignores it.
   */
  held?: boolean;
}

export interface ClaimOptions {
  /** Most jobs to claim at once. Default 1. */
  max?: number;
  /** How long the claim holds before the job is redelivered. Default: the bus's leaseMs. */
  leaseMs?: number;
}

export interface NackOptions {
  delayMs?: number;
  error?: string;
}

export interface ConsumeOptions {
  /** Handlers running at once. Default 1. */
  concurrency?: number;
  /** Jobs claimed per round trip. Default: concurrency. */
  batchSize?: number;
  leaseMs?: number;
  /** Deliveries before dead-lettering. Default: the bus's maxAttempts. */
  maxAttempts?: number;
  /** Delay before the n-th retry (n = attempt that failed). Default exponential from 1 s, capped at 5 min. */
  retryDelayMs?: (attempt: number) => number;
}

/**
 * A handler that resolves acks the job. One that throws:
 * - an AppError of kind `user` or `bug` → dead-lettered at once with the message;
 * - anything else → nacked with `retryDelayMs(attempt)`, dead-lettered after `maxAttempts`.
 * Throw `RetryLater` to come back after a chosen delay (does not count toward dead-lettering
 * only in the sense that the caller chose it; it still counts as a delivery).
 */
export type JobHandler<T = unknown> = (job: Job<T>) => Promise<void>;
export type EventHandler<P = unknown> = (event: BusEvent<P>) => Promise<void>;

export class RetryLater extends Error {
  override readonly name = 'RetryLater';
  constructor(readonly delayMs: number, reason = 'retry later') {
    super(reason);
  }
}

export interface Consumer {
  /** Stops claiming, waits for running handlers to finish (bounded), releases unstarted claims. */
  stop(): Promise<void>;
}

export interface QueueStats {
  queue: string;
  /** Jobs not yet acked: ready + delayed + in flight. */
  depth: number;
  ready: number;
  delayed: number;
  inFlight: number;
  deadLettered: number;
  /** Age of the oldest unacked job in ms (0 when empty). */
  oldestAgeMs: number;
}

export interface DeadLetter<T = unknown> {
  id: string;
  queue: string;
  payload: T;
  attempts: number;
  error: string;
  failedAt: Date;
  enqueuedAt: Date;
}

export interface Bus {
  readonly kind: 'sql' | 'nats';

  /** Publishes an event to every group subscribed to a matching pattern. Resolves once durable. */
  publish<P>(name: string, payload: P, opts?: { tx?: Queryable }): Promise<void>;
  /** Publishes several events; with `{tx}` all of them or none, in one write in the transaction. */
  publishMany<P>(events: ReadonlyArray<{ name: string; payload: P }>, opts?: { tx?: Queryable }): Promise<void>;
  /** Joins `group` with `handler` for events matching `pattern`. */
  subscribe<P = unknown>(pattern: string, group: string, handler: EventHandler<P>, opts?: ConsumeOptions): Promise<Consumer>;

  /** Durably enqueues; resolves once the job is stored. Returns the job id. */
  enqueue<T>(queue: string, payload: T, opts?: EnqueueOptions): Promise<string>;
  enqueueMany<T>(queue: string, payloads: readonly T[], opts?: EnqueueOptions): Promise<string[]>;
  /** Enqueues onto several queues at once; with `{tx}` all of them or none (one write in the transaction). */
  enqueueEach<T>(items: ReadonlyArray<{ queue: string; payload: T }>, opts?: EnqueueOptions): Promise<string[]>;
  /** Low level: claims up to `max` ready jobs with a lease. */
  claim<T = unknown>(queue: string, opts?: ClaimOptions): Promise<Job<T>[]>;
  ack(job: Job): Promise<void>;
  nack(job: Job, opts?: NackOptions): Promise<void>;
  deadLetter(job: Job, error: string): Promise<void>;
  /** High level: a loop that claims and runs `handler`, with retries and dead-lettering. */
  consume<T = unknown>(queue: string, handler: JobHandler<T>, opts?: ConsumeOptions): Promise<Consumer>;

  stats(queue: string): Promise<QueueStats>;
  /** Stats of every queue that has jobs or dead letters. */
  allStats(): Promise<QueueStats[]>;
  listDeadLetters<T = unknown>(queue: string, limit?: number): Promise<DeadLetter<T>[]>;
  /** Puts a dead letter back on its queue with a fresh attempt count. */
  requeueDeadLetter(id: string): Promise<void>;

  /** Events for whoever listens now (UI updates): not stored, at most once, every process. See live.ts. */
  readonly live: LiveEvents;

  /** Throws when the bus does not answer (readiness). */
  ping(): Promise<void>;
  /** Stops every consumer (draining) and releases connections. */
  close(): Promise<void>;
}
