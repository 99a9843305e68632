/**
 * The webhooks side of the lifecycle (seed 002 "Webhooks"), in its own durable group:
 * `flow.starting` records a flow without cron (not accepting yet), `flow.started` opens it,
 * `flow.stopping` closes it and deletes the record. One `flow.*` subscription keeps a flow's
 * events in order.
 */
import { z } from 'zod';
import { Flow, FLOW_EVENTS } from '../../contracts/flows.js';
import type { Bus, BusEvent, Consumer } from '../../platform/bus/index.js';
import type { Logger } from '../../platform/logger.js';
import type { WebhooksService } from './webhooks.service.js';

export const WEBHOOKS_GROUP = 'webhooks';

/** Audit actions of the webhooks module (`audit.webhooks.<action>`). */
export type WebhooksAuditAction = 'hook.denied';

const IdPayload = z.object({ id: z.string().min(1) });

export async function subscribeToLifecycle(bus: Bus, service: WebhooksService, logger: Logger): Promise<Consumer> {
  return bus.subscribe<unknown>('flow.*', WEBHOOKS_GROUP, async (event: BusEvent<unknown>) => {
    switch (event.headers.name) {
      case FLOW_EVENTS.starting: {
        const flow = Flow.safeParse(event.payload);
        if (!flow.success) return void logger.warn({ issues: flow.error.issues.slice(0, 3) }, 'webhooks: ignoring flow.starting without a readable flow');
        await service.recordFlow(flow.data);
        return;
      }
      case FLOW_EVENTS.started: {
        const p = IdPayload.safeParse(event.payload);
        if (p.success) await service.acceptFlow(p.data.id);
        return;
      }
      // A flow that could not start takes no calls; callers waiting for it to start learn at once.
      case FLOW_EVENTS.failed:
      case FLOW_EVENTS.stopping: {
        const p = IdPayload.safeParse(event.payload);
        if (p.success) await service.forgetFlow(p.data.id);
        return;
      }
      default:
        return;
    }
  });
}
