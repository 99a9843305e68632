/**
 * Commands and events between workers (seed 004 message types), and the admin commands the hub
 * sends a worker's admin worker.
 *
 * Command: validated against the JSON schema its target component declared (ajv) and refused to
 * the sender (an `Event {topic: command, event: FAILED}`) when invalid; otherwise handed to a
 * worker here serving `target`, or queued on the bus's durable queue of that tenant and target
 * (`router.commands.<hash>`), which only the instances with a worker serving it consume (a target
 * no instance is known to serve goes to the shared `router.commands`, which every instance tries):
 * the instance with a worker serving `target` (same tenant, compatible major, not draining) hands
 * it to that one worker and acks once the worker's `Receipt` arrives — competing consumers,
 * exactly one worker, nothing lost while workers restart (the job waits, up to the command's
 * `timeoutMs`).
 * The worker's result event (`reference_uuid` = the command's uuid) goes back to the sender: on
 * its stream when the sender is attached here, else through the bus's live events to the
 * instance it is attached to.
 *
 * Event: deduplicated by uuid, published on the bus as `worker.event.<topic>` (durable) and sent
 * to the tenant's workers that subscribed to the topic, here and (through live events) on the
 * other instances.
 *
 * Admin command: to the worker's session here, else forwarded (live events) to the instance that
 * reported the tenant's worker, which runs it as its own and answers back.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import type { z } from 'zod';
import type { Bus, Consumer, Job } from '../../platform/bus/index.js';
import { MAX_LIVE_EVENT_BYTES, RetryLater } from '../../platform/bus/index.js';
import { AppError, ERROR_CODES, toAppError, type ErrorCode } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Dispatcher } from './router.dispatch.js';
import type { AttachedSession, MessageSink } from './router.grpc.js';
import { IdMap, RecentIds, jsonBytes, parseJsonBytes, parseVersion, type CommandIn, type EventIn, type Event } from './router.protocol.js';

/** Commands queued before per-target queues existed: still consumed, nothing new goes there. */
export const COMMAND_QUEUE = 'router.commands';

/**
 * The durable queue of the commands to one target of one tenant. Only instances with a worker
 * serving that target consume it, so a command never waits for an instance that cannot deliver
 * it to put it back (that retry cost 200 ms whenever the wrong instance claimed first).
 */
export function commandQueue(tenant: string, target: string): string {
  return `${COMMAND_QUEUE}.${createHash('sha256').update(`${tenant}\u0000${target}`).digest('hex').slice(0, 24)}`;
}
const REPLY_TOPIC = 'router.reply';
/** Worker events relayed to the other instances' subscribed workers (live: not stored). */
const EVENT_TOPIC = 'router.event';
/** Admin commands for a worker attached to another instance: `router.admin.<holding instance>`. */
const ADMIN_TOPIC = 'router.admin';
/** Their answers: `router.admin-answer.<asking instance>`. */
const ADMIN_ANSWER_TOPIC = 'router.admin-answer';
/** How long an instance waits for the chosen worker's Receipt before giving the command to another. */
const RECEIPT_TIMEOUT_MS = 5_000;
/** When no worker here serves the target, the command goes back to the queue for this long. */
const NOT_HERE_DELAY_MS = 200;
const SEEN_EVENTS = 10_000;

interface QueuedCommand {
  tenant: string;
  target: string;
  command: string;
  uuid: string;
  major: number;
  minor: number;
  timeoutMs: number;
  timestamp: number;
  /** JSON text of the payload and context. */
  payload: string;
  context: string;
  /** Where the answer goes. */
  replyInstance: string;
  replySession: string;
}

/** A command as handed to a worker here: its JSON as bytes. */
type Handed = Omit<QueuedCommand, 'payload' | 'context'> & { payload: Buffer; context: Buffer };
const EMPTY_OBJECT = Buffer.from('{}');

interface RelayedEvent {
  origin: string;
  uuid: string;
  tenant: string;
  topic: string;
  event: string;
  reference: string;
  payload: string;
}

interface ReplyEnvelope {
  session: string;
  event: { uuid: string; tenant: string; topic: string; event: string; reference: string; payload: string };
}

type AdminResult = { event: string; payload: unknown };

/** An admin command forwarded to the instance holding the worker. */
interface AdminRequest {
  uuid: string;
  /** The asking instance (where the answer goes). */
  from: string;
  tenant: string;
  workerId: string;
  command: string;
  payload: Record<string, unknown>;
  timeoutMs: number;
}

