/**
 * The gRPC face of an aggregator instance: `plexus.router.v1.Router/Attach` on PLEXUS_GRPC_PORT.
 *
 * One stream per worker. Its life: `hello` within PLEXUS_GRPC_HELLO_TIMEOUT (else refused and
 * closed) → Secret exchange (enrolment secret or credential) → offers checked against the
 * enrolment → logical configuration validated and stored → `welcome` → deliveries, heartbeats,
 * outcomes, commands and events until the stream ends. Every refusal is a `refused {code,
 * message}` naming the problem, then the stream ends with a matching gRPC status; one bad stream
 * never touches another (a malformed frame or an oversized message ends that call only).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { experimental as grpcExperimental } from '@grpc/grpc-js';
import type { z } from 'zod';
import { isAppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Dispatcher, Offer, WorkerSession } from './router.dispatch.js';
import {
  BATCH_MAX_BYTES,
  CommandIn,
  EventIn,
  HelloIn,
  StepOutcomeIn,
  StreamWriter,
  jsonBytes,
  loadRouterProto,
  parseJsonBytes,
  type RouterMessage,
  type WorkerMessage,
} from './router.protocol.js';
import type { ConfigurationKey, Identity, RouterService, WorkerCertificates } from './router.service.js';

export interface GrpcOptions {
  host: string;
  port: number;
  aggregatorName: string;
  instanceId: string;
  maxMessageBytes: number;
  leaseMs: number;
  helloTimeoutMs: number;
  tls: { certFile: string; keyFile: string } | undefined;
  /**
   * The Connector's client certificates, when this process has them (read at start): with TLS on,
   * a worker may present a certificate issued by the hub's CA instead of a secret.
   */
  certificates?: (() => WorkerCertificates | undefined) | undefined;
}

/** How often attached certificate workers are checked again (revocations also end them at once). */
const CERTIFICATE_RECHECK_MS = 5_000;

/**
 * Server credentials that ask for a client certificate but do not require one (workers with a
 * secret or credential have none): grpc-js's createSsl either never asks or refuses a connection
 * without one. A certificate that does not verify against `ca` leaves the connection
 * unauthorised, and the stream's auth context then carries no certificate.
 */
