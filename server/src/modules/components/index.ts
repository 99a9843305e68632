/**
 * Components: the registry of what a flow node can run — the built-ins and the tenants' own
 * components in the OIH / elastic.io format — with `/api/v1/components`. The flows module asks it
 * as a ComponentCatalog; the orchestrator gets runnable functions from it.
 */
import type { ComponentCatalog } from '../../contracts/flows.js';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { Outbound } from '../../platform/outbound/index.js';
import type { PlexusModule } from '../../platform/module.js';
import { createCodeComponent } from './builtins/code.js';
import { delayComponent } from './builtins/delay.js';
import { filterComponent } from './builtins/filter.js';
import { createHttpRequestComponent, type ApiResolver } from './builtins/http-request.js';
export type { ApiReference, ApiResolver, ResolvedApi } from './builtins/http-request.js';
import { logComponent } from './builtins/log.js';
import { splitComponent } from './builtins/split.js';
import { transformComponent } from './builtins/transform.js';
import { switchedOff } from './builtins/define.js';
import { webhookReplyComponent } from './builtins/webhook-reply.js';
import type { Component } from './components.descriptor.js';
import { componentsRoutes } from './components.routes.js';
import { AppError } from '../../platform/errors.js';
import { SandboxPool, findIsolatedVm, type CodeSandbox } from './components.sandbox.js';
import { createRequire } from 'node:module';
import { AllowList, refusalOf } from '../../platform/outbound/index.js';
import { OihPool, type OihRuntime } from './components.oih.js';
import { OihPlatform, type OihSecrets } from './components.oih-platform.js';
import { ComponentsService } from './components.service.js';

export { ComponentsService, type ComponentView, type RegisterSource } from './components.service.js';
export {
  StepError,
  classifyStepError,
  deriveMessage,
  type Component,
  type ComponentDescriptor,
  type ComponentFunction,
  type EmittedMessage,
  type PreparedStep,
  type StepContext,
  type StepResult,
} from './components.descriptor.js';
export { compileExpression, isTruthy, type CompiledExpression } from './components.expressions.js';
// For `plexus worker --component <dir>` (worker-sdk): OIH components run out of process.
export { readOihComponent, oihComponent, installOihDependencies } from './components.oih.js';

export interface ComponentsModule extends PlexusModule {
  service: ComponentsService;
  /** What the flows module validates graphs against. */
  catalog: ComponentCatalog;
  /** The hub's own address, once it listens: where OIH components reach its platform services (unless PLEXUS_COMPONENT_API_URL says). */
  setApiBase(url: string): void;
  /** The processes OIH components run in. */
  oihPool: OihPool;
}

export interface ComponentsDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  /** Every call out of the hub a step makes goes through it. */
  outbound: Outbound;
  /** Code-step sandbox processes a tenant may hold at once (the limits module's); default: PLEXUS_LIMITS_CODE_SLOTS for all. */
  codeSlotsFor?: (tenant: string) => number;
  /** OIH components' secrets lookup, `updateKeys` and editor calls with a credential (the secrets module). */
  secrets?: OihSecrets;
  /** http-request `fields.api`: an application's API and its credentials for the flow's runtime (the Director). */
  resolveApi?: ApiResolver;
  /** http-request `api.credentialsRuntime` at save: why the tenant has no such Director runtime. */
  runtimeProblem?: (tenant: string, runtime: string) => Promise<string | undefined>;
}

/** Where packages registered by name are installed: the runners may read them. */
function packageRoots(): string[] {
  return createRequire(import.meta.url).resolve.paths('x') ?? [];
}

/**
 * The operator's outbound policy, asked for every connection an OIH component opens, plus the
 * hub's own platform services (the address and port components are told to use).
 */
function oihAddressCheck(config: Config, platform: OihPlatform): (tenant: string, host: string, address: string, port: number) => string | undefined {
  const allow = new AllowList(config.outbound.allowedHosts);
  return (_tenant, host, address, port) => {
    const api = platform.apiTarget();
    if (api && port === api.port && (host === api.hostname || address === api.hostname)) return undefined;
    if (config.outbound.allowPrivateNetwork) return undefined;
    return refusalOf(allow, host, address);
  };
}

