/**
 * Orchestrator: the execution engine. Answers the flow lifecycle (`flow.starting` → steps placed
 * → `flow.started`; `flow.stopping` → drained → `flow.stopped`; `flow.failed`), runs every
 * message through the flow's steps durably (one queue per step, at-least-once, idempotency key
 * per step run), records executions and step runs, keeps snapshots, answers sync webhooks
 * (ReplyWaiter) and serves `/api/v1/executions` and `/api/v1/snapshots`.
 */
import type { ReplyWaiter, StepHandoff } from '../../contracts/flows.js';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import { EventStreams } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import type { ComponentsService } from '../components/index.js';
import { ExecutionWriter } from './orchestrator.commit.js';
import { TenantGate } from './orchestrator.gate.js';
import { Replies } from './orchestrator.replies.js';
import { orchestratorRoutes } from './orchestrator.routes.js';
import { StepRunner, type CredentialResolver } from './orchestrator.runner.js';
import { createLocalRuntime, type RemoteRuntime, type Runtime } from './orchestrator.runtime.js';
import { OrchestratorService, PreparedFlows } from './orchestrator.service.js';

export { OrchestratorService, ORCHESTRATOR_GROUP } from './orchestrator.service.js';
export { NodeSettings } from './orchestrator.routing.js';
export type { CredentialResolver } from './orchestrator.runner.js';
export { createLocalRuntime, LOCAL_RUNTIME, WORKERS_RUNTIME, type Runtime, type RemoteRuntime, type RemoteTarget, type Placement, type StepPlacement } from './orchestrator.runtime.js';
export { TenantGate } from './orchestrator.gate.js';

/** The tenant limits the engine enforces (the limits module's, wired in entrypoints/hub.ts). */
export interface ExecutionLimits {
  /** Messages one execution of the tenant may produce; the step that goes past it fails. */
  messagesPerExecution(tenant: string): number;
  /** Executions of the tenant running at once in this process; more wait in their queues. */
  concurrentExecutions(tenant: string): number;
}

export interface OrchestratorModule extends PlexusModule {
  service: OrchestratorService;
  /** For the webhooks module: waits for a sync webhook's reply. */
  replyWaiter: ReplyWaiter;
  /** For the webhooks module: runs a trigger job in this process without claiming it back. */
  handoff: StepHandoff | undefined;
}

export interface OrchestratorDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  components: ComponentsService;
  /** The secrets module's resolver of a node's `credentialsId`; without it such nodes fail (transient). */
  resolveCredentials?: CredentialResolver | undefined;
  /** Per-tenant limits; without them, none apply. */
  limits?: ExecutionLimits | undefined;
  /** Where steps run; the embedded `local` runtime by default. */
  runtime?: Runtime;
  /** The `workers` runtime (the router's gRPC workers), for nodes and flows that name it. */
  workers?: RemoteRuntime | undefined;
  /** Test knobs: reconcile tick and retention pass period. */
  tickMs?: number;
  pruneEveryMs?: number;
}

export async function createOrchestratorModule(deps: OrchestratorDeps): Promise<OrchestratorModule> {
  const { config, db, bus, logger } = deps;
  const replies = new Replies(db, logger);
  const runtime = deps.runtime ?? createLocalRuntime(bus, logger);
  const writer = new ExecutionWriter(db, bus, logger, (c) => replies.delivered(c), runtime.handoff);
  const flows = new PreparedFlows(db, deps.components, logger, deps.workers);
  const limits = deps.limits;
  const gate = limits ? new TenantGate((tenant) => limits.concurrentExecutions(tenant)) : undefined;
  const runner = new StepRunner({
    db,
    logger,
    flows,
    writer,
    resolveCredentials: deps.resolveCredentials,
    storedBodyBytes: config.executions.storedBodyBytes,
    messageLimitFor: limits ? (tenant) => limits.messagesPerExecution(tenant) : undefined,
    gate,
    maxAttempts: config.bus.maxAttempts,
  });
  const service = new OrchestratorService(db, bus, logger, flows, runner, runtime, {
    retentionMs: config.executions.retentionMs,
    ...(deps.tickMs !== undefined ? { tickMs: deps.tickMs } : {}),
    ...(deps.pruneEveryMs !== undefined ? { pruneEveryMs: deps.pruneEveryMs } : {}),
    stopWaitMs: Math.min(30_000, config.shutdownTimeoutMs),
  }, deps.workers);
  const audit = createAuditPublisher(bus, 'orchestrator', logger);
  let started = false;
  return {
    name: 'orchestrator',
    role: 'orchestrator',
    service,
    replyWaiter: replies,
    handoff: runtime.handoff,
    routes: orchestratorRoutes(service, audit, new EventStreams(bus.live)),
    async start() {
      await replies.start();
      await service.start();
      started = true;
    },
    async stop() {
      if (!started) return;
      // Jobs waiting for their tenant's turn go back to their queues rather than hold the drain.
      gate?.close();
      await service.stop();
      await writer.idle();
      await replies.stop();
    },
  };
}
