/**
 * The SQL bus: jobs are rows of `bus_jobs` in the application database (PGlite or PostgreSQL).
 * - Group commit: enqueues, publishes and acks made in the same tick are coalesced into one
 *   statement each; every caller's promise resolves after that statement commits.
 * - Wakeups: same-process consumers are woken in memory right after a commit; other processes
 *   by the insert trigger's NOTIFY (one per statement, delivered at commit). An idle consumer
 *   sleeps until the next job is due (delayed job, expiring lease) or the poll interval.
 * - Events: a publish copies the event into the queue of each matching subscription, so events
 *   get leases, retries and dead letters from the job machinery.
 */
import { Batcher, flushResults } from '../batcher.js';
import type { Db, Queryable } from '../db/db.js';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Bus, ClaimOptions, ConsumeOptions, Consumer, DeadLetter, EnqueueOptions, EventHandler, Job, JobHandler, NackOptions, QueueStats } from './bus.js';
import { checkDelayMs, closedError, consumerSettings, encodePayload, eventEnvelope, startTrackedConsumer, type BusDefaults, type JobSource } from './consumer.js';
import { assertName, assertPattern, assertUserQueue, eventQueueName, patternToRegex } from './pattern.js';
import * as repo from './sql.repo.js';
import { createMemoryLiveEvents, createNotifyLiveEvents, type LiveEvents } from './live.js';

export interface SqlBusOptions {
  db: Db;
  serviceName: string;
  logger: Logger;
  maxAttempts: number;
  leaseMs: number;
  /** Fallback poll of idle consumers (missed NOTIFY, other processes' nacks). Default 1 s. */
  pollMs?: number;
  /** How long closing waits for running handlers. Default 10 s. */
  drainTimeoutMs?: number;
}

/** Rows per group-commit statement. */
const MAX_BATCH = 1_000;

export async function createSqlBus(opts: SqlBusOptions): Promise<Bus> {
  const bus = new SqlBus(opts);
  await bus.start();
  return bus;
}

interface PendingJob {
  queue: string;
  payload: string;
  delayMs: number;
  held: boolean;
}

interface PendingEvent {
  name: string;
  envelope: string;
}

class SqlBus implements Bus {
  readonly kind = 'sql' as const;
  readonly live: LiveEvents;
  private readonly db: Db;
  private readonly log: Logger;
  private readonly defaults: BusDefaults;
  private readonly pollMs: number;
  private readonly wakeups = new Map<string, { seq: number; waiters: Set<() => void> }>();
  private readonly consumers = new Set<Consumer>();
  private readonly lastErrors = new WeakMap<Job, string>();
  private readonly enqueues: Batcher<PendingJob, number>;
  private readonly publishes: Batcher<PendingEvent>;
  private readonly acks: Batcher<number>;
  /** PGlite only: one claim statement for all local consumers of a queue (see `claimFor`). */
  private readonly claims = new Map<string, Batcher<number, repo.JobRow[]>>();
  private channel = '';
  private unlisten: (() => Promise<void>) | undefined;
  private closed = false;

  constructor(private readonly opts: SqlBusOptions) {
    this.db = opts.db;
    this.log = opts.logger.child({ module: 'bus', adapter: 'sql' });
    this.pollMs = opts.pollMs ?? 1_000;
    this.defaults = { leaseMs: opts.leaseMs, maxAttempts: opts.maxAttempts, drainTimeoutMs: opts.drainTimeoutMs ?? 10_000, logger: this.log };
    // PGlite runs one statement at a time: one flush in flight lets the next batch grow while
    // it waits. A PostgreSQL pool commits a few batches in parallel.
    const inFlight = this.db.dialect === 'pglite' ? 1 : 3;
    this.enqueues = new Batcher({ maxBatch: MAX_BATCH, maxInFlight: inFlight, flush: flushResults((items) => this.flushEnqueues(items)) });
    this.publishes = new Batcher({ maxBatch: MAX_BATCH, maxInFlight: inFlight, flush: (batch) => this.flushPublishes(batch.map((b) => b.item)) });
    this.acks = new Batcher({ maxBatch: MAX_BATCH, maxInFlight: inFlight, flush: (batch) => this.flushAcks(batch.map((b) => b.item)) });
    this.live = this.db.dialect === 'pglite' ? createMemoryLiveEvents(this.log) : createNotifyLiveEvents(this.db, () => repo.notifyChannel(this.db, 'live'), this.log);
  }

