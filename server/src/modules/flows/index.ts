/** Flow repository: flows, their versions and their lifecycle (see README.md). */
import type { ComponentCatalog } from '../../contracts/flows.js';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus, Consumer } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import { EventStreams } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { FLOWS_GROUP, subscribeToLifecycle } from './flows.events.js';
import { flowsRoutes } from './flows.routes.js';
import { FlowsService, type FlowSecrets } from './flows.service.js';

export { FlowsService, toFlow, type FlowSecrets } from './flows.service.js';
export { FLOWS_GROUP } from './flows.events.js';
export type { FlowsAuditAction } from './flows.events.js';

export interface FlowsModule extends PlexusModule {
  service: FlowsService;
}

import type { EventTriggerCheck } from './flows.validation.js';

export interface FlowsModuleDeps {
  db: Db;
  bus: Bus;
  logger: Logger;
  /** The component registry graphs are checked against (the components module). */
  catalog: ComponentCatalog;
  /** Where webhook signing secrets are kept (the secrets module's service). */
  secrets: FlowSecrets;
  /** Checks a flow's event trigger against the tenant's applications (the Director); without it event triggers are refused. */
  eventTriggerProblem?: EventTriggerCheck;
}

export async function createFlowsModule(deps: FlowsModuleDeps): Promise<FlowsModule> {
  const audit = createAuditPublisher(deps.bus, 'flows', deps.logger);
  const service = new FlowsService({ db: deps.db, bus: deps.bus, catalog: deps.catalog, secrets: deps.secrets, audit, logger: deps.logger, eventTriggerProblem: deps.eventTriggerProblem });
  let consumer: Consumer | undefined;
  return {
    name: 'flows',
    role: 'flows',
    service,
    routes: flowsRoutes(service, new EventStreams(deps.bus.live)),
    async start() {
      // Before anything runs: signing secrets still in clear move to the secrets module. A
      // failure is logged, not fatal: webhooks still verify with a clear secret until moved.
      await service
        .moveClearSigningSecrets()
        .then((n) => n && deps.logger.info({ flows: n }, 'flows: webhook signing secrets moved to the secrets module'))
        .catch((err: unknown) => deps.logger.error({ err }, 'flows: could not move webhook signing secrets to the secrets module'));
      consumer = await subscribeToLifecycle(deps.bus, service, deps.logger);
      deps.logger.debug({ group: FLOWS_GROUP }, 'flows: listening for lifecycle answers');
    },
    async stop() {
      await consumer?.stop();
    },
  };
}
