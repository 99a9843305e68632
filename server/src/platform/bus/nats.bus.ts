/**
 * The NATS JetStream bus.
 * - Work queues: stream `<prefix>_JOBS` (subjects `<prefix>.jobs.<queue>`, WorkQueue retention:
 *   a message is deleted when acked) with one durable pull consumer per queue. `ack_wait` is the
 *   lease, `+WPI` (working) the heartbeat, `max_deliver` unlimited so our own dead-lettering
 *   (the shared consume loop) always decides, never a silent server-side drop.
 * - Events: stream `<prefix>_EVENTS` (subjects `<prefix>.events.<name>`, Interest retention: an
 *   event is kept until every subscription it matched has acked it) with one durable consumer
 *   per (group, pattern) whose filter subject is the pattern.
 * - Outbox: `{tx}` writes go to `bus_outbox` in the caller's transaction and a relay publishes
 *   them after commit (woken by NOTIFY, polling as fallback). Delayed jobs wait there too:
 *   JetStream cannot schedule, and delivering early only to `nak` would inflate attempt counts.
 * - Dead letters: rows in `bus_dead_letters` (the same table as the SQL adapter), so they can be
 *   listed, counted and requeued by id; requeueing goes through the outbox, atomically.
 * - Large bodies: one over max_payload is stored in `bus_payloads` and the message names it
 *   (header Plexus-Payload); the consumer reads it back before the handler runs.
 * Publishing, pulling and acknowledging use the client's public JetStream API (`js.publish`,
 * `consumer.fetch`, `JsMsg.ack/nak/working`). What the client does not do is batching across
 * promise chains: publishes and acknowledgements made during one event-loop turn are handed to
 * it together (platform/batcher.ts), so they leave in one socket write; a pull asks for exactly
 * the consume loop's free handler slots.
 */
import { connect, headers as natsHeaders, nuid, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type Consumer as JsConsumer,
  type ConsumerInfo,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NextMsgRequest,
  type SeqMsgRequest,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Batcher } from '../batcher.js';
import type { Db, Queryable } from '../db/db.js';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Bus, BusEvent, ClaimOptions, ConsumeOptions, Consumer, DeadLetter, EnqueueOptions, EventHandler, Job, JobHandler, NackOptions, QueueStats } from './bus.js';
import { checkDelayMs, closedError, consumerSettings, encodePayload, eventEnvelope, startTrackedConsumer, type BusDefaults, type JobSource } from './consumer.js';
import * as outbox from './outbox.repo.js';
import { assertName, assertPattern, assertUserQueue, eventQueueName, isEventQueue, shortHash } from './pattern.js';
import * as repo from './sql.repo.js';
import { toDeadLetter } from './sql.bus.js';
import { createNatsLiveEvents, type LiveEvents } from './live.js';

export interface NatsBusOptions {
  db: Db;
  natsUrl: string;
  serviceName: string;
  logger: Logger;
  maxAttempts: number;
  leaseMs: number;
  /** Stream names `<prefix>_JOBS` / `<prefix>_EVENTS`, subjects `<prefix>.jobs.>` / `<prefix>.events.>`. Default PLEXUS. */
  prefix?: string;
  /** Fallback poll of the outbox relay. Default 1 s. */
  pollMs?: number;
  drainTimeoutMs?: number;
}

/**
 * Job id of a message relayed from the outbox or requeued (known before it reaches NATS).
 * Messages published directly need no header: their id is "<stream epoch>-<sequence>", the
 * epoch being the stream's creation time, so a recreated stream (sequences from 1 again) never
 * reuses an id — dead letters are keyed by job id.
 */
const H_ID = 'Plexus-Id';
const H_ENQUEUED_AT = 'Plexus-Enqueued-At';
/** Set on a requeued dead event: only that subscription's consumer handles it; others ack and skip. */
const H_ONLY_QUEUE = 'Plexus-Only-Queue';
/** Room left in max_payload for headers. */
const HEADER_ALLOWANCE_BYTES = 1_024;
/**
 * Names the `bus_payloads` row holding a body too large for one NATS message (max_payload); the
 * message itself then carries STORED_BODY. A consumer reads the body back before its handler runs.
 */
const H_PAYLOAD = 'Plexus-Payload';
const STORED_BODY = '""';
/** Largest body stored that way (the SQL adapter's webhooks accept up to PLEXUS_WEBHOOK_MAX_BYTES). */
const MAX_STORED_BODY_BYTES = 64 * 1024 * 1024;
/** Stored bodies: swept every 10 min, an hour after their job settled, or after 30 days (events). */
const PAYLOAD_SWEEP_EVERY_MS = 10 * 60_000;
const PAYLOAD_KEEP_SETTLED_MS = 60 * 60_000;
const PAYLOAD_MAX_AGE_MS = 30 * 24 * 3_600_000;
/** Long poll of a pull: a new message is delivered at once; an empty pull ends and repeats. */
const PULL_EXPIRES_MS = 5_000;
/** How long a claim (tests, tools) finding nothing pending waits for a redelivery: the client's minimum fetch expiry. */
const CLAIM_EXPIRES_MS = 1_000;
const PUBLISH_TIMEOUT_MS = 5_000;
const RELAY_BATCH = 256;
const MAX_REMEMBERED_ERRORS = 10_000;