  async start(): Promise<void> {
    if (this.db.exclusive) {
      // Before any consumer claims: jobs the last process held (claimed or handed off in
      // process) would otherwise wait out their leases, up to a step's time limit.
      const released = await repo.releaseAllLeases(this.db);
      if (released > 0) this.log.info({ released }, 'released the leases a stopped process held');
    }
    this.channel = await repo.notifyChannel(this.db, 'bus');
    this.unlisten = await this.db.listen(this.channel, (payload) => {
      if (payload === '*') for (const queue of this.wakeups.keys()) this.wake(queue);
      else for (const queue of payload.split(',')) this.wake(queue);
    });
  }

  // ---- events ----

  async publish<P>(name: string, payload: P, opts: { tx?: Queryable } = {}): Promise<void> {
    this.assertOpen();
    assertName(name, 'event name');
    const envelope = encodePayload(eventEnvelope(name, payload, this.opts.serviceName));
    if (opts.tx) {
      await repo.fanOutEvents(opts.tx, [name], [envelope]);
      return;
    }
    await this.publishes.add({ name, envelope });
  }

  async publishMany<P>(events: ReadonlyArray<{ name: string; payload: P }>, opts: { tx?: Queryable } = {}): Promise<void> {
    this.assertOpen();
    for (const e of events) assertName(e.name, 'event name');
    const envelopes = events.map((e) => encodePayload(eventEnvelope(e.name, e.payload, this.opts.serviceName)));
    if (opts.tx) {
      if (events.length > 0) await repo.fanOutEvents(opts.tx, events.map((e) => e.name), envelopes);
      return;
    }
    await Promise.all(events.map((e, i) => this.publishes.add({ name: e.name, envelope: envelopes[i]! })));
  }

  async subscribe<P = unknown>(pattern: string, group: string, handler: EventHandler<P>, opts: ConsumeOptions = {}): Promise<Consumer> {
    this.assertOpen();
    assertPattern(pattern);
    assertName(group, 'group');
    const queue = eventQueueName(group, pattern);
    await repo.insertSubscription(this.db, group, pattern, queue, patternToRegex(pattern));
    return this.startConsuming(queue, (job: Job) => handler(job.payload as Parameters<EventHandler<P>>[0]), opts);
  }

  // ---- work queues ----

  async enqueue<T>(queue: string, payload: T, opts: EnqueueOptions = {}): Promise<string> {
    this.assertOpen();
    assertUserQueue(queue);
    const item = { queue, payload: encodePayload(payload), delayMs: checkDelayMs(opts.delayMs), held: opts.held === true };
    if (opts.tx) {
      const [id] = await repo.insertJobs(opts.tx, [queue], [item.payload], [item.delayMs], [], [item.held]);
      return String(id);
    }
    return String(await this.enqueues.add(item));
  }

  async enqueueMany<T>(queue: string, payloads: readonly T[], opts: EnqueueOptions = {}): Promise<string[]> {
    this.assertOpen();
    assertUserQueue(queue);
    if (payloads.length === 0) return [];
    const delayMs = checkDelayMs(opts.delayMs);
    const encoded = payloads.map((p) => encodePayload(p));
    // One statement, so the whole batch is stored or none of it.
    const ids = await repo.insertJobs(opts.tx ?? this.db, encoded.map(() => queue), encoded, encoded.map(() => delayMs), [], encoded.map(() => opts.held === true));
    if (!opts.tx && this.isDueSoon(delayMs)) this.wake(queue);
    return ids.map(String);
  }

  async enqueueEach<T>(items: ReadonlyArray<{ queue: string; payload: T }>, opts: EnqueueOptions = {}): Promise<string[]> {
    this.assertOpen();
    if (items.length === 0) return [];
    for (const item of items) assertUserQueue(item.queue);
    const delayMs = checkDelayMs(opts.delayMs);
    const encoded = items.map((i) => encodePayload(i.payload));
    // One statement, so the whole batch is stored or none of it.
    const ids = await repo.insertJobs(opts.tx ?? this.db, items.map((i) => i.queue), encoded, encoded.map(() => delayMs), [], encoded.map(() => opts.held === true));
    if (!opts.tx && this.isDueSoon(delayMs)) for (const queue of new Set(items.map((i) => i.queue))) this.wake(queue);
    return ids.map(String);
  }

  async claim<T = unknown>(queue: string, opts: ClaimOptions = {}): Promise<Job<T>[]> {
    this.assertOpen();
    assertName(queue, 'queue');
    const rows = await repo.claimJobs(this.db, queue, Math.max(1, opts.max ?? 1), opts.leaseMs ?? this.opts.leaseMs);
    return rows.map((row) => this.toJob<T>(row));
  }

  async ack(job: Job): Promise<void> {
    await this.acks.add(jobId(job));
  }

