/** Scheduler: fires started flows that have a cron (see README.md). */
import type { Bus, Consumer } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { subscribeToLifecycle } from './scheduler.events.js';
import { SchedulerService, type SchedulerOptions } from './scheduler.service.js';

export { SchedulerService, type Firing, type SchedulerOptions } from './scheduler.service.js';
export { SCHEDULER_GROUP } from './scheduler.events.js';

export interface SchedulerModule extends PlexusModule {
  service: SchedulerService;
}

export interface SchedulerModuleDeps extends SchedulerOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
}

export async function createSchedulerModule(deps: SchedulerModuleDeps): Promise<SchedulerModule> {
  const { db, bus, logger, ...opts } = deps;
  const service = new SchedulerService(db, bus, logger, opts);
  let consumer: Consumer | undefined;
  return {
    name: 'scheduler',
    role: 'scheduler',
    service,
    async start() {
      consumer = await subscribeToLifecycle(bus, service, logger);
      await service.start();
    },
    async stop() {
      await service.stop();
      await consumer?.stop();
    },
  };
}
