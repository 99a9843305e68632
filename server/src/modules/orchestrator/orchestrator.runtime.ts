/**
 * Where a flow's steps run. Placement sits behind this interface so that later runtimes (remote
 * routers with gRPC workers, seed 004) slot in beside the embedded one.
 *
 * The embedded runtime `local` consumes each step's queue with in-process handlers. It also
 * offers a hand-off: a job this process enqueues for a step placed here can be given straight to
 * that step's handlers instead of being claimed back from the queue. The job is still written
 * durably first (in the same transaction as the step run that emitted it), but invisible to
 * consumers for a lease (`leaseMs`); on success it is acked, and if this process dies the lease
 * runs out and any process claims it as usual. That saves the claim round trip per step — the
 * difference between hundreds and thousands of executions per second on embedded PGlite.
 */
import type { StepHandoff, StepHandoffTicket, StepJob } from '../../contracts/flows.js';
import type { PreparedStep } from '../components/index.js';
import type { Bus, Consumer, Job, JobHandler } from '../../platform/bus/index.js';
import { isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';

export interface StepPlacement {
  flowId: string;
  nodeId: string;
  queue: string;
  /** Messages handled at once by this placement. */
  concurrency: number;
  /** Deliveries of one job before the bus gives up on it; the engine settles far earlier. */
  maxDeliveries: number;
  /** How long a handed-off job stays invisible: longer than the step may run. Undefined: no hand-off. */
  handoffLeaseMs?: number | undefined;
  /** The step's time limit: a handed-off job is run here only while its lease still covers it. */
  timeoutMs: number;
  /** Set for a step placed on a remote runtime: the component call its workers must serve. */
  remote?: RemoteTarget | undefined;
}

/** The component call a remote step makes (`runtime: workers`). */
export interface RemoteTarget {
  tenant: string;
  component: string;
  function: string;
  /** The node's pin (`nodeSettings.version`: `2`, `2.1` or `2.1.3`); any version when absent. */
  version: string | undefined;
}

export interface Placement {
  /** Stops taking messages; in-flight ones finish, unstarted ones go back to the queue. */
  stop(): Promise<void>;
}

export interface Runtime {
  readonly name: string;
  /** Starts taking the step's messages; resolves once it does. */
  place(step: StepPlacement, handler: JobHandler<StepJob>): Promise<Placement>;
  /** In-process delivery of jobs enqueued by this process, when the runtime offers it. */
  readonly handoff?: StepHandoff | undefined;
}

/**
 * A runtime whose steps run in other processes (the router's gRPC workers). The engine keeps
 * routing, step-run records, retries and commits; only the component call crosses: the prepared
 * step it returns sends the call to a worker and answers with the worker's StepResult. Its steps
 * are never run inline in another step's job and never handed off in process.
 */
export interface RemoteRuntime extends Runtime {
  prepareStep(target: RemoteTarget, fields: Record<string, unknown>, timeoutMs: number): PreparedStep;
}

export const LOCAL_RUNTIME = 'local';
export const WORKERS_RUNTIME = 'workers';

/** Backoff of a handed-off job whose handler failed unexpectedly (storage down). */
const HANDOFF_RETRY_MS = 1_000;
/** A held hand-off starts only while its lease still covers the step's time limit plus this. */
const HANDOFF_START_SLACK_MS = 1_000;

class LocalPlacement {
  private readonly buffer: Job<StepJob>[] = [];
  private reserved = 0;
  private running = 0;
  private stopping = false;
  private onIdle: (() => void) | undefined;
  private readonly maxHeld: number;

  constructor(
    private readonly bus: Bus,
    private readonly step: StepPlacement,
    private readonly handler: JobHandler<StepJob>,
    private readonly consumer: Consumer,
    private readonly logger: Logger,
  ) {
    // Generous: a hand-off that finds no room falls back to the queue and costs a claim (at
    // ×16, a fifth of the webhook jobs of the saturated flow bench did). A held job that waits
    // too long for its turn is released to the queue rather than run past its lease (pump).
    this.maxHeld = step.concurrency * 64;
  }

  reserve(): StepHandoffTicket | undefined {
    const leaseMs = this.step.handoffLeaseMs;
    if (leaseMs === undefined || this.stopping || this.buffer.length + this.reserved + this.running >= this.maxHeld) return undefined;
    this.reserved++;
    let settled = false;
    // Taken before the job is stored, so no later than when its stored copy becomes claimable.
    const leaseEndsAt = Date.now() + leaseMs;
    return {
      leaseMs,
      deliver: (jobId, payload) => {
        if (settled) return;
        settled = true;
        this.reserved--;
        // Never claimed: to the bus it is at attempt 0.
        const job: Job<StepJob> = { id: jobId, queue: this.step.queue, payload, attempt: 0, enqueuedAt: new Date(), leaseEndsAt };
        if (this.stopping) return this.release([job]);
        this.buffer.push(job);
        this.pump();
      },
      cancel: () => {
        if (settled) return;
        settled = true;
        this.reserved--;
      },
    };
  }

  private pump(): void {
    const late: Job<StepJob>[] = [];
    while (!this.stopping && this.running < this.step.concurrency && this.buffer.length > 0) {
      const job = this.buffer.shift()!;
      // Its stored copy may become claimable before the step ends, and another consumer would
      // run it too: the queue runs it instead, under a lease of its own.
      if (job.leaseEndsAt! - Date.now() < this.step.timeoutMs + HANDOFF_START_SLACK_MS) late.push(job);
      else void this.run(job);
    }
    if (late.length > 0) this.release(late);
  }

  private async run(job: Job<StepJob>): Promise<void> {
    this.running++;
    try {
      // The job was never claimed: to the bus it is at attempt 0; to the handler, a first delivery.
      await this.handler({ ...job, attempt: 1 });
      await this.bus.ack(job);
    } catch (err) {
      try {
        if (isAppError(err) && (err.kind === 'user' || err.kind === 'bug')) await this.bus.deadLetter(job, `${err.code}: ${err.message}`);
        else await this.bus.nack(job, { delayMs: HANDOFF_RETRY_MS, error: err instanceof Error ? err.message : String(err) });
      } catch (settleErr) {
        this.logger.warn({ err: settleErr, jobId: job.id }, 'orchestrator: settling a handed-off job failed; it comes back after its lease');
      }
    } finally {
      this.running--;
      if (this.running === 0) this.onIdle?.();
      this.pump();
    }
  }

  private release(jobs: Job<StepJob>[]): void {
    for (const job of jobs) {
      // Visible at once, so another consumer takes it now rather than after the lease.
      void this.bus.nack(job, { delayMs: 0 }).catch((err: unknown) => this.logger.warn({ err, jobId: job.id }, 'orchestrator: releasing a handed-off job failed'));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.release(this.buffer.splice(0));
    await this.consumer.stop();
    if (this.running > 0) await new Promise<void>((resolve) => (this.onIdle = resolve));
  }
}

export function createLocalRuntime(bus: Bus, logger: Logger): Runtime {
  const placements = new Map<string, LocalPlacement>();
  // The hand-off relies on the SQL bus, where a delayed job is a row a later ack deletes; NATS
  // holds delayed jobs in its outbox until due, so there every hop goes through JetStream.
  const canHandOff = bus.kind === 'sql';
  return {
    name: LOCAL_RUNTIME,
    async place(step, handler) {
      // Claiming several jobs per round trip keeps the queue's statements per message low.
      const consumer = await bus.consume<StepJob>(step.queue, handler, {
        concurrency: step.concurrency,
        batchSize: Math.min(step.concurrency, 100),
        maxAttempts: step.maxDeliveries,
      });
      const placement = new LocalPlacement(bus, step, handler, consumer, logger);
      placements.set(step.queue, placement);
      return {
        stop: async () => {
          if (placements.get(step.queue) === placement) placements.delete(step.queue);
          await placement.stop();
        },
      };
    },
    handoff: canHandOff ? { reserve: (queue) => placements.get(queue)?.reserve() } : undefined,
  };
}

