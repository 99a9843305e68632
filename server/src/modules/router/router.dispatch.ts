/**
 * The attached workers of this aggregator instance and the step calls handed to them.
 *
 * Glossary
 * - Session: one attached worker stream (a worker attached to several instances has one each).
 * - Offer: a component name@version and its functions that a session serves.
 * - Step call: one run of a flow step placed on the `workers` runtime, sent as a `Delivery`.
 *   The durable copy is the engine's step job on the bus (held under the bus's lease while the
 *   call runs); this module keeps only the calls in flight or waiting for a free worker.
 * - Lease: a session that sent nothing (not even a heartbeat) for `leaseMs` is taken for dead;
 *   its stream is cancelled and its calls go back to the waiting list, where another compatible
 *   worker takes them (same payload, same idempotency key). A stream that ends (kill -9, network)
 *   does the same at once.
 * - Drain: a draining session finishes what it holds and takes nothing new.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../platform/logger.js';
import { StepError } from '../components/index.js';
import { IdMap, jsonBytes, versionMatches, type RouterMessage, type StepOutcome } from './router.protocol.js';

export interface Offer {
  name: string;
  version: string;
  functions: ReadonlySet<string>;
}

export interface SessionInfo {
  sessionId: string;
  tenant: string;
  workerId: string;
  offers: readonly Offer[];
  concurrency: number;
  /** The stream is TLS: step credentials may travel on it. */
  secure: boolean;
  connectedAt: Date;
}

export interface WorkerSession extends SessionInfo {
  send(msg: RouterMessage): void;
  /** Ends the stream (the worker sees it closed). */
  close(reason: string): void;
}

export interface StepCall {
  tenant: string;
  component: string;
  function: string;
  /** The node's version pin (`2`, `2.1`, `2.1.3`), if any. */
  version: string | undefined;
  payload: Record<string, unknown>;
  /** Needs a TLS session (it carries a credential). */
  needsSecure: boolean;
  deadline: number;
}

interface Pending {
  id: string;
  call: StepCall;
  resolve: (o: StepOutcome) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  /** The session holding it, or undefined while it waits. */
  session: Live | undefined;
  deliveries: number;
}

interface Live {
  info: WorkerSession;
  /** Calls delivered and not answered, by delivery id (an IdMap: one comes and goes per call). */
  held: IdMap<Pending>;
  draining: boolean;
  lastSeen: number;
}

export interface DispatchOptions {
  leaseMs: number;
  logger: Logger;
}

export type SessionListener = () => void;

export class Dispatcher {
  private readonly sessions = new Map<string, Live>();
  private readonly waiting: Pending[] = [];
  private readonly listeners = new Set<SessionListener>();
  private readonly leaseTimer: NodeJS.Timeout;
  private closed = false;
  private readonly counters = { delivered: 0, redelivered: 0, succeeded: 0, failed: 0, timedOut: 0 };

  constructor(private readonly opts: DispatchOptions) {
    this.leaseTimer = setInterval(() => this.expireLeases(), Math.max(100, Math.floor(opts.leaseMs / 4)));
    this.leaseTimer.unref();
  }

