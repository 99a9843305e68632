/**
 * The step runner: the handler of every step queue. For one StepJob it
 * 1. creates the execution when this is its trigger job (idempotently: the job may come back);
 * 2. skips a redelivered job whose run is already recorded (no second emit);
 * 3. runs the node's component with the node's credential and snapshot, under a time limit;
 * 4. routes each emitted message along the node's edges (condition, mapper), runs the pure
 *    steps it reaches inline (transform, filter, split, log), and commits, in one transaction,
 *    the step runs, the next jobs and the execution's pending count (then the bus acks the job);
 * 5. on failure: a transient error is retried with exponential backoff (`nodeSettings.retries`),
 *    anything else — or the last retry — records the failure and dead-letters the job with it;
 *    a `rebound` re-queues the message for later without counting as a failure. A retry or a
 *    rebound is a new job of the next generation, enqueued (delayed) in the same transaction
 *    that records the failed try; a copy of an older generation is stale and does nothing.
 */
import type { StepJob } from '../../contracts/flows.js';
import type { Job } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { StepError, classifyStepError, type StepResult } from '../components/index.js';
import type { ChildJob, ExecutionWriter } from './orchestrator.commit.js';
import * as repo from './orchestrator.repo.js';
import type { NewExecution } from './orchestrator.repo.js';
import { backoffMs, childPath, routeMessage, type PreparedFlow, type PreparedNode } from './orchestrator.routing.js';

/** Resolves a node's `credentialsId` to its decrypted credential (the secrets module's resolveForStep). */
export type CredentialResolver = (
  tenant: string,
  secretId: string,
  use: { flowId: string; stepId: string; executionId: string },
) => Promise<{ type: string; value: Record<string, unknown> }>;

export interface FlowSource {
  /** The prepared flow a job belongs to: its version when given, else the active one. */
  get(flowId: string, version: number | undefined): Promise<PreparedFlow>;
}

/** Deliveries of one job (each a crash or a lost lease but the last) before the engine gives up on it. */
export const CRASH_ALLOWANCE = 5;
/** Deliveries the bus makes before dead-lettering a step job: the crash allowance, the try that gives up, one spare. */
export const MAX_DELIVERIES = CRASH_ALLOWANCE + 2;
/** Pure steps run inline per job at most this many times, and for at most this long. */
const MAX_INLINE_RUNS = 1_000;
const MAX_INLINE_MS = 500;
/** Longest wait a remote Retry-After may impose on one retry. */
const MAX_RETRY_AFTER_MS = 3_600_000;

