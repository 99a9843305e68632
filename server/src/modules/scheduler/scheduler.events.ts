/**
 * The scheduler's side of the lifecycle (seed 002 "Scheduler"), in its own durable group:
 * `flow.starting` records a flow with cron (not scheduled yet), `flow.started` schedules it,
 * `flow.stopping` deletes it. One `flow.*` subscription keeps a flow's events in order.
 */
import { z } from 'zod';
import { Flow, FLOW_EVENTS } from '../../contracts/flows.js';
import type { Bus, BusEvent, Consumer } from '../../platform/bus/index.js';
import type { Logger } from '../../platform/logger.js';
import type { SchedulerService } from './scheduler.service.js';

export const SCHEDULER_GROUP = 'scheduler';

const IdPayload = z.object({ id: z.string().min(1) });

export async function subscribeToLifecycle(bus: Bus, service: SchedulerService, logger: Logger): Promise<Consumer> {
  return bus.subscribe<unknown>('flow.*', SCHEDULER_GROUP, async (event: BusEvent<unknown>) => {
    switch (event.headers.name) {
      case FLOW_EVENTS.starting: {
        const flow = Flow.safeParse(event.payload);
        if (!flow.success) return void logger.warn({ issues: flow.error.issues.slice(0, 3) }, 'scheduler: ignoring flow.starting without a readable flow');
        await service.recordFlow(flow.data);
        return;
      }
      case FLOW_EVENTS.started: {
        const p = IdPayload.safeParse(event.payload);
        if (p.success) await service.scheduleFlow(p.data.id);
        return;
      }
      // A flow that could not start is not scheduled (its flow.starting recorded it).
      case FLOW_EVENTS.failed:
      case FLOW_EVENTS.stopping: {
        const p = IdPayload.safeParse(event.payload);
        if (p.success) await service.unscheduleFlow(p.data.id);
        return;
      }
      default:
        return;
    }
  });
}
