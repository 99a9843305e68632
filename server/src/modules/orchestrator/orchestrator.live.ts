/**
 * `GET /api/v1/executions/live`: which of the caller's tenant's executions changed, as the engine
 * commits them. From the bus's live events (`execution.changed`), so a change committed by any
 * process reaches a watcher on any process; nothing polls. An event names the execution, not
 * its state: the watcher reads it again.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EventStreams, SseMessage } from '../../platform/http/index.js';
import { EXECUTIONS_CHANGED, type ExecutionsChanged } from './orchestrator.events.js';

export interface LiveFilter {
  flowId?: string | undefined;
  executionId?: string | undefined;
}

export function serveExecutionStream(streams: EventStreams, req: FastifyRequest, reply: FastifyReply, filter: LiveFilter): Promise<void> {
  const tenant = req.principal.tenantId;
  return streams.serve<ExecutionsChanged>(req, reply, EXECUTIONS_CHANGED, (event) => {
    const out: SseMessage[] = [];
    for (const x of event.payload.executions) {
      if (x.tenant !== tenant) continue;
      if (filter.flowId !== undefined && x.flowId !== filter.flowId) continue;
      if (filter.executionId !== undefined && x.id !== filter.executionId) continue;
      out.push({ event: 'execution', data: { id: x.id, flowId: x.flowId } });
    }
    return out;
  });
}
