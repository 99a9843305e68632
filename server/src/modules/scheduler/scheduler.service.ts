/**
 * The scheduler (seed 002 "Scheduler", "Execute Polling Flow"). Any number of scheduler
 * processes share `scheduler_flows`; each loops:
 * 1. claim the due flows in one statement (`FOR UPDATE SKIP LOCKED`), so each due time goes
 *    to exactly one scheduler however many run;
 * 2. in the same transaction, enqueue an empty message for each one's start node (one
 *    statement for the whole batch) and advance each due time to the next one AFTER now: a
 *    flow that was due during downtime fires once, not once per missed tick, and a due time
 *    is fired exactly when its jobs are stored;
 * 3. sleep until the nearest due time (bounded), woken early when a flow is scheduled here or,
 *    through NOTIFY, in another process.
 */
import { createHash } from 'node:crypto';
import { nextCronRun } from '../../contracts/cron.js';
import { startNodeOf, stepQueueName, type Flow, type StepJob } from '../../contracts/flows.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import * as repo from './scheduler.repo.js';

/** One firing, reported once its job is stored. */
export interface Firing {
  flowId: string;
  executionId: string;
  dueAt: Date;
  /** Date.now() right after the job was stored. */
  firedAtMs: number;
}

export interface SchedulerOptions {
  /** Most flows fired per transaction. Default 500. */
  batchSize?: number;
  /** Longest sleep between looks at the table (new flows from a missed NOTIFY). Default 5 s. */
  maxSleepMs?: number;
  /** How long a claimed due time is held before another scheduler may fire it. Default 30 s. */
  leaseMs?: number;
  /** Told about every firing (metrics, benchmarks). */
  onFired?: (firings: Firing[]) => void;
}

export class SchedulerService {
  private readonly batchSize: number;
  private readonly maxSleepMs: number;
  private readonly leaseMs: number;
  private running = false;
  private loopDone: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly log: Logger,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 500;
    this.maxSleepMs = opts.maxSleepMs ?? 5_000;
    this.leaseMs = opts.leaseMs ?? 30_000;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unlisten = await this.db.listen(await repo.schedulerChannel(this.db), () => this.wake());
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake();
    await this.loopDone;
    await this.unlisten?.().catch((err: unknown) => this.log.warn({ err }, 'scheduler: unlisten failed'));
    this.unlisten = undefined;
  }

  // ---- lifecycle (scheduler.events.ts) ----

  /** `flow.starting`: record a flow with cron, not scheduled yet; one without is not ours. */
  async recordFlow(flow: Flow): Promise<void> {
    if (!flow.cron) {
      await repo.deleteScheduledFlow(this.db, flow.id);
      return;
    }
    await repo.upsertScheduledFlow(this.db, {
      flowId: flow.id,
      tenant: flow.tenant,
      startNode: startNodeOf(flow.graph).id,
      flowVersion: flow.version,
      cron: flow.cron,
      timezone: flow.timezone ?? null,
    });
  }

  /** `flow.started`: compute the first due time; the loop takes it from there. */
  async scheduleFlow(flowId: string): Promise<void> {
    const row = await repo.findScheduledFlow(this.db, flowId);
    if (!row || row.due_execution) return;
    let due: Date | undefined;
    try {
      due = nextCronRun(row.cron, row.timezone ?? undefined, new Date());
    } catch (err) {
      // The flow repository validates crons; one that slipped through is logged, not retried forever.
      return void this.log.error({ err, flowId, cron: row.cron }, 'scheduler: invalid cron; flow not scheduled');
    }
    if (!due) return void this.log.warn({ flowId, cron: row.cron }, 'scheduler: the cron never fires again; not scheduled');
    if (await repo.setFirstDueExecution(this.db, flowId, due)) this.wake();
  }

  /** `flow.stopping`: stop firing at once. */
  async unscheduleFlow(flowId: string): Promise<void> {
    await repo.deleteScheduledFlow(this.db, flowId);
  }

  /** Fires every flow due now, in batches; returns how many it fired. */
  async fireDue(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.fireBatch();
      total += n;
      if (n < this.batchSize) return total;
    }
  }

  private async fireBatch(): Promise<number> {
    // Claim, enqueue and advance in one transaction: a due time is fired exactly when its jobs
    // are stored, whatever dies when. SKIP LOCKED keeps concurrent schedulers on other flows,
    // and the batch goes in as one statement (enqueueEach), not one per flow.
    const fired = await this.db.transaction(async (tx) => {
      const due = await repo.claimDueFlows(tx, this.batchSize, this.leaseMs);
      if (due.length === 0) return undefined;
      const jobs = due.map(scheduledJob);
      await this.bus.enqueueEach(
        due.map((r, i) => ({ queue: stepQueueName(r.flow_id, r.start_node), payload: jobs[i]! })),
        { tx },
      );
      await repo.advanceDueExecutions(
        tx,
        due.map((r) => r.flow_id),
        due.map((r) => r.due_execution),
        due.map((r) => nextDueAfter(r, this.log)),
      );
      return { due, jobs };
    });
    if (!fired) return 0;
    const firedAtMs = Date.now();
    this.opts.onFired?.(fired.due.map((r, i) => ({ flowId: r.flow_id, executionId: fired.jobs[i]!.executionId, dueAt: r.due_execution, firedAtMs })));
    return fired.due.length;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let sleepMs: number;
      try {
        const fired = await this.fireDue();
        const until = await repo.msUntilNextDue(this.db);
        if (until === undefined) sleepMs = this.maxSleepMs;
        // Still due although we fired what we could: another scheduler holds those rows.
        else if (until <= 0) sleepMs = fired > 0 ? 0 : 25;
        // Timers may fire a millisecond early; the claim compares with the database's clock.
        else sleepMs = Math.min(this.maxSleepMs, Math.ceil(until) + 2);
      } catch (err) {
        if (!this.running) return;
        this.log.error({ err }, 'scheduler: firing due flows failed; retrying in 1 s');
        sleepMs = 1_000;
      }
      if (sleepMs > 0) await this.sleep(sleepMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  /** Cuts the current sleep short (or the next one, if the loop is busy). */
  private wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }
}

function nextDueAfter(row: repo.DueFlowRow, log: Logger): Date | null {
  try {
    return nextCronRun(row.cron, row.timezone ?? undefined, row.db_now) ?? null;
  } catch (err) {
    // Validated when the flow was saved; a cron that no longer parses stops rather than loops.
    log.error({ err, flowId: row.flow_id, cron: row.cron }, 'scheduler: cannot compute the next due time; flow unscheduled');
    return null;
  }
}

/**
 * A UUID (version 5 layout) named by `name`: the execution of one due time of one flow has one
 * id, so a firing repeated after a scheduler died between storing the job and advancing the
 * due time is the same execution, which the engine runs once (its step runs are keyed by it).
 */
export function nameBasedUuid(name: string): string {
  const b = createHash('sha1').update('plexus.scheduler:').update(name).digest();
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.subarray(0, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The seed's polling message: empty body, headers and attachments. */
function scheduledJob(row: repo.DueFlowRow): StepJob {
  const name = `${row.flow_id}@${row.due_execution.toISOString()}`;
  return {
    executionId: nameBasedUuid(name),
    flowId: row.flow_id,
    tenant: row.tenant_id,
    nodeId: row.start_node,
    sequence: 0,
    trigger: 'schedule',
    flowVersion: row.flow_version,
    message: { id: nameBasedUuid(`${name}:message`), attachments: {}, body: {}, headers: {}, metadata: { source: 'schedule', scheduledFor: row.due_execution.toISOString() } },
  };
}
