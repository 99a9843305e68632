/**
 * Router: this hub process as an aggregator instance (seed 004). Workers attach over gRPC
 * (`plexus.router.v1`, PLEXUS_GRPC_PORT), enrol with a single-use secret, run flow steps placed
 * on the `workers` runtime, and exchange commands and events. Serves `/api/v1/workers`.
 */
import { randomUUID } from 'node:crypto';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import { addCollectedGauge, type Metrics } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { REVOKED_EVENT } from '../connector/index.js';
import type { RemoteRuntime } from '../orchestrator/index.js';
import { Commands } from './router.commands.js';
import { Dispatcher } from './router.dispatch.js';
import { RouterGrpcServer } from './router.grpc.js';
import { WorkerRegistry } from './router.registry.js';
import { routerRoutes } from './router.routes.js';
import { createWorkersRuntime } from './router.runtime.js';
import { RouterService, type WorkerCertificates } from './router.service.js';

export { loadRouterProto, PROTO_PATH } from './router.protocol.js';
export type * as protocol from './router.protocol.js';

export interface RouterModule extends PlexusModule {
  /** The `workers` runtime for the orchestrator of this process. */
  runtime: RemoteRuntime;
  dispatcher: Dispatcher;
  /** The gRPC port bound (after start; 0 before). */
  port(): number;
  /** Open gRPC streams, attached or not. */
  openStreams(): number;
  /**
   * With TLS on, workers may attach with a client certificate of the hub's CA (the Connector's).
   * Called before start.
   */
  trustCertificates(certificates: WorkerCertificates): void;
}

export interface RouterDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  metrics?: Metrics | undefined;
}

export function createRouterModule(deps: RouterDeps): RouterModule {
  const { config, db, bus, logger } = deps;
  const instanceId = randomUUID();
  const audit = createAuditPublisher(bus, 'router', logger);
  const service = new RouterService(db, audit, logger);
  const dispatcher = new Dispatcher({ leaseMs: config.router.workerLeaseMs, logger });
  const registry = new WorkerRegistry(db, dispatcher, { aggregator: config.router.aggregatorName, instanceId }, logger);
  const commands = new Commands(
    bus,
    dispatcher,
    instanceId,
    logger,
    (tenant, target) => registry.servedElsewhere(tenant, target),
    (tenant, workerId) => registry.holderOf(tenant, workerId),
  );
  const grpc = new RouterGrpcServer(
    {
      host: config.http.host,
      port: config.http.grpcPort,
      aggregatorName: config.router.aggregatorName,
      instanceId,
      maxMessageBytes: config.router.maxMessageBytes,
      leaseMs: config.router.workerLeaseMs,
      helloTimeoutMs: config.router.helloTimeoutMs,
      tls: config.router.tls,
      certificates: () => certificates,
    },
    dispatcher,
    service,
    commands,
    logger,
  );
  let certificates: WorkerCertificates | undefined;
  let unlistenRevoked: (() => Promise<void>) | undefined;
  const runtime = createWorkersRuntime(bus, dispatcher, logger, { secure: () => grpc.secure });
  if (deps.metrics) {
    addCollectedGauge(deps.metrics, 'plexus_router_worker_in_flight', 'Deliveries held per attached worker (this aggregator instance)', ['tenant', 'worker'], async () =>
      dispatcher.list().map((s) => ({ labels: { tenant: s.tenant, worker: s.workerId }, value: s.inFlight })),
    );
    addCollectedGauge(deps.metrics, 'plexus_router_open_streams', 'gRPC Attach streams open on this aggregator instance, attached or not', [], async () => [{ labels: {}, value: grpc.openStreams }]);
    addCollectedGauge(deps.metrics, 'plexus_router_waiting_calls', 'Step calls waiting for a free compatible worker (this aggregator instance)', [], async () => [{ labels: {}, value: dispatcher.stats().waiting }]);
  }
  let started = false;
  return {
    name: 'router',
    role: 'router',
    runtime,
    dispatcher,
    port: () => grpc.boundPort,
    openStreams: () => grpc.openStreams,
    trustCertificates(c) {
      certificates = c;
    },
    routes: routerRoutes(service, registry, commands),
    async start() {
      await commands.start();
      // A certificate revoked on any process ends the streams it holds here at once.
      if (certificates && config.router.tls) unlistenRevoked = await bus.live.subscribe(REVOKED_EVENT, () => void grpc.onCertificatesRevoked());
      await grpc.start();
      await registry.start();
      started = true;
    },
    async stop() {
      if (!started) return;
      await unlistenRevoked?.();
      dispatcher.close();
      await runtime.close();
      await grpc.stop(Math.min(5_000, config.shutdownTimeoutMs));
      await registry.stop();
      await commands.stop();
    },
  };
}
