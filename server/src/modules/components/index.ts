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

export interface ComponentsModule extends PlexusModule {
  service: ComponentsService;
  /** What the flows module validates graphs against. */
  catalog: ComponentCatalog;
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
  /** http-request `fields.api`: an application's API and its credentials for the flow's runtime (the Director). */
  resolveApi?: ApiResolver;
}

/** Why the code component is off when the operator says so. */
const CODE_STEPS_OFF = 'code steps are disabled (PLEXUS_CODE_STEPS=off)';

/** The built-in components, ready to register. `sandbox` undefined: code steps are switched off. */
export function createBuiltinComponents(opts: { outbound: Outbound; sandbox: CodeSandbox | undefined; resolveApi?: ApiResolver | undefined }): Component[] {
  const code = createCodeComponent({
    sandbox: opts.sandbox ?? { run: () => Promise.reject(new Error(CODE_STEPS_OFF)) },
    outbound: opts.outbound,
  });
  return [
    createHttpRequestComponent({ outbound: opts.outbound, resolveApi: opts.resolveApi }),
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
  const service = new ComponentsService(db, logger, createBuiltinComponents({ outbound, sandbox, resolveApi: deps.resolveApi }), {
    allowedRoots: config.components.paths,
  });
  const audit = createAuditPublisher(bus, 'components', logger);
  return {
    name: 'components',
    role: 'orchestrator',
    service,
    catalog: service,
    routes: componentsRoutes(service, audit),
    async stop() {
      await sandbox?.close();
    },
  };
}