/** The holding instance's answer: the worker's result event, or the error the asker answers. */
interface AdminAnswer {
  uuid: string;
  result?: AdminResult;
  error?: { code: string; message: string };
}

export interface AdminCommands {
  send(tenant: string, workerId: string, command: string, payload: Record<string, unknown>, timeoutMs: number): Promise<AdminResult>;
}

export class Commands implements MessageSink, AdminCommands {
  private readonly sessions = new Map<string, AttachedSession>();
  private readonly ajv = new Ajv({ allErrors: true, strict: false });
  private readonly validators = new WeakMap<object, ValidateFunction>();
  /** Commands handed to a worker here, waiting for its receipt: uuid → resolve. */
  private readonly receipts = new IdMap<() => void>();
  /** Commands sent by a session here: uuid → the sender session (results route back to it). */
  private readonly origins = new IdMap<{ instance: string; session: string; at: number }>();
  /** Admin commands the hub sent: uuid → waiter. */
  private readonly adminWaiters = new Map<string, (e: AdminResult) => void>();
  /** Admin commands forwarded to another instance: request uuid → waiter for its answer. */
  private readonly forwarded = new Map<string, (a: AdminAnswer) => void>();
  private readonly seen = new RecentIds(SEEN_EVENTS);
  private consumer: Consumer | undefined;
  /** Per-target command queues consumed here: queue → its consumer (changes serialised by `chain`). */
  private readonly targetConsumers = new Map<string, Consumer>();
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private stopLive: (() => Promise<void>) | undefined;
  private stopEvents: (() => Promise<void>) | undefined;
  private stopAdmin: (() => Promise<void>) | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly dispatcher: Dispatcher,
    private readonly instanceId: string,
    private readonly logger: Logger,
    /** Whether another instance reported a worker of the tenant serving `target` (router.registry.ts). */
    private readonly servedElsewhere: (tenant: string, target: string) => boolean = () => false,
    /** The other instance that reported the tenant's worker `workerId` lately, if any (router.registry.ts). */
    private readonly holderOf: (tenant: string, workerId: string) => Promise<string | undefined> = async () => undefined,
  ) {}

  async start(): Promise<void> {
    this.stopLive = await this.bus.live.subscribe<ReplyEnvelope>(`${REPLY_TOPIC}.${this.instanceId}`, (e) => this.deliverReply(e.payload));
    this.stopEvents = await this.bus.live.subscribe<RelayedEvent>(EVENT_TOPIC, (e) => {
      const r = e.payload;
      if (r.origin === this.instanceId || this.seenBefore(r.uuid)) return;
      this.fanOut(r.tenant, undefined, {
        header: { uuid: r.uuid, tenant: r.tenant, timestamp_unix_ms: Date.now(), timeout_ms: 0, major: 1, minor: 0 },
        topic: r.topic,
        event: r.event,
        reference_uuid: r.reference,
        payload_json: Buffer.from(r.payload, 'utf8'),
      });
    });
    const requests = await this.bus.live.subscribe<AdminRequest>(`${ADMIN_TOPIC}.${this.instanceId}`, (e) => this.runForwarded(e.payload));
    const answers = await this.bus.live.subscribe<AdminAnswer>(`${ADMIN_ANSWER_TOPIC}.${this.instanceId}`, (e) => this.forwarded.get(e.payload.uuid)?.(e.payload));
    this.stopAdmin = async () => {
      await requests();
      await answers();
    };
    this.consumer = await this.bus.consume<QueuedCommand>(COMMAND_QUEUE, (job) => this.run(job), { concurrency: 16, maxAttempts: 1_000, retryDelayMs: () => NOT_HERE_DELAY_MS });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.evaluateQueues();
    await this.chain;
    await this.consumer?.stop();
    await this.stopLive?.();
    await this.stopEvents?.();
    await this.stopAdmin?.();
    for (const [uuid, settle] of [...this.forwarded]) settle({ uuid, error: { code: 'UNAVAILABLE', message: 'this aggregator instance is stopping; send the admin command again' } });
  }

  // ---- MessageSink ----

  attached(session: AttachedSession): void {
    this.sessions.set(session.sessionId, session);
    this.evaluateQueues();
  }

  detached(session: AttachedSession): void {
    this.sessions.delete(session.sessionId);
    this.evaluateQueues();
  }

  private servesHere(tenant: string, target: string): boolean {
    for (const s of this.sessions.values()) if (s.tenant === tenant && s.offers.some((o) => o.name === target)) return true;
    return false;
  }

  /** Consumes the command queue of every (tenant, target) a worker attached here serves, and only those. */
  private evaluateQueues(): void {
    this.chain = this.chain.then(async () => {
      const wanted = new Set<string>();
      if (!this.stopped) for (const s of this.sessions.values()) for (const o of s.offers) wanted.add(commandQueue(s.tenant, o.name));
      for (const [queue, consumer] of [...this.targetConsumers]) {
        if (wanted.has(queue)) continue;
        this.targetConsumers.delete(queue);
        await consumer.stop().catch((err: unknown) => this.logger.warn({ err, queue }, 'router: could not stop consuming a command queue'));
      }
      for (const queue of wanted) {
        if (this.targetConsumers.has(queue)) continue;
        try {
          this.targetConsumers.set(queue, await this.bus.consume<QueuedCommand>(queue, (job) => this.run(job), { concurrency: 16, maxAttempts: 1_000, retryDelayMs: () => NOT_HERE_DELAY_MS }));
        } catch (err) {
          this.logger.warn({ err, queue }, 'router: could not consume a command queue');
        }
      }
    });
  }

  receipt(_session: AttachedSession, uuid: string): void {
    this.receipts.get(uuid)?.();
  }

  command(session: AttachedSession, c: z.infer<typeof CommandIn>): void {
    const fail = (message: string) => session.send({ event: this.commandEvent(session.tenant, c.header.uuid, 'FAILED', { error: message }) });
    let payload: unknown;
    try {
      payload = parseJsonBytes(c.payload_json, 'command.payload_json') ?? {};
      parseJsonBytes(c.context_json, 'command.context_json');
    } catch (err) {
      return fail((err as Error).message);
    }
    const problem = this.validate(session.tenant, c.target, c.command, c.header.major, payload);
    if (problem) return fail(problem);
    // Handed over as the sender wrote them (validated JSON; empty is `{}`); the queued form, with
    // the JSON as text, is made only when the command has to take the queue.
    const handed: Handed = {
      tenant: session.tenant,
      target: c.target,
      command: c.command,
      uuid: c.header.uuid,
      major: c.header.major,
      minor: c.header.minor,
      timeoutMs: c.header.timeout_ms || 30_000,
      timestamp: Date.now(),
      payload: c.payload_json.length > 0 ? c.payload_json : EMPTY_OBJECT,
      context: c.context_json.length > 0 ? c.context_json : EMPTY_OBJECT,
      replyInstance: this.instanceId,
      replySession: session.sessionId,
    };
    this.origins.set(c.header.uuid, { instance: this.instanceId, session: session.sessionId, at: Date.now() });
    const enqueue = () => {
      const queued: QueuedCommand = { ...handed, payload: handed.payload.toString('utf8'), context: handed.context.toString('utf8') };
      // The target's own queue when a worker serving it is known (here or on another instance);
      // else the shared queue, which every instance tries until one can deliver or it times out.
      void this.bus.enqueue(this.servesHere(queued.tenant, queued.target) || this.servedElsewhere(queued.tenant, queued.target) ? commandQueue(queued.tenant, queued.target) : COMMAND_QUEUE, queued).catch((err: unknown) => {
        this.logger.warn({ err }, 'router: queueing a command failed');
        fail('the router could not queue the command; try again');
      });
    };
    // A worker serving the target is attached here: hand it over at once. Its Receipt ends the
    // router's responsibility exactly as an ack of the queued job would; without one in time the
    // command takes the durable queue, where any instance's worker may take it.
    const local = this.handOver(handed);
    if (!local) return enqueue();
    void local.then((received) => {
      if (!received) enqueue();
    });
  }

  /** Sends the command to one worker here serving its target; resolves whether it sent a Receipt in time. Undefined: none here. */
  private handOver(c: Handed): Promise<boolean> | undefined {
    const candidates = [...this.sessions.values()].filter(
      (s) => s.tenant === c.tenant && !this.dispatcher.isDraining(s.sessionId) && s.offers.some((o) => o.name === c.target && (c.major === 0 || parseVersion(o.version)[0] === c.major)),
    );
    const chosen = candidates[Math.floor(Math.random() * candidates.length)];
    if (!chosen) return undefined;
    const received = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.receipts.delete(c.uuid);
        resolve(false);
      }, RECEIPT_TIMEOUT_MS);
      this.receipts.set(c.uuid, () => {
        clearTimeout(timer);
        this.receipts.delete(c.uuid);
        resolve(true);
      });
    });
    this.origins.set(c.uuid, { instance: c.replyInstance, session: c.replySession, at: Date.now() });
    chosen.send({
      command: {
        header: { uuid: c.uuid, tenant: c.tenant, timestamp_unix_ms: c.timestamp, timeout_ms: c.timeoutMs, major: c.major, minor: c.minor },
        target: c.target,
        command: c.command,
        context_json: c.context,
        payload_json: c.payload,
      },
    });
    return received;
  }

  event(session: AttachedSession, e: z.infer<typeof EventIn>): void {
    if (this.seenBefore(e.header.uuid)) return;
    if (e.topic === 'command') return this.routeResult(session.tenant, e);
    let payload: unknown;
    try {
      payload = parseJsonBytes(e.payload_json, 'event.payload_json');
    } catch (err) {
      session.send({ refused: { code: 'VALIDATION_FAILED', message: (err as Error).message } });
      return;
    }
    void this.bus
      .publish(`worker.event.${e.topic}`, { uuid: e.header.uuid, tenant: session.tenant, workerId: session.workerId, topic: e.topic, event: e.event, referenceUuid: e.reference_uuid, payload })
      .catch((err: unknown) => this.logger.warn({ err }, 'router: publishing a worker event failed'));
    const out: Event = { header: { ...e.header, tenant: session.tenant }, topic: e.topic, event: e.event, reference_uuid: e.reference_uuid, payload_json: e.payload_json };
    this.fanOut(session.tenant, session.sessionId, out);
    // Subscribers attached to the other instances hear it through live events (not stored: the
    // durable copy is the bus event above); a payload too large for a live event reaches them
    // only through the bus.
    const relayed: RelayedEvent = { origin: this.instanceId, uuid: e.header.uuid, tenant: session.tenant, topic: e.topic, event: e.event, reference: e.reference_uuid, payload: e.payload_json.toString('utf8') };
    void this.bus.live.publish(EVENT_TOPIC, relayed).catch((err: unknown) => this.logger.debug({ err }, 'router: relaying a worker event to other instances failed'));
  }

  /** Sends an event to the tenant's workers on this instance that subscribed to its topic. */
  private fanOut(tenant: string, exceptSession: string | undefined, out: Event): void {
    for (const s of this.sessions.values()) {
      if (s.sessionId !== exceptSession && s.tenant === tenant && s.subscriptions.includes(out.topic)) s.send({ event: out });
    }
  }

  // ---- admin commands from the hub ----

  /**
   * To the worker attached here, else to the instance that reported it (the freshest report of
   * this tenant's worker, so one tenant never reaches another's), which runs it as its own.
   */
  async send(tenant: string, workerId: string, command: string, payload: Record<string, unknown>, timeoutMs: number): Promise<AdminResult> {
    const here = this.sendHere(tenant, workerId, command, payload, timeoutMs);
    if (here) return here;
    const holder = await this.holderOf(tenant, workerId);
    if (!holder) throw notAttached(workerId);
    return this.forward(holder, { uuid: randomUUID(), from: this.instanceId, tenant, workerId, command, payload, timeoutMs });
  }

  /** Sends the admin command to the worker's session here and waits for its result; undefined when it is not attached here. */
  private sendHere(tenant: string, workerId: string, command: string, payload: Record<string, unknown>, timeoutMs: number): Promise<AdminResult> | undefined {
    const session = [...this.sessions.values()].find((s) => s.tenant === tenant && s.workerId === workerId);
    if (!session) return undefined;
    const uuid = randomUUID();
    const answer = new Promise<AdminResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.adminWaiters.delete(uuid);
        reject(new AppError('TIMEOUT', `worker ${workerId} did not answer ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.adminWaiters.set(uuid, (e) => {
        clearTimeout(timer);
        this.adminWaiters.delete(uuid);
        resolve(e);
      });
    });
    // The router stops delivering to a draining worker at once; the worker finishes what it holds.
    if (command === 'admin.drain') this.dispatcher.drain(session.sessionId);
    session.send({
      command: {
        header: { uuid, tenant, timestamp_unix_ms: Date.now(), timeout_ms: timeoutMs, major: 1, minor: 0 },
        target: 'admin',
        command,
        context_json: Buffer.alloc(0),
        payload_json: jsonBytes(payload),
      },
    });
    return answer;
  }

  /**
   * Asks the holding instance over live events and waits up to the command's timeout. Live events
   * are not stored: a request or answer lost (the holder died, a NOTIFY dropped) ends in the same
   * TIMEOUT as a worker that does not answer, which is all a request/reply with a deadline needs;
   * the router never re-sends an admin command (the operator does, and they bear repeating).
   */
  private forward(holder: string, request: AdminRequest): Promise<AdminResult> {
    if (!fitsLiveEvent(`${ADMIN_TOPIC}.${holder}`, request)) {
      throw new AppError('PAYLOAD_TOO_LARGE', `the payload of ${request.command} is too large to forward to the aggregator instance holding worker ${request.workerId} (~${MAX_LIVE_EVENT_BYTES} bytes in all); send a smaller one, or send it to that instance (${holder}) itself`);
    }
    const answer = new Promise<AdminResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.forwarded.delete(request.uuid);
        reject(new AppError('TIMEOUT', `worker ${request.workerId} (attached to aggregator instance ${holder}) did not answer ${request.command} within ${request.timeoutMs} ms`));
      }, request.timeoutMs);
      this.forwarded.set(request.uuid, (a) => {
        clearTimeout(timer);
        this.forwarded.delete(request.uuid);
        if (a.result) resolve(a.result);
        else reject(new AppError(a.error && a.error.code in ERROR_CODES ? (a.error.code as ErrorCode) : 'INTERNAL', a.error?.message ?? 'the holding instance gave an empty answer'));
      });
    });
    this.bus.live.publish(`${ADMIN_TOPIC}.${holder}`, request).catch((err: unknown) => {
      this.logger.warn({ err }, 'router: forwarding an admin command failed');
      this.forwarded.get(request.uuid)?.({ uuid: request.uuid, error: { code: 'UNAVAILABLE', message: `could not reach the aggregator instance holding worker ${request.workerId}; try again` } });
    });
    return answer;
  }

  /** An admin command another instance forwarded: run it on the worker attached here, answer the asker. */
  private runForwarded(r: AdminRequest): void {
    const topic = `${ADMIN_ANSWER_TOPIC}.${r.from}`;
    const answer = (a: AdminAnswer): void => {
      if (!fitsLiveEvent(topic, a)) {
        a = { uuid: r.uuid, error: { code: 'PAYLOAD_TOO_LARGE', message: `the answer of worker ${r.workerId} to ${r.command} is too large to relay between aggregator instances (~${MAX_LIVE_EVENT_BYTES} bytes); send the command to the instance holding the worker (${this.instanceId}) itself` } };
      }
      void this.bus.live.publish(topic, a).catch((err: unknown) => this.logger.warn({ err }, 'router: answering a forwarded admin command failed'));
    };
    // Only a worker attached here: a forwarded command is never forwarded again.
    const here = this.sendHere(r.tenant, r.workerId, r.command, r.payload, r.timeoutMs);
    if (!here) return answer({ uuid: r.uuid, error: { code: 'NOT_FOUND', message: notAttached(r.workerId).message } });
    here.then(
      (result) => answer({ uuid: r.uuid, result }),
      (err: unknown) => {
        const e = toAppError(err);
        answer({ uuid: r.uuid, error: { code: e.code, message: e.message } });
      },
    );
  }

  // ---- internals ----

  private validate(tenant: string, target: string, command: string, major: number, payload: unknown): string | undefined {
    let schema: Record<string, unknown> | undefined;
    let known = false;
    for (const s of this.sessions.values()) {
      if (s.tenant !== tenant) continue;
      const offer = s.offers.find((o) => o.name === target && (major === 0 || parseVersion(o.version)[0] === major));
      if (!offer) continue;
      known = true;
      const declared = s.commands.get(target)?.[command];
      if (declared && typeof declared === 'object') {
        schema = declared as Record<string, unknown>;
        break;
      }
    }
    if (!known) return undefined; // Served elsewhere: the instance that delivers it has the schema; the worker checks too.
    if (!schema) return `${target} does not declare the command ${command}`;
    // Compiled once per schema object (a session's, parsed at its hello): no key to build per command.
    let fn = this.validators.get(schema);
    if (!fn) {
      try {
        fn = this.ajv.compile(schema);
      } catch (err) {
        return `the schema ${target} declared for ${command} does not compile: ${(err as Error).message}`;
      }
      this.validators.set(schema, fn);
    }
    if (fn(payload)) return undefined;
    return `payload of ${command}: ${(fn.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`).join('; ')}`;
  }

  /** A queued command: hand it to one worker here serving the target, or let another instance try. */
  private async run(job: Job<QueuedCommand>): Promise<void> {
    const c = job.payload;
    if (Date.now() - c.timestamp > c.timeoutMs) {
      this.reply(c.replyInstance, c.replySession, this.commandEvent(c.tenant, c.uuid, 'FAILED', { error: `no worker serving ${c.target} took the command within ${c.timeoutMs} ms` }));
      return;
    }
    const received = this.handOver({ ...c, payload: Buffer.from(c.payload, 'utf8'), context: Buffer.from(c.context, 'utf8') });
    if (!received) throw new RetryLater(NOT_HERE_DELAY_MS, `no worker serving ${c.target} attached to this instance`);
    if (!(await received)) throw new RetryLater(0, `the worker chosen for ${c.uuid} sent no receipt within ${RECEIPT_TIMEOUT_MS} ms`);
  }

  /** A command's result event: to the admin waiter or the sender, wherever it is attached. */
  private routeResult(tenant: string, e: z.infer<typeof EventIn>): void {
    let payload: unknown;
    try {
      payload = parseJsonBytes(e.payload_json, 'event.payload_json');
    } catch {
      payload = undefined;
    }
    const admin = this.adminWaiters.get(e.reference_uuid);
    if (admin) {
      if (e.event !== 'ON_GOING') admin({ event: e.event, payload });
      return;
    }
    const origin = this.origins.get(e.reference_uuid);
    if (!origin) return;
    if (e.event !== 'ON_GOING') this.origins.delete(e.reference_uuid);
    this.pruneOrigins();
    this.reply(origin.instance, origin.session, { header: { ...e.header, tenant }, topic: 'command', event: e.event, reference_uuid: e.reference_uuid, payload_json: e.payload_json });
  }

  private reply(instance: string, sessionId: string, event: Event): void {
    if (instance === this.instanceId) {
      this.dispatcher.sendTo(sessionId, { event });
      return;
    }
    const envelope: ReplyEnvelope = {
      session: sessionId,
      event: { uuid: event.header.uuid, tenant: event.header.tenant, topic: event.topic, event: event.event, reference: event.reference_uuid, payload: event.payload_json.toString('utf8') },
    };
    void this.bus.live.publish(`${REPLY_TOPIC}.${instance}`, envelope).catch((err: unknown) => this.logger.warn({ err }, 'router: relaying a command result failed'));
  }

  private deliverReply(r: ReplyEnvelope): void {
    const e = r.event;
    this.dispatcher.sendTo(r.session, {
      event: { header: { uuid: e.uuid, tenant: e.tenant, timestamp_unix_ms: Date.now(), timeout_ms: 0, major: 1, minor: 0 }, topic: e.topic, event: e.event, reference_uuid: e.reference, payload_json: Buffer.from(e.payload, 'utf8') },
    });
  }

  private commandEvent(tenant: string, reference: string, event: 'FAILED' | 'SUCCEEDED', payload: unknown): Event {
    return { header: { uuid: randomUUID(), tenant, timestamp_unix_ms: Date.now(), timeout_ms: 0, major: 1, minor: 0 }, topic: 'command', event, reference_uuid: reference, payload_json: jsonBytes(payload) };
  }

  private seenBefore(uuid: string): boolean {
    return this.seen.seen(uuid);
  }

  private pruneOrigins(): void {
    if (this.origins.size < 10_000) return;
    const cutoff = Date.now() - 3_600_000;
    for (const [k, v] of this.origins.entriesNow()) if (v.at < cutoff) this.origins.delete(k);
  }
}

function notAttached(workerId: string): AppError {
  return new AppError('NOT_FOUND', `worker ${workerId} is not attached to any aggregator instance`);
}

/** Whether `payload` fits a live event named `name` (the transport refuses larger ones). */
function fitsLiveEvent(name: string, payload: unknown): boolean {
  return Buffer.byteLength(JSON.stringify({ name, payload })) <= MAX_LIVE_EVENT_BYTES;
}
