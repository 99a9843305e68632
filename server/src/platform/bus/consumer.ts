/**
 * The consume loop both adapters share: pull jobs while there is room → run handlers with
 * bounded concurrency → ack / nack / dead-letter by outcome; heartbeat the leases of held jobs;
 * on stop, drain. An adapter only supplies a `JobSource` (how to pull and settle a job).
 * Below the loop: the few rules (defaults, payload encoding, envelopes) both adapters share.
 */
import type { Logger } from '../logger.js';
import { AppError, isAppError } from '../errors.js';
import { RetryLater, type BusEvent, type ConsumeOptions, type Consumer, type Job, type JobHandler, type NackOptions } from './bus.js';

export interface JobSource {
  /**
   * Claims up to `max` jobs and passes each to `onJob` as it arrives. Resolves when this pull is
   * over; when nothing is ready it may first wait for work, until `signal` aborts.
   */
  pull(max: number, signal: AbortSignal, onJob: (job: Job) => void): Promise<void>;
  ack(job: Job): Promise<void>;
  nack(job: Job, opts: NackOptions): Promise<void>;
  deadLetter(job: Job, error: string): Promise<void>;
  /** Gives back jobs that never reached a handler, visible to others at once. */
  release(jobs: Job[]): Promise<void>;
  /** Extends the leases of held jobs; resolves to those still held (the rest were lost to expiry). */
  extend(jobs: Job[]): Promise<Job[]>;
  /** The last recorded error of a job, when the adapter keeps one. */
  lastError?(job: Job): string | undefined;
}

export interface ConsumerSettings {
  queue: string;
  concurrency: number;
  batchSize: number;
  leaseMs: number;
  maxAttempts: number;
  retryDelayMs: (attempt: number) => number;
  /** How long `stop()` waits for running handlers before leaving them to lease expiry. */
  drainTimeoutMs: number;
  logger: Logger;
}

/** Exponential from 1 s, capped at 5 min, with ±10 % jitter so failed bursts do not retry in lockstep. */
export function defaultRetryDelayMs(attempt: number): number {
  const base = Math.min(300_000, 1_000 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.9 + Math.random() * 0.2));
}

export function describeError(err: unknown): string {
  if (isAppError(err)) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.name && err.name !== 'Error' ? `${err.name}: ${err.message}` : err.message;
  return String(err);
}

/** At most this many pulls outstanding at once: one long-polling while another refills. */
const MAX_PULLS = 2;
/** Backoff after a failing pull (database or NATS unreachable), doubling up to the cap. */
const PULL_ERROR_BACKOFF_MS = [100, 500, 1_000, 2_000, 5_000];

interface Held {
  leaseUntil: number;
  lost: boolean;
}

export function startConsumer<T>(source: JobSource, handler: JobHandler<T>, settings: ConsumerSettings): Consumer {
  const loop = new ConsumeLoop(source, handler as JobHandler, settings);
  loop.start();
  return { stop: () => loop.stop() };
}

class ConsumeLoop {
  private readonly held = new Map<Job, Held>();
  private readonly waiting: Job[] = [];
  private running = 0;
  /** Slots promised to outstanding pulls but not yet filled. */
  private reserved = 0;
  private pulls = 0;
  private readonly pullsSettled = new Set<Promise<void>>();
  /** Acks, nacks, releases in flight: `stop()` waits for them. */
  private readonly settling = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private errorStreak = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private isExtending = false;
  private onIdle: (() => void) | undefined;
  private readonly maxHeld: number;
  private readonly log: Logger;

  constructor(
    private readonly source: JobSource,
    private readonly handler: JobHandler,
    private readonly s: ConsumerSettings,
  ) {
    // A batch larger than the concurrency prefetches: the extra jobs wait, lease heartbeated.
    this.maxHeld = Math.max(s.concurrency, s.batchSize);
    this.log = s.logger.child({ queue: s.queue });
  }

  start(): void {
    const tickMs = Math.max(20, Math.floor(this.s.leaseMs / 4));
    this.heartbeat = setInterval(() => this.extendLeases(), tickMs);
    this.heartbeat.unref();
    this.pump();
  }