  /** Called whenever the set of sessions (or their draining) changes. */
  onChange(listener: SessionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  attach(session: WorkerSession): void {
    this.sessions.set(session.sessionId, { info: session, held: new IdMap(), draining: false, lastSeen: Date.now() });
    this.opts.logger.info({ workerId: session.workerId, tenant: session.tenant, offers: session.offers.map((o) => `${o.name}@${o.version}`) }, 'router: worker attached');
    this.changed();
    this.pump();
  }

  /** The session is gone (stream ended or lease lapsed): its calls go back to the waiting list. */
  detach(sessionId: string, reason: string): void {
    const live = this.sessions.get(sessionId);
    if (!live) return;
    this.sessions.delete(sessionId);
    const back = live.held.values();
    live.held.clear();
    for (const p of back) {
      p.session = undefined;
      this.counters.redelivered++;
    }
    // Ahead of newer calls: they waited longest.
    this.waiting.unshift(...back);
    this.opts.logger.info({ workerId: live.info.workerId, reason, returned: back.length }, 'router: worker detached');
    this.changed();
    this.pump();
  }

  /** Anything the worker sends renews its lease. */
  touch(sessionId: string): void {
    const live = this.sessions.get(sessionId);
    if (live) live.lastSeen = Date.now();
  }

  drain(sessionId: string): void {
    const live = this.sessions.get(sessionId);
    if (!live || live.draining) return;
    live.draining = true;
    live.info.send({ drain: { reason: 'drain requested' } });
    this.changed();
  }

  isDraining(sessionId: string): boolean {
    return this.sessions.get(sessionId)?.draining ?? false;
  }

  /** Whether a session that could run the call is attached (draining ones excluded). */
  hasCompatible(tenant: string, component: string, fn: string | undefined, version: string | undefined): boolean {
    for (const s of this.sessions.values()) if (!s.draining && this.serves(s, tenant, component, fn, version)) return true;
    return false;
  }

  /** Runs a step call on a compatible worker; rejects with a transient StepError at its deadline. */
  call(call: StepCall): Promise<StepOutcome> {
    if (this.closed) return Promise.reject(new StepError('the router is shutting down', 'transient'));
    return new Promise<StepOutcome>((resolve, reject) => {
      const p: Pending = {
        id: randomUUID(),
        call,
        resolve,
        reject,
        session: undefined,
        deliveries: 0,
        timer: setTimeout(() => this.timeOut(p), Math.max(0, call.deadline - Date.now())),
      };
      if (!this.deliver(p)) this.waiting.push(p);
    });
  }

  /** A worker's answer to a delivery it holds; anything else (a late answer after takeover) is ignored. */
  outcome(sessionId: string, outcome: StepOutcome): boolean {
    const live = this.sessions.get(sessionId);
    const p = live?.held.get(outcome.delivery_id);
    if (!live || !p) return false;
    live.held.delete(outcome.delivery_id);
    clearTimeout(p.timer);
    if (outcome.error) this.counters.failed++;
    else this.counters.succeeded++;
    p.resolve(outcome);
    this.pump();
    return true;
  }

  /** Deliveries a session holds (for its heartbeat check and the API). */
  held(sessionId: string): string[] {
    return this.sessions.get(sessionId)?.held.keys() ?? [];
  }

  list(tenant?: string): Array<SessionInfo & { inFlight: number; draining: boolean; lastSeen: Date }> {
    return [...this.sessions.values()]
      .filter((s) => tenant === undefined || s.info.tenant === tenant)
      .map((s) => ({ ...pickInfo(s.info), inFlight: s.held.size, draining: s.draining, lastSeen: new Date(s.lastSeen) }));
  }

  stats(): { sessions: number; waiting: number; inFlight: number } & typeof this.counters {
    let inFlight = 0;
    for (const s of this.sessions.values()) inFlight += s.held.size;
    return { sessions: this.sessions.size, waiting: this.waiting.length, inFlight, ...this.counters };
  }

  /** Sends a message to one session of this instance, if attached. */
  sendTo(sessionId: string, msg: RouterMessage): boolean {
    const s = this.sessions.get(sessionId);
    if (!s) return false;
    s.info.send(msg);
    return true;
  }

  findSession(tenant: string, workerId: string): SessionInfo | undefined {
    for (const s of this.sessions.values()) if (s.info.tenant === tenant && s.info.workerId === workerId) return pickInfo(s.info);
    return undefined;
  }

  /** Every session of this instance (commands and events pick their receivers here). */
  sessionsOf(tenant: string): SessionInfo[] {
    return [...this.sessions.values()].filter((s) => s.info.tenant === tenant && !s.draining).map((s) => pickInfo(s.info));
  }

  /** Stops delivering; waiting calls fail (transient) so their step jobs are retried elsewhere. */
  close(): void {
    this.closed = true;
    clearInterval(this.leaseTimer);
    for (const p of this.waiting.splice(0)) {
      clearTimeout(p.timer);
      p.reject(new StepError('the router is shutting down', 'transient'));
    }
    for (const s of this.sessions.values()) {
      s.info.send({ drain: { reason: 'the aggregator instance is shutting down' } });
      // Nobody will read their answers: the engine's retry runs them again (same idempotency key).
      for (const p of s.held.values()) {
        clearTimeout(p.timer);
        s.info.send({ cancel: { delivery_id: p.id, reason: 'the aggregator instance is shutting down' } });
        p.reject(new StepError('the router is shutting down', 'transient'));
      }
      s.held.clear();
    }
  }

  // ---- internals ----

  private serves(s: Live, tenant: string, component: string, fn: string | undefined, version: string | undefined): boolean {
    if (s.info.tenant !== tenant) return false;
    return s.info.offers.some((o) => o.name === component && (fn === undefined || o.functions.has(fn)) && versionMatches(o.version, version));
  }

  /** Hands the call to the least loaded compatible session with a free slot. */
  private deliver(p: Pending): boolean {
    let best: Live | undefined;
    let bestOffer: Offer | undefined;
    for (const s of this.sessions.values()) {
      if (s.draining || s.held.size >= s.info.concurrency) continue;
      if (p.call.needsSecure && !s.info.secure) continue;
      if (best && s.held.size / s.info.concurrency >= best.held.size / best.info.concurrency) continue;
      if (s.info.tenant !== p.call.tenant) continue;
      // The newest compatible version the session offers.
      const offer = s.info.offers
        .filter((o) => o.name === p.call.component && o.functions.has(p.call.function) && versionMatches(o.version, p.call.version))
        .sort((a, b) => compareVersions(b.version, a.version))[0];
      if (!offer) continue;
      best = s;
      bestOffer = offer;
    }
    if (!best || !bestOffer) return false;
    p.session = best;
    p.deliveries++;
    best.held.set(p.id, p);
    this.counters.delivered++;
    best.info.send({
      delivery: {
        delivery_id: p.id,
        component: bestOffer.name,
        version: bestOffer.version,
        function: p.call.function,
        attempt: p.deliveries,
        payload_json: jsonBytes(p.call.payload),
        deadline_unix_ms: p.call.deadline,
      },
    });
    return true;
  }

  private pump(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const p = this.waiting[i]!;
      if (this.deliver(p)) this.waiting.splice(i, 1);
      else i++;
    }
  }