  async nack(job: Job, opts: NackOptions = {}): Promise<void> {
    const delayMs = checkDelayMs(opts.delayMs);
    await repo.retryJob(this.db, jobId(job), job.attempt, delayMs, opts.error ?? null);
    this.wake(job.queue);
  }

  async deadLetter(job: Job, error: string): Promise<void> {
    const moved = await repo.moveJobToDeadLetters(this.db, jobId(job), job.attempt, error);
    if (!moved) this.log.debug({ jobId: job.id }, 'bus: dead-letter skipped; the job is no longer held by this delivery');
  }

  async consume<T = unknown>(queue: string, handler: JobHandler<T>, opts: ConsumeOptions = {}): Promise<Consumer> {
    this.assertOpen();
    assertUserQueue(queue);
    return this.startConsuming(queue, handler as JobHandler, opts);
  }

  // ---- inspection ----

  async stats(queue: string): Promise<QueueStats> {
    assertName(queue, 'queue');
    return toStats(await repo.queueStats(this.db, queue));
  }

  async allStats(): Promise<QueueStats[]> {
    return (await repo.allQueueStats(this.db)).map(toStats);
  }

  async listDeadLetters<T = unknown>(queue: string, limit = 100): Promise<DeadLetter<T>[]> {
    assertName(queue, 'queue');
    return (await repo.listDeadLetters(this.db, queue, limit)).map((r) => toDeadLetter<T>(r));
  }

  async requeueDeadLetter(id: string): Promise<void> {
    this.assertOpen();
    const queue = await repo.requeueDeadLetter(this.db, id);
    if (!queue) throw AppError.notFound(`dead letter ${id}`);
    this.wake(queue);
  }

