/**
 * Write batching, written once: callers `add` items one at a time from separate promise chains
 * (webhook calls, handlers finishing), and a `flush` receives them together — after the current
 * event-loop turn, or at once when `maxBatch` items wait. While `maxInFlight` flushes run, new
 * items accumulate, so batches grow with load by themselves (group commit).
 *
 * Used by the SQL bus (enqueues, publishes, acks: one statement per batch), the orchestrator's
 * execution writer (one transaction per batch of step commits) and the NATS bus (one socket write
 * per turn for publishes and acknowledgements).
 *
 * A flush settles each entry itself (`resolve`/`reject`), so it can give every item its own
 * outcome; entries a flush leaves unsettled are rejected with its error when it throws, and
 * resolved with `undefined` when it returns (a flush of `void` items need not settle anything).
 */

export interface BatchEntry<I, R> {
  readonly item: I;
  resolve(result: R): void;
  reject(err: unknown): void;
}

export interface BatcherOptions<I, R> {
  /** Most items per flush; a full batch flushes without waiting for the turn to end. */
  maxBatch: number;
  /** Flushes running at once (1 on PGlite, which runs one statement at a time). */
  maxInFlight: number;
  flush(batch: ReadonlyArray<BatchEntry<I, R>>): Promise<void>;
}

export class Batcher<I, R = void> {
  private pending: Array<BatchEntry<I, R>> = [];
  private inFlight = 0;
  private isScheduled = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: BatcherOptions<I, R>) {}

  /** Resolves with this item's result once its batch is flushed. */
  add(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.opts.maxBatch) this.drain();
      else this.schedule();
    });
  }

  /** Items waiting for a flush (not yet flushing). */
  get size(): number {
    return this.pending.length;
  }

  /**
   * Takes the items waiting for a flush, for a caller that stores them in a statement of its own
   * and settles them. (`idle()` then no longer covers them: the caller does.)
   */
  take(): Array<BatchEntry<I, R>> {
    const taken = this.pending.splice(0);
    this.notifyIfIdle();
    return taken;
  }

  /** Flushes what waits now, without waiting for the turn to end (e.g. before closing). */
  flushNow(): void {
    this.drain();
  }

  /** Resolves when nothing is pending or being flushed. */
  idle(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    if (this.isScheduled) return;
    this.isScheduled = true;
    // One turn lets the calls that finish together join the same batch.
    setImmediate(() => {
      this.isScheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.pending.length > 0 && this.inFlight < this.opts.maxInFlight) {
      const batch = this.pending.splice(0, this.opts.maxBatch);
      this.inFlight++;
      let flushing: Promise<void>;
      try {
        flushing = this.opts.flush(batch);
      } catch (err) {
        flushing = Promise.reject(err);
      }
      flushing
        .then(
          // A settled promise ignores a second settlement: these only reach entries left open.
          () => batch.forEach((b) => b.resolve(undefined as R)),
          (err: unknown) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          this.drain();
          this.notifyIfIdle();
        });
    }
  }

  private notifyIfIdle(): void {
    if (this.pending.length === 0 && this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** A flush for the common case: one result per item, in order, or one error for the batch. */
export function flushResults<I, R>(store: (items: I[]) => Promise<R[]>): (batch: ReadonlyArray<BatchEntry<I, R>>) => Promise<void> {
  return async (batch) => {
    const results = await store(batch.map((b) => b.item));
    batch.forEach((b, i) => b.resolve(results[i] as R));
  };
}