export interface StepRunnerDeps {
  db: Db;
  logger: Logger;
  flows: FlowSource;
  writer: ExecutionWriter;
  resolveCredentials: CredentialResolver | undefined;
  /** Bodies are stored up to this many characters of JSON per step run. */
  storedBodyBytes: number;
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepError(`the step did not finish within ${ms} ms (nodeSettings.timeoutMs)`, 'transient')), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export class StepRunner {
  constructor(private readonly deps: StepRunnerDeps) {}

  /**
   * The bus job handler of every step queue. An error that escapes `run` (the step's own failures
   * are settled inside it) means the engine itself could not handle the job: the flow version is
   * gone, storage failed, … When the bus is about to dead-letter the job for it, the execution
   * would otherwise stay `running` for ever, so its step run is recorded as failed first.
   */
  readonly handle = async (job: Job<StepJob>): Promise<void> => {
    try {
      await this.run(job);
    } catch (err) {
      const settled = isAppError(err) && err.code === 'STEP_FAILED';
      const lastDelivery = (isAppError(err) && (err.kind === 'user' || err.kind === 'bug')) || job.attempt >= MAX_DELIVERIES;
      if (!settled && lastDelivery) await this.giveUp(job, err);
      throw err;
    }
  };

  private async run(job: Job<StepJob>): Promise<void> {
    const sj = job.payload;
    const path = sj.path ?? String(sj.sequence ?? 0);
    const generation = sj.generation ?? 0;
    const flow = await this.deps.flows.get(sj.flowId, sj.flowVersion);
    const node = flow.nodes.get(sj.nodeId);
    // A trigger job creates its execution: before running a step that may take long (so the
    // execution shows as running meanwhile), else together with the step run (one write less).
    let execution: NewExecution | undefined;
    if (sj.path === undefined) {
      execution = { id: sj.executionId, tenantId: sj.tenant, flowId: sj.flowId, flowVersion: sj.flowVersion ?? flow.flow.version, trigger: sj.trigger, awaitsReply: sj.awaitsReply === true };
      if (!node?.step.pure) {
        await this.deps.writer.ensureExecution(execution);
        execution = undefined;
      }
    }
    if (job.attempt > 1) {
      // A redelivery: already done (a crash between commit and ack), or superseded by its own retry or rebound.
      const state = await repo.findStepRunState(this.deps.db, sj.executionId, sj.nodeId, path);
      if (state && (state.status === 'succeeded' || state.generation >= generation)) return;
    }
    const startedAt = new Date();
    if (!node) return this.fail(job, path, undefined, new StepError(`node ${sj.nodeId} is not in version ${flow.flow.version} of the flow`, 'user'), startedAt, execution);
    if (job.attempt > CRASH_ALLOWANCE + 1) {
      return this.fail(job, path, node, new StepError(`gave up after ${job.attempt - 1} deliveries that ended without a result (did the step crash the process?)`, 'user'), startedAt, execution);
    }

    let result: StepResult;
    let children: ChildJob[] = [];
    try {
      const credential = node.node.credentialsId ? await this.credentials(sj, node.node.credentialsId) : undefined;
      const snapshot = node.step.usesSnapshot ? await repo.findSnapshot(this.deps.db, sj.flowId, sj.nodeId) : undefined;
      result = await withTimeout(
        node.step.run({
          tenant: sj.tenant,
          flowId: sj.flowId,
          nodeId: sj.nodeId,
          executionId: sj.executionId,
          idempotencyKey: repo.stepRunKey(sj.executionId, sj.nodeId, path),
          attempt: (sj.retries ?? 0) + 1,
          message: sj.message,
          credentials: credential?.value,
          credentialsType: credential?.type,
          snapshot,
          logger: this.deps.logger,
        }),
        node.settings.timeoutMs,
      );
      if (!result.rebound) children = await this.route(flow, node, sj, path, result);
    } catch (err) {
      return this.fail(job, path, node, err, startedAt, execution);
    }
    if (result.rebound) return this.rebound(job, path, node, result.rebound.reason, startedAt, execution);

    const runs: repo.StepRunWrite[] = [
      this.succeededRun(sj, path, result, startedAt, { attempt: (sj.retries ?? 0) + 1, rebounds: sj.rebounds ?? 0, generation }),
    ];
    const queued: ChildJob[] = [];
    await this.runInline(flow, children, runs, queued, { left: MAX_INLINE_RUNS, until: Date.now() + MAX_INLINE_MS });
    await this.deps.writer.commitStep({
      runs,
      execution,
      children: queued,
      delta: { pending: queued.length - 1, failed: 0 },
      snapshot: result.snapshot ? { flowId: sj.flowId, nodeId: sj.nodeId, tenantId: sj.tenant, json: JSON.stringify(result.snapshot.value ?? null) } : undefined,
      reply: result.reply ? { executionId: sj.executionId, reply: result.reply } : undefined,
    });
  }

  /** Records the job's step run as failed (unless it already has a result) and settles its execution. */
  private async giveUp(job: Job<StepJob>, err: unknown): Promise<void> {
    const sj = job.payload;
    const path = sj.path ?? String(sj.sequence ?? 0);
    const reason = err instanceof Error ? err.message : String(err);
    try {
      if (sj.path === undefined) {
        await this.deps.writer.ensureExecution({ id: sj.executionId, tenantId: sj.tenant, flowId: sj.flowId, flowVersion: sj.flowVersion ?? 0, trigger: sj.trigger, awaitsReply: sj.awaitsReply === true });
      }
      const now = new Date();
      await this.deps.writer.commitStep({
        runs: [{ ...this.failureRun(job, path, 'failed', `the engine could not run this step: ${reason}`, now, now), retryMessageJson: JSON.stringify(sj.message) }],
        execution: undefined,
        children: [],
        delta: { pending: -1, failed: 1 },
      });
      this.deps.logger.warn({ flowId: sj.flowId, executionId: sj.executionId, nodeId: sj.nodeId, attempt: job.attempt, error: reason }, 'step job given up: recorded as failed');
    } catch (recordErr) {
      // Storage is failing too: the dead letter keeps the job, and requeueing it runs it again.
      this.deps.logger.error({ err: recordErr, flowId: sj.flowId, executionId: sj.executionId, nodeId: sj.nodeId, error: reason }, 'step job given up and its failure could not be recorded; its execution stays running until the dead letter is requeued');
    }
  }

  /**
   * Runs the pure steps among `children` (transform, filter, split, log) right here, and their
   * pure successors, instead of queueing them: running them again after a crash is harmless,
   * and the job that reached them stays durable until their results are committed with it.
   * Everything else — and a pure step that fails, or anything past the budget — is queued.
   */
  private async runInline(flow: PreparedFlow, children: ChildJob[], runs: repo.StepRunWrite[], queued: ChildJob[], budget: { left: number; until: number }): Promise<void> {
    for (const child of children) {
      const node = flow.nodes.get(child.job.nodeId);
      if (!node?.step.pure || child.delayMs > 0 || budget.left <= 0 || Date.now() > budget.until) {
        queued.push(child);
        continue;
      }
      budget.left--;
      const sj = child.job;
      const path = sj.path!;
      const startedAt = new Date();
      let result: StepResult;
      let grandchildren: ChildJob[];
      try {
        result = await node.step.run({
          tenant: sj.tenant,
          flowId: sj.flowId,
          nodeId: sj.nodeId,
          executionId: sj.executionId,
          idempotencyKey: repo.stepRunKey(sj.executionId, sj.nodeId, path),
          attempt: 1,
          message: sj.message,
          credentials: undefined,
          snapshot: undefined,
          logger: this.deps.logger,
        });
        grandchildren = await this.route(flow, node, sj, path, result);
      } catch {
        // Its own job records the failure and applies the retry rules.
        queued.push(child);
        continue;
      }
      runs.push(this.succeededRun(sj, path, result, startedAt, { attempt: 1, rebounds: 0, generation: 0 }));
      await this.runInline(flow, grandchildren, runs, queued, budget);
    }
  }

  /** The record of a step run that succeeded, finished now. */
  private succeededRun(
    sj: StepJob,
    path: string,
    result: StepResult,
    startedAt: Date,
    counts: { attempt: number; rebounds: number; generation: number },
  ): repo.StepRunWrite {
    const finishedAt = new Date();
    return {
      executionId: sj.executionId,
      nodeId: sj.nodeId,
      path,
      status: 'succeeded',
      ...counts,
      inputJson: this.stored(sj.message.body),
      outputJson: this.stored(result.messages.map((m) => m.message.body)),
      emitted: result.messages.length,
      error: null,
      retryMessageJson: null,
      startedAt,
      finishedAt,
      durationMs: finishedAt.getTime() - startedAt.getTime(),
    };
  }

  private async credentials(sj: StepJob, secretId: string): Promise<{ type: string; value: Record<string, unknown> }> {
    if (!this.deps.resolveCredentials) throw new StepError(`credentials ${secretId}: no secrets service is wired into this process`, 'transient');
    try {
      return await this.deps.resolveCredentials(sj.tenant, secretId, { flowId: sj.flowId, stepId: sj.nodeId, executionId: sj.executionId });
    } catch (err) {
      const e = classifyStepError(err);
      throw new StepError(`credentials ${secretId}: ${e.message}`, e.kind, e.retryAfterMs);
    }
  }

  /** The next jobs: every emitted message along every edge whose condition holds, mapped. */
  private async route(flow: PreparedFlow, node: PreparedNode, sj: StepJob, path: string, result: StepResult): Promise<ChildJob[]> {
    const children: ChildJob[] = [];
    for (let i = 0; i < result.messages.length; i++) {
      const { message, delayMs } = result.messages[i]!;
      for (const routed of await routeMessage(node, message.body, message.headers, message.metadata)) {
        children.push({
          queue: routed.edge.targetQueue,
          delayMs: delayMs ?? 0,
          job: {
            executionId: sj.executionId,
            flowId: sj.flowId,
            tenant: sj.tenant,
            nodeId: routed.edge.target,
            message: routed.body === message.body ? message : { ...message, body: routed.body },
            trigger: sj.trigger,
            sequence: i,
            flowVersion: flow.flow.version,
            path: childPath(path, routed.edge, i),
          },
        });
      }
    }
    return children;
  }

  private async rebound(job: Job<StepJob>, path: string, node: PreparedNode, reason: string, startedAt: Date, execution: NewExecution | undefined): Promise<void> {
    const sj = job.payload;
    const rebounds = (sj.rebounds ?? 0) + 1;
    if (rebounds > node.settings.maxRebounds) {
      return this.fail(job, path, node, new StepError(`rebounded ${rebounds - 1} times (nodeSettings.maxRebounds); last reason: ${reason}`, 'user'), startedAt, execution);
    }
    const finishedAt = new Date();
    await this.deps.writer.commitStep({
      runs: [this.failureRun(job, path, 'rebounded', `rebound: ${reason}`, startedAt, finishedAt)],
      execution,
      children: [{ queue: node.queue, delayMs: backoffMs(node.settings.reboundDelayMs, rebounds, 3_600_000), job: { ...sj, path, rebounds, generation: (sj.generation ?? 0) + 1 } }],
      delta: { pending: 0, failed: 0 },
    });
  }

  /** Settles a failed run: a retry later (a delayed copy of the job) or, for good, a failed record and a dead letter. */
  private async fail(job: Job<StepJob>, path: string, node: PreparedNode | undefined, err: unknown, startedAt: Date, execution: NewExecution | undefined): Promise<void> {
    const sj = job.payload;
    const e = classifyStepError(err);
    const finishedAt = new Date();
    const tries = (sj.retries ?? 0) + 1;
    if (node && e.kind === 'transient' && tries <= node.settings.retries) {
      const delayMs = e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, MAX_RETRY_AFTER_MS) : backoffMs(node.settings.retryDelayMs, tries, node.settings.maxRetryDelayMs);
      await this.deps.writer.commitStep({
        runs: [this.failureRun(job, path, 'retrying', e.message, startedAt, finishedAt)],
        execution,
        children: [{ queue: node.queue, delayMs: Math.max(1, delayMs), job: { ...sj, path, retries: tries, generation: (sj.generation ?? 0) + 1 } }],
        delta: { pending: 0, failed: 0 },
      });
      return;
    }
    await this.deps.writer.commitStep({
      runs: [{ ...this.failureRun(job, path, 'failed', e.message, startedAt, finishedAt), retryMessageJson: JSON.stringify(sj.message) }],
      execution,
      children: [],
      delta: { pending: -1, failed: 1 },
    });
    this.deps.logger.info({ flowId: sj.flowId, executionId: sj.executionId, nodeId: sj.nodeId, attempt: tries, error: e.message }, 'step failed');
    throw new AppError('STEP_FAILED', e.message, 'user');
  }

  private failureRun(job: Job<StepJob>, path: string, status: repo.StepRunStatus, error: string, startedAt: Date, finishedAt: Date): repo.StepRunWrite {
    const sj = job.payload;
    return {
      executionId: sj.executionId,
      nodeId: sj.nodeId,
      path,
      status,
      attempt: (sj.retries ?? 0) + 1,
      rebounds: sj.rebounds ?? 0,
      generation: sj.generation ?? 0,
      inputJson: this.stored(sj.message.body),
      outputJson: null,
      emitted: 0,
      error: error.slice(0, 4_000),
      retryMessageJson: null,
      startedAt,
      finishedAt,
      durationMs: finishedAt.getTime() - startedAt.getTime(),
    };
  }

  /** A body as stored with its step run: whole up to the cap, else a marked preview. */
  private stored(value: unknown): string | null {
    const cap = this.deps.storedBodyBytes;
    if (cap <= 0) return null;
    const json = JSON.stringify(value === undefined ? null : value);
    if (json.length <= cap) return json;
    return JSON.stringify({ truncated: true, bytes: Buffer.byteLength(json), preview: json.slice(0, Math.min(cap, 1_024)) });
  }
}
