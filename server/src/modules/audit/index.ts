/** Audit: stores every `audit.*` event append-only and serves `GET /api/v1/audit`. */
import type { Bus, Consumer } from '../../platform/bus/bus.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { AUDIT_GROUP, AUDIT_PATTERN } from './audit.events.js';
import { auditRoutes } from './audit.routes.js';
import { AUDIT_BATCH, AuditService } from './audit.service.js';

export { AuditService, type AuditScope } from './audit.service.js';
export { ANONYMISED_NAME } from './audit.repo.js';
export { AUDIT_PATTERN, AUDIT_GROUP } from './audit.events.js';
export type { AuditEntry } from './audit.schemas.js';

export interface AuditModule extends PlexusModule {
  service: AuditService;
}

export async function createAuditModule(deps: { db: Db; bus: Bus; logger: Logger }): Promise<AuditModule> {
  const service = new AuditService(deps.db, deps.logger);
  const store = (event: unknown): Promise<void> => service.store(event);
  // Register the durable group on every process, audit role or not: events published from the
  // very first boot on then wait for an audit process instead of finding no subscriber.
  await (await deps.bus.subscribe(AUDIT_PATTERN, AUDIT_GROUP, store)).stop();
  let consumer: Consumer | undefined;
  return {
    name: 'audit',
    role: 'audit',
    service,
    routes: auditRoutes(service),
    async start() {
      // Many handlers at once, each waiting for its event's batch to commit before the bus acks
      // it: a batch can only form from events delivered together. Claimed a batch at a time;
      // twice as many held, so the next batch gathers while one commits.
      consumer = await deps.bus.subscribe(AUDIT_PATTERN, AUDIT_GROUP, store, { concurrency: 2 * AUDIT_BATCH, batchSize: AUDIT_BATCH });
    },
    async stop() {
      await consumer?.stop();
    },
  };
}
