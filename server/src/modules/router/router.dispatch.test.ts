/**
 * The dispatcher with stand-in sessions (no network): which worker gets a call, what waits, what
 * a lease expiry, a detach, a drain and a step time limit do to calls in flight.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { Dispatcher, type StepCall, type WorkerSession } from './router.dispatch.js';
import { allowedBy, versionMatches, type RouterMessage } from './router.protocol.js';

const logger = createLogger('silent');

interface FakeSession extends WorkerSession {
  sent: RouterMessage[];
  closed: string[];
}

function session(id: string, offers: Array<[string, string, string[]]>, concurrency = 2, tenant = 't1'): FakeSession {
  const sent: RouterMessage[] = [];
  const closed: string[] = [];
  return {
    sessionId: id,
    tenant,
    workerId: id,
    offers: offers.map(([name, version, fns]) => ({ name, version, functions: new Set(fns) })),
    concurrency,
    secure: false,
    connectedAt: new Date(),
    sent,
    closed,
    send: (m) => void sent.push(m),
    close: (r) => void closed.push(r),
  };
}

const callOf = (over: Partial<StepCall> = {}): StepCall => ({ tenant: 't1', component: 'c', function: 'f', version: undefined, payload: { n: 1 }, needsSecure: false, deadline: Date.now() + 5_000, ...over });
const deliveries = (s: FakeSession) => s.sent.flatMap((m) => ('delivery' in m ? [m.delivery] : []));
const answer = (d: Dispatcher, s: FakeSession, deliveryId: string) => d.outcome(s.sessionId, { delivery_id: deliveryId, result_json: Buffer.from('{}') });

describe('Dispatcher', () => {
  let d: Dispatcher;
  afterEach(() => d?.close());

  it('delivers to a compatible worker of the tenant, the newest version matching the pin', async () => {
    d = new Dispatcher({ leaseMs: 10_000, logger });
    const other = session('other-tenant', [['c', '1.0.0', ['f']]], 2, 't2');
    const old = session('old', [['c', '1.0.0', ['f']], ['c', '1.4.0', ['f']]]);
    const v2 = session('v2', [['c', '2.0.0', ['f']]]);
    for (const s of [other, old, v2]) d.attach(s);
    const p = d.call(callOf({ version: '1' }));
    expect(deliveries(old)).toHaveLength(1);
    expect(deliveries(old)[0]).toMatchObject({ component: 'c', version: '1.4.0', function: 'f', attempt: 1 });
    expect(deliveries(v2).length + deliveries(other).length).toBe(0);
    answer(d, old, deliveries(old)[0]!.delivery_id);
    await expect(p).resolves.toMatchObject({ delivery_id: deliveries(old)[0]!.delivery_id });
  });

  it('holds calls beyond the workers’ concurrency until a slot frees', async () => {
    d = new Dispatcher({ leaseMs: 10_000, logger });
    const w = session('w', [['c', '1.0.0', ['f']]], 1);
    d.attach(w);
    const first = d.call(callOf());
    const second = d.call(callOf());
    expect(deliveries(w)).toHaveLength(1);
    expect(d.stats().waiting).toBe(1);
    answer(d, w, deliveries(w)[0]!.delivery_id);
    await first;
    expect(deliveries(w)).toHaveLength(2);
    answer(d, w, deliveries(w)[1]!.delivery_id);
    await second;
  });

  it('a detached worker’s calls go to another worker; its late answer is ignored', async () => {
    d = new Dispatcher({ leaseMs: 10_000, logger });
    const a = session('a', [['c', '1.0.0', ['f']]]);
    d.attach(a);
    const p = d.call(callOf());
    const first = deliveries(a)[0]!;
    const b = session('b', [['c', '1.0.0', ['f']]]);
    d.attach(b);
    d.detach('a', 'stream ended');
    expect(deliveries(b)).toHaveLength(1);
    expect(deliveries(b)[0]!).toMatchObject({ delivery_id: first.delivery_id, attempt: 2, payload_json: first.payload_json });
    expect(answer(d, a, first.delivery_id)).toBe(false);
    answer(d, b, first.delivery_id);
    await expect(p).resolves.toBeDefined();
  });

  it('a worker silent for its lease is closed and loses its calls', async () => {
    d = new Dispatcher({ leaseMs: 1_000, logger });
    const silent = session('silent', [['c', '1.0.0', ['f']]]);
    d.attach(silent);
    const p = d.call(callOf({ deadline: Date.now() + 60_000 }));
    const healthy = session('healthy', [['c', '1.0.0', ['f']]], 0);
    d.attach(healthy);
    // `healthy` has no slot; it keeps its lease by talking.
    const timer = setInterval(() => d.touch('healthy'), 100);
    try {
      const until = Date.now() + 20_000;
      while (silent.closed.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(silent.closed).toEqual(['no heartbeat for 1000 ms']);
      expect(d.list().map((s) => s.workerId)).toEqual(['healthy']);
      expect(d.stats().waiting).toBe(1);
    } finally {
      clearInterval(timer);
    }
    d.close();
    await expect(p).rejects.toThrow('the router is shutting down');
  }, 30_000);

  it('a draining worker finishes what it holds and gets nothing new', async () => {
    d = new Dispatcher({ leaseMs: 10_000, logger });
    const w = session('w', [['c', '1.0.0', ['f']]]);
    d.attach(w);
    const held = d.call(callOf());
    d.drain('w');
    expect(w.sent.some((m) => 'drain' in m)).toBe(true);
    expect(d.hasCompatible('t1', 'c', 'f', undefined)).toBe(false);
    void d.call(callOf({ deadline: Date.now() + 100 })).catch(() => {});
    expect(deliveries(w)).toHaveLength(1);
    answer(d, w, deliveries(w)[0]!.delivery_id);
    await held;
  });

  it('the step time limit cancels the remote run and fails the try (transient)', async () => {
    d = new Dispatcher({ leaseMs: 10_000, logger });
    const w = session('w', [['c', '1.0.0', ['f']]]);
    d.attach(w);
    const p = d.call(callOf({ deadline: Date.now() + 100 }));
    await expect(p).rejects.toMatchObject({ kind: 'transient', message: expect.stringContaining('worker w did not answer') });
    const id = deliveries(w)[0]!.delivery_id;
    expect(w.sent).toContainEqual({ cancel: { delivery_id: id, reason: 'the step time limit (nodeSettings.timeoutMs) passed' } });
    // No worker at all: the call fails at its deadline naming the component.
    const none = d.call(callOf({ component: 'missing', deadline: Date.now() + 50 }));
    await expect(none).rejects.toThrow('no worker serving missing (f) was free');
  });

  it('a call carrying a credential goes only to a TLS session', async () => {
    d = new Dispatcher({ leaseMs: 10_000, logger });
    const plain = session('plain', [['c', '1.0.0', ['f']]]);
    d.attach(plain);
    const p = d.call(callOf({ needsSecure: true, deadline: Date.now() + 50 }));
    expect(deliveries(plain)).toHaveLength(0);
    await expect(p).rejects.toThrow('time limit');
  });
});

describe('versions and enrolment scopes', () => {
  it('matches pins by major, minor, patch', () => {
    expect(versionMatches('2.1.3', undefined)).toBe(true);
    expect(versionMatches('2.1.3', '2')).toBe(true);
    expect(versionMatches('2.1.3', '2.1')).toBe(true);
    expect(versionMatches('2.1.3', '2.1.3')).toBe(true);
    expect(versionMatches('2.1.3', '2.2')).toBe(false);
    expect(versionMatches('2.1.3', '1')).toBe(false);
    expect(versionMatches('12.0.0', '1')).toBe(false);
  });

  it('an enrolment allows names, names at a major, or everything', () => {
    expect(allowedBy(['orders'], 'orders', '3.0.0')).toBe(true);
    expect(allowedBy(['orders@1'], 'orders', '1.9.0')).toBe(true);
    expect(allowedBy(['orders@1'], 'orders', '2.0.0')).toBe(false);
    expect(allowedBy(['orders'], 'billing', '1.0.0')).toBe(false);
    expect(allowedBy(['*'], 'billing', '1.0.0')).toBe(true);
  });
});