/** Why the code component is off when the operator says so. */
const CODE_STEPS_OFF = 'code steps are disabled (PLEXUS_CODE_STEPS=off)';

/** The built-in components, ready to register. `sandbox` undefined: code steps are switched off. */
export function createBuiltinComponents(opts: {
  outbound: Outbound;
  sandbox: CodeSandbox | undefined;
  resolveApi?: ApiResolver | undefined;
  runtimeProblem?: ((tenant: string, runtime: string) => Promise<string | undefined>) | undefined;
}): Component[] {
  const code = createCodeComponent({
    sandbox: opts.sandbox ?? { run: () => Promise.reject(new Error(CODE_STEPS_OFF)) },
    outbound: opts.outbound,
  });
  return [
    createHttpRequestComponent({ outbound: opts.outbound, resolveApi: opts.resolveApi, runtimeProblem: opts.runtimeProblem }),
    transformComponent,
    filterComponent,
    opts.sandbox ? code : switchedOff(code, CODE_STEPS_OFF),
    splitComponent,
    delayComponent,
    logComponent,
    webhookReplyComponent,
  ];
}

/** The code-step sandbox, when code steps are on; refuses to start without its native addon. */
function createSandbox(config: Config, logger: Logger, slotsFor: (tenant: string) => number): SandboxPool | undefined {
  const c = config.components;
  if (!c.codeSteps) return undefined;
  if (!findIsolatedVm().isBuilt) {
    throw new AppError(
      'CONFIG_INVALID',
      'code steps need the isolated-vm addon, which is not built: run `npm rebuild` (or `npm ci`) with Node.js headers available (npm_config_nodedir), or set PLEXUS_CODE_STEPS=off',
      'user',
    );
  }
  return new SandboxPool({
    size: c.codeWorkers,
    memoryMb: c.codeMemoryMb,
    cpuTimeMs: c.codeCpuTimeMs,
    slotsFor,
    logger: logger.child({ module: 'components', part: 'sandbox' }),
  });
}

export async function createComponentsModule(deps: ComponentsDeps): Promise<ComponentsModule> {
  const { config, db, bus, logger, outbound } = deps;
  const sandbox = createSandbox(config, logger, deps.codeSlotsFor ?? (() => config.limits.defaults.codeSlots));
  const platform = new OihPlatform({
    db,
    logger: logger.child({ part: 'oih-platform' }),
    secrets: deps.secrets,
    signingKey: config.secrets.key,
    apiBase: config.oih.apiUrl,
    objectMaxBytes: config.oih.objectMaxBytes,
    tenantQuotaBytes: config.oih.objectStoreBytes,
  });
  const oihPool = new OihPool({
    size: config.oih.runners,
    perTenant: config.oih.runnersPerTenant,
    rssLimitMb: config.oih.runnerMemoryMb,
    readRoots: () => [...config.components.paths, ...packageRoots()],
    checkAddress: oihAddressCheck(config, platform),
    logger: logger.child({ module: 'components', part: 'oih-pool' }),
  });
  const oihRuntime: OihRuntime = {
    pool: oihPool,
    services: (scope) => platform.services(scope),
    updateKeys: (scope, keys) => platform.updateKeys(scope, keys),
    startupData: (scope, node, run) => platform.startupData(scope, node, run),
  };
  const secrets = deps.secrets;
  const service = new ComponentsService(db, logger, createBuiltinComponents({ outbound, sandbox, resolveApi: deps.resolveApi, runtimeProblem: deps.runtimeProblem }), {
    allowedRoots: config.components.paths,
    oihRuntime,
    ...(secrets ? { resolveCredential: (tenant: string, id: string) => secrets.resolveForStep(tenant, id, {}) } : {}),
  });
  const audit = createAuditPublisher(bus, 'components', logger);
  return {
    name: 'components',
    role: 'orchestrator',
    service,
    catalog: service,
    oihPool,
    setApiBase: (url) => platform.setApiBase(url),
    routes: async (app) => {
      await componentsRoutes(service, audit)(app);
      await platform.routes(app);
    },
    async start() {
      // OIH startup / shutdown run with the flow's start and stop (the orchestrator calls
      // ComponentsService.startFlow / stopFlow): nothing to consume here.
    },
    async stop() {
      await sandbox?.close();
      await oihPool.close();
    },
  };
}
