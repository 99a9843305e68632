/**
 * The flow repository's side of the lifecycle (seed 002 "Starting a flow"). It publishes
 * `flow.starting` / `flow.stopping` (payload: the whole flow) and listens, in its own durable
 * group, for the orchestrator's answers: `flow.started` → active, `flow.stopped` → inactive,
 * `flow.failed` → stopping (with the reason shown on the flow), then inactive. Each status change
 * is also told to watchers as the live event `flow.changed {id, tenant, status}`.
 */
import { z } from 'zod';
import { FLOW_EVENTS, type FlowStatus } from '../../contracts/flows.js';
import type { Bus, BusEvent, Consumer } from '../../platform/bus/index.js';
import type { Logger } from '../../platform/logger.js';
import type { FlowsService } from './flows.service.js';

/** Audit actions of the flows module (`audit.flows.<action>`). */
export type FlowsAuditAction = 'flow.created' | 'flow.updated' | 'flow.deleted' | 'flow.start' | 'flow.stop' | 'flow.failed';

/** Live event (bus.live, not stored): a flow's status changed. */
export const FLOW_CHANGED = 'flow.changed';
export interface FlowChanged {
  id: string;
  tenant: string;
  status: FlowStatus;
}

/** The durable group the flow repository consumes lifecycle events in. */
export const FLOWS_GROUP = 'flows';

const StartedPayload = z.object({ id: z.string().min(1) });
const FailedPayload = z.object({ id: z.string().min(1), reason: z.string().default('no reason given') });

/**
 * One subscription to `flow.*` keeps a flow's events in the order they were published; the
 * ones this module published itself are skipped.
 */
export async function subscribeToLifecycle(bus: Bus, service: FlowsService, logger: Logger): Promise<Consumer> {
  return bus.subscribe<unknown>('flow.*', FLOWS_GROUP, async (event: BusEvent<unknown>) => {
    const name = event.headers.name;
    if (name === FLOW_EVENTS.started || name === FLOW_EVENTS.stopped) {
      const p = StartedPayload.safeParse(event.payload);
      if (!p.success) return void logger.warn({ event: name }, 'flows: ignoring a lifecycle event without a flow id');
      if (name === FLOW_EVENTS.started) await service.markStarted(p.data.id);
      else await service.markStopped(p.data.id);
    } else if (name === FLOW_EVENTS.failed) {
      const p = FailedPayload.safeParse(event.payload);
      if (!p.success) return void logger.warn({ event: name }, 'flows: ignoring flow.failed without a flow id');
      await service.markFailed(p.data.id, p.data.reason);
    }
  });
}
