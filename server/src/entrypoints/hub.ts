/**
 * Wiring only: builds a hub process from config — storage, bus, the modules of the requested
 * roles and the HTTP origin. `plexus start` and the end-to-end tests both use it.
 */
import { fileURLToPath } from 'node:url';
import type { Config } from '../platform/config.js';
import { openDb, dbOptionsFrom, startAutovacuum, type Db } from '../platform/db/index.js';
import { createBus, type Bus, type QueueStats } from '../platform/bus/index.js';
import { queueMetricLabel } from '../contracts/flows.js';
import { addCollectedGauge, createHttpServer, createMetrics, registerCockpitRoutes, registerHealthRoutes, registerModuleRoutes, type HttpApp } from '../platform/http/index.js';
import { toAppError } from '../platform/errors.js';
import { Lifecycle } from '../platform/lifecycle.js';
import { createLogger, type Logger } from '../platform/logger.js';
import type { PlexusModule } from '../platform/module.js';
import { createOutbound } from '../platform/outbound/index.js';
import { createIamModule, type IamModule } from '../modules/iam/index.js';
import { createAuditModule } from '../modules/audit/index.js';
import { createSecretsModule } from '../modules/secrets/index.js';
import { createComponentsModule, StepError } from '../modules/components/index.js';
import { createOrchestratorModule, LOCAL_RUNTIME } from '../modules/orchestrator/index.js';
import { createFlowsModule } from '../modules/flows/index.js';
import { createWebhooksModule } from '../modules/webhooks/index.js';
import { createSchedulerModule } from '../modules/scheduler/index.js';
import { createDirectorModule, type DirectorModule } from '../modules/director/index.js';
import { createLimitsModule, type LimitsModule } from '../modules/limits/index.js';
import { ApiTokenCache, createConnectorModule, createConnectorService, type ConnectorModule } from '../modules/connector/index.js';
import { createRouterModule } from '../modules/router/index.js';

/** The built web UI (`npm run build -w web`, run by `npm ci`). */
const COCKPIT_DIR = fileURLToPath(new URL('../../../web/dist', import.meta.url));

/** Every role; `plexus start` runs them all unless `--roles` names some. */
export const ALL_ROLES = ['gateway', 'iam', 'audit', 'secrets', 'flows', 'webhooks', 'scheduler', 'orchestrator', 'worker', 'director', 'connector', 'router'] as const;
export type Role = (typeof ALL_ROLES)[number];

export interface HubOptions {
  roles?: readonly Role[];
  logger?: Logger;
  /** Tests bring their own database / bus; otherwise both come from config. */
  db?: Db;
  bus?: Bus;
}

export interface Hub {
  config: Config;
  logger: Logger;
  db: Db;
  bus: Bus;
  app: HttpApp;
  iam: IamModule;
  limits: LimitsModule;
  lifecycle: Lifecycle;
  /** Binds the HTTP port (gateway role); resolves to the base URL. */
  listen(): Promise<string>;
  /** The connector (tokens, certificates, the mTLS listener). */
  connector: ConnectorModule;
  /** Base URL of the mTLS listener (bound by `listen()` with the connector role). */
  mtlsUrl(): string;
  /** The gRPC port workers attach to (router role, after start); 0 without it. */
  grpcPort(): number;
  stop(): Promise<void>;
}

/** Queue stats under their metric names: depths summed, the oldest age kept. */
function aggregateQueueStats(stats: readonly QueueStats[]): Map<string, { depth: number; oldestAgeMs: number }> {
  const out = new Map<string, { depth: number; oldestAgeMs: number }>();
  for (const s of stats) {
    const label = queueMetricLabel(s.queue);
    const seen = out.get(label) ?? { depth: 0, oldestAgeMs: 0 };
    out.set(label, { depth: seen.depth + s.depth, oldestAgeMs: Math.max(seen.oldestAgeMs, s.oldestAgeMs) });
  }
  return out;
}