  async ping(): Promise<void> {
    if (this.closed) throw closedError();
    await this.db.ping();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.consumers].map((c) => c.stop()));
    await Promise.all([this.enqueues.idle(), this.publishes.idle(), this.acks.idle()]);
    await this.unlisten?.().catch((err: unknown) => this.log.warn({ err }, 'bus: unlisten failed'));
    await this.live.close().catch((err: unknown) => this.log.warn({ err }, 'bus: closing live events failed'));
  }

  // ---- internals ----

  private startConsuming(queue: string, handler: JobHandler, opts: ConsumeOptions): Consumer {
    const settings = consumerSettings(queue, opts, this.defaults);
    return startTrackedConsumer(this.consumers, this.source(queue, settings.leaseMs), handler, settings);
  }

  private source(queue: string, leaseMs: number): JobSource {
    return {
      pull: async (max, signal, onJob) => {
        const wakeup = this.wakeup(queue);
        const seen = wakeup.seq;
        const rows = await this.claimFor(queue, leaseMs, max);
        if (rows.length > 0) {
          for (const row of rows) onJob(this.toJob(row));
          return;
        }
        if (wakeup.seq !== seen || signal.aborted) return;
        // Nothing ready: sleep until the next job is due (a delayed job or an expiring lease),
        // a wakeup, or the poll interval, whichever comes first.
        const dueInMs = await repo.msUntilNextVisible(this.db, queue);
        if (wakeup.seq !== seen || signal.aborted) return;
        // Due now but not claimable: another consumer's claim holds the rows until it commits.
        const sleepMs = dueInMs === null ? this.pollMs : Math.min(this.pollMs, Math.max(2, Math.ceil(dueInMs)));
        await this.sleepUntilWoken(queue, seen, sleepMs, signal);
      },
      ack: (job) => this.ack(job),
      nack: (job, o) => this.nack(job, o),
      deadLetter: (job, error) => this.deadLetter(job, error),
      release: async (jobs) => {
        await repo.releaseJobs(this.db, jobs.map(jobId), jobs.map((j) => j.attempt), this.channel);
        this.wake(queue);
      },
      extend: async (jobs) => {
        const kept = new Set(await repo.extendLeases(this.db, jobs.map(jobId), jobs.map((j) => j.attempt), leaseMs));
        return jobs.filter((j) => kept.has(jobId(j)));
      },
      lastError: (job) => this.lastErrors.get(job),
    };
  }

  /**
   * On PGlite every statement runs in turn on one thread, so several local consumers of a queue
   * claiming separately only add statements: their claims made in the same tick are coalesced
   * into one, and the rows shared out in order. PostgreSQL runs them in parallel instead.
   */
  private claimFor(queue: string, leaseMs: number, max: number): Promise<repo.JobRow[]> {
    if (this.db.dialect !== 'pglite') return repo.claimJobs(this.db, queue, max, leaseMs);
    const key = `${queue} ${leaseMs}`;
    let batcher = this.claims.get(key);
    if (!batcher) {
      batcher = new Batcher<number, repo.JobRow[]>({
        maxBatch: 64,
        maxInFlight: 1,
        flush: flushResults(async (maxes) => {
          const rows = await repo.claimJobs(this.db, queue, maxes.reduce((a, b) => a + b, 0), leaseMs);
          let next = 0;
          return maxes.map((m) => rows.slice(next, (next += m)));
        }),
      });
      this.claims.set(key, batcher);
    }
    return batcher.add(max);
  }

  /**
   * Whether a new job is worth waking its consumers for. One due later (a long delay, an
   * in-process hand-off invisible for its lease) would only cost them a claim that finds
   * nothing; an idle consumer wakes by itself at least every `pollMs` and then sleeps until the
   * next job is due. The insert trigger applies the same rule across processes.
   */
  private isDueSoon(delayMs: number): boolean {
    return delayMs <= Math.min(this.pollMs, 1_000);
  }

  private wakeup(queue: string): { seq: number; waiters: Set<() => void> } {
    let w = this.wakeups.get(queue);
    if (!w) {
      w = { seq: 0, waiters: new Set() };
      this.wakeups.set(queue, w);
    }
    return w;
  }

  private wake(queue: string): void {
    const w = this.wakeups.get(queue);
    if (!w) return;
    w.seq++;
    for (const resolve of w.waiters) resolve();
    w.waiters.clear();
  }

  private sleepUntilWoken(queue: string, seen: number, ms: number, signal: AbortSignal): Promise<void> {
    const w = this.wakeup(queue);
    if (w.seq !== seen || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        w.waiters.delete(done);
        resolve();
      };
      // Not unref'd: a running consumer is a reason for the process to stay up; stop() aborts it.
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      w.waiters.add(done);
    });
  }

  private async flushEnqueues(items: PendingJob[]): Promise<number[]> {
    // Acks waiting for their own statement are stored with this one (the webhook inserts and the
    // engine's acks of the flow bench take turns: one statement per round instead of two).
    const acks = this.acks.take();
    let ids: number[];
    try {
      ids = await repo.insertJobs(this.db, items.map((i) => i.queue), items.map((i) => i.payload), items.map((i) => i.delayMs), acks.map((a) => a.item), items.map((i) => i.held));
    } catch (err) {
      // Not stored with the jobs: on their own, then.
      if (acks.length > 0) {
        void this.flushAcks(acks.map((a) => a.item)).then(
          () => acks.forEach((a) => a.resolve(undefined)),
          (ackErr: unknown) => acks.forEach((a) => a.reject(ackErr)),
        );
      }
      throw err;
    }
    acks.forEach((a) => a.resolve(undefined));
    for (const queue of new Set(items.filter((i) => this.isDueSoon(i.delayMs)).map((i) => i.queue))) this.wake(queue);
    return ids;
  }

  private async flushPublishes(items: PendingEvent[]): Promise<void> {
    const queues = await repo.fanOutEvents(this.db, items.map((i) => i.name), items.map((i) => i.envelope));
    for (const queue of queues) this.wake(queue);
  }

  private async flushAcks(ids: number[]): Promise<void> {
    await repo.deleteJobs(this.db, ids);
  }

  private toJob<T>(row: repo.JobRow): Job<T> {
    const job: Job<T> = { id: String(row.id), queue: row.queue, payload: JSON.parse(row.payload) as T, attempt: row.attempt, enqueuedAt: row.enqueued_at };
    if (row.last_error) this.lastErrors.set(job, row.last_error);
    return job;
  }

  private assertOpen(): void {
    if (this.closed) throw closedError();
  }
}

function jobId(job: Job): number {
  const id = Number(job.id);
  if (!Number.isSafeInteger(id)) throw AppError.invalid(`invalid job id ${JSON.stringify(job.id)} for the SQL bus`);
  return id;
}

function toStats(r: repo.StatsRow): QueueStats {
  return {
    queue: r.queue,
    depth: r.depth,
    ready: r.ready,
    delayed: r.delayed,
    inFlight: r.in_flight,
    deadLettered: r.dead_lettered,
    oldestAgeMs: Math.max(0, Math.round(r.oldest_age_ms)),
  };
}

export function toDeadLetter<T>(r: repo.DeadLetterRow): DeadLetter<T> {
  return { id: r.id, queue: r.queue, payload: JSON.parse(r.payload) as T, attempts: r.attempts, error: r.error, failedAt: r.failed_at, enqueuedAt: r.enqueued_at };
}