  /** Starts pulls while there is room; called whenever room may have appeared. */
  private pump(): void {
    while (!this.stopping && this.retryTimer === undefined && this.pulls < MAX_PULLS) {
      const free = this.maxHeld - this.held.size - this.reserved;
      // A second concurrent pull only for a worthwhile batch; the first for any free slot.
      const minimum = this.pulls === 0 ? 1 : Math.ceil(this.s.batchSize / 2);
      if (free < minimum) return;
      const max = Math.min(free, this.s.batchSize);
      this.reserved += max;
      this.pulls++;
      let received = 0;
      const pulled = this.source
        .pull(max, this.abort.signal, (job) => {
          if (received < max) this.reserved--;
          received++;
          this.accept(job);
        })
        .then(
          () => {
            this.errorStreak = 0;
          },
          (err: unknown) => {
            if (this.stopping) return;
            const delayMs = PULL_ERROR_BACKOFF_MS[Math.min(this.errorStreak, PULL_ERROR_BACKOFF_MS.length - 1)]!;
            this.errorStreak++;
            this.log.warn({ err, retryInMs: delayMs }, 'bus: pulling jobs failed');
            if (this.retryTimer === undefined) {
              // Kept referenced, like an idle consumer's poll: a running consumer keeps the process up.
              this.retryTimer = setTimeout(() => {
                this.retryTimer = undefined;
                this.pump();
              }, delayMs);
            }
          },
        )
        .finally(() => {
          this.pulls--;
          this.reserved -= Math.max(0, max - received);
          this.pullsSettled.delete(pulled);
          this.pump();
        });
      this.pullsSettled.add(pulled);
    }
  }

  private accept(job: Job): void {
    if (this.stopping) {
      this.track(this.source.release([job]), 'releasing a job');
      return;
    }
    this.held.set(job, { leaseUntil: Date.now() + this.s.leaseMs, lost: false });
    if (this.running < this.s.concurrency) this.run(job);
    else this.waiting.push(job);
  }

  private run(job: Job): void {
    this.running++;
    void this.execute(job).finally(() => {
      this.held.delete(job);
      this.running--;
      const next = this.stopping ? undefined : this.waiting.shift();
      if (next) this.run(next);
      if (this.running === 0) this.onIdle?.();
      this.pump();
    });
  }

  private async execute(job: Job): Promise<void> {
    const { maxAttempts } = this.s;
    try {
      // Deliveries beyond the limit were never settled by a handler (the consumer died mid-job,
      // or the job was postponed maxAttempts times): stop the loop here instead of running it again.
      if (job.attempt > maxAttempts) {
        const last = this.source.lastError?.(job);
        await this.source.deadLetter(job, `gave up after ${job.attempt - 1} deliveries without an ack${last ? `; last error: ${last}` : ''}`);
        this.log.warn({ jobId: job.id, attempt: job.attempt }, 'bus: job dead-lettered after too many deliveries');
        return;
      }
      try {
        await this.handler(job);
      } catch (err) {
        await this.settleFailure(job, err);
        return;
      }
      await this.source.ack(job);
    } catch (err) {
      // Settling failed (storage down): the lease runs out and the job comes back. Nothing is lost.
      this.log.error({ err, jobId: job.id }, 'bus: settling a job failed; it will be redelivered after its lease');
    }
  }

  private async settleFailure(job: Job, err: unknown): Promise<void> {
    const error = describeError(err);
    if (err instanceof RetryLater) {
      await this.source.nack(job, { delayMs: Math.max(0, err.delayMs), error });
      return;
    }
    if (isAppError(err) && (err.kind === 'user' || err.kind === 'bug')) {
      await this.source.deadLetter(job, error);
      if (err.kind === 'bug') this.log.error({ err, jobId: job.id }, 'bus: handler failed with a bug; job dead-lettered');
      else this.log.warn({ jobId: job.id, error }, 'bus: handler rejected the job; dead-lettered');
      return;
    }
    if (job.attempt >= this.s.maxAttempts) {
      await this.source.deadLetter(job, error);
      this.log.warn({ jobId: job.id, attempt: job.attempt, error }, 'bus: job dead-lettered after its last attempt');
      return;
    }
    const delayMs = Math.max(0, this.s.retryDelayMs(job.attempt));
    await this.source.nack(job, { delayMs, error });
    this.log.info({ jobId: job.id, attempt: job.attempt, retryInMs: delayMs, error }, 'bus: handler failed; will retry');
  }