export async function createHub(config: Config, opts: HubOptions = {}): Promise<Hub> {
  const logger = opts.logger ?? createLogger(config.log.level);
  const roles = new Set<string>(opts.roles ?? ALL_ROLES);
  const lifecycle = new Lifecycle(logger);
  const metrics = createMetrics();

  const db = opts.db ?? (await openDb(dbOptionsFrom(config)));
  if (!opts.db) lifecycle.onStop('db', () => db.close());
  const autovacuum = startAutovacuum(db, logger.child({ module: 'db' }));
  lifecycle.onStop('autovacuum', () => autovacuum.stop());
  const bus =
    opts.bus ??
    (await createBus({
      db,
      natsUrl: config.bus.natsUrl,
      prefix: config.bus.natsPrefix,
      serviceName: 'plexus',
      // The adapters bind `module: 'bus'` themselves (a second binding repeats the key).
      logger,
      maxAttempts: config.bus.maxAttempts,
      leaseMs: config.bus.leaseMs,
    }));
  if (!opts.bus) lifecycle.onStop('bus', () => bus.close());

  const iam = await createIamModule({ config, db, bus, logger: logger.child({ module: 'iam' }) });
  const modules: PlexusModule[] = [iam];
  // Every process enforces tenant limits from memory, kept current whatever its roles.
  const limits = await createLimitsModule({ config, db, bus, logger: logger.child({ module: 'limits' }), requireTenant: async (tenant) => void (await iam.service.getTenant(tenant)) });
  modules.push(limits);
  lifecycle.onStop('limits', await limits.watch());
  // Each block below wires one module and pushes it; order follows their dependencies.
  const audit = await createAuditModule({ db, bus, logger: logger.child({ module: 'audit' }) });
  modules.push(audit);
  // One guard for every call out of the hub made on a tenant's behalf.
  const outbound = createOutbound(config.outbound, { logger: logger.child({ module: 'outbound' }) });
  lifecycle.onStop('outbound', async () => outbound.close());
  const secrets = await createSecretsModule({ config, db, bus, outbound, logger: logger.child({ module: 'secrets' }) });
  modules.push(secrets);
  const apiTokens = new ApiTokenCache(outbound);
  // The Director is wired below; the components, flows ask it through this reference.
  const late: { director?: DirectorModule } = {};
  const components = await createComponentsModule({
    config,
    db,
    bus,
    outbound,
    logger: logger.child({ module: 'components' }),
    codeSlotsFor: limits.service.codeSlotsFor,
    secrets: secrets.service,
    // http-request `api`: the credentials the application set for `api.credentialsRuntime`
    // (default the embedded runtime, `local`); OAuth ones are exchanged for a cached token.
    resolveApi: async (tenant, ref) => {
      if (!late.director) throw new StepError("fields.api: calling an application's API needs the Director", 'user');
      const found = await late.director.service.resolveApiForRuntime(tenant, ref.application, ref.apiDefinition, ref.credentialsRuntime ?? LOCAL_RUNTIME);
      if ('problem' in found) throw new StepError(found.problem, 'user');
      if (!found.oauth) return found;
      const { oauth, ...rest } = found;
      try {
        return { ...rest, credentials: { access_token: await apiTokens.bearer(tenant, oauth) }, credentialsType: 'bearer' };
      } catch (err) {
        const e = toAppError(err);
        throw new StepError(e.message, e.kind === 'transient' ? 'transient' : 'user');
      }
    },
    runtimeProblem: async (tenant, runtime) => {
      // `local` is the embedded runtime, the default: always there.
      if (runtime === LOCAL_RUNTIME) return undefined;
      return late.director ? late.director.service.runtimeProblem(tenant, runtime) : undefined;
    },
  });
  modules.push(components);
  // An aggregator instance: gRPC workers attach here; flow steps on the `workers` runtime run on them.
  const router = createRouterModule({ config, db, bus, logger: logger.child({ module: 'router' }), metrics });
  modules.push(router);
  const orchestrator = await createOrchestratorModule({
    workers: roles.has('router') ? router.runtime : undefined,
    config,
    db,
    bus,
    logger: logger.child({ module: 'orchestrator' }),
    components: components.service,
    resolveCredentials: (tenant, secretId, use) => secrets.service.resolveForStep(tenant, secretId, use),
    limits: {
      messagesPerExecution: (tenant) => limits.service.forTenant(tenant).messagesPerExecution,
      concurrentExecutions: (tenant) => limits.service.forTenant(tenant).concurrentExecutions,
    },
  });
  modules.push(orchestrator);
  // Event triggers are checked against the Director (late.director), wired below.
  const flows = await createFlowsModule({
    db,
    bus,
    logger: logger.child({ module: 'flows' }),
    catalog: components.catalog,
    secrets: secrets.service,
    eventTriggerProblem: async (tenant, trigger) => {
      if (!late.director) return 'the Director is not available';
      const found = await late.director.service.findEventDefinition(tenant, trigger.application, trigger.event);
      return 'problem' in found ? found.problem : undefined;
    },
  });
  modules.push(flows);
  const webhooks = await createWebhooksModule({
    config,
    db,
    bus,
    logger: logger.child({ module: 'webhooks' }),
    authenticate: iam.authenticator,
    replyWaiter: orchestrator.replyWaiter,
    handoff: orchestrator.handoff,
    admission: limits.ingress,
    secrets: secrets.service,
  });
  modules.push(webhooks);
  const scheduler = await createSchedulerModule({ db, bus, logger: logger.child({ module: 'scheduler' }) });
  modules.push(scheduler);
  // The connector's service (tokens, CA, certificates) is the Director's pairing port.
  const connectorCore = await createConnectorService({ config, db, bus, logger: logger.child({ module: 'connector' }) });
  // Workers may attach with a client certificate of the hub's CA (gRPC with TLS).
  router.trustCertificates(connectorCore.service);
  const director = await createDirectorModule({
    config,
    db,
    bus,
    logger: logger.child({ module: 'director' }),
    authenticate: iam.authenticator,
    iam: iam.service,
    secrets: secrets.service,
    outbound,
    pairing: connectorCore.service,
  });
  modules.push(director);
  late.director = director;
  const connector = createConnectorModule({ config, db, bus, logger: logger.child({ module: 'connector' }), ...connectorCore, director });
  modules.push(connector);

  const app = await createHttpServer({
    logger,
    metrics,
    authenticate: () => iam.authenticator,
    onDenied: (denied) => iam.auditDenied(denied),
    trustProxy: config.http.trustProxy,
  });
  await registerHealthRoutes(app, metrics, [
    { name: 'database', check: () => db.ping() },
    { name: 'bus', check: () => bus.ping() },
  ]);
  // Step queues are summed into one `step` series: their names hold tenants' flow ids.
  addCollectedGauge(metrics, 'plexus_queue_depth', 'Unacked jobs per queue (all step queues as queue="step")', ['queue'], async () =>
    [...aggregateQueueStats(await bus.allStats())].map(([queue, s]) => ({ labels: { queue }, value: s.depth })),
  );
  addCollectedGauge(metrics, 'plexus_queue_oldest_age_seconds', 'Age of the oldest unacked job per queue (all step queues as queue="step")', ['queue'], async () =>
    [...aggregateQueueStats(await bus.allStats())].map(([queue, s]) => ({ labels: { queue }, value: s.oldestAgeMs / 1000 })),
  );

  const active = modules.filter((m) => roles.has(m.role));
  if (roles.has('gateway')) {
    for (const m of active) {
      if (m.routes) await registerModuleRoutes(app, m.name, (scope) => m.routes!(scope));
    }
    await registerCockpitRoutes(app, { root: COCKPIT_DIR });
  }
  await app.ready();
  // HTTP closes first on stop (registered last): no new requests while modules drain.
  for (const m of active) {
    await m.start?.();
    if (m.stop) lifecycle.onStop(m.name, () => m.stop!());
  }
  // Every process caches token introspections; one without the iam role still hears revocations.
  if (!roles.has('iam')) lifecycle.onStop('iam cache', await iam.watchRevocations());
  lifecycle.onStop('http', () => app.close());

  return {
    config,
    logger,
    db,
    bus,
    app,
    iam,
    limits,
    lifecycle,
    connector,
    mtlsUrl: () => connectorCore.urls.mtlsUrl,
    grpcPort: () => (roles.has('router') ? router.port() : 0),
    async listen() {
      if (!roles.has('gateway')) return '';
      await app.listen({ host: config.http.host, port: config.http.port });
      const addr = app.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.http.port;
      const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
      if (!config.connector.publicUrl) connectorCore.urls.publicUrl = `http://${host}:${port}`;
      if (roles.has('connector')) await connector.listenMtls();
      // OIH components on this host reach the platform services here (a wildcard bind is reachable on loopback).
      components.setApiBase(`http://${['0.0.0.0', '::'].includes(config.http.host) ? '127.0.0.1' : host}:${port}`);
      return `http://${host}:${port}`;
    },
    stop: () => lifecycle.stop(),
  };
}
