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
import { createHttpRequestComponent } from './builtins/http-request.js';
import { logComponent } from './builtins/log.js';
import { splitComponent } from './builtins/split.js';
import { transformComponent } from './builtins/transform.js';
import { webhookReplyComponent } from './builtins/webhook-reply.js';
import type { Component } from './components.descriptor.js';
import { componentsRoutes } from './components.routes.js';
import { SandboxPool } from './components.sandbox.js';
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
}

/** The built-in components, ready to register. */
export function createBuiltinComponents(opts: { outbound: Outbound; sandbox: SandboxPool }): Component[] {
  return [
    createHttpRequestComponent({ outbound: opts.outbound }),
    transformComponent,
    filterComponent,
    createCodeComponent({ pool: opts.sandbox, outbound: opts.outbound }),
    splitComponent,
    delayComponent,
    logComponent,
    webhookReplyComponent,
  ];
}

export async function createComponentsModule(deps: ComponentsDeps): Promise<ComponentsModule> {
  const { config, db, bus, logger, outbound } = deps;
  const sandbox = new SandboxPool({ size: config.components.codeWorkers, memoryMb: config.components.codeMemoryMb });
  const service = new ComponentsService(db, logger, createBuiltinComponents({ outbound, sandbox }), {
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
      await sandbox.close();
    },
  };
}
