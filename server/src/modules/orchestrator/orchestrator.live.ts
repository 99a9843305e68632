/**
 * `GET /api/v1/executions/live`: server-sent events telling a watcher (the cockpit) which of its
 * tenant's executions changed, as the engine commits them. They come from the bus's live events
 * (`execution.changed`), so a change committed by any process reaches a watcher on any process;
 * nothing polls. An event names the execution, not its state: the watcher reads it again.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LiveEvents } from '../../platform/bus/index.js';
import { EXECUTIONS_CHANGED, type ExecutionsChanged } from './orchestrator.events.js';

/** A comment line this often keeps proxies and browsers from timing an idle stream out. */
const KEEPALIVE_MS = 15_000;
/** A watcher this far behind is cut off (it reconnects and reads the state again) rather than buffered without end. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export interface LiveFilter {
  flowId?: string | undefined;
  executionId?: string | undefined;
}

/** Open streams, ended when the process stops so the HTTP server can close. */
export class ExecutionStreams {
  private readonly open = new Set<() => void>();

  constructor(private readonly live: LiveEvents) {}

  async serve(req: FastifyRequest, reply: FastifyReply, filter: LiveFilter): Promise<void> {
    const tenant = req.principal.tenantId;
    const raw = reply.raw;
    let ended = false;
    // Set below; `end` may run before either exists.
    const held: { unsubscribe?: () => Promise<void>; keepalive?: NodeJS.Timeout } = {};
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearInterval(held.keepalive);
      this.open.delete(end);
      void held.unsubscribe?.();
      if (!raw.writableEnded) raw.end();
    };
    const send = (text: string): void => {
      if (ended) return;
      raw.write(text);
      if (raw.writableLength > MAX_BUFFERED_BYTES) end();
    };

    // Subscribed before the answer starts: whatever commits after the client sees `ready` is heard.
    held.unsubscribe = await this.live.subscribe<ExecutionsChanged>(EXECUTIONS_CHANGED, (event) => {
      for (const x of event.payload.executions) {
        if (x.tenant !== tenant) continue;
        if (filter.flowId !== undefined && x.flowId !== filter.flowId) continue;
        if (filter.executionId !== undefined && x.id !== filter.executionId) continue;
        send(`event: execution\ndata: ${JSON.stringify({ id: x.id, flowId: x.flowId })}\n\n`);
      }
    });
    reply.hijack();
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise hold events back in their buffer.
      'x-accel-buffering': 'no',
    });
    this.open.add(end);
    raw.on('close', end);
    req.raw.on('close', end);
    send('retry: 3000\nevent: ready\ndata: {}\n\n');
    held.keepalive = setInterval(() => send(': keepalive\n\n'), KEEPALIVE_MS);
    held.keepalive.unref();
  }

  /** Ends every open stream (process stopping). */
  closeAll(): void {
    for (const end of [...this.open]) end();
  }
}