function optionalClientCertificates(cert: Buffer, key: Buffer, ca: Buffer): grpc.ServerCredentials {
  const provider: grpcExperimental.CertificateProvider = {
    // Answered after the call: grpc-js registers the server's watcher only after adding these listeners.
    addCaCertificateListener: (l) => queueMicrotask(() => l({ caCertificate: ca })),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (l) => queueMicrotask(() => l({ certificate: cert, privateKey: key })),
    removeIdentityCertificateListener: () => {},
  };
  // The same provider serves both roles, so the order of the two (named differently in grpc-js's
  // declaration and its implementation) does not matter.
  return grpcExperimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** What the stream handler hands on once a worker is attached (commands, events). */
export interface MessageSink {
  command(session: AttachedSession, msg: z.infer<typeof CommandIn>): void;
  event(session: AttachedSession, msg: z.infer<typeof EventIn>): void;
  receipt(session: AttachedSession, uuid: string): void;
  attached(session: AttachedSession): void;
  detached(session: AttachedSession): void;
}

export interface AttachedSession extends WorkerSession {
  identity: Identity;
  subscriptions: readonly string[];
  /** Command schemas the worker declared: `component` → command → JSON schema. */
  commands: ReadonlyMap<string, Record<string, unknown>>;
}

type GrpcCodeName = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'VALIDATION_FAILED' | 'PAYLOAD_TOO_LARGE' | 'TIMEOUT' | 'UNAVAILABLE';

const STATUS: Record<GrpcCodeName, grpc.status> = {
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  FORBIDDEN: grpc.status.PERMISSION_DENIED,
  VALIDATION_FAILED: grpc.status.INVALID_ARGUMENT,
  PAYLOAD_TOO_LARGE: grpc.status.RESOURCE_EXHAUSTED,
  TIMEOUT: grpc.status.DEADLINE_EXCEEDED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
};

function issues(err: z.ZodError, prefix: string): string {
  return err.issues.map((i) => `${[prefix, ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
}

function declaredKeys(offers: ReadonlyArray<{ configuration_keys_json: Buffer }>): Map<string, ConfigurationKey> {
  const keys = new Map<string, ConfigurationKey>();
  for (const o of offers) {
    const parsed = parseJsonBytes(o.configuration_keys_json, 'components[].configuration_keys_json');
    if (parsed === undefined) continue;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SyntaxError('components[].configuration_keys_json must be a JSON object');
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      const mandatory = typeof v === 'object' && v !== null && (v as { mandatory?: unknown }).mandatory === true;
      keys.set(k, { mandatory: mandatory || keys.get(k)?.mandatory === true });
    }
  }
  return keys;
}

/** `1.2.3.4:5678` / `[::1]:5678` → the address alone. */
function peerIp(peer: string): string {
  const m = /^\[?([^\]]*?)\]?:\d+$/.exec(peer);
  return m?.[1] ?? peer;
}

/** The most messages a worker's batch may hold (the SDK sends at most 256). */
const BATCH_MAX_MESSAGES_IN = 1_024;

export class RouterGrpcServer {
  private server: grpc.Server | undefined;
  private listener: net.Server | undefined;
  private injector: grpc.ConnectionInjector | undefined;
  /** Open streams and their writers. */
  private readonly streams = new Map<grpc.ServerDuplexStream<WorkerMessage, RouterMessage>, StreamWriter<RouterMessage>>();
  /** Configuration keys each session's components declared at hello. */
  private readonly declared = new Map<string, Map<string, ConfigurationKey>>();
  /** Sessions attached with a client certificate: checked again on revocations. */
  private readonly certified = new Map<string, { fingerprint: string; ip: string; refuse: (code: GrpcCodeName, message: string) => void }>();
  private certificates: WorkerCertificates | undefined;
  private recheckTimer: NodeJS.Timeout | undefined;
  boundPort = 0;

  constructor(
    private readonly opts: GrpcOptions,
    private readonly dispatcher: Dispatcher,
    private readonly service: RouterService,
    private readonly sink: MessageSink,
    private readonly logger: Logger,
  ) {}

  get secure(): boolean {
    return this.opts.tls !== undefined;
  }

  async start(): Promise<number> {
    const { service } = loadRouterProto();
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.opts.maxMessageBytes,
      'grpc.max_send_message_length': this.opts.maxMessageBytes,
      // Dead peers are noticed even when a worker sends nothing (its lease covers the rest).
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    server.addService(service, { Attach: (call: grpc.ServerDuplexStream<WorkerMessage, RouterMessage>) => this.attach(call) });
    this.certificates = this.opts.tls ? this.opts.certificates?.() : undefined;
    let creds: grpc.ServerCredentials;
    if (!this.opts.tls) creds = grpc.ServerCredentials.createInsecure();
    else {
      const cert = fs.readFileSync(this.opts.tls.certFile);
      const key = fs.readFileSync(this.opts.tls.keyFile);
      creds = this.certificates
        ? optionalClientCertificates(cert, key, Buffer.from(this.certificates.caPem))
        : grpc.ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }], false);
    }
    if (this.certificates) {
      this.recheckTimer = setInterval(() => void this.recheckCertificates(), CERTIFICATE_RECHECK_MS);
      this.recheckTimer.unref();
    }
    // Our own listener hands its connections to grpc-js: its accepted sockets would keep Nagle's
    // algorithm on, which holds the router's small writes (a delivery, a command, a result event)
    // until the worker's delayed ACK and tripled the median command round trip on loopback.
    const injector = server.createConnectionInjector(creds);
    const listener = net.createServer({ noDelay: true }, (socket) => injector.injectConnection(socket));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: this.opts.host, port: this.opts.port }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    listener.on('error', (err) => this.logger.warn({ err }, 'router: gRPC listener error'));
    this.boundPort = (listener.address() as AddressInfo).port;
    this.listener = listener;
    this.injector = injector;
    this.server = server;
    this.logger.info({ port: this.boundPort, tls: this.secure, clientCertificates: this.certificates !== undefined, aggregator: this.opts.aggregatorName }, 'router: gRPC listening');
    return this.boundPort;
  }

  async stop(graceMs: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    clearInterval(this.recheckTimer);
    // No new connections; the open ones end below.
    this.listener?.close();
    const injector = this.injector;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        injector?.destroy();
        server.forceShutdown();
        resolve();
      }, graceMs);
      // Workers hold their streams open for ever: end them so the graceful shutdown can finish.
      for (const [s, writer] of this.streams) {
        writer.flush();
        s.end();
      }
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Ends the streams whose certificate is no longer accepted (revoked, expired, its runtime gone),
   * as the mTLS listener refuses the next request of a connection opened before a revocation.
   */
  async recheckCertificates(): Promise<void> {
    const certs = this.certificates;
    if (!certs) return;
    for (const [sessionId, c] of [...this.certified]) {
      try {
        await certs.identityOf(c.fingerprint, c.ip);
      } catch (err) {
        if (!this.certified.has(sessionId)) continue;
        c.refuse('UNAUTHENTICATED', err instanceof Error ? err.message : String(err));
      }
    }
  }

  /** A revocation was announced (connector.certificates.revoked): forget and check again at once. */
  onCertificatesRevoked(): Promise<void> {
    this.certificates?.onRevoked();
    return this.recheckCertificates();
  }

  /** Open streams, attached or not (metrics, the idle-connection test). */
  get openStreams(): number {
    return this.streams.size;
  }

  private attach(call: grpc.ServerDuplexStream<WorkerMessage, RouterMessage>): void {
    const sessionId = randomUUID();
    let session: AttachedSession | undefined;
    let ended = false;
    let helloSeen = false;
    const log = this.logger.child({ sessionId, peer: call.getPeer() });

    // Batches go to a worker only once its hello said it reads them (and how large).
    let workerBatchBytes = 0;
    const writer = new StreamWriter<RouterMessage>(call, (messages) => ({ batch: { messages } }), () => workerBatchBytes);
    this.streams.set(call, writer);
    const send = (msg: RouterMessage): void => {
      if (!ended) writer.write(msg);
    };
    const finish = (reason: string): void => {
      if (ended) return;
      ended = true;
      clearTimeout(helloTimer);
      this.streams.delete(call);
      this.declared.delete(sessionId);
      this.certified.delete(sessionId);
      if (session) {
        this.dispatcher.detach(sessionId, reason);
        this.sink.detached(session);
      }
    };
    const refuse = (code: GrpcCodeName, message: string): void => {
      log.info({ code, reason: message }, 'router: stream refused');
      send({ refused: { code, message } });
      writer.flush();
      finish(`refused: ${message}`);
      call.emit('error', { code: STATUS[code], details: message });
    };

    const helloTimer = setTimeout(() => refuse('TIMEOUT', `no hello within ${this.opts.helloTimeoutMs} ms`), this.opts.helloTimeoutMs);
    helloTimer.unref();

    call.on('data', (raw: Record<string, unknown>) => {
      if (ended) return;
      const body = raw.body as string | undefined;
      if (!helloSeen) {
        if (body !== 'hello') return refuse('VALIDATION_FAILED', `the first message must be hello, got ${body ?? 'an empty message'}`);
        helloSeen = true;
        clearTimeout(helloTimer);
        const batchBytes = (raw.hello as { batch_max_bytes?: unknown } | undefined)?.batch_max_bytes;
        if (typeof batchBytes === 'number' && Number.isSafeInteger(batchBytes) && batchBytes > 0) workerBatchBytes = batchBytes;
        void this.welcome(raw.hello, sessionId, call, send, () => writer.flush(), log).then(
          (s) => {
            if (ended) return;
            session = s;
            if (s.identity.certificate) this.certified.set(sessionId, { fingerprint: s.identity.certificate, ip: peerIp(call.getPeer()), refuse });
            this.dispatcher.attach(s);
            this.sink.attached(s);
          },
          (err: unknown) => {
            if (isAppError(err) && err.code in STATUS) return refuse(err.code as GrpcCodeName, err.message);
            if (err instanceof SyntaxError) return refuse('VALIDATION_FAILED', err.message);
            log.error({ err }, 'router: hello failed');
            refuse('UNAVAILABLE', 'the router could not check the hello; try again');
          },
        );
        return;
      }
      if (!session) return refuse('VALIDATION_FAILED', 'wait for welcome before sending more');
      this.dispatcher.touch(sessionId);
      try {
        if (body !== 'batch') return this.handle(session, body, raw);
        const messages = (raw.batch as { messages?: unknown } | undefined)?.messages;
        if (!Array.isArray(messages)) throw new Error('batch: messages is missing');
        // A batch is handled in one go: bounded, so one worker cannot hold the event loop with it.
        if (messages.length > BATCH_MAX_MESSAGES_IN) throw new Error(`batch: ${messages.length} messages, at most ${BATCH_MAX_MESSAGES_IN} in one batch`);
        for (const m of messages as Array<Record<string, unknown>>) {
          if (ended) return;
          if (m.body === 'batch') throw new Error('batch: a batch cannot hold another batch');
          this.handle(session, m.body as string | undefined, m);
        }
      } catch (err) {
        refuse('VALIDATION_FAILED', err instanceof Error ? err.message : String(err));
      }
    });
    call.on('end', () => {
      finish('stream ended');
      writer.flush();
      if (!call.writableEnded) call.end();
    });
    call.on('error', (err: Error) => {
      log.debug({ err: err.message }, 'router: stream error');
      finish(`stream error: ${err.message}`);
    });
    call.on('cancelled', () => finish('stream cancelled'));
    call.on('close', () => finish('stream closed'));
  }

  private async welcome(
    raw: unknown,
    sessionId: string,
    call: grpc.ServerDuplexStream<WorkerMessage, RouterMessage>,
    send: (msg: RouterMessage) => void,
    flush: () => void,
    log: Logger,
  ): Promise<AttachedSession> {
    const parsed = HelloIn.safeParse(raw);
    if (!parsed.success) throw new SyntaxError(`hello: ${issues(parsed.error, 'hello')}`);
    const hello = parsed.data;
    // A secret or credential in the hello is what the worker means to use; else its certificate.
    const fingerprint = this.certificates && !hello.credential && !hello.enrolment_secret ? call.getAuthContext().sslPeerCertificate?.fingerprint256 : undefined;
    const identity =
      fingerprint && this.certificates
        ? await this.service.authenticateCertificate(this.certificates, fingerprint, peerIp(call.getPeer()), hello)
        : await this.service.authenticate(hello, this.certificates !== undefined);
    this.service.checkOffers(identity, hello.components);
    const declared = declaredKeys(hello.components);
    const wanted = parseJsonBytes(hello.configuration_json, 'hello.configuration_json');
    if (wanted !== undefined && (typeof wanted !== 'object' || wanted === null || Array.isArray(wanted))) throw new SyntaxError('hello.configuration_json must be a JSON object');
    const configuration = await this.service.applyConfiguration(identity, declared, wanted as Record<string, unknown> | undefined);
    this.declared.set(sessionId, declared);
    const commands = new Map<string, Record<string, unknown>>();
    for (const o of hello.components) {
      const c = parseJsonBytes(o.commands_json, `components.${o.name}.commands_json`);
      if (c === undefined) continue;
      if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new SyntaxError(`components.${o.name}.commands_json must be a JSON object of command → JSON schema`);
      commands.set(o.name, c as Record<string, unknown>);
    }
    const offers: Offer[] = hello.components.map((o) => ({ name: o.name, version: o.version, functions: new Set(o.functions) }));
    send({
      welcome: {
        worker_id: identity.workerId,
        tenant: identity.tenant,
        credential: identity.newCredential ?? '',
        lease_ms: this.opts.leaseMs,
        heartbeat_ms: Math.max(50, Math.floor(this.opts.leaseMs / 4)),
        configuration_json: jsonBytes(configuration.configuration),
        configuration_version: configuration.version,
        aggregator: this.opts.aggregatorName,
        instance_id: this.opts.instanceId,
        // Half the receive limit: StreamWriter's size is an estimate.
        batch_max_bytes: Math.min(BATCH_MAX_BYTES, Math.floor(this.opts.maxMessageBytes / 2)),
      },
    });
    log.debug({ workerId: identity.workerId, tenant: identity.tenant }, 'router: welcome sent');
    return {
      sessionId,
      tenant: identity.tenant,
      workerId: identity.workerId,
      offers,
      concurrency: hello.concurrency || 1,
      secure: this.secure,
      connectedAt: new Date(),
      identity,
      subscriptions: hello.subscriptions,
      commands,
      send,
      close: (reason) => {
        send({ refused: { code: 'TIMEOUT', message: reason } });
        flush();
        call.emit('error', { code: grpc.status.DEADLINE_EXCEEDED, details: reason });
      },
    };
  }

  private handle(session: AttachedSession, body: string | undefined, raw: Record<string, unknown>): void {
    switch (body) {
      case 'heartbeat':
        // A worker draining through another instance's admin command: no more deliveries from here either.
        if ((raw.heartbeat as { draining?: unknown } | undefined)?.draining === true) this.dispatcher.drain(session.sessionId);
        return;
      case 'outcome': {
        const o = StepOutcomeIn.safeParse(raw.outcome);
        if (!o.success) throw new Error(`outcome: ${issues(o.error, 'outcome')}`);
        this.dispatcher.outcome(session.sessionId, o.data);
        return;
      }
      case 'receipt':
        return this.sink.receipt(session, String((raw.receipt as { uuid?: unknown } | undefined)?.uuid ?? ''));
      case 'command': {
        const c = CommandIn.safeParse(raw.command);
        if (!c.success) throw new Error(`command: ${issues(c.error, 'command')}`);
        return this.sink.command(session, c.data);
      }
      case 'event': {
        const e = EventIn.safeParse(raw.event);
        if (!e.success) throw new Error(`event: ${issues(e.error, 'event')}`);
        return this.sink.event(session, e.data);
      }
      case 'config_request': {
        const r = raw.config_request as { uuid?: string; component?: string };
        const offer = session.offers.find((o) => o.name === r.component);
        session.send({
          config_reply: offer
            ? { reference_uuid: r.uuid ?? '', config_json: jsonBytes({ component: offer.name, version: offer.version, functions: [...offer.functions], commands: session.commands.get(offer.name) ?? {} }), error: '' }
            : { reference_uuid: r.uuid ?? '', config_json: Buffer.alloc(0), error: `this worker does not serve ${r.component}` },
        });
        return;
      }
      case 'configuration': {
        const r = raw.configuration as { uuid?: string; configuration_json?: Buffer };
        void this.reconfigure(session, r.uuid ?? '', r.configuration_json);
        return;
      }
      case 'hello':
        throw new Error('hello was sent twice');
      default:
        throw new Error(`unknown message ${body ?? '(empty)'}`);
    }
  }

  private async reconfigure(session: AttachedSession, uuid: string, json: Buffer | undefined): Promise<void> {
    try {
      const wanted = parseJsonBytes(json, 'configuration.configuration_json');
      if (typeof wanted !== 'object' || wanted === null || Array.isArray(wanted)) throw new SyntaxError('configuration.configuration_json must be a JSON object');
      // Keys the worker's components declared at hello; the hello kept them in its offers' schema.
      const declared = this.declared.get(session.sessionId) ?? new Map<string, ConfigurationKey>();
      const c = await this.service.applyConfiguration(session.identity, declared, wanted as Record<string, unknown>);
      session.send({ configuration_reply: { reference_uuid: uuid, configuration_json: jsonBytes(c.configuration), version: c.version, error: '' } });
    } catch (err) {
      session.send({ configuration_reply: { reference_uuid: uuid, configuration_json: Buffer.alloc(0), version: 0, error: err instanceof Error ? err.message : String(err) } });
    }
  }

}
