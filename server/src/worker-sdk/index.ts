/**
 * The TypeScript worker SDK: a process that serves components to a Plexus router over gRPC
 * (`plexus.router.v1`, proto/router.proto).
 *
 * ```ts
 * const worker = new Worker({
 *   routers: ['localhost:9090'],
 *   workerId: 'orders-1',
 *   enrolmentSecret: process.env.SECRET,            // first start only
 *   credentialFile: '/var/lib/orders/credential',   // written 0600, used on every later start
 *   components: [{ name: 'orders', version: '1.0.0', functions: { enrich: async ({ message }) => ({ emit: [{ body: { ...message.body, ok: true } }] }) } }],
 * });
 * await worker.start();
 * ```
 *
 * Glossary
 * - Connection: one stream to one aggregator instance; a worker attaches to every instance it
 *   is given and reconnects (with backoff) when a stream ends.
 * - Delivery: one step call; the handler gets the message, the node's fields, snapshot and
 *   credential, and an AbortSignal that fires on `cancel` (the step's time limit) or shutdown.
 * - Admin worker: answers `admin.list | start | stop | update | drain` commands on the same stream.
 * - Command failover (`sendCommand`): the aggregator instances are tried in random order, each
 *   for `timeoutMs / n`, until one answers the command's uuid; a late answer from an earlier
 *   one still counts. Receivers drop a command uuid they saw before, so a retry never runs twice.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BATCH_MAX_BYTES, IdMap, RecentIds, StreamWriter, loadRouterProto, parseJsonBytes, jsonBytes, type Command, type Delivery, type Event, type Hello, type RouterMessage, type Welcome, type WorkerMessage } from '../modules/router/router.protocol.js';

export interface StepInput {
  tenant: string;
  flowId: string;
  nodeId: string;
  executionId: string;
  /** Stable across retries of this step run: pass it on to remote APIs. */
  idempotencyKey: string;
  attempt: number;
  message: { id: string; body: unknown; headers: Record<string, unknown>; metadata: Record<string, unknown>; attachments: Record<string, unknown> };
  fields: Record<string, unknown>;
  snapshot: unknown;
  credentials?: Record<string, unknown>;
  credentialsType?: string;
  /** Fires when the router cancels the run (time limit) or the worker stops. */
  signal: AbortSignal;
}

export interface StepOutput {
  /** Messages to the next steps. */
  emit?: Array<{ body: unknown; headers?: Record<string, unknown>; metadata?: Record<string, unknown>; attachments?: Record<string, unknown>; delayMs?: number }>;
  snapshot?: unknown;
  /** Run this message again later, without counting as a failure. */
  rebound?: string;
  reply?: { status: number; headers?: Record<string, string>; body: unknown };
}

