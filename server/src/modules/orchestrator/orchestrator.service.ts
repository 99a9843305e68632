/**
 * The orchestrator's lifecycle and its read/retry API.
 *
 * Lifecycle (seed 002), through the bus with the durable group `orchestrator` (one process
 * handles each event):
 * - `flow.starting`: prepare every node (component and function exist, fields valid) — else
 *   `flow.failed {id, reason}`; record the flow as active (our own table) and notify every
 *   orchestrator process; place the steps here; publish `flow.started {id}`.
 * - `flow.stopping`: record the flow as stopped and notify; drain the placements here; wait
 *   (bounded) until no other live process still consumes the flow; publish `flow.stopped {id}`.
 * Every process reconciles its placements with the table — at start (a restart resumes work),
 * on notice, and on a timer that also heartbeats its placements.
 */
import { randomUUID } from 'node:crypto';
import { FLOW_EVENTS, stepQueueName, withoutClearWebhookSecret, type Flow, type FlowFailedPayload, type FlowStartedPayload, type StepJob } from '../../contracts/flows.js';
import type { Bus, BusEvent, Consumer } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { ComponentsService } from '../components/index.js';
import { EXECUTIONS_CHANGED, type ExecutionsChanged } from './orchestrator.events.js';
import * as repo from './orchestrator.repo.js';
import { executionStats, StatsRollup, type ExecutionStats } from './orchestrator.stats.js';
import { HANDOFF_LEASE_MARGIN_MS, MAX_DELIVERIES, type FlowSource, type StepRunner } from './orchestrator.runner.js';
import { FlowPreparationError, prepareFlow, type PreparedFlow } from './orchestrator.routing.js';
import type { Placement, RemoteRuntime, Runtime } from './orchestrator.runtime.js';

export const ORCHESTRATOR_GROUP = 'orchestrator';
/** Steps with a longer time limit are not handed off in-process (see the local runtime). */
const MAX_HANDOFF_STEP_MS = 120_000;
/** `flow.stopping` events handled at once by one process (each may wait for others to drain). */
const STOPS_AT_ONCE = 16;

export interface OrchestratorOptions {
  /** Reconcile and heartbeat period. */
  tickMs?: number;
  /** How long a stop waits for other processes to drain the flow. */
  stopWaitMs?: number;
  retentionMs: number;
  /** Retention pass period. */
  pruneEveryMs?: number;
}

interface LocalFlow {
  version: number;
  placements: Placement[];
}

/** Prepared flows by version, shared by the runner and the lifecycle. */
export class PreparedFlows implements FlowSource {
  private readonly byVersion = new Map<string, Promise<PreparedFlow>>();
  private readonly activeVersion = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly components: ComponentsService,
    private readonly logger: Logger,
    private readonly workers?: RemoteRuntime,
  ) {}

  /** The components' start hooks (OIH `startup`); throws FlowPreparationError naming the node when one fails. */
  async startHooks(flow: Flow): Promise<void> {
    try {
      await this.components.startFlow(flow);
    } catch (err) {
      throw err instanceof AppError && err.code === 'VALIDATION_FAILED' ? new FlowPreparationError(err.message) : err;
    }
  }

  /** The components' stop hooks (OIH `shutdown`); failures are logged, never thrown. */
  stopHooks(flowId: string): Promise<void> {
    return this.components.stopFlow(flowId);
  }

  setActive(flowId: string, version: number): void {
    this.activeVersion.set(flowId, version);
  }

  forget(flowId: string): void {
    this.activeVersion.delete(flowId);
    for (const key of [...this.byVersion.keys()]) if (key.startsWith(`${flowId}@`)) this.byVersion.delete(key);
  }

  /** Prepares (and caches) a flow from its definition. */
  prepare(flow: Flow): Promise<PreparedFlow> {
    const key = `${flow.id}@${flow.version}`;
    let p = this.byVersion.get(key);
    if (!p) {
      p = prepareFlow(flow, this.components, this.logger, this.workers);
      this.byVersion.set(key, p);
      p.catch(() => this.byVersion.delete(key));
    }
    return p;
  }

  async get(flowId: string, version: number | undefined): Promise<PreparedFlow> {
    const v = version ?? this.activeVersion.get(flowId) ?? (await repo.findFlow(this.db, flowId))?.version;
    if (v === undefined) throw new AppError('NOT_FOUND', `flow ${flowId} is not known to the orchestrator`, 'user');
    const cached = this.byVersion.get(`${flowId}@${v}`);
    if (cached) return cached;
    const flow = await repo.findFlowVersion(this.db, flowId, v);
    if (!flow) throw new AppError('NOT_FOUND', `version ${v} of flow ${flowId} is not known to the orchestrator`, 'user');
    return this.prepare(flow);
  }
}