export async function createNatsBus(opts: NatsBusOptions): Promise<Bus> {
  const bus = new NatsBus(opts);
  await bus.start();
  return bus;
}

interface ConsumerTarget {
  stream: string;
  name: string;
  filterSubject: string;
  isEvent: boolean;
}

class NatsBus implements Bus {
  readonly kind = 'nats' as const;
  readonly live: LiveEvents;
  private readonly db: Db;
  private readonly log: Logger;
  private readonly defaults: BusDefaults;
  private readonly prefix: string;
  private readonly jobsStream: string;
  /** Stream name → its creation time in base 36, the first part of header-less job ids. */
  private readonly epochs = new Map<string, string>();
  private readonly eventsStream: string;
  private nc!: NatsConnection;
  private jsm!: JetStreamManager;
  private js!: JetStreamClient;
  private publisher!: Publisher;
  private readonly acks = new AckBatcher();
  private maxPayloadBytes = 1_048_576;
  private readonly ensured = new Map<string, Promise<JsConsumer>>();
  private readonly deliveries = new WeakMap<Job, JsMsg>();
  /** Last handler error per job id, best effort and process-local: NATS has no field for it. */
  private readonly lastErrors = new Map<string, string>();
  private readonly consumers = new Set<Consumer>();
  private relay!: OutboxRelay;
  /** Jobs whose body was stored in bus_payloads: the row's id. */
  private readonly storedBodies = new WeakMap<Job, string>();
  private payloadSweeper: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private closed = false;

  constructor(private readonly opts: NatsBusOptions) {
    this.db = opts.db;
    this.log = opts.logger.child({ module: 'bus', adapter: 'nats' });
    this.prefix = opts.prefix ?? 'PLEXUS';
    if (!/^[A-Za-z0-9_-]+$/.test(this.prefix)) throw AppError.invalid(`invalid NATS prefix ${JSON.stringify(this.prefix)}`);
    this.jobsStream = `${this.prefix}_JOBS`;
    this.eventsStream = `${this.prefix}_EVENTS`;
    this.defaults = { leaseMs: opts.leaseMs, maxAttempts: opts.maxAttempts, drainTimeoutMs: opts.drainTimeoutMs ?? 10_000, logger: this.log };
    this.live = createNatsLiveEvents(() => this.nc, this.prefix, this.log);
  }