/** Throw it from a handler to choose how the engine treats the failure. */
export class WorkerStepError extends Error {
  override readonly name = 'WorkerStepError';
  constructor(
    message: string,
    readonly kind: 'user' | 'transient' = 'transient',
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export type StepHandler = (input: StepInput) => Promise<StepOutput | undefined | void>;
export type CommandHandler = (payload: unknown, ctx: { uuid: string; tenant: string; command: string }) => Promise<unknown>;

export interface WorkerComponent {
  name: string;
  version: string;
  functions: Record<string, StepHandler>;
  /** Commands this component answers, each with the JSON schema of its payload (the router validates it). */
  commands?: Record<string, { schema: Record<string, unknown>; handle: CommandHandler }>;
  /** Logical configuration keys this component needs. */
  configurationKeys?: Record<string, { mandatory?: boolean; description?: string }>;
}

export interface WorkerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface WorkerOptions {
  /** `host:port` of every aggregator instance. */
  routers: string[];
  workerId: string;
  /** The single-use secret from `POST /api/v1/workers/enrolments`; needed only until a credential is stored. */
  enrolmentSecret?: string | undefined;
  /** Where the per-worker credential is kept (mode 0600). */
  credentialFile: string;
  components: WorkerComponent[];
  /** Deliveries taken at once per connection. */
  concurrency?: number;
  configuration?: Record<string, unknown>;
  /** Event topics to hear. */
  subscriptions?: string[];
  onEvent?: (e: { topic: string; event: string; referenceUuid: string; payload: unknown; uuid: string }) => void;
  /**
   * TLS to the routers: `true` uses the system roots; a CA (PEM) pins the router's CA. With a
   * client certificate and key (PEM; a runtime's certificate from the hub's Connector) the worker
   * attaches without an enrolment secret or credential.
   */
  tls?: boolean | { ca?: Buffer | undefined; cert?: Buffer | undefined; key?: Buffer | undefined };
  logger?: WorkerLogger;
  /** First reconnect delay; doubles up to 10 s. */
  reconnectMs?: number;
  /** How long `start` waits for the first welcome. */
  connectTimeoutMs?: number;
  /** Called when a router refuses the worker for good after it started (credential revoked, …). */
  onRefused?: (err: WorkerRefusedError) => void;
}

/** The answer to a command: its result event. */
export interface CommandAnswer {
  event: string;
  payload: unknown;
  /** Which aggregator instance answered (address given in `routers`). */
  router: string;
}

/** A refusal by the router (wrong secret, forbidden component, bad hello): the worker stops. */
export class WorkerRefusedError extends Error {
  override readonly name = 'WorkerRefusedError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const silent: WorkerLogger = { info: () => {}, warn: () => {}, error: () => {} };

class Connection {
  stream: grpc.ClientDuplexStream<WorkerMessage, RouterMessage> | undefined;
  private writer: StreamWriter<WorkerMessage> | undefined;
  welcome: Welcome | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnect: NodeJS.Timeout | undefined;
  private backoffMs: number;
  readonly client: grpc.Client;
  private welcomed: Array<(w: Welcome | Error) => void> = [];

  constructor(
    readonly address: string,
    private readonly worker: Worker,
    private readonly opts: WorkerOptions,
  ) {
    const { client: Client } = loadRouterProto();
    const tls = typeof opts.tls === 'object' ? opts.tls : {};
    const creds = opts.tls ? grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
    this.client = new Client(address, creds, { 'grpc.keepalive_time_ms': 30_000, 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
    this.backoffMs = opts.reconnectMs ?? 200;
  }

  get attached(): boolean {
    return this.welcome !== undefined && this.stream !== undefined;
  }

  /** Resolves with the welcome, or rejects with the refusal / stream error of this attempt. */
  waitWelcome(): Promise<Welcome> {
    if (this.welcome) return Promise.resolve(this.welcome);
    return new Promise((resolve, reject) => this.welcomed.push((w) => (w instanceof Error ? reject(w) : resolve(w))));
  }

  open(): void {
    if (this.worker.stopped) return;
    const stream = (this.client as unknown as { Attach(): grpc.ClientDuplexStream<WorkerMessage, RouterMessage> }).Attach();
    this.stream = stream;
    // Batches only after a welcome that allows them (older routers do not read them).
    this.writer = new StreamWriter<WorkerMessage>(stream, (messages) => ({ batch: { messages } }), () => (this.stream === stream ? (this.welcome?.batch_max_bytes ?? 0) : 0));
    this.welcome = undefined;
    let refusal: WorkerRefusedError | undefined;
    const receive = (msg: RouterMessage & { body?: string }): void => {
      if ('welcome' in msg && msg.body === 'welcome') {
        this.welcome = msg.welcome;
        this.backoffMs = this.opts.reconnectMs ?? 200;
        this.worker.onWelcome(this, msg.welcome);
        this.heartbeat = setInterval(() => this.send({ heartbeat: { delivery_ids: this.worker.heldBy(this), draining: this.worker.draining } }), Math.max(50, msg.welcome.heartbeat_ms));
        this.heartbeat.unref();
        for (const w of this.welcomed.splice(0)) w(msg.welcome);
        return;
      }
      if ('refused' in msg && msg.body === 'refused') {
        refusal = new WorkerRefusedError(msg.refused.code, msg.refused.message);
        return;
      }
      this.worker.onMessage(this, msg);
    };
    stream.on('data', (msg: RouterMessage & { body?: string }) => {
      if (msg.body !== 'batch' || !('batch' in msg)) return receive(msg);
      for (const m of msg.batch.messages) if (this.stream === stream) receive(m as RouterMessage & { body?: string });
    });
    const ended = (err?: Error) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.welcome = undefined;
      clearInterval(this.heartbeat);
      this.worker.onDisconnect(this);
      const fatal = refusal && ['UNAUTHENTICATED', 'FORBIDDEN', 'VALIDATION_FAILED'].includes(refusal.code);
      for (const w of this.welcomed.splice(0)) w(refusal ?? err ?? new Error(`the stream to ${this.address} ended`));
      if (fatal) {
        this.worker.onFatal(refusal!);
        return;
      }
      if (this.worker.stopped) return;
      this.reconnect = setTimeout(() => this.open(), this.backoffMs);
      this.reconnect.unref();
      this.backoffMs = Math.min(10_000, this.backoffMs * 2);
    };
    stream.on('error', (err: Error) => ended(err));
    stream.on('end', () => ended());
    stream.on('close', () => ended());
    this.send({ hello: this.worker.hello() });
  }

  send(msg: WorkerMessage): boolean {
    const w = this.writer;
    if (!this.stream || !w || w.closed) return false;
    w.write(msg);
    return true;
  }

  close(): void {
    clearTimeout(this.reconnect);
    clearInterval(this.heartbeat);
    const s = this.stream;
    this.writer?.flush();
    this.stream = undefined;
    if (s) {
      s.end();
      s.cancel();
    }
    this.client.close();
    for (const w of this.welcomed.splice(0)) w(new Error('the worker stopped'));
  }
}

interface Running {
  connection: Connection;
  abort: AbortController;
  component: string;
}

export class Worker {
  stopped = false;
  draining = false;
  private started = false;
  private readonly connections: Connection[];
  private readonly running = new IdMap<Running>();
  private readonly stoppedComponents = new Set<string>();
  private readonly commandWaiters = new IdMap<(a: CommandAnswer) => void>();
  /** Command uuids taken lately: a command repeated by the sender's failover runs once. */
  private readonly seenCommands = new RecentIds(10_000);
  /** The context every command this worker sends carries (who sent it). */
  private commandContext: Buffer | undefined;
  private readonly log: WorkerLogger;
  private credential: string | undefined;
  private onIdle: Array<() => void> = [];
  private fatal: WorkerRefusedError | undefined;
  private readonly components: Map<string, WorkerComponent>;
  /** Deliveries completed, for tests and the bench. */
  completed = 0;

  constructor(private readonly opts: WorkerOptions) {
    if (opts.routers.length === 0) throw new Error('a worker needs at least one router address');
    this.log = opts.logger ?? silent;
    this.components = new Map(opts.components.map((c) => [`${c.name}@${c.version}`, c]));
    this.credential = readCredential(opts.credentialFile);
    this.connections = opts.routers.map((r) => new Connection(r, this, opts));
  }

  /**
   * Attaches to the routers. The first one is attached before the others, so an enrolment secret
   * is used once and the credential it yields opens the rest. Rejects on a refusal.
   */
  async start(): Promise<void> {
    const timeoutMs = this.opts.connectTimeoutMs ?? 30_000;
    const [first, ...rest] = this.connections;
    try {
      first!.open();
      await withTimeout(first!.waitWelcome(), timeoutMs, `no welcome from ${first!.address} within ${timeoutMs} ms`);
      for (const c of rest) c.open();
      // The others are best effort: one that is down now is retried in the background.
      await Promise.allSettled(rest.map((c) => withTimeout(c.waitWelcome(), timeoutMs, 'timeout')));
      if (this.fatal) throw this.fatal;
    } catch (err) {
      // Nothing may keep the process alive after a failed start.
      await this.stop();
      throw err;
    }
    this.started = true;
  }

  /**
   * Takes nothing new from now on, and tells every router at once (a heartbeat saying so), so that
   * the instances other than the one an admin.drain came through stop delivering too.
   */
  private startDraining(): void {
    if (this.draining) return;
    this.draining = true;
    for (const c of this.connections) if (c.attached) c.send({ heartbeat: { delivery_ids: this.heldBy(c), draining: true } });
  }

  /** Stops: with `drain`, finishes the deliveries it holds first (they are not cancelled). */
  async stop(opts: { drain?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.startDraining();
    if (opts.drain && this.running.size > 0) {
      await withTimeout(new Promise<void>((r) => this.onIdle.push(r)), opts.timeoutMs ?? 30_000, 'drain timeout').catch(() => {});
    }
    this.stopped = true;
    for (const r of this.running.values()) r.abort.abort(new Error('the worker stopped'));
    for (const c of this.connections) c.close();
  }

  /** Attached connections (addresses). */
  attachedTo(): string[] {
    return this.connections.filter((c) => c.attached).map((c) => c.address);
  }

  get inFlight(): number {
    return this.running.size;
  }

  /**
   * Sends a command to whichever aggregator instance answers: instances in random order, each
   * given `timeoutMs / n` before the next is tried; the first result event wins.
   */
  async sendCommand(target: string, command: string, payload: unknown, o: { timeoutMs?: number; major?: number; signal?: AbortSignal } = {}): Promise<CommandAnswer> {
    const timeoutMs = o.timeoutMs ?? 10_000;
    const uuid = randomUUID();
    const order = shuffle(this.connections.filter((c) => c.attached));
    if (order.length === 0) throw new Error('the worker is attached to no router');
    const perTryMs = Math.floor(timeoutMs / order.length);
    let settle!: (a: CommandAnswer) => void;
    const answered = new Promise<CommandAnswer>((resolve) => (settle = resolve));
    this.commandWaiters.set(uuid, (a) => settle(a));
    try {
      for (const c of order) {
        if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
        const header = { uuid, tenant: c.welcome?.tenant ?? '', timestamp_unix_ms: Date.now(), timeout_ms: timeoutMs, major: o.major ?? 0, minor: 0 };
        const cmd: Command = { header, target, command, context_json: (this.commandContext ??= jsonBytes({ from: this.opts.workerId })), payload_json: jsonBytes(payload) };
        c.send({ command: cmd });
        const result = await raceAbort(answered, perTryMs, o.signal);
        if (result) return result;
        this.log.warn({ router: c.address, uuid }, 'worker: no answer to the command; trying the next aggregator instance');
      }
      throw new Error(`no aggregator instance answered command ${command} to ${target} within ${timeoutMs} ms (tried ${order.map((c) => c.address).join(', ')})`);
    } finally {
      this.commandWaiters.delete(uuid);
    }
  }

  /** Publishes an event to the hub's bus and to subscribed workers (on the first attached router). */
  publishEvent(topic: string, event: string, payload: unknown, referenceUuid = ''): string {
    const uuid = randomUUID();
    const c = this.connections.find((x) => x.attached);
    if (!c) throw new Error('the worker is attached to no router');
    c.send({ event: { header: { uuid, tenant: c.welcome?.tenant ?? '', timestamp_unix_ms: Date.now(), timeout_ms: 0, major: 1, minor: 0 }, topic, event, reference_uuid: referenceUuid, payload_json: jsonBytes(payload) } });
    return uuid;
  }

  // ---- called by connections ----

  hello(): Hello {
    return {
      worker_id: this.opts.workerId,
      enrolment_secret: this.credential ? '' : (this.opts.enrolmentSecret ?? ''),
      credential: this.credential ?? '',
      components: this.opts.components.map((c) => ({
        name: c.name,
        version: c.version,
        functions: Object.keys(c.functions),
        commands_json: jsonBytes(c.commands ? Object.fromEntries(Object.entries(c.commands).map(([k, v]) => [k, v.schema])) : undefined),
        configuration_keys_json: jsonBytes(c.configurationKeys),
      })),
      concurrency: this.opts.concurrency ?? 16,
      configuration_json: jsonBytes(this.opts.configuration),
      subscriptions: this.opts.subscriptions ?? [],
      sdk: 'plexus-worker-sdk-ts/1',
      batch_max_bytes: BATCH_MAX_BYTES,
    };
  }

  onWelcome(c: Connection, w: Welcome): void {
    if (w.credential) {
      this.credential = w.credential;
      writeCredential(this.opts.credentialFile, w.credential);
    }
    this.log.info({ router: c.address, tenant: w.tenant, instance: w.instance_id }, 'worker: attached');
  }

  onDisconnect(c: Connection): void {
    // The router gives what this connection held to another worker: stop working on it.
    for (const [id, r] of this.running.entriesNow()) {
      if (r.connection === c) {
        r.abort.abort(new Error('the connection to the router ended'));
        this.running.delete(id);
      }
    }
    this.checkIdle();
  }

  onFatal(err: WorkerRefusedError): void {
    this.fatal = err;
    this.log.error({ code: err.code, reason: err.message }, 'worker: refused by the router');
    if (this.started) this.opts.onRefused?.(err);
  }

  heldBy(c: Connection): string[] {
    return this.running
      .entriesNow()
      .filter(([, r]) => r.connection === c)
      .map(([id]) => id);
  }

  onMessage(c: Connection, msg: RouterMessage & { body?: string }): void {
    switch (msg.body) {
      case 'delivery':
        if ('delivery' in msg) void this.runDelivery(c, msg.delivery);
        return;
      case 'cancel':
        if ('cancel' in msg) {
          const r = this.running.get(msg.cancel.delivery_id);
          r?.abort.abort(new Error(msg.cancel.reason || 'cancelled by the router'));
          this.running.delete(msg.cancel.delivery_id);
          this.checkIdle();
        }
        return;
      case 'drain':
        this.log.info({ router: c.address }, 'worker: the router asks to drain');
        return;
      case 'command':
        if ('command' in msg) void this.runCommand(c, msg.command);
        return;
      case 'event':
        if ('event' in msg) this.onEventMessage(c, msg.event);
        return;
      default:
        return;
    }
  }

  // ---- internals ----

  private onEventMessage(c: Connection, e: Event): void {
    let payload: unknown;
    try {
      payload = parseJsonBytes(e.payload_json, 'payload_json');
    } catch {
      payload = undefined;
    }
    if (e.topic === 'command') {
      const waiter = this.commandWaiters.get(e.reference_uuid);
      if (waiter && e.event !== 'ON_GOING') waiter({ event: e.event, payload, router: c.address });
      return;
    }
    this.opts.onEvent?.({ topic: e.topic, event: e.event, referenceUuid: e.reference_uuid, payload, uuid: e.header.uuid });
  }

  private async runDelivery(c: Connection, d: Delivery): Promise<void> {
    const key = `${d.component}@${d.version}`;
    const component = this.components.get(key);
    const handler = component?.functions[d.function];
    const fail = (message: string, kind: 'user' | 'transient', retryAfterMs = 0) =>
      c.send({ outcome: { delivery_id: d.delivery_id, result_json: Buffer.alloc(0), error: { message, kind, retry_after_ms: retryAfterMs } } });
    if (!handler) return void fail(`this worker does not serve ${key} ${d.function}`, 'transient');
    if (this.draining || this.stoppedComponents.has(key)) return void fail(`${key} is ${this.draining ? 'draining' : 'stopped'} on worker ${this.opts.workerId}`, 'transient');
    const abort = new AbortController();
    this.running.set(d.delivery_id, { connection: c, abort, component: key });
    try {
      const input = parseJsonBytes(d.payload_json, 'payload_json') as Omit<StepInput, 'signal'>;
      const out = (await handler({ ...input, signal: abort.signal })) ?? {};
      if (!this.running.has(d.delivery_id)) return; // cancelled or taken over meanwhile
      const result = {
        messages: (out.emit ?? []).map((m) => ({
          message: { body: m.body ?? null, headers: m.headers ?? {}, metadata: m.metadata ?? {}, attachments: m.attachments ?? {} },
          ...(m.delayMs !== undefined ? { delayMs: m.delayMs } : {}),
        })),
        ...(out.snapshot !== undefined ? { snapshot: { value: out.snapshot } } : {}),
        ...(out.rebound !== undefined ? { rebound: { reason: out.rebound } } : {}),
        ...(out.reply !== undefined ? { reply: { status: out.reply.status, headers: out.reply.headers ?? {}, body: out.reply.body } } : {}),
      };
      c.send({ outcome: { delivery_id: d.delivery_id, result_json: jsonBytes(result) } });
      this.completed++;
    } catch (err) {
      if (!this.running.has(d.delivery_id)) return;
      if (err instanceof WorkerStepError) fail(err.message, err.kind, err.retryAfterMs);
      else fail(err instanceof Error ? err.message : String(err), err instanceof SyntaxError || err instanceof TypeError ? 'user' : 'transient');
    } finally {
      this.running.delete(d.delivery_id);
      this.checkIdle();
    }
  }

  private async runCommand(c: Connection, cmd: Command): Promise<void> {
    const uuid = cmd.header.uuid;
    c.send({ receipt: { uuid } });
    if (this.seenCommands.seen(uuid)) return;
    const answer = (event: 'SUCCEEDED' | 'FAILED' | 'ON_GOING', payload: unknown): void =>
      void c.send({
        event: { header: { uuid: randomUUID(), tenant: cmd.header.tenant, timestamp_unix_ms: Date.now(), timeout_ms: 0, major: 1, minor: 0 }, topic: 'command', event, reference_uuid: uuid, payload_json: jsonBytes(payload) },
      });
    try {
      const payload = parseJsonBytes(cmd.payload_json, 'payload_json');
      if (cmd.target === 'admin') return answer('SUCCEEDED', await this.admin(cmd.command, (payload ?? {}) as Record<string, unknown>, () => answer('ON_GOING', { draining: true })));
      const component = [...this.components.values()].find((x) => x.name === cmd.target && x.commands?.[cmd.command]);
      if (!component) return answer('FAILED', { error: `${cmd.target} on worker ${this.opts.workerId} has no command ${cmd.command}` });
      answer('SUCCEEDED', await component.commands![cmd.command]!.handle(payload, { uuid, tenant: cmd.header.tenant, command: cmd.command }));
    } catch (err) {
      answer('FAILED', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** The admin worker. */
  private async admin(command: string, payload: Record<string, unknown>, progress: () => void): Promise<unknown> {
    const named = (): string[] => {
      const name = typeof payload.component === 'string' ? payload.component : undefined;
      const version = typeof payload.version === 'string' ? payload.version : undefined;
      const keys = [...this.components.keys()].filter((k) => !name || k === `${name}@${version ?? k.split('@')[1]}`);
      if (keys.length === 0) throw new Error(`no component ${name ?? ''}${version ? `@${version}` : ''} on worker ${this.opts.workerId}`);
      return keys;
    };
    switch (command) {
      case 'admin.list':
        return {
          workerId: this.opts.workerId,
          draining: this.draining,
          inFlight: this.running.size,
          components: [...this.components.values()].map((c) => ({ name: c.name, version: c.version, functions: Object.keys(c.functions), state: this.stoppedComponents.has(`${c.name}@${c.version}`) ? 'stopped' : 'running' })),
        };
      case 'admin.stop':
        for (const k of named()) this.stoppedComponents.add(k);
        return { stopped: named() };
      case 'admin.start':
        for (const k of named()) this.stoppedComponents.delete(k);
        return { started: named() };
      case 'admin.update': {
        const configuration = payload.configuration;
        if (typeof configuration !== 'object' || configuration === null || Array.isArray(configuration)) throw new Error('admin.update needs {configuration: {…}}');
        const replies = await Promise.all(this.connections.filter((c) => c.attached).map((c) => this.reconfigure(c, configuration as Record<string, unknown>)));
        return replies[0];
      }
      case 'admin.drain': {
        this.startDraining();
        if (this.running.size > 0) {
          progress();
          await new Promise<void>((r) => this.onIdle.push(r));
        }
        return { drained: true, workerId: this.opts.workerId };
      }
      default:
        throw new Error(`unknown admin command ${command}`);
    }
  }

  private reconfigure(c: Connection, configuration: Record<string, unknown>): Promise<{ version: number; configuration: unknown }> {
    const uuid = randomUUID();
    return new Promise((resolve, reject) => {
      const listener = (msg: RouterMessage & { body?: string }) => {
        if (msg.body !== 'configuration_reply' || !('configuration_reply' in msg) || msg.configuration_reply.reference_uuid !== uuid) return;
        c.stream?.off('data', listener);
        if (msg.configuration_reply.error) reject(new Error(msg.configuration_reply.error));
        else resolve({ version: msg.configuration_reply.version, configuration: parseJsonBytes(msg.configuration_reply.configuration_json, 'configuration_json') });
      };
      c.stream?.on('data', listener);
      c.send({ configuration: { uuid, configuration_json: jsonBytes(configuration) } });
    });
  }

  private checkIdle(): void {
    if (this.running.size === 0) for (const r of this.onIdle.splice(0)) r();
  }
}

function readCredential(file: string): string | undefined {
  try {
    const v = fs.readFileSync(file, 'utf8').trim();
    return v || undefined;
  } catch {
    return undefined;
  }
}

function writeCredential(file: string, credential: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, `${credential}\n`, { mode: 0o600 });
  // An existing file keeps its mode on write: make sure nobody else can read it.
  fs.chmodSync(file, 0o600);
}

function shuffle<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}

/** The answer if it comes within `ms`, else undefined; rejects when `signal` aborts. */
function raceAbort<T>(p: Promise<T>, ms: number, signal: AbortSignal | undefined): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = setTimeout(() => done(() => resolve(undefined)), ms);
    const onAbort = () => done(() => reject(signal?.reason ?? new Error('aborted')));
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = (f: () => void) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      f();
    };
    p.then((v) => done(() => resolve(v)), (err: unknown) => done(() => reject(err)));
  });
}
