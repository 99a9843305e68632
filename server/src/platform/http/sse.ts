/**
 * Server-sent event streams fed by the bus's live events: each open stream subscribes to a
 * pattern and turns what it hears into SSE messages for its caller (a module's route decides
 * which events a caller may see — its tenant's). Opens with `event: ready` once subscribed, so
 * a client that reads state after `ready` misses nothing. Streams end when the process stops.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LiveEvent, LiveEvents } from '../bus/index.js';
import { AppError } from '../errors.js';
import type { HttpApp } from './server.js';

/** A comment line this often keeps proxies and browsers from timing an idle stream out. */
const KEEPALIVE_MS = 15_000;
/** A client this far behind is cut off (it reconnects and reads the state again) rather than buffered without end. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

export interface SseMessage {
  event: string;
  data: unknown;
}

export class EventStreams {
  private readonly open = new Set<() => void>();

  constructor(private readonly live: LiveEvents) {}

  /** Ends this module's open streams before the HTTP server closes (they would hold it open). */
  endOnClose(app: HttpApp): void {
    app.addHook('preClose', async () => {
      for (const end of [...this.open]) end();
    });
  }

  async serve<P>(req: FastifyRequest, reply: FastifyReply, pattern: string, toMessages: (event: LiveEvent<P>) => SseMessage[]): Promise<void> {
    // A stream never ends by itself: only a client that asked for one gets it (not a plain GET
    // that would wait for the end of an answer that has none).
    if (!req.headers.accept?.includes('text/event-stream')) {
      throw new AppError('NOT_ACCEPTABLE', `${req.routeOptions.url ?? 'this route'} streams server-sent events; ask for them with Accept: text/event-stream`);
    }
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
    held.unsubscribe = await this.live.subscribe<P>(pattern, (event) => {
      for (const m of toMessages(event)) send(`event: ${m.event}\ndata: ${JSON.stringify(m.data)}\n\n`);
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
}
