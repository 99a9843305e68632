/**
 * Concurrent executions per tenant in this process (the tenant limit `concurrentExecutions`).
 *
 * An execution counts while one of its jobs runs here. A job whose tenant is at its limit waits
 * in memory before it runs: a claimed job's lease is heartbeated while it waits, like any job a
 * consumer holds, so it stays in its queue as far as every other process is concerned. Other
 * tenants' jobs are on queues and consumers of their own and never wait here. A job of an
 * execution already under way goes before one that would start a new execution, so work in
 * progress finishes first. A job handed over in process (fixed lease) waits only while its lease
 * still covers its step; then it is given back to its queue (a transient failure, retried).
 */
import { AppError } from '../../platform/errors.js';

interface Waiter {
  executionId: string;
  admit: () => void;
  fail: (err: AppError) => void;
}

interface TenantSlots {
  /** Executions running here → jobs of each running now. */
  running: Map<string, number>;
  /** Waiting jobs of executions under way, then jobs that would start one. */
  continuing: Waiter[];
  starting: Waiter[];
}

export class TenantGate {
  private readonly tenants = new Map<string, TenantSlots>();
  private closed = false;

  constructor(private readonly limitOf: (tenant: string) => number) {}

  /** Executions of the tenant running here now. */
  running(tenant: string): number {
    return this.tenants.get(tenant)?.running.size ?? 0;
  }

  /** Jobs of the tenant waiting here now. */
  waiting(tenant: string): number {
    const t = this.tenants.get(tenant);
    return t ? t.continuing.length + t.starting.length : 0;
  }

  /**
   * Resolves with the function that ends this job's turn, once the execution may run. `starts`:
   * the job would start the execution (its trigger). `deadline` (epoch ms): give up waiting then
   * with a transient error.
   */
  async enter(tenant: string, executionId: string, starts: boolean, deadline?: number): Promise<() => void> {
    if (this.closed) throw new AppError('UNAVAILABLE', 'the engine is stopping', 'transient');
    let t = this.tenants.get(tenant);
    if (!t) this.tenants.set(tenant, (t = { running: new Map(), continuing: [], starting: [] }));
    const jobs = t.running.get(executionId);
    if (jobs !== undefined || (t.running.size < this.limitOf(tenant) && t.continuing.length + t.starting.length === 0)) {
      t.running.set(executionId, (jobs ?? 0) + 1);
      return this.leaver(tenant, t, executionId);
    }
    const slots = t;
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        executionId,
        admit: () => {
          clearTimeout(timer);
          resolve();
        },
        fail: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      (starts ? slots.starting : slots.continuing).push(waiter);
      if (deadline !== undefined) {
        timer = setTimeout(() => {
          const queue = starts ? slots.starting : slots.continuing;
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          waiter.fail(new AppError('UNAVAILABLE', `tenant ${tenant} is at its limit of ${this.limitOf(tenant)} executions running at once (concurrentExecutions); the job goes back to its queue`, 'transient'));
        }, Math.max(0, deadline - Date.now()));
      }
    });
    return this.leaver(tenant, slots, executionId);
  }

  /** Refuses every waiting and later job (the engine is stopping); they go back to their queues. */
  close(): void {
    this.closed = true;
    const err = new AppError('UNAVAILABLE', 'the engine is stopping', 'transient');
    for (const t of this.tenants.values()) for (const w of [...t.continuing.splice(0), ...t.starting.splice(0)]) w.fail(err);
  }

  private leaver(tenant: string, t: TenantSlots, executionId: string): () => void {
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const jobs = t.running.get(executionId)! - 1;
      if (jobs > 0) t.running.set(executionId, jobs);
      else t.running.delete(executionId);
      this.admitWaiting(tenant, t);
    };
  }

  private admitWaiting(tenant: string, t: TenantSlots): void {
    const limit = this.limitOf(tenant);
    while (t.continuing.length + t.starting.length > 0) {
      const next = t.continuing[0] ?? t.starting[0]!;
      const jobs = t.running.get(next.executionId);
      if (jobs === undefined && t.running.size >= limit) return;
      (t.continuing.length > 0 ? t.continuing : t.starting).shift();
      t.running.set(next.executionId, (jobs ?? 0) + 1);
      next.admit();
    }
    if (t.running.size === 0) this.tenants.delete(tenant);
  }
}
