/**
 * The step runner: the handler of every step queue. For one StepJob it
 * 1. creates the execution when this is its trigger job (idempotently: the job may come back);
 * 2. skips a redelivered job whose run is already recorded (no second emit);
 * 3. runs the node's component with the node's credential and snapshot, under a time limit;
 * 4. routes each emitted message along the node's edges (condition, mapper), runs the pure
 *    steps it reaches inline (transform, filter, split, log) — and, in a pure step's job, the
 *    first step with effects it reaches — and commits, in one transaction, the step runs, the
 *    next jobs and the execution's pending count (then the bus acks the job);
 * 5. on failure: a transient error is retried with exponential backoff (`nodeSettings.retries`),
 *    anything else — or the last retry — records the failure and dead-letters the job with it;
 *    a `rebound` re-queues the message for later without counting as a failure. A retry or a
 *    rebound is a new job of the next generation, enqueued (delayed) in the same transaction
 *    that records the failed try; a copy of an older generation is stale and does nothing.
 * 6. a step whose output the database could not store (NUL, an unpaired surrogate, JSON nested
 *    too deep, in a body, snapshot or reply) fails with a user error naming the place, rather
 *    than failing the commit of its whole batch again on every redelivery.
 */
import type { StepJob } from '../../contracts/flows.js';
import type { Job } from '../../platform/bus/index.js';
import { Batcher, flushResults } from '../../platform/batcher.js';
import type { Db } from '../../platform/db/index.js';
import { AppError, isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { findUnstorable, toStorableJson, toStorableText } from '../../platform/storable.js';
import { StepError, classifyStepError, type StepContext, type StepResult } from '../components/index.js';
import { MessageLimitExceeded, type ChildJob, type ExecutionWriter } from './orchestrator.commit.js';
import type { TenantGate } from './orchestrator.gate.js';
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
/**
 * Pure steps run inline without I/O, so a long run of them would hold the main thread — and
 * every other tenant's webhook calls and steps behind it. A job lets them in this often.
 */
const INLINE_SLICE_MS = 4;
/**
 * A job handed over in process stays invisible for its step's time limit plus this margin; a
 * step run inline after it must end within what is left of that (less a second to commit).
 */
export const HANDOFF_LEASE_MARGIN_MS = 5_000;
/** A pure trigger job still running after this long creates its execution before its commit. */
const SHOW_RUNNING_AFTER_MS = 1_000;
/** Longest wait a remote Retry-After may impose on one retry. */
const MAX_RETRY_AFTER_MS = 3_600_000;

/** How a step's failed or rebounded run settles: its record, and a retry or a rebound to come. */
interface Settlement {
  run: repo.StepRunWrite;
  /** The next try, a job of the next generation (delayed). */
  next?: ChildJob;
  /** Set when it failed for good: the error it is dead-lettered with. */
  failedFor?: string;
}

/** What a job collects while it runs further steps inline, committed with its own run. */
interface InlineState {
  runs: repo.StepRunWrite[];
  /** Jobs for the steps not run inline: the branches still alive. */
  queued: ChildJob[];
  /** Carriers of the errors of steps that failed for good inline. */
  deadLetters: ChildJob[];
  failed: number;
  left: number;
  until: number;
  /** When the job next lets other work on the main thread run (INLINE_SLICE_MS). */
  yieldAt: number;
  /** 0, or when a step with effects run inline (once per job) must have ended, in epoch ms. */
  effectUntil: number;
  snapshot: { nodeId: string; value: unknown } | undefined;
  reply: StepResult['reply'];
  /** Messages routed to next steps by the steps of this job, and the tenant's limit per execution. */
  produced: number;
  messageLimit: number;
  /**
   * Set when a step run here went past the limit: it fails, and the messages not yet run here
   * are dropped rather than each failing on its own (one failure per job, not one per message).
   */
  overLimit: boolean;
}

export interface StepRunnerDeps {
  db: Db;
  logger: Logger;
  flows: FlowSource;
  writer: ExecutionWriter;
  resolveCredentials: CredentialResolver | undefined;
  /** Bodies are stored up to this many characters of JSON per step run. */
  storedBodyBytes: number;
  /** Messages one execution of the tenant may produce (tenant limit); unlimited without. */
  messageLimitFor?: ((tenant: string) => number) | undefined;
  /** Executions of a tenant running at once in this process (tenant limit); unlimited without. */
  gate?: TenantGate | undefined;
  /** Calls of a component for one message when its node sets no `retries` (PLEXUS_BUS_MAX_ATTEMPTS). Default 4. */
  maxAttempts?: number | undefined;
}

/** A held hand-off starts only while its lease still covers the step's time limit plus this (as in the runtime). */
const HANDOFF_START_SLACK_MS = 1_000;

function messageLimitError(tenant: string, limit: number): StepError {
  return new StepError(
    `the execution produced more than ${limit} messages, the limit of tenant ${tenant} (messagesPerExecution); a platform admin can raise it (PUT /api/v1/tenants/${tenant}/limits), or the flow can fan out less`,
    'user',
  );
}

/** The attempt a job makes of its step run: after a manual retry's earlier ones, and this run's own retries. */
function attemptOf(sj: StepJob): number {
  return (sj.attemptsBefore ?? 0) + (sj.retries ?? 0) + 1;
}

/** How long a step that was told to stop (its time limit is up) may take to end before its failure is recorded anyway. */
const ABORT_GRACE_MS = 5_000;

/**
 * A step run's AbortSignal, made when the step first reads it. Most steps (expressions, HTTP
 * calls) never do, and an AbortController per step run was a measurable share of an execution's
 * CPU; a step that reads it after its time limit is up gets it already aborted.
 */
class StepAbort {
  private controller: AbortController | undefined;
  private reason: unknown;
  private isAborted = false;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    this.isAborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * What a step run is given: a class, so every context has one shape and `signal` is a getter of
 * the prototype (an object literal with a getter of its own cost as much as the controller).
 */
class StepRunContext implements StepContext {
  readonly tenant: string;
  readonly flowId: string;
  readonly nodeId: string;
  readonly executionId: string;
  readonly idempotencyKey: string;
  readonly attempt: number;
  readonly message: StepContext['message'];
  readonly credentials: StepContext['credentials'];
  readonly credentialsType: string | undefined;
  readonly credentialsId: string | undefined;
  readonly snapshot: unknown;
  readonly logger: Logger;

  constructor(
    c: Omit<StepContext, 'signal'>,
    private readonly abort: StepAbort,
  ) {
    this.tenant = c.tenant;
    this.flowId = c.flowId;
    this.nodeId = c.nodeId;
    this.executionId = c.executionId;
    this.idempotencyKey = c.idempotencyKey;
    this.attempt = c.attempt;
    this.message = c.message;
    this.credentials = c.credentials;
    this.credentialsType = c.credentialsType;
    this.credentialsId = c.credentialsId;
    this.snapshot = c.snapshot;
    this.logger = c.logger;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

/**
 * Runs a step within its time limit. When the limit is up, the step's signal is aborted and the
 * failure (which schedules the retry) is returned only once the run has ended — a code step's
 * sandbox process is killed, an OIH component's run is settled — or after ABORT_GRACE_MS for
 * work that ignores the signal (logged), so a timed-out run is not left running beside its retry.
 */
async function runWithin<T>(start: (abort: StepAbort) => Promise<T>, ms: number, logger: Logger, where: () => Record<string, unknown>): Promise<T> {
  const abort = new StepAbort();
  const work = start(abort).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  const first = await Promise.race([work, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') {
    if (first.ok) return first.value;
    throw first.error;
  }
  const err = new StepError(`the step did not finish within ${ms} ms (nodeSettings.timeoutMs)`, 'transient');
  abort.abort(err);
  let grace: NodeJS.Timeout | undefined;
  const ended = await Promise.race([work.then(() => true), new Promise<false>((resolve) => (grace = setTimeout(() => resolve(false), ABORT_GRACE_MS)))]);
  clearTimeout(grace);
  if (!ended) logger.warn({ ...where(), graceMs: ABORT_GRACE_MS }, 'step still running after its time limit and abort; its retry may overlap it');
  throw err;
}

export class StepRunner {
  /**
   * Snapshot reads of the steps running at once, one statement per turn: every step on a worker
   * reads its node's snapshot (the hub cannot know whether the worker's component uses one), and
   * that read alone was about half the statements of such a step.
   */
  private readonly snapshots: Batcher<{ flowId: string; nodeId: string }, unknown>;

  constructor(private readonly deps: StepRunnerDeps) {
    this.snapshots = new Batcher({ maxBatch: 256, maxInFlight: deps.db.dialect === 'pglite' ? 1 : 4, flush: flushResults((keys) => repo.findSnapshots(deps.db, keys)) });
  }

  /**
   * The bus job handler of every step queue. An error that escapes `run` (the step's own failures
   * are settled inside it) means the engine itself could not handle the job: the flow version is
   * gone, storage failed, … When the bus is about to dead-letter the job for it, the execution
   * would otherwise stay `running` for ever, so its step run is recorded as failed first.
   */
  readonly handle = async (job: Job<StepJob>): Promise<void> => {
    let leave: (() => void) | undefined;
    try {
      leave = await this.enterGate(job);
      await this.run(job);
    } catch (err) {
      const settled = isAppError(err) && err.code === 'STEP_FAILED';
      const lastDelivery = (isAppError(err) && (err.kind === 'user' || err.kind === 'bug')) || job.attempt >= MAX_DELIVERIES;
      if (!settled && lastDelivery) await this.giveUp(job, err);
      throw err;
    } finally {
      leave?.();
    }
  };

  /**
   * Waits while the tenant has its limit of executions running in this process (TenantGate). A
   * job handed over in process waits only while its fixed lease still covers its step.
   */
  private async enterGate(job: Job<StepJob>): Promise<(() => void) | undefined> {
    const sj = job.payload;
    if (!this.deps.gate || sj.deadLetter !== undefined) return undefined;
    let deadline: number | undefined;
    if (job.leaseEndsAt !== undefined) {
      const flow = await this.deps.flows.get(sj.flowId, sj.flowVersion);
      deadline = job.leaseEndsAt - (flow.nodes.get(sj.nodeId)?.settings.timeoutMs ?? 0) - HANDOFF_START_SLACK_MS;
    }
    return this.deps.gate.enter(sj.tenant, sj.executionId, sj.path === undefined, deadline);
  }

  private async run(job: Job<StepJob>): Promise<void> {
    const sj = job.payload;
    // The step failed for good inline, in the job that reached it: this copy carries the error
    // to the step's dead letters; its run and its execution are already settled.
    if (sj.deadLetter !== undefined) throw new AppError('STEP_FAILED', sj.deadLetter, 'user');
    const path = sj.path ?? String(sj.sequence ?? 0);
    const generation = sj.generation ?? 0;
    const flow = await this.deps.flows.get(sj.flowId, sj.flowVersion);
    const node = flow.nodes.get(sj.nodeId);
    // A trigger job creates its execution: before running a step that may take long (so the
    // execution shows as running meanwhile), else together with the step run (one write less).
    let execution: NewExecution | undefined;
    if (sj.path === undefined) {
      execution = { id: sj.executionId, tenantId: sj.tenant, flowId: sj.flowId, flowVersion: sj.flowVersion ?? flow.flow.version, trigger: sj.trigger, awaitsReply: sj.awaitsReply === true, startedAt: new Date() };
      if (!node?.step.pure) {
        await this.deps.writer.ensureExecution(execution);
        execution = undefined;
      }
    }
    // A copy stored for a hand-off that a consumer claimed is a redelivery even at attempt 1.
    const redelivery = job.attempt > 1 || sj.handoff === true;
    if (redelivery) {
      // A redelivery: already done (a crash between commit and ack), or superseded by its own retry or rebound.
      const state = await repo.findStepRunState(this.deps.db, sj.executionId, sj.nodeId, path);
      if (state && (state.status === 'succeeded' || state.generation >= generation)) return;
    }
    const startedAt = new Date();
    if (!node) return this.commitSettlement(sj, this.failure(sj, path, undefined, new StepError(`node ${sj.nodeId} is not in version ${flow.flow.version} of the flow`, 'user'), startedAt), execution);
    if (job.attempt > CRASH_ALLOWANCE + 1) {
      const err = new StepError(`gave up after ${job.attempt - 1} deliveries that ended without a result (did the step crash the process?)`, 'user');
      return this.commitSettlement(sj, this.failure(sj, path, node, err, startedAt), execution);
    }

    const outcome = await this.execute(flow, node, sj, path, startedAt);
    if (outcome.settlement) return this.commitSettlement(sj, outcome.settlement, execution);
    const { result } = outcome;
    const messageLimit = this.deps.messageLimitFor?.(sj.tenant) ?? Number.MAX_SAFE_INTEGER;
    if (outcome.children.length > messageLimit) return this.commitSettlement(sj, this.failure(sj, path, node, messageLimitError(sj.tenant, messageLimit), startedAt), execution);
    const inline: InlineState = {
      runs: [this.succeededRun(sj, path, result, startedAt, { attempt: attemptOf(sj), rebounds: sj.rebounds ?? 0, generation })],
      queued: [],
      deadLetters: [],
      failed: 0,
      left: MAX_INLINE_RUNS,
      until: Date.now() + MAX_INLINE_MS,
      yieldAt: Date.now() + INLINE_SLICE_MS,
      // A pure step's job may also run the first step with effects it reaches (see runInline),
      // but not on a redelivery: a crash there must be counted against that step, in its own job.
      // So may a remote step's job (its worker answered; a crash before the commit runs the
      // remote call again under the same idempotency key, as any crash of its job would): it
      // saves the execution a queued job of its own after every remote step.
      // A job handed over in process has a fixed lease (job.leaseEndsAt) that its wait may have used up.
      effectUntil: (node.step.pure || node.remote !== undefined) && !redelivery ? Math.min(startedAt.getTime() + node.settings.timeoutMs + HANDOFF_LEASE_MARGIN_MS, job.leaseEndsAt ?? Infinity) - 1_000 : 0,
      snapshot: undefined,
      reply: undefined,
      produced: outcome.children.length,
      messageLimit,
      overLimit: false,
    };
    // A pure trigger's execution is created with this commit, which a step with effects run
    // inline can hold back up to its time limit: still running after a second, the job creates
    // the execution now, so the API shows it running meanwhile.
    let shown: Promise<unknown> | undefined;
    const showTimer =
      execution &&
      setTimeout(() => {
        shown = this.deps.writer.ensureExecution(execution!).then(
          () => undefined,
          (err: unknown) => err ?? new Error('creating the execution failed'),
        );
      }, SHOW_RUNNING_AFTER_MS);
    try {
      await this.runInline(flow, outcome.children, inline);
    } finally {
      clearTimeout(showTimer);
    }
    if (shown) {
      const failed = await shown;
      if (failed) throw failed;
      // It exists now: the commit applies this job's delta to it like to any other.
      execution = undefined;
    }
    const snapshot = result.snapshot ? { nodeId: sj.nodeId, value: result.snapshot.value } : inline.snapshot;
    const reply = result.reply ?? inline.reply;
    try {
      await this.deps.writer.commitStep({
        scope: { tenantId: sj.tenant, flowId: sj.flowId },
        runs: inline.runs,
        execution,
        children: [...inline.queued, ...inline.deadLetters],
        // Dead-letter carriers are not work left: their runs are settled in this commit.
        delta: { pending: inline.queued.length - 1, failed: inline.failed },
        snapshot: snapshot ? { flowId: sj.flowId, nodeId: snapshot.nodeId, tenantId: sj.tenant, json: JSON.stringify(snapshot.value ?? null) } : undefined,
        reply: reply ? { executionId: sj.executionId, reply } : undefined,
        messages: this.deps.messageLimitFor ? { produced: inline.produced, limit: messageLimit } : undefined,
      });
    } catch (err) {
      // Other jobs of the execution produced the rest: this job's step is the one that went past it.
      if (!(err instanceof MessageLimitExceeded)) throw err;
      return this.commitSettlement(sj, this.failure(sj, path, node, messageLimitError(sj.tenant, messageLimit), startedAt), execution);
    }
  }

  /**
   * Runs one step with its credential and snapshot under its time limit and routes what it
   * emitted; a failure or a rebound comes back as a settlement instead.
   */
  private async execute(
    flow: PreparedFlow,
    node: PreparedNode,
    sj: StepJob,
    path: string,
    startedAt: Date,
  ): Promise<{ settlement: Settlement; result?: undefined; children?: undefined } | { settlement?: undefined; result: StepResult; children: ChildJob[] }> {
    let result: StepResult;
    try {
      const credential = node.node.credentialsId ? await this.credentials(sj, node.node.credentialsId) : undefined;
      const snapshot = node.step.usesSnapshot ? await this.snapshots.add({ flowId: sj.flowId, nodeId: sj.nodeId }) : undefined;
      result = await runWithin(
        (abort) =>
          node.step.run(
            new StepRunContext(
              {
                tenant: sj.tenant,
                flowId: sj.flowId,
                nodeId: sj.nodeId,
                executionId: sj.executionId,
                idempotencyKey: repo.stepRunKey(sj.executionId, sj.nodeId, path),
                attempt: attemptOf(sj),
                message: sj.message,
                credentials: credential?.value,
                credentialsType: credential?.type,
                credentialsId: node.node.credentialsId,
                snapshot,
                logger: this.deps.logger,
              },
              abort,
            ),
          ),
        node.settings.timeoutMs,
        this.deps.logger,
        () => ({ flowId: sj.flowId, executionId: sj.executionId, nodeId: sj.nodeId }),
      );
      if (result.rebound) return { settlement: this.rebound(sj, path, node, result.rebound.reason, startedAt) };
      assertStorable(result);
      return { result, children: await this.route(flow, node, sj, path, result) };
    } catch (err) {
      return { settlement: this.failure(sj, path, node, err, startedAt) };
    }
  }

  /**
   * Runs the pure steps among `children` (transform, filter, split, log) right here, and their
   * pure successors, instead of queueing them: running them again after a crash is harmless,
   * and the job that reached them stays durable until their results are committed with it.
   * A pure job may also run the first step with effects it reaches (http-request, code, …) when
   * that step's time limit fits in the job's own lease and the step has no concurrency limit of
   * its own (`nodeSettings.concurrency`, which only its queue enforces): a crash before the commit
   * runs it again under the same idempotency key, exactly as a crash in its own job would, and
   * the execution saves a job, an ack and an update. Everything else — a pure step that fails,
   * anything past the budget — is queued.
   */
  private async runInline(flow: PreparedFlow, children: ChildJob[], st: InlineState): Promise<void> {
    for (const child of children) {
      if (st.overLimit) return;
      if (Date.now() >= st.yieldAt) {
        await new Promise((resolve) => setImmediate(resolve));
        st.yieldAt = Date.now() + INLINE_SLICE_MS;
      }
      const node = flow.nodes.get(child.job.nodeId);
      const inBudget = child.delayMs === 0 && st.left > 0 && Date.now() <= st.until;
      // A step given its own concurrency limit keeps it: only its own queue runs it.
      const ownLimit = node?.node.nodeSettings?.concurrency !== undefined;
      // A remote step runs only where its workers take it from its queue.
      if (node && inBudget && !node.step.pure && !ownLimit && !node.remote && Date.now() + node.settings.timeoutMs <= st.effectUntil) {
        st.effectUntil = 0;
        st.left--;
        await this.runEffectInline(flow, node, child, st);
        continue;
      }
      if (!node?.step.pure || !inBudget) {
        st.queued.push(child);
        continue;
      }
      st.left--;
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
        assertStorable(result);
        grandchildren = await this.route(flow, node, sj, path, result);
      } catch {
        // Its own job records the failure and applies the retry rules.
        st.queued.push(child);
        continue;
      }
      if (st.produced + grandchildren.length > st.messageLimit) {
        this.settleInline(st, node, sj, this.failure(sj, path, node, messageLimitError(sj.tenant, st.messageLimit), startedAt));
        st.overLimit = true;
        return;
      }
      st.produced += grandchildren.length;
      st.runs.push(this.succeededRun(sj, path, result, startedAt, { attempt: 1, rebounds: 0, generation: 0 }));
      await this.runInline(flow, grandchildren, st);
    }
  }

  /** Runs a step with effects inside the job that reached it; its outcome joins that job's commit. */
  private async runEffectInline(flow: PreparedFlow, node: PreparedNode, child: ChildJob, st: InlineState): Promise<void> {
    const sj = child.job;
    const path = sj.path!;
    const startedAt = new Date();
    const outcome = await this.execute(flow, node, sj, path, startedAt);
    if (outcome.settlement) return this.settleInline(st, node, sj, outcome.settlement);
    const { result } = outcome;
    if (st.produced + outcome.children.length > st.messageLimit) {
      st.overLimit = true;
      return this.settleInline(st, node, sj, this.failure(sj, path, node, messageLimitError(sj.tenant, st.messageLimit), startedAt));
    }
    st.produced += outcome.children.length;
    st.runs.push(this.succeededRun(sj, path, result, startedAt, { attempt: 1, rebounds: 0, generation: 0 }));
    if (result.snapshot) st.snapshot = { nodeId: sj.nodeId, value: result.snapshot.value };
    if (result.reply) st.reply = result.reply;
    await this.runInline(flow, outcome.children, st);
  }

  /** A step run inline failed or rebounded: its record, its retry, or a carrier of its error to the step's dead letters. */
  private settleInline(st: InlineState, node: PreparedNode, sj: StepJob, s: Settlement): void {
    st.runs.push(s.run);
    if (s.next) st.queued.push(s.next);
    if (s.failedFor !== undefined) {
      st.failed++;
      st.deadLetters.push({ queue: node.queue, delayMs: 0, job: { ...sj, generation: (sj.generation ?? 0) + 1, deadLetter: s.failedFor } });
    }
  }

  /** Records the job's step run as failed (unless it already has a result) and settles its execution. */
  private async giveUp(job: Job<StepJob>, err: unknown): Promise<void> {
    const sj = job.payload;
    const path = sj.path ?? String(sj.sequence ?? 0);
    const reason = err instanceof Error ? err.message : String(err);
    try {
      if (sj.path === undefined) {
        await this.deps.writer.ensureExecution({ id: sj.executionId, tenantId: sj.tenant, flowId: sj.flowId, flowVersion: sj.flowVersion ?? 0, trigger: sj.trigger, awaitsReply: sj.awaitsReply === true, startedAt: new Date() });
      }
      const now = new Date();
      await this.deps.writer.commitStep({
      scope: { tenantId: sj.tenant, flowId: sj.flowId },
        runs: [{ ...this.failureRun(sj, path, 'failed', `the engine could not run this step: ${reason}`, now, now), retryMessageJson: JSON.stringify(sj.message) }],
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

  /** A rebound: the message comes back later as the next generation, unless it rebounded too often. */
  private rebound(sj: StepJob, path: string, node: PreparedNode, reason: string, startedAt: Date): Settlement {
    const rebounds = (sj.rebounds ?? 0) + 1;
    if (rebounds > node.settings.maxRebounds) {
      return this.failure(sj, path, node, new StepError(`rebounded ${rebounds - 1} times (nodeSettings.maxRebounds); last reason: ${reason}`, 'user'), startedAt);
    }
    return {
      run: this.failureRun(sj, path, 'rebounded', `rebound: ${reason}`, startedAt, new Date()),
      next: { queue: node.queue, delayMs: backoffMs(node.settings.reboundDelayMs, rebounds, 3_600_000), job: { ...sj, path, rebounds, generation: (sj.generation ?? 0) + 1 } },
    };
  }

  /** A failed run: a retry later (a delayed copy of the job, next generation) or, for good, a failed record. */
  private failure(sj: StepJob, path: string, node: PreparedNode | undefined, err: unknown, startedAt: Date): Settlement {
    const e = classifyStepError(err);
    const finishedAt = new Date();
    const tries = (sj.retries ?? 0) + 1;
    const retries = node?.settings.retries ?? (this.deps.maxAttempts ?? 4) - 1;
    if (node && e.kind === 'transient' && tries <= retries) {
      const delayMs = e.retryAfterMs !== undefined ? Math.min(e.retryAfterMs, MAX_RETRY_AFTER_MS) : backoffMs(node.settings.retryDelayMs, tries, node.settings.maxRetryDelayMs);
      return {
        run: this.failureRun(sj, path, 'retrying', e.message, startedAt, finishedAt),
        next: { queue: node.queue, delayMs: Math.max(1, delayMs), job: { ...sj, path, retries: tries, generation: (sj.generation ?? 0) + 1 } },
      };
    }
    this.deps.logger.info({ flowId: sj.flowId, executionId: sj.executionId, nodeId: sj.nodeId, attempt: tries, error: e.message }, 'step failed');
    return { run: { ...this.failureRun(sj, path, 'failed', e.message, startedAt, finishedAt), retryMessageJson: JSON.stringify(sj.message) }, failedFor: e.message };
  }

  /** Commits the settlement of a job's own step; a failure for good then dead-letters the job. */
  private async commitSettlement(sj: StepJob, s: Settlement, execution: NewExecution | undefined): Promise<void> {
    await this.deps.writer.commitStep({
      scope: { tenantId: sj.tenant, flowId: sj.flowId },
      runs: [s.run],
      execution,
      children: s.next ? [s.next] : [],
      delta: s.failedFor !== undefined ? { pending: -1, failed: 1 } : { pending: 0, failed: 0 },
    });
    if (s.failedFor !== undefined) throw new AppError('STEP_FAILED', s.failedFor, 'user');
  }

  private failureRun(sj: StepJob, path: string, status: repo.StepRunStatus, error: string, startedAt: Date, finishedAt: Date): repo.StepRunWrite {
    return {
      executionId: sj.executionId,
      nodeId: sj.nodeId,
      path,
      status,
      attempt: attemptOf(sj),
      rebounds: sj.rebounds ?? 0,
      generation: sj.generation ?? 0,
      inputJson: this.stored(sj.message.body),
      outputJson: null,
      emitted: 0,
      // The message may quote a value the database cannot store; a record about it must store.
      error: toStorableText(error.slice(0, 4_000)),
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
    // Outputs are checked (assertStorable), but a trigger's input may come from anywhere: the
    // record of a run keeps U+FFFD where the value held what the database refuses.
    const json = toStorableJson(JSON.stringify(value === undefined ? null : value));
    if (json.length <= cap) return json;
    return JSON.stringify({ truncated: true, bytes: Buffer.byteLength(json), preview: toStorableText(json.slice(0, Math.min(cap, 1_024))) });
  }
}

/**
 * Throws a user StepError naming the first part of a step's output that the database could not
 * store. Emitted bodies are stored with the runs, snapshots and replies as JSON: a NUL there
 * used to fail the batch commit, then each row alone, then every redelivery of the job.
 */
function assertStorable(result: StepResult): void {
  const many = result.messages.length > 1;
  for (let i = 0; i < result.messages.length; i++) {
    const found = findUnstorable(result.messages[i]!.message.body, many ? `messages[${i}].body` : 'body');
    if (found) throw new StepError(`output ${found.path}: ${found.problem}`, 'user');
  }
  const found = (result.snapshot && findUnstorable(result.snapshot.value, 'snapshot')) || (result.reply && findUnstorable(result.reply, 'reply'));
  if (found) throw new StepError(`output ${found.path}: ${found.problem}`, 'user');
}