  async start(): Promise<void> {
    try {
      // noAsyncTraces: the client would otherwise capture a stack trace (new Error) for every request, every PubAck included.
      this.nc = await connect({ servers: this.opts.natsUrl, name: this.opts.serviceName, maxReconnectAttempts: -1, noAsyncTraces: true });
    } catch (err) {
      throw new AppError('CONFIG_INVALID', `PLEXUS_NATS_URL=${this.opts.natsUrl} does not answer: ${(err as Error).message}`, 'user', undefined, { cause: err });
    }
    try {
      this.jsm = await jetstreamManager(this.nc);
      this.js = jetstream(this.nc);
      this.maxPayloadBytes = this.nc.info?.max_payload ?? this.maxPayloadBytes;
      await this.ensureStream({ name: this.jobsStream, subjects: [`${this.prefix}.jobs.>`], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
      await this.ensureStream({ name: this.eventsStream, subjects: [`${this.prefix}.events.>`], retention: RetentionPolicy.Interest, storage: StorageType.File });
      this.publisher = new Publisher(this.js);
      this.relay = new OutboxRelay(this.db, this.publisher, this.opts.pollMs ?? 1_000, this.log);
      this.unlisten = await this.db.listen(await repo.notifyChannel(this.db, 'outbox'), () => this.relay.kick());
      this.relay.kick();
      this.payloadSweeper = setInterval(() => void this.sweepPayloads(), PAYLOAD_SWEEP_EVERY_MS);
      this.payloadSweeper.unref();
      void this.watchConnection();
    } catch (err) {
      await this.nc.close();
      throw err;
    }
  }

  // ---- events ----

  async publish<P>(name: string, payload: P, opts: { tx?: Queryable } = {}): Promise<void> {
    this.assertOpen();
    assertName(name, 'event name');
    const body = encodePayload(eventEnvelope(name, payload, this.opts.serviceName));
    const storing = this.storeOversized([body], name, opts.tx ?? this.db);
    const wire = onWire(body, storing ? (await storing)[0] : undefined);
    const subject = `${this.prefix}.events.${name}`;
    if (opts.tx) {
      const id = nuid.next();
      // Outbox rows of events have no queue (they fan out on NATS): '' keeps them out of the stats.
      await outbox.insertOutbox(opts.tx, [{ subject, msgId: id, queue: '', headers: JSON.stringify({ [H_ID]: id, ...wire.headers }), body: wire.body, delayMs: 0 }]);
      return;
    }
    await this.publisher.publish(subject, wire.body, wire.headers);
  }

  async publishMany<P>(events: ReadonlyArray<{ name: string; payload: P }>, opts: { tx?: Queryable } = {}): Promise<void> {
    this.assertOpen();
    if (!opts.tx) {
      await Promise.all(events.map((e) => this.publish(e.name, e.payload)));
      return;
    }
    const rows = [];
    for (const e of events) {
      assertName(e.name, 'event name');
      const body = encodePayload(eventEnvelope(e.name, e.payload, this.opts.serviceName));
      const storing = this.storeOversized([body], e.name, opts.tx);
      const wire = onWire(body, storing ? (await storing)[0] : undefined);
      const id = nuid.next();
      rows.push({ subject: `${this.prefix}.events.${e.name}`, msgId: id, queue: '', headers: JSON.stringify({ [H_ID]: id, ...wire.headers }), body: wire.body, delayMs: 0 });
    }
    if (rows.length > 0) await outbox.insertOutbox(opts.tx, rows);
  }

  async subscribe<P = unknown>(pattern: string, group: string, handler: EventHandler<P>, opts: ConsumeOptions = {}): Promise<Consumer> {
    this.assertOpen();
    assertPattern(pattern);
    assertName(group, 'group');
    const queue = eventQueueName(group, pattern);
    const settings = consumerSettings(queue, opts, this.defaults);
    await this.ensureConsumer(queue, settings.leaseMs, pattern);
    return this.startConsuming(queue, (job: Job) => handler(job.payload as BusEvent<P>), opts);
  }

  // ---- work queues ----

  async enqueue<T>(queue: string, payload: T, opts: EnqueueOptions = {}): Promise<string> {
    const [id] = await this.enqueueMany(queue, [payload], opts);
    return id!;
  }

  async enqueueMany<T>(queue: string, payloads: readonly T[], opts: EnqueueOptions = {}): Promise<string[]> {
    this.assertOpen();
    assertUserQueue(queue);
    const delayMs = checkDelayMs(opts.delayMs);
    const subject = this.jobSubject(queue);
    const bodies = payloads.map((p) => encodePayload(p));
    if (bodies.length === 0) return [];
    const storing = this.storeOversized(bodies, queue, opts.tx ?? this.db);
    const refs = storing ? await storing : undefined;
    if (opts.tx || delayMs > 0) {
      // In the caller's transaction, or scheduled: the relay publishes after commit / when due.
      const rows = bodies.map((body, i) => {
        const id = nuid.next();
        const wire = onWire(body, refs?.[i]);
        return { subject, msgId: id, queue, headers: JSON.stringify({ [H_ID]: id, ...wire.headers }), body: wire.body, delayMs };
      });
      await outbox.insertOutbox(opts.tx ?? this.db, rows);
      return rows.map((r) => r.msgId);
    }
    // Each resolves on its PubAck (stored with file storage); they pipeline on one connection.
    const seqs = await Promise.all(
      bodies.map((body, i) => {
        const wire = onWire(body, refs?.[i]);
        return this.publisher.publish(subject, wire.body, wire.headers);
      }),
    );
    return seqs.map((seq) => this.directId(this.jobsStream, seq));
  }

  async enqueueEach<T>(items: ReadonlyArray<{ queue: string; payload: T }>, opts: EnqueueOptions = {}): Promise<string[]> {
    this.assertOpen();
    const delayMs = checkDelayMs(opts.delayMs);
    const prepared = items.map((item) => {
      assertUserQueue(item.queue);
      return { queue: item.queue, subject: this.jobSubject(item.queue), body: encodePayload(item.payload) };
    });
    if (prepared.length === 0) return [];
    const storing = this.storeOversized(
      prepared.map((p) => p.body),
      prepared.map((p) => p.queue).join(', '),
      opts.tx ?? this.db,
    );
    const refs = storing ? await storing : undefined;
    if (opts.tx || delayMs > 0) {
      // All rows in one outbox write: stored together, relayed after commit / when due.
      const rows = prepared.map((p, i) => {
        const id = nuid.next();
        const wire = onWire(p.body, refs?.[i]);
        return { subject: p.subject, msgId: id, queue: p.queue, headers: JSON.stringify({ [H_ID]: id, ...wire.headers }), body: wire.body, delayMs };
      });
      await outbox.insertOutbox(opts.tx ?? this.db, rows);
      return rows.map((r) => r.msgId);
    }
    const seqs = await Promise.all(
      prepared.map((p, i) => {
        const wire = onWire(p.body, refs?.[i]);
        return this.publisher.publish(p.subject, wire.body, wire.headers);
      }),
    );
    return seqs.map((seq) => this.directId(this.jobsStream, seq));
  }

  /**
   * Claims up to `max` jobs in one fetch: the jobs the consumer reports pending, at once; when it
   * reports none, whatever becomes deliverable (a redelivery) within CLAIM_EXPIRES_MS. The client
   * has no no-wait fetch, and a fetch is never abandoned early: the server would still deliver
   * to its pull request, and a message sent to a closed inbox is lost until its ack_wait ends.
   */
  async claim<T = unknown>(queue: string, opts: ClaimOptions = {}): Promise<Job<T>[]> {
    this.assertOpen();
    assertName(queue, 'queue');
    const consumer = await this.ensureConsumer(queue, opts.leaseMs ?? this.opts.leaseMs);
    const max = Math.max(1, opts.max ?? 1);
    const pending = (await consumer.info()).num_pending;
    const jobs: Job<T>[] = [];
    const idSuffix = this.idSuffix(queue);
    const reading: Promise<void>[] = [];
    try {
      await fetchInto(consumer, queue, pending > 0 ? Math.min(max, pending) : max, CLAIM_EXPIRES_MS, undefined, (msg) => {
        const job = this.toJob(msg, queue, idSuffix);
        if (!job) return;
        if (this.storedBodies.has(job)) reading.push(this.readStoredBody(job).then((j) => void (j && jobs.push(j as Job<T>))));
        else jobs.push(job as Job<T>);
      });
    } finally {
      await Promise.all(reading);
    }
    return jobs;
  }

  async ack(job: Job): Promise<void> {
    this.acks.ack(this.deliveryOf(job));
    this.lastErrors.delete(job.id);
    this.settleStoredBody(job);
  }

  async nack(job: Job, opts: NackOptions = {}): Promise<void> {
    const delayMs = checkDelayMs(opts.delayMs);
    if (opts.error) this.rememberError(job.id, opts.error);
    this.acks.nak(this.deliveryOf(job), delayMs);
  }

  async deadLetter(job: Job, error: string): Promise<void> {
    const d = this.deliveryOf(job);
    // Stored first, acked second: a crash in between redelivers it, and the insert is idempotent.
    await repo.insertDeadLetter(this.db, {
      id: job.id,
      queue: job.queue,
      payload: encodePayload(job.payload),
      attempts: job.attempt,
      error,
      enqueued_at: job.enqueuedAt,
    });
    this.acks.ack(d);
    this.lastErrors.delete(job.id);
    this.settleStoredBody(job);
  }

  async consume<T = unknown>(queue: string, handler: JobHandler<T>, opts: ConsumeOptions = {}): Promise<Consumer> {
    this.assertOpen();
    assertUserQueue(queue);
    const settings = consumerSettings(queue, opts, this.defaults);
    await this.ensureConsumer(queue, settings.leaseMs);
    return this.startConsuming(queue, handler as JobHandler, opts);
  }

  // ---- inspection ----

  /**
   * ready = the consumer's num_pending; inFlight = num_ack_pending, which on NATS also holds jobs
   * nacked with a delay; delayed = jobs still scheduled in the outbox. oldestAgeMs comes from the
   * first stored message of the queue, so it is approximate for events (acks out of order).
   */
  async stats(queue: string): Promise<QueueStats> {
    assertName(queue, 'queue');
    const [info, delayedRows, deadLettered] = await Promise.all([
      this.consumerInfo(queue),
      outbox.countDelayedByQueue(this.db),
      repo.countDeadLetters(this.db, queue),
    ]);
    return this.statsFrom(queue, info, delayedRows.find((r) => r.queue === queue), deadLettered);
  }

  async allStats(): Promise<QueueStats[]> {
    const infos: ConsumerInfo[] = [];
    for (const stream of [this.jobsStream, this.eventsStream]) infos.push(...(await this.jsm.consumers.list(stream).next()));
    const [delayedRows, deadRows] = await Promise.all([outbox.countDelayedByQueue(this.db), repo.countDeadLettersByQueue(this.db)]);
    const byQueue = new Map<string, ConsumerInfo>();
    for (const info of infos) if (info.config.description) byQueue.set(info.config.description, info);
    // Job queues that have messages but no consumer yet.
    const si = await this.jsm.streams.info(this.jobsStream, { subjects_filter: `${this.prefix}.jobs.>` });
    const unconsumed = new Map<string, number>();
    for (const [subject, n] of Object.entries(si.state.subjects ?? {})) unconsumed.set(subject.slice(`${this.prefix}.jobs.`.length), n);
    const queues = new Set([...byQueue.keys(), ...unconsumed.keys(), ...delayedRows.map((r) => r.queue), ...deadRows.map((r) => r.queue)].filter((q) => q !== ''));
    const stats = await Promise.all(
      [...queues].sort().map(async (queue) => {
        const info = byQueue.get(queue) ?? null;
        const dead = deadRows.find((r) => r.queue === queue)?.n ?? 0;
        return this.statsFrom(queue, info, delayedRows.find((r) => r.queue === queue), dead, info ? undefined : unconsumed.get(queue));
      }),
    );
    return stats.filter((s) => s.depth > 0 || s.deadLettered > 0);
  }

  async listDeadLetters<T = unknown>(queue: string, limit = 100): Promise<DeadLetter<T>[]> {
    assertName(queue, 'queue');
    return (await repo.listDeadLetters(this.db, queue, limit)).map((r) => toDeadLetter<T>(r));
  }

  async requeueDeadLetter(id: string): Promise<void> {
    this.assertOpen();
    const found = await this.db.transaction(async (tx) => {
      const dl = await repo.takeDeadLetter(tx, id);
      if (!dl) return false;
      const headers: Record<string, string> = { [H_ENQUEUED_AT]: String(dl.enqueued_at.getTime()) };
      let subject: string;
      if (isEventQueue(dl.queue)) {
        const event = JSON.parse(dl.payload) as BusEvent;
        subject = `${this.prefix}.events.${event.headers.name}`;
        // Event job ids are "<event id>-<subscription hash>"; the copy carries the event id.
        headers[H_ID] = dl.id.slice(0, dl.id.lastIndexOf('-'));
        headers[H_ONLY_QUEUE] = dl.queue;
      } else {
        subject = this.jobSubject(dl.queue);
        headers[H_ID] = dl.id;
      }
      const storing = this.storeOversized([dl.payload], dl.queue, tx);
      const wire = onWire(dl.payload, storing ? (await storing)[0] : undefined);
      // A fresh Nats-Msg-Id: the original may still be inside the stream's duplicate window.
      await outbox.insertOutbox(tx, [{ subject, msgId: `${dl.id}.${nuid.next()}`, queue: dl.queue, headers: JSON.stringify({ ...headers, ...wire.headers }), body: wire.body, delayMs: 0 }]);
      return true;
    });
    if (!found) throw AppError.notFound(`dead letter ${id}`);
  }

  async ping(): Promise<void> {
    if (this.closed || this.nc.isClosed()) throw closedError();
    try {
      await this.nc.flush();
    } catch (err) {
      throw new AppError('UNAVAILABLE', `NATS does not answer: ${(err as Error).message}`, 'transient', undefined, { cause: err });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.payloadSweeper);
    await Promise.all([...this.consumers].map((c) => c.stop()));
    await this.unlisten?.().catch((err: unknown) => this.log.warn({ err }, 'bus: unlisten failed'));
    await this.live.close();
    await this.relay.stop();
    await this.acks.close();
    await this.publisher.close();
    await this.nc.drain().catch(() => this.nc.close());
  }

  // ---- internals ----

  private startConsuming(queue: string, handler: JobHandler, opts: ConsumeOptions): Consumer {
    const settings = consumerSettings(queue, opts, this.defaults);
    return startTrackedConsumer(this.consumers, this.source(queue, settings.leaseMs), handler, settings);
  }

  private source(queue: string, leaseMs: number): JobSource {
    const idSuffix = this.idSuffix(queue);
    return {
      pull: async (max, signal, onJob) => {
        if (signal.aborted) return;
        const consumer = await this.ensureConsumer(queue, leaseMs);
        // Jobs whose body is stored (bus_payloads) reach the handler once it is read back.
        const reading: Promise<void>[] = [];
        try {
          await fetchInto(consumer, queue, max, PULL_EXPIRES_MS, signal, (msg) => {
            const job = this.toJob(msg, queue, idSuffix);
            if (!job) return;
            if (this.storedBodies.has(job)) reading.push(this.readStoredBody(job).then((j) => void (j && onJob(j))));
            else onJob(job);
          });
        } catch (err) {
          // The consumer may have been deleted under us: create it again on the next pull.
          this.ensured.delete(ensuredKey(queue, leaseMs));
          throw err;
        } finally {
          await Promise.all(reading);
        }
      },
      ack: (job) => this.ack(job),
      nack: (job, o) => this.nack(job, o),
      deadLetter: (job, error) => this.deadLetter(job, error),
      release: async (jobs) => {
        // A nak counts as a delivery on NATS: a released job's next attempt number is one higher.
        for (const job of jobs) this.acks.nak(this.deliveryOf(job), 0);
      },
      extend: async (jobs) => {
        for (const job of jobs) this.acks.working(this.deliveryOf(job));
        return jobs;
      },
      lastError: (job) => this.lastErrors.get(job.id),
    };
  }

  /** One event is a job in every matching subscription: its id must differ between them. */
  private idSuffix(queue: string): string {
    return isEventQueue(queue) ? `-${shortHash(queue, 6)}` : '';
  }

  private toJob(msg: JsMsg, queue: string, idSuffix: string): Job | undefined {
    const headers = msg.headers;
    const only = headers?.get(H_ONLY_QUEUE);
    if (only && only !== queue) {
      // A requeued dead event meant for another subscription.
      this.acks.ack(msg);
      return undefined;
    }
    const info = msg.info;
    const id = (headers?.get(H_ID) || this.directId(info.stream, info.streamSequence)) + idSuffix;
    const enqueuedAtMs = Number(headers?.get(H_ENQUEUED_AT)) || Math.floor(info.timestampNanos / 1e6);
    const stored = headers?.get(H_PAYLOAD);
    const job: Job = { id, queue, payload: stored ? null : decodeBody(msg.string()), attempt: info.deliveryCount, enqueuedAt: new Date(enqueuedAtMs) };
    this.deliveries.set(job, msg);
    if (stored) this.storedBodies.set(job, stored);
    return job;
  }

  private deliveryOf(job: Job): JsMsg {
    const d = this.deliveries.get(job);
    if (!d) throw new AppError('INVALID_STATE', `job ${job.id} was not claimed through this bus`, 'bug');
    return d;
  }

  private rememberError(id: string, error: string): void {
    this.lastErrors.delete(id);
    this.lastErrors.set(id, error);
    if (this.lastErrors.size > MAX_REMEMBERED_ERRORS) this.lastErrors.delete(this.lastErrors.keys().next().value!);
  }

  private jobSubject(queue: string): string {
    return `${this.prefix}.jobs.${queue}`;
  }

  private target(queue: string, pattern?: string): ConsumerTarget {
    // Consumer names allow no dots; the hash keeps "a.b" and "a_b" apart.
    const name = `q-${queue.replace(/\./g, '_')}-${shortHash(queue, 6)}`;
    if (isEventQueue(queue)) {
      return { stream: this.eventsStream, name, filterSubject: pattern ? `${this.prefix}.events.${pattern}` : '', isEvent: true };
    }
    return { stream: this.jobsStream, name, filterSubject: this.jobSubject(queue), isEvent: false };
  }

  /**
   * The durable consumer of a queue, created (or its lease updated) idempotently, once per
   * queue and lease. Event consumers are created by `subscribe`, which knows the pattern.
   */
  private ensureConsumer(queue: string, leaseMs: number, pattern?: string): Promise<JsConsumer> {
    const key = ensuredKey(queue, leaseMs);
    let ensured = this.ensured.get(key);
    if (!ensured) {
      ensured = this.createConsumer(queue, leaseMs, pattern);
      this.ensured.set(key, ensured);
      ensured.catch(() => this.ensured.delete(key));
    }
    return ensured;
  }

  private async createConsumer(queue: string, leaseMs: number, pattern?: string): Promise<JsConsumer> {
    const t = this.target(queue, pattern);
    if (t.isEvent && !pattern) {
      // Subscribed before (by us or another process): keep its filter, set our lease.
      let info = await this.jsm.consumers.info(t.stream, t.name).catch(() => null);
      if (!info) throw AppError.notFound(`subscription queue ${queue}`);
      if (info.config.ack_wait !== leaseMs * 1e6) info = await this.jsm.consumers.update(t.stream, t.name, { ack_wait: leaseMs * 1e6 });
      return this.js.consumers.getConsumerFromInfo(info);
    }
    const info = await this.jsm.consumers.add(t.stream, {
      durable_name: t.name,
      description: queue,
      ack_policy: AckPolicy.Explicit,
      // A new subscription starts with events published from now on, as in the SQL adapter.
      deliver_policy: t.isEvent ? DeliverPolicy.New : DeliverPolicy.All,
      filter_subject: t.filterSubject,
      ack_wait: leaseMs * 1e6,
      max_deliver: -1,
      // Deliveries out at once across all processes; the default (1000) would cap throughput.
      max_ack_pending: 20_000,
    });
    return this.js.consumers.getConsumerFromInfo(info);
  }

  private async consumerInfo(queue: string): Promise<ConsumerInfo | null> {
    const t = this.target(queue);
    return this.jsm.consumers.info(t.stream, t.name).catch(() => null);
  }

  private async statsFrom(
    queue: string,
    info: ConsumerInfo | null,
    delayed: { n: number; oldest_age_ms: number } | undefined,
    deadLettered: number,
    unconsumed?: number,
  ): Promise<QueueStats> {
    let ready = info?.num_pending ?? 0;
    const inFlight = info?.num_ack_pending ?? 0;
    if (!info && !isEventQueue(queue)) {
      const subject = this.jobSubject(queue);
      ready = unconsumed ?? (await this.jsm.streams.info(this.jobsStream, { subjects_filter: subject })).state.subjects?.[subject] ?? 0;
    }
    const delayedCount = delayed?.n ?? 0;
    let oldestAgeMs = delayed?.oldest_age_ms ?? 0;
    if (ready + inFlight > 0) oldestAgeMs = Math.max(oldestAgeMs, await this.oldestStoredAgeMs(queue, info));
    return { queue, depth: ready + inFlight + delayedCount, ready, delayed: delayedCount, inFlight, deadLettered, oldestAgeMs: Math.round(oldestAgeMs) };
  }

  private async oldestStoredAgeMs(queue: string, info: ConsumerInfo | null): Promise<number> {
    try {
      const isEvent = isEventQueue(queue);
      const subject = isEvent ? info?.config.filter_subject : this.jobSubject(queue);
      if (!subject) return 0;
      const seq = isEvent ? (info?.ack_floor.stream_seq ?? 0) + 1 : 0;
      // STREAM.MSG.GET honours next_by_subj (first message on or after seq) since server 2.9;
      // the client's type only lists the plain forms.
      const query: SeqMsgRequest & NextMsgRequest = { seq, next_by_subj: subject };
      const msg = await this.jsm.streams.getMessage(isEvent ? this.eventsStream : this.jobsStream, query);
      if (!msg) return 0;
      const enqueuedAt = Number(msg.header.get(H_ENQUEUED_AT)) || msg.time.getTime();
      return Math.max(0, Date.now() - enqueuedAt);
    } catch {
      return 0;
    }
  }

  private async ensureStream(cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
    let info: StreamInfo;
    try {
      info = await this.jsm.streams.add(cfg);
    } catch {
      // Exists with other settings (an older version of ours): bring it in line.
      info = await this.jsm.streams.update(cfg.name, cfg);
    }
    this.epochs.set(cfg.name, Date.parse(info.created).toString(36));
  }

  private directId(stream: string, seq: number): string {
    return `${this.epochs.get(stream) ?? '0'}-${seq}`;
  }

  /**
   * Stores the bodies too large for one NATS message in bus_payloads (with `db`, the caller's
   * transaction when there is one) and resolves with the row id of each (undefined: sent as is).
   * Returns undefined when every body fits, which is nearly always: no await on the hot path.
   */
  private storeOversized(bodies: readonly string[], name: string, db: Queryable): Promise<Array<string | undefined>> | undefined {
    const maxBytes = this.maxPayloadBytes - HEADER_ALLOWANCE_BYTES;
    let refs: Array<string | undefined> | undefined;
    const rows: Array<{ id: string; payload: string }> = [];
    bodies.forEach((body, i) => {
      // A UTF-8 byte is at least one UTF-16 unit: most bodies need no byte count at all.
      if (body.length <= maxBytes / 3) return;
      const bytes = Buffer.byteLength(body);
      if (bytes <= maxBytes) return;
      if (bytes > MAX_STORED_BODY_BYTES) {
        throw new AppError('PAYLOAD_TOO_LARGE', `bus message for ${name} is ${bytes} bytes; at most ${MAX_STORED_BODY_BYTES} are carried`, 'user', { bytes, maxBytes: MAX_STORED_BODY_BYTES });
      }
      const id = nuid.next();
      (refs ??= bodies.map(() => undefined))[i] = id;
      rows.push({ id, payload: body });
    });
    return refs && outbox.insertPayloads(db, rows).then(() => refs!);
  }

  /** Reads back a job's stored body; a job whose body is gone is dead-lettered (undefined). */
  private async readStoredBody(job: Job): Promise<Job | undefined> {
    const ref = this.storedBodies.get(job)!;
    let body: string | undefined;
    try {
      body = (await outbox.findPayloads(this.db, [ref])).get(ref);
    } catch (err) {
      // Storage is down: the job comes back once its lease runs out.
      this.log.warn({ err, jobId: job.id }, 'bus: reading a stored message body failed; the job comes back later');
      return undefined;
    }
    if (body === undefined) {
      await this.deadLetter(job, `its body (bus_payloads ${ref}) is gone: swept after 30 days, or deleted`).catch((err: unknown) =>
        this.log.warn({ err, jobId: job.id }, 'bus: dead-lettering a job whose stored body is gone failed'),
      );
      return undefined;
    }
    job.payload = decodeBody(body);
    return job;
  }

  /** A job's stored body is kept a while after its job settles (a lost ack redelivers it). */
  private settleStoredBody(job: Job): void {
    const ref = this.storedBodies.get(job);
    // An event's body is read by every group that subscribed: only the age limit removes it.
    if (!ref || isEventQueue(job.queue)) return;
    outbox.settlePayloads(this.db, [ref]).catch((err: unknown) => this.log.warn({ err, jobId: job.id }, 'bus: marking a stored message body settled failed'));
  }

  private async sweepPayloads(): Promise<void> {
    try {
      const n = await outbox.sweepPayloads(this.db, PAYLOAD_KEEP_SETTLED_MS, PAYLOAD_MAX_AGE_MS);
      if (n > 0) this.log.debug({ deleted: n }, 'bus: swept stored message bodies');
    } catch (err) {
      this.log.warn({ err }, 'bus: sweeping stored message bodies failed');
    }
  }

  private async watchConnection(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') this.log.warn({ server: s.server }, 'bus: NATS disconnected');
      else if (s.type === 'reconnect') this.log.info({ server: s.server }, 'bus: NATS reconnected');
    }
  }

  private assertOpen(): void {
    if (this.closed) throw closedError();
  }
}

/** What goes on the wire for a body: itself, or STORED_BODY and the header naming its stored row. */
function onWire(body: string, storedAs: string | undefined): { body: string; headers: Record<string, string> | undefined } {
  return storedAs ? { body: STORED_BODY, headers: { [H_PAYLOAD]: storedAs } } : { body, headers: undefined };
}

/** A message body as a payload: JSON, or the text itself when it is not ours (raw bytes on our subject). */
function decodeBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

function ensuredKey(queue: string, leaseMs: number): string {
  return `${queue} ${leaseMs}`;
}

// ---- the client's JetStream API, batched per event-loop turn ----

/**
 * One fetch of up to `max` messages, each passed to `onMessage` as it arrives. It ends when `max`
 * arrived, when the server ends the pull (nothing more before `expiresMs`), or when `signal`
 * aborts; it throws when the client reports the pull failed (consumer deleted, connection lost).
 */
async function fetchInto(consumer: JsConsumer, queue: string, max: number, expiresMs: number, signal: AbortSignal | undefined, onMessage: (msg: JsMsg) => void): Promise<void> {
  if (signal?.aborted) return;
  const messages = await consumer.fetch({ max_messages: max, expires: expiresMs });
  const stop = (): void => messages.stop();
  // An abort while fetch() was being set up has already fired: without this check the pull would
  // hold its consumer's stop() until the server ends it (`expiresMs`, 5 s at every hub start).
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const msg of messages) onMessage(msg);
  } catch (err) {
    throw new AppError('UNAVAILABLE', `JetStream pull on ${queue} failed: ${(err as Error).message}`, 'transient', undefined, { cause: err });
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

type Acknowledgement = { msg: JsMsg; kind: 'ack' } | { msg: JsMsg; kind: 'nak'; delayMs: number } | { msg: JsMsg; kind: 'working' };

/**
 * Sends acknowledgements in bursts. Handlers finish in separate promise chains, so each ack would
 * otherwise reach the socket in its own write (the client flushes per microtask); one burst per
 * event-loop turn costs at most that turn's delay and saves most of the write syscalls.
 */
class AckBatcher {
  private readonly batcher = new Batcher<Acknowledgement>({
    maxBatch: 10_000,
    maxInFlight: Number.POSITIVE_INFINITY,
    flush: async (batch) => {
      for (const { item } of batch) {
        try {
          if (item.kind === 'ack') item.msg.ack();
          else if (item.kind === 'nak') item.msg.nak(item.delayMs > 0 ? item.delayMs : undefined);
          else item.msg.working();
        } catch {
          // Connection closed: the server redelivers after ack_wait; at-least-once holds.
        }
      }
    },
  });

  ack(msg: JsMsg): void {
    void this.batcher.add({ msg, kind: 'ack' });
  }

  nak(msg: JsMsg, delayMs: number): void {
    void this.batcher.add({ msg, kind: 'nak', delayMs });
  }

  working(msg: JsMsg): void {
    void this.batcher.add({ msg, kind: 'working' });
  }

  close(): Promise<void> {
    this.batcher.flushNow();
    return this.batcher.idle();
  }
}

interface Publication {
  subject: string;
  body: string;
  headers: Record<string, string> | undefined;
  msgId: string | undefined;
}

/**
 * Publishes to JetStream with `js.publish` and resolves with the stream sequence once the PubAck
 * says it is stored. Publishes made by separate webhook calls (each its own event-loop task)
 * are handed to the client together once per turn: the client writes what it was given within
 * one microtask in one socket write, rather than one write syscall each.
 */
class Publisher {
  private readonly batcher: Batcher<Publication, number>;

  constructor(private readonly js: JetStreamClient) {
    this.batcher = new Batcher({
      maxBatch: 10_000,
      // A batch's flush lasts until its PubAcks: the next turn's publishes must not wait for it.
      maxInFlight: Number.POSITIVE_INFINITY,
      flush: (batch) => Promise.all(batch.map((entry) => this.send(entry.item).then(entry.resolve, entry.reject))).then(() => undefined),
    });
  }

  publish(subject: string, body: string, headers?: Record<string, string>, msgId?: string): Promise<number> {
    return this.batcher.add({ subject, body, headers, msgId });
  }

  /** Waits for the PubAcks still expected (each ends by its answer or its timeout). */
  close(): Promise<void> {
    this.batcher.flushNow();
    return this.batcher.idle();
  }

  private async send(p: Publication): Promise<number> {
    let h: MsgHdrs | undefined;
    if (p.headers) {
      h = natsHeaders();
      for (const [k, v] of Object.entries(p.headers)) h.set(k, v);
    }
    try {
      const ack = await this.js.publish(p.subject, p.body, { timeout: PUBLISH_TIMEOUT_MS, ...(h ? { headers: h } : {}), ...(p.msgId ? { msgID: p.msgId } : {}) });
      return ack.seq;
    } catch (err) {
      // A timeout leaves the outcome unknown (it may be stored): a retry can duplicate it, which
      // at-least-once allows. Anything else (no stream on the subject, connection closed) stored nothing.
      const isTimeout = (err as Error).name === 'TimeoutError';
      throw new AppError(isTimeout ? 'TIMEOUT' : 'UNAVAILABLE', isTimeout ? `no PubAck for ${p.subject} within ${PUBLISH_TIMEOUT_MS} ms` : `JetStream did not store ${p.subject}: ${(err as Error).message}`, 'transient', undefined, { cause: err });
    }
  }
}

/**
 * Publishes committed, due outbox rows to JetStream. Each pass takes rows inside a transaction
 * and commits only after every PubAck, so a crash or a NATS outage returns the rows; a row
 * published twice that way is dropped by JetStream's duplicate window (Nats-Msg-Id).
 */
class OutboxRelay {
  private running: Promise<void> | undefined;
  private isKickedAgain = false;
  private timer: NodeJS.Timeout | undefined;
  private isStopped = false;

  constructor(
    private readonly db: Db,
    private readonly publisher: Publisher,
    private readonly pollMs: number,
    private readonly log: Logger,
  ) {}

  kick(): void {
    if (this.isStopped) return;
    if (this.running) {
      this.isKickedAgain = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.isKickedAgain) {
        this.isKickedAgain = false;
        this.kick();
      }
    });
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async pass(): Promise<void> {
    let nextMs = this.pollMs;
    try {
      while (!this.isStopped && (await this.relayBatch()) === RELAY_BATCH);
      const dueInMs = await outbox.msUntilNextOutboxDue(this.db);
      if (dueInMs !== null) nextMs = Math.min(this.pollMs, Math.max(1, Math.ceil(dueInMs)));
    } catch (err) {
      this.log.warn({ err }, 'bus: relaying the outbox to NATS failed; will retry');
    }
    if (this.isStopped) return;
    // A background safety net: it must not keep the process alive on its own.
    this.timer = setTimeout(() => this.kick(), nextMs);
    this.timer.unref();
  }

  private relayBatch(): Promise<number> {
    return this.db.transaction(async (tx) => {
      const rows = await outbox.takeDueOutbox(tx, RELAY_BATCH);
      await Promise.all(
        rows.map((row) => {
          const headers = JSON.parse(row.headers) as Record<string, string>;
          headers[H_ENQUEUED_AT] ??= String(row.enqueued_at.getTime());
          return this.publisher.publish(row.subject, row.body, headers, row.msg_id);
        }),
      );
      return rows.length;
    });
  }
}