  private timeOut(p: Pending): void {
    this.counters.timedOut++;
    if (p.session) {
      p.session.held.delete(p.id);
      // The step's time limit cancels the remote run; the engine retries it (same idempotency key).
      p.session.info.send({ cancel: { delivery_id: p.id, reason: 'the step time limit (nodeSettings.timeoutMs) passed' } });
      this.pump();
    } else {
      const i = this.waiting.indexOf(p);
      if (i >= 0) this.waiting.splice(i, 1);
    }
    const where = p.session ? `worker ${p.session.info.workerId} did not answer` : `no worker serving ${p.call.component}${p.call.version ? `@${p.call.version}` : ''} (${p.call.function}) was free`;
    p.reject(new StepError(`the remote step did not finish within its time limit: ${where}`, 'transient'));
  }

  private expireLeases(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) {
      if (now - s.lastSeen <= this.opts.leaseMs) continue;
      s.info.close(`no heartbeat for ${this.opts.leaseMs} ms`);
      this.detach(id, 'lease expired');
    }
  }

  private changed(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.opts.logger.warn({ err }, 'router: session listener failed');
      }
    }
  }
}

function pickInfo(s: SessionInfo): SessionInfo {
  return { sessionId: s.sessionId, tenant: s.tenant, workerId: s.workerId, offers: s.offers, concurrency: s.concurrency, secure: s.secure, connectedAt: s.connectedAt };
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
