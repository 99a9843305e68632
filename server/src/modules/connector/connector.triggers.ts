/**
 * Flows started by application events (`trigger: {type: "event", application, event}`): the
 * started event flows are recorded from the flow lifecycle (group `connector-event-flows`:
 * `flow.starting` records, `flow.started` opens, `flow.stopping` / `flow.failed` forget), and
 * each event published as `app.<applicationId>.<type>` (group `connector-event-triggers`) starts
 * one execution of every open flow of its tenant, application and type: the CloudEvent's `data`
 * is the message body, its attributes the headers (`ce-<name>`). An execution is claimed per
 * (flow, source, id) in the transaction that enqueues its first step, so a redelivered event
 * starts nothing twice (24 h, like webhook request keys).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { Flow, FLOW_EVENTS, startNodeOf, stepQueueName, type FlowMessage, type StepJob } from '../../contracts/flows.js';
import type { Bus, BusEvent, Consumer } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { DirectorService } from '../director/index.js';
import type { ApplicationEvent } from './connector.events.js';
import * as repo from './connector.repo.js';

export const EVENT_FLOWS_GROUP = 'connector-event-flows';
export const EVENT_TRIGGERS_GROUP = 'connector-event-triggers';
/** Live event (every process): the open event flows changed; what a process read of them is stale. */
export const EVENT_FLOWS_CHANGED = 'connector.event-flows.changed';
/** Open event flows read are kept this long at most, even if a change's live event were lost. */
const EVENT_FLOWS_CACHE_MS = 2_000;
const CHANGES = new Set<string>([FLOW_EVENTS.starting, FLOW_EVENTS.started, FLOW_EVENTS.failed, FLOW_EVENTS.stopping]);

const IdPayload = z.object({ id: z.string().min(1) });

/** The first message of an execution started by an event. */
export function eventMessage(e: ApplicationEvent): FlowMessage {
  const { data, data_base64: _b64, ...attributes } = e.event;
  return {
    id: randomUUID(),
    attachments: {},
    body: data ?? {},
    headers: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [`ce-${k}`, v])),
    metadata: { source: 'event', applicationId: e.applicationId, runtimeId: e.runtimeId, eventDefinitionId: e.eventDefinitionId, receivedAt: e.receivedAt },
  };
}

export async function startEventTriggers(deps: { db: Db; bus: Bus; logger: Logger; director: DirectorService }): Promise<Consumer[]> {
  /**
   * The open flows per tenant, application and event type, read once and kept (a query per event
   * was a quarter of an event's cost): forgotten on the live event each lifecycle change sends,
   * and after EVENT_FLOWS_CACHE_MS. A read that began before a change is not kept (`generation`).
   */
  const open = new Map<string, { until: number; flows: Promise<repo.EventFlowRow[]> }>();
  let generation = 0;
  const forget = (): void => {
    generation++;
    open.clear();
  };
  const unlisten = await deps.bus.live.subscribe(EVENT_FLOWS_CHANGED, forget);
  const changed = async (): Promise<void> => {
    forget();
    await deps.bus.live.publish(EVENT_FLOWS_CHANGED, {}).catch((err: unknown) => deps.logger.warn({ err }, 'connector: could not announce a change of event flows'));
  };
  const openFlows = (tenant: string, applicationId: string, type: string): Promise<repo.EventFlowRow[]> => {
    const key = `${tenant}\n${applicationId}\n${type}`;
    const now = Date.now();
    const hit = open.get(key);
    if (hit && hit.until > now) return hit.flows;
    const readIn = generation;
    const flows = repo.eventFlowsFor(deps.db, tenant, applicationId, type);
    const entry = { until: now + EVENT_FLOWS_CACHE_MS, flows };
    if (open.size > 10_000) open.clear();
    open.set(key, entry);
    flows.then(
      () => {
        if (generation !== readIn && open.get(key) === entry) open.delete(key);
      },
      () => open.get(key) === entry && open.delete(key),
    );
    return flows;
  };

  const lifecycle = await deps.bus.subscribe<unknown>('flow.*', EVENT_FLOWS_GROUP, async (event: BusEvent<unknown>) => {
    try {
      await onLifecycle(event);
    } finally {
      if (CHANGES.has(event.headers.name)) await changed();
    }
  });
  async function onLifecycle(event: BusEvent<unknown>): Promise<void> {
    switch (event.headers.name) {
      case FLOW_EVENTS.starting: {
        const flow = Flow.safeParse(event.payload);
        if (!flow.success) return;
        const trigger = flow.data.trigger;
        if (!trigger) return void (await repo.deleteEventFlow(deps.db, flow.data.id));
        const found = await deps.director.findEventDefinition(flow.data.tenant, trigger.application, trigger.event);
        if ('problem' in found) {
          // Checked when the flow was saved; the application may have gone since.
          deps.logger.warn({ flowId: flow.data.id, problem: found.problem }, 'connector: an event-triggered flow names what no longer exists; it will not start from events');
          return void (await repo.deleteEventFlow(deps.db, flow.data.id));
        }
        await repo.upsertEventFlow(deps.db, {
          flow_id: flow.data.id,
          tenant_id: flow.data.tenant,
          application_id: found.applicationId,
          event: trigger.event,
          start_node: startNodeOf(flow.data.graph).id,
          flow_version: flow.data.version,
        });
        return;
      }
      case FLOW_EVENTS.started: {
        const p = IdPayload.safeParse(event.payload);
        if (p.success) await repo.acceptEventFlow(deps.db, p.data.id);
        return;
      }
      case FLOW_EVENTS.failed:
      case FLOW_EVENTS.stopping: {
        const p = IdPayload.safeParse(event.payload);
        if (p.success) await repo.deleteEventFlow(deps.db, p.data.id);
        return;
      }
      default:
        return;
    }
  }

  const events = await deps.bus.subscribe<ApplicationEvent>('app.>', EVENT_TRIGGERS_GROUP, async (event) => {
    const e = event.payload;
    const flows = await openFlows(e.tenant, e.applicationId, e.event.type);
    for (const f of flows) {
      const executionId = randomUUID();
      await deps.db.transaction(async (tx) => {
        if (!(await repo.claimEventExecution(tx, f.flow_id, e.event.source, e.event.id, executionId))) return;
        const job: StepJob = { executionId, flowId: f.flow_id, tenant: f.tenant_id, nodeId: f.start_node, message: eventMessage(e), trigger: 'event', sequence: 0, flowVersion: f.flow_version };
        await deps.bus.enqueue(stepQueueName(f.flow_id, f.start_node), job, { tx });
      });
    }
  });
  return [lifecycle, events, { stop: async () => unlisten() }];
}
