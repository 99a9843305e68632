/**
 * Live events: what is happening now, for whoever is watching now (the cockpit's server-sent
 * events). Unlike `Bus.publish`, nothing is stored and nobody waits for a listener: an event
 * reaches the listeners subscribed when it is published, in every process, at most once. Work
 * never travels this way; a listener that misses one reads the current state again.
 *
 * One implementation per transport, chosen by the bus adapter:
 * - NATS: core NATS subjects `<prefix>.live.<name>` (no JetStream stream captures them).
 * - SQL on PostgreSQL: NOTIFY on the schema's `plexus_live_<schema>` channel, so every process
 *   sharing the database hears it.
 * - SQL on embedded PGlite: in memory. Only this process can open the embedded database, so
 *   there is nobody else to tell, and a NOTIFY would cost a statement on the engine's thread.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Db } from '../db/db.js';
import type { Logger } from '../logger.js';
import { assertName, assertPattern, matchesPattern } from './pattern.js';

export interface LiveEvent<P = unknown> {
  name: string;
  payload: P;
}

export type LiveHandler<P = unknown> = (event: LiveEvent<P>) => void;

export interface LiveEvents {
  /** Tells the current listeners of every process; resolves once handed to the transport. */
  publish<P>(name: string, payload: P): Promise<void>;
  /** Listens for events matching `pattern` (`*` one token, `>` the rest); resolves to its stop. */
  subscribe<P = unknown>(pattern: string, handler: LiveHandler<P>): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** PostgreSQL NOTIFY payloads are capped at 8000 bytes; larger live events are refused. */
export const MAX_LIVE_EVENT_BYTES = 7_900;

/** Listeners of this process, by pattern; every transport hands what it hears to these. */
class LocalListeners {
  private readonly listeners = new Set<{ pattern: string; handler: LiveHandler }>();

  constructor(private readonly logger: Logger) {}

  add(pattern: string, handler: LiveHandler): () => void {
    const entry = { pattern, handler };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  get size(): number {
    return this.listeners.size;
  }

  deliver(event: LiveEvent): void {
    for (const l of this.listeners) {
      if (!matchesPattern(l.pattern, event.name)) continue;
      try {
        l.handler(event);
      } catch (err) {
        // A listener's bug must not stop the others (or the transport) from hearing events.
        this.logger.warn({ err, event: event.name }, 'live event listener failed');
      }
    }
  }

  clear(): void {
    this.listeners.clear();
  }
}

function encode(name: string, payload: unknown): string {
  assertName(name, 'event name');
  const text = JSON.stringify({ name, payload });
  if (Buffer.byteLength(text) > MAX_LIVE_EVENT_BYTES) throw new Error(`live event ${name} is larger than ${MAX_LIVE_EVENT_BYTES} bytes; send less and let listeners read the rest`);
  return text;
}

function decode(text: string): LiveEvent | undefined {
  try {
    const e = JSON.parse(text) as LiveEvent;
    return typeof e.name === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}

/** In memory (embedded PGlite): this process is the only one. */
export function createMemoryLiveEvents(logger: Logger): LiveEvents {
  const local = new LocalListeners(logger);
  return {
    async publish(name, payload) {
      // Nobody listening (the usual case on the engine's hot path): nothing to encode.
      if (local.size === 0) return void assertName(name, 'event name');
      // A copy, as a transport would hand over; delivered after the caller's turn, never inside publish().
      const event = decode(encode(name, payload))!;
      queueMicrotask(() => local.deliver(event));
    },
    async subscribe(pattern, handler) {
      assertPattern(pattern);
      const remove = local.add(pattern, handler as LiveHandler);
      return async () => void remove();
    },
    async close() {
      local.clear();
    },
  };
}

/** NOTIFY / LISTEN on the schema's live channel (PostgreSQL): every process of the installation hears it. */
export function createNotifyLiveEvents(db: Db, channelOf: () => Promise<string>, logger: Logger): LiveEvents {
  const local = new LocalListeners(logger);
  let named: Promise<string> | undefined;
  const channel = (): Promise<string> => (named ??= channelOf());
  let listening: Promise<() => Promise<void>> | undefined;
  const listen = (): Promise<() => Promise<void>> => {
    listening ??= channel().then((ch) =>
      db.listen(ch, (text) => {
        const event = decode(text);
        if (event) local.deliver(event);
      }),
    );
    return listening;
  };
  return {
    async publish(name, payload) {
      await db.query('SELECT pg_notify($1, $2)', [await channel(), encode(name, payload)]);
    },
    async subscribe(pattern, handler) {
      assertPattern(pattern);
      await listen();
      const remove = local.add(pattern, handler as LiveHandler);
      return async () => void remove();
    },
    async close() {
      local.clear();
      const stop = await listening?.catch(() => undefined);
      listening = undefined;
      await stop?.();
    },
  };
}

/** Core NATS subjects: fire and forget, heard by every connected subscriber. */
export function createNatsLiveEvents(nc: () => NatsConnection, prefix: string, logger: Logger): LiveEvents {
  const local = new LocalListeners(logger);
  let sub: Subscription | undefined;
  const decoder = new TextDecoder();
  const listen = (): void => {
    if (sub) return;
    sub = nc().subscribe(`${prefix}.live.>`, {
      callback: (err: Error | null, msg: Msg) => {
        if (err) return logger.warn({ err }, 'live events: subscription failed');
        const event = decode(decoder.decode(msg.data));
        if (event) local.deliver(event);
      },
    });
  };
  return {
    async publish(name, payload) {
      nc().publish(`${prefix}.live.${name}`, encode(name, payload));
    },
    async subscribe(pattern, handler) {
      assertPattern(pattern);
      listen();
      // The server knows the subscription only after a round trip: flush, so an event published
      // right after subscribe() resolves is heard.
      await nc().flush();
      const remove = local.add(pattern, handler as LiveHandler);
      return async () => void remove();
    },
    async close() {
      local.clear();
      sub?.unsubscribe();
      sub = undefined;
    },
  };
}
