/** The bus: pick the adapter from configuration. See README.md beside this file. */
import type { Db } from '../db/db.js';
import type { Logger } from '../logger.js';
import type { Bus } from './bus.js';
import { createSqlBus } from './sql.bus.js';

export type {
  Bus,
  BusEvent,
  ClaimOptions,
  ConsumeOptions,
  Consumer,
  DeadLetter,
  EnqueueOptions,
  EventHandler,
  EventHeaders,
  Job,
  JobHandler,
  NackOptions,
  QueueStats,
} from './bus.js';
export { RetryLater } from './bus.js';
export type { LiveEvent, LiveEvents, LiveHandler } from './live.js';
export { MAX_LIVE_EVENT_BYTES } from './live.js';
export { assertName, assertPattern, matchesPattern } from './pattern.js';

export interface CreateBusOptions {
  /** The application database: the SQL adapter's queues; the NATS adapter's outbox and dead letters. */
  db: Db;
  /** NATS JetStream when set (`config.bus.natsUrl`); otherwise the SQL adapter. */
  natsUrl?: string | undefined;
  /** Written into every event's `headers.serviceName`, and the NATS connection name. */
  serviceName: string;
  logger: Logger;
  maxAttempts: number;
  leaseMs: number;
  /** Fallback poll interval of idle consumers (SQL) and of the outbox relay (NATS). Default 1 s. */
  pollMs?: number;
  /** How long `close()` waits for running handlers. Default 10 s. */
  drainTimeoutMs?: number;
  /** NATS stream/subject prefix (tests isolate with a random one). Default PLEXUS. */
  prefix?: string;
}

export async function createBus(opts: CreateBusOptions): Promise<Bus> {
  const common = {
    db: opts.db,
    serviceName: opts.serviceName,
    logger: opts.logger,
    maxAttempts: opts.maxAttempts,
    leaseMs: opts.leaseMs,
    ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
    ...(opts.drainTimeoutMs !== undefined ? { drainTimeoutMs: opts.drainTimeoutMs } : {}),
  };
  if (opts.natsUrl) {
    // Loaded only when used: the NATS client libraries are ~15 MB of an embedded hub's memory.
    const { createNatsBus } = await import('./nats.bus.js');
    return createNatsBus({ ...common, natsUrl: opts.natsUrl, ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}) });
  }
  return createSqlBus(common);
}