  /** Heartbeat: extends every held lease past its half-life, in one call per tick. */
  private extendLeases(): void {
    if (this.isExtending || this.held.size === 0) return;
    const now = Date.now();
    const due: Job[] = [];
    for (const [job, h] of this.held) if (!h.lost && h.leaseUntil - now < this.s.leaseMs / 2) due.push(job);
    if (due.length === 0) return;
    this.isExtending = true;
    const startedAt = Date.now();
    this.source
      .extend(due)
      .then((kept) => {
        const keptSet = new Set(kept);
        for (const job of due) {
          const h = this.held.get(job);
          if (!h) continue;
          if (keptSet.has(job)) h.leaseUntil = startedAt + this.s.leaseMs;
          else {
            h.lost = true;
            this.log.warn({ jobId: job.id }, 'bus: lease lost before the handler finished; the job may run twice');
          }
        }
      })
      .catch((err: unknown) => this.log.warn({ err }, 'bus: extending leases failed'))
      .finally(() => {
        this.isExtending = false;
      });
  }

  private track(p: Promise<void>, what: string): void {
    const tracked = p.catch((err: unknown) => this.log.warn({ err }, `bus: ${what} failed`));
    this.settling.add(tracked);
    void tracked.finally(() => this.settling.delete(tracked));
  }

  stop(): Promise<void> {
    this.stopped ??= this.drain();
    return this.stopped;
  }

  private async drain(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    clearTimeout(this.retryTimer);
    // Unstarted jobs go back at once so another consumer can take them now, not after the lease.
    const unstarted = this.waiting.splice(0);
    for (const job of unstarted) this.held.delete(job);
    if (unstarted.length > 0) this.track(this.source.release(unstarted), 'releasing unstarted jobs');
    await Promise.all([...this.pullsSettled]);
    if (this.running > 0) {
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        new Promise<boolean>((resolve) => (this.onIdle = () => resolve(true))),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.s.drainTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (!finished) this.log.warn({ running: this.running }, 'bus: handlers still running after the drain timeout; their jobs come back after the lease');
    }
    clearInterval(this.heartbeat);
    await Promise.all([...this.settling]);
  }
}

// ---- Small rules both adapters apply the same way ----

/**
 * Starts a consume loop for an adapter and keeps it in `running` until stopped, so the
 * adapter's close() can drain every loop it started.
 */
export function startTrackedConsumer<T>(running: Set<Consumer>, source: JobSource, handler: JobHandler<T>, settings: ConsumerSettings): Consumer {
  const consumer = startConsumer(source, handler, settings);
  const tracked: Consumer = {
    stop: async () => {
      await consumer.stop();
      running.delete(tracked);
    },
  };
  running.add(tracked);
  return tracked;
}

export interface BusDefaults {
  leaseMs: number;
  maxAttempts: number;
  drainTimeoutMs: number;
  logger: Logger;
}

/** Consume options with the bus defaults filled in and nonsense clamped. */
export function consumerSettings(queue: string, opts: ConsumeOptions, defaults: BusDefaults): ConsumerSettings {
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 1));
  return {
    queue,
    concurrency,
    batchSize: Math.max(1, Math.floor(opts.batchSize ?? concurrency)),
    leaseMs: Math.max(50, opts.leaseMs ?? defaults.leaseMs),
    maxAttempts: Math.max(1, Math.floor(opts.maxAttempts ?? defaults.maxAttempts)),
    retryDelayMs: opts.retryDelayMs ?? defaultRetryDelayMs,
    drainTimeoutMs: defaults.drainTimeoutMs,
    logger: defaults.logger,
  };
}

/** The JSON text of a payload; `undefined` travels as null. */
export function encodePayload(payload: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload === undefined ? null : payload);
  } catch (err) {
    throw AppError.invalid(`bus payload is not JSON-serialisable: ${(err as Error).message}`);
  }
  return json ?? 'null';
}

export function eventEnvelope<P>(name: string, payload: P, serviceName: string): BusEvent<P> {
  return { headers: { name, createdAt: new Date().toISOString(), serviceName }, payload };
}

export function checkDelayMs(delayMs: number | undefined): number {
  if (delayMs === undefined) return 0;
  if (!Number.isFinite(delayMs) || delayMs < 0) throw AppError.invalid(`invalid delayMs ${String(delayMs)}: must be a finite number ≥ 0`, { delayMs });
  return Math.round(delayMs);
}

export function closedError(): AppError {
  return new AppError('UNAVAILABLE', 'the bus is closed', 'transient');
}