export class OrchestratorService {
  readonly instanceId = randomUUID();
  private readonly local = new Map<string, LocalFlow>();
  private subscriptions: Consumer[] = [];
  private unlisten: (() => Promise<void>) | undefined;
  private unlistenPlacements: (() => Promise<void>) | undefined;
  /** Stops waiting for other processes to let go of a flow, woken by NOTIFY 'placements'. */
  private readonly placementWaiters = new Map<string, Set<() => void>>();
  private tick: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private readonly statsRollup: StatsRollup;
  /** Reconciles run one at a time; a request during one runs once more after it. */
  private reconciling: Promise<void> | undefined;
  private reconcileAgain = false;
  private stopped = false;
  private readonly tickMs: number;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly flows: PreparedFlows,
    private readonly runner: StepRunner,
    private readonly runtime: Runtime,
    private readonly options: OrchestratorOptions,
    private readonly workers?: RemoteRuntime,
  ) {
    this.tickMs = options.tickMs ?? 5_000;
    this.statsRollup = new StatsRollup(db, logger, options.retentionMs);
  }

  async start(): Promise<void> {
    const channel = await repo.channelName(this.db, 'flows');
    this.unlisten = await this.db.listen(channel, () => void this.reconcile());
    const placements = await repo.channelName(this.db, 'placements');
    this.unlistenPlacements = await this.db.listen(placements, (flowId) => this.wakePlacementWaiters(flowId));
    await this.reconcile();
    this.subscriptions = [
      await this.bus.subscribe<Flow>(FLOW_EVENTS.starting, ORCHESTRATOR_GROUP, (e) => this.onStarting(e)),
      // Stops wait for other processes to let go: several run at once, none queues behind another.
      await this.bus.subscribe<Flow>(FLOW_EVENTS.stopping, ORCHESTRATOR_GROUP, (e) => this.onStopping(e), { concurrency: STOPS_AT_ONCE }),
    ];
    this.tick = setInterval(() => {
      void repo.heartbeatPlacements(this.db, this.instanceId).catch((err: unknown) => this.logger.warn({ err }, 'orchestrator: heartbeat failed'));
      void this.reconcile();
    }, this.tickMs);
    this.tick.unref();
    // Often enough that nothing outlives its retention by much more than a quarter of it.
    const pruneEvery = this.options.pruneEveryMs ?? Math.min(60_000, Math.max(1_000, Math.floor(this.options.retentionMs / 4)));
    this.pruneTimer = setInterval(() => void this.prune(), pruneEvery);
    this.pruneTimer.unref();
    this.statsRollup.start();
  }

  /** Rolls the finished minutes of execution stats up now (tests; the job does it every minute). */
  rollUpStats(now = new Date()): Promise<void> {
    return this.statsRollup.run(now);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tick);
    clearInterval(this.pruneTimer);
    await this.statsRollup.stop();
    await Promise.all(this.subscriptions.map((s) => s.stop()));
    await this.unlisten?.();
    await this.unlistenPlacements?.();
    for (const set of this.placementWaiters.values()) for (const wake of set) wake();
    this.placementWaiters.clear();
    await this.reconciling;
    await Promise.all([...this.local.keys()].map((id) => this.unplace(id)));
    await repo.deleteInstancePlacements(this.db, this.instanceId).catch(() => {});
  }

  // ---- lifecycle events ----

  private async onStarting(event: BusEvent<Flow>): Promise<void> {
    // The engine never needs a webhook signing secret; one in an event from an older hub is not kept.
    const flow = withoutClearWebhookSecret(event.payload);
    const log = this.logger.child({ flowId: flow.id });
    try {
      await this.flows.prepare(flow);
      // OIH components' startup(cfg) runs before the flow is active, so no message runs before it,
      // and one that fails fails the start with its reason, as a broken expression does.
      await this.flows.startHooks(flow);
    } catch (err) {
      const reason = err instanceof FlowPreparationError ? err.message : `cannot prepare the flow: ${(err as Error).message}`;
      log.warn({ reason }, 'flow cannot start');
      await this.db.transaction(async (tx) => {
        if (await repo.setFlowStatus(tx, flow.id, 'stopped')) await repo.notify(tx, 'flows', [flow.id]);
        await this.bus.publish<FlowFailedPayload>(FLOW_EVENTS.failed, { id: flow.id, reason }, { tx });
      });
      return;
    }
    await this.db.transaction(async (tx) => {
      await repo.insertFlowVersion(tx, flow);
      await repo.upsertFlow(tx, flow, 'active', this.runtime.name);
      await repo.notify(tx, 'flows', [flow.id]);
    });
    await this.reconcile();
    if (!this.local.has(flow.id)) {
      // Placement failed here (logged by reconcile); the flow is not running anywhere we know of.
      throw new AppError('UNAVAILABLE', `could not place the steps of flow ${flow.id}`, 'transient');
    }
    await this.bus.publish<FlowStartedPayload>(FLOW_EVENTS.started, { id: flow.id });
    log.info({ version: flow.version, steps: flow.graph.nodes.length, runtime: this.runtime.name }, 'flow started');
  }

  private async onStopping(event: BusEvent<Flow>): Promise<void> {
    const flowId = event.payload.id;
    await this.db.transaction(async (tx) => {
      if (await repo.setFlowStatus(tx, flowId, 'stopped')) await repo.notify(tx, 'flows', [flowId]);
    });
    await this.reconcile();
    // Other processes stop on the notice; wait until none of them still takes this flow's
    // messages: woken when one deletes its placement (NOTIFY 'placements'), or when the last
    // live one's heartbeat goes stale (its process died), never later than the deadline.
    const deadline = Date.now() + (this.options.stopWaitMs ?? 30_000);
    for (;;) {
      const change = this.nextPlacementChange(flowId);
      const live = await repo.livePlacements(this.db, flowId, this.instanceId, this.tickMs * 3);
      const left = deadline - Date.now();
      if (live.count === 0 || left <= 0) {
        change.cancel();
        break;
      }
      await change.wait(Math.min(left, live.staleInMs + 1));
    }
    // No process runs the flow's steps any more: OIH components' shutdown(cfg, startupData), before
    // flow.stopped, so a start that follows at once never meets this run's states.
    await this.flows.stopHooks(flowId);
    await this.bus.publish<FlowStartedPayload>(FLOW_EVENTS.stopped, { id: flowId });
    this.logger.info({ flowId }, 'flow stopped');
  }

  /** Resolves at the next NOTIFY 'placements' for the flow, or after `ms`. */
  private nextPlacementChange(flowId: string): { wait(ms: number): Promise<void>; cancel(): void } {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    let set = this.placementWaiters.get(flowId);
    if (!set) this.placementWaiters.set(flowId, (set = new Set()));
    set.add(wake);
    const cancel = (): void => {
      const s = this.placementWaiters.get(flowId);
      s?.delete(wake);
      if (s?.size === 0) this.placementWaiters.delete(flowId);
    };
    return {
      cancel,
      wait: async (ms) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([woken, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms))))]);
        } finally {
          clearTimeout(timer);
          cancel();
        }
      },
    };
  }

  private wakePlacementWaiters(flowId: string): void {
    const set = this.placementWaiters.get(flowId);
    if (!set) return;
    this.placementWaiters.delete(flowId);
    for (const wake of set) wake();
  }

  // ---- placement ----

  /** Brings this process's placements in line with the active flows. */
  reconcile(): Promise<void> {
    if (this.reconciling) {
      this.reconcileAgain = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      do {
        this.reconcileAgain = false;
        try {
          await this.reconcileOnce();
        } catch (err) {
          this.logger.warn({ err }, 'orchestrator: reconcile failed; retrying on the next tick');
        }
      } while (this.reconcileAgain && !this.stopped);
    })().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    if (this.stopped) return;
    const active = new Map((await repo.listActiveFlows(this.db)).map((r) => [r.flow_id, r]));
    for (const [flowId, placed] of this.local) {
      const want = active.get(flowId);
      if (!want || want.version !== placed.version) await this.unplace(flowId);
    }
    for (const [flowId, row] of active) {
      if (this.local.has(flowId) || this.stopped) continue;
      try {
        await this.place(flowId, row.version);
      } catch (err) {
        this.logger.error({ err, flowId }, 'orchestrator: cannot place the flow’s steps in this process');
      }
    }
  }

  private async place(flowId: string, version: number): Promise<void> {
    const prepared = await this.flows.get(flowId, version);
    this.flows.setActive(flowId, version);
    const placements: Placement[] = [];
    try {
      for (const node of prepared.nodes.values()) {
        placements.push(
          await (node.remote && this.workers ? this.workers : this.runtime).place(
            {
              flowId,
              nodeId: node.node.id,
              queue: node.queue,
              concurrency: node.settings.concurrency,
              maxDeliveries: MAX_DELIVERIES,
              // Hand-offs hide the job for longer than the step may run; steps allowed to run for
              // minutes take the ordinary path, so a crash never hides their messages that long.
              // Remote steps are never handed off: their workers take them from the queue.
              handoffLeaseMs: !node.remote && node.settings.timeoutMs <= MAX_HANDOFF_STEP_MS ? node.settings.timeoutMs + HANDOFF_LEASE_MARGIN_MS : undefined,
              timeoutMs: node.settings.timeoutMs,
              remote: node.remote,
            },
            this.runner.handle,
          ),
        );
      }
    } catch (err) {
      await Promise.all(placements.map((p) => p.stop()));
      throw err;
    }
    this.local.set(flowId, { version, placements });
    await repo.upsertPlacement(this.db, this.instanceId, flowId, version, this.runtime.name);
    this.logger.debug({ flowId, version, steps: placements.length }, 'orchestrator: steps placed');
  }

  private async unplace(flowId: string): Promise<void> {
    const placed = this.local.get(flowId);
    if (!placed) return;
    this.local.delete(flowId);
    await Promise.all(placed.placements.map((p) => p.stop()));
    await repo.deletePlacement(this.db, this.instanceId, flowId).catch(() => {});
    this.flows.forget(flowId);
    this.logger.debug({ flowId }, 'orchestrator: steps unplaced');
  }

  /** Flows this process currently consumes (tests and metrics). */
  placedFlows(): string[] {
    return [...this.local.keys()];
  }

  // ---- retention ----

  async prune(now = new Date()): Promise<number> {
    let total = 0;
    try {
      const before = new Date(now.getTime() - this.options.retentionMs);
      for (;;) {
        const n = await repo.pruneExecutions(this.db, before, 1_000);
        total += n;
        if (n < 1_000 || this.stopped) break;
      }
      // Replies matter only while a caller waits (seconds); keep them an hour at most.
      await repo.pruneReplies(this.db, new Date(now.getTime() - 3_600_000));
      if (total > 0) this.logger.info({ pruned: total }, 'orchestrator: pruned old executions');
    } catch (err) {
      this.logger.warn({ err }, 'orchestrator: pruning executions failed');
    }
    return total;
  }

  // ---- executions API ----

  async listExecutions(filter: repo.ExecutionFilter, desc: boolean, page: number, perPage: number): Promise<{ rows: repo.ExecutionRow[]; total: number }> {
    const [rows, total] = await Promise.all([repo.listExecutions(this.db, filter, desc, perPage, (page - 1) * perPage), repo.countExecutions(this.db, filter)]);
    return { rows, total };
  }

  /** Per minute, per flow and in total over the last `minutes`: executions finished, failures, p99 duration. */
  executionStats(tenantId: string, flowId: string | undefined, minutes: number, now = new Date()): Promise<ExecutionStats> {
    return executionStats(this.db, tenantId, flowId, minutes, now);
  }

  async getExecution(tenantId: string, id: string): Promise<{ execution: repo.ExecutionRow; steps: repo.StepRunRow[] }> {
    const execution = await repo.findExecution(this.db, tenantId, id);
    if (!execution) throw AppError.notFound(`execution ${id}`);
    return { execution, steps: await repo.listStepRuns(this.db, id) };
  }

  /** Re-runs the failed steps of a failed execution from their stored input. */
  async retryExecution(tenantId: string, id: string): Promise<{ execution: repo.ExecutionRow; retried: number }> {
    const retried = await this.db.transaction(async (tx) => {
      const execution = await repo.lockExecution(tx, tenantId, id);
      if (!execution) throw AppError.notFound(`execution ${id}`);
      if (execution.status !== 'failed') throw AppError.conflict(`execution ${id} is ${execution.status}; only a failed execution can be retried`);
      const flow = await repo.findFlow(tx, execution.flow_id);
      if (!flow || flow.status !== 'active') throw AppError.conflict(`flow ${execution.flow_id} is not running; start it to retry its executions`);
      const failed = (await repo.listFailedStepRuns(tx, id)).filter((r) => r.retry_message !== null);
      if (failed.length === 0) throw AppError.conflict(`execution ${id} has no failed step with a stored input to retry`);
      for (const run of failed) {
        const job: StepJob = {
          executionId: id,
          flowId: execution.flow_id,
          tenant: execution.tenant_id,
          nodeId: run.node_id,
          message: JSON.parse(run.retry_message!) as StepJob['message'],
          trigger: 'retry',
          sequence: Number(run.path.split('.').pop()) || 0,
          path: run.path,
          rebounds: run.rebounds,
          retries: 0,
          // The retry is the run's next attempt; its automatic retries start afresh.
          attemptsBefore: run.attempt,
          generation: run.generation + 1,
          ...(execution.flow_version !== null ? { flowVersion: execution.flow_version } : {}),
        };
        await this.bus.enqueue(stepQueueName(execution.flow_id, run.node_id), job, { tx });
      }
      await repo.markStepRunsQueued(tx, id, failed.map((r) => ({ nodeId: r.node_id, path: r.path })));
      await repo.reopenExecution(tx, id, failed.length);
      return { execution: { ...execution, status: 'running' as const, finished_at: null, pending: execution.pending + failed.length }, retried: failed.length };
    });
    const change = { id, tenant: retried.execution.tenant_id, flowId: retried.execution.flow_id };
    this.bus.live.publish<ExecutionsChanged>(EXECUTIONS_CHANGED, { executions: [change] }).catch((err: unknown) => this.logger.warn({ err }, 'orchestrator: live event not sent'));
    return retried;
  }

  // ---- snapshots API ----

  async listSnapshots(tenantId: string, flowId: string | undefined, page: number, perPage: number): Promise<{ rows: repo.SnapshotRow[]; total: number }> {
    const [rows, total] = await Promise.all([repo.listSnapshots(this.db, tenantId, flowId, perPage, (page - 1) * perPage), repo.countSnapshots(this.db, tenantId, flowId)]);
    return { rows, total };
  }

  async deleteSnapshot(tenantId: string, flowId: string, nodeId: string): Promise<void> {
    if (!(await repo.deleteSnapshot(this.db, tenantId, flowId, nodeId))) throw AppError.notFound(`snapshot of ${flowId}/${nodeId}`);
  }
}
