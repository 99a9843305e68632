/**
 * The bus contract: one suite, run against every adapter and storage we ship.
 * Each target gets fresh resources (in-memory PGlite / a new PostgreSQL schema / a random NATS
 * stream prefix) and each test its own queue and event names, so tests cannot see each other.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { hasNats, hasPostgres, TEST_NATS_URL } from '../../../test/helpers/services.js';
import type { Db } from '../db/db.js';
import { openDb } from '../db/index.js';
import { AppError } from '../errors.js';
import { createLogger } from '../logger.js';
import { RetryLater, type Bus, type BusEvent, type Consumer, type Job, type QueueStats } from './bus.js';
import { createBus, type CreateBusOptions, type LiveEvent } from './index.js';
import { sweepPayloads } from './outbox.repo.js';

/** Adapter-specific tests exist only for their adapter, so a run reports no skipped tests. */
const onlyIf = (cond: boolean): typeof it => (cond ? it : ((() => undefined) as unknown as typeof it));

interface Target {
  name: string;
  db: 'pglite' | 'postgres';
  isNats: boolean;
}

const targets: Target[] = [
  { name: 'sql+pglite', db: 'pglite', isNats: false },
  ...(hasPostgres ? [{ name: 'sql+postgres', db: 'postgres' as const, isNats: false }] : []),
  // The NATS adapter keeps its outbox and dead letters in a Db: PGlite is enough here.
  ...(hasNats ? [{ name: 'nats', db: 'pglite' as const, isNats: true }] : []),
];

const LEASE_MS = 400;
const MAX_ATTEMPTS = 3;
const logger = createLogger('silent');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (): string => randomBytes(4).toString('hex');

/** Collects what a handler saw; `waitFor(n)` resolves once n items arrived (or fails loudly). */
function recorder<T>() {
  const items: T[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  return {
    items,
    push(item: T): void {
      items.push(item);
      for (const w of waiters.filter((w) => items.length >= w.n)) w.resolve();
    },
    async waitFor(n: number, timeoutMs = 5_000): Promise<T[]> {
      if (items.length < n) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => waiters.push({ n, resolve })),
          new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error(`expected ${n} items within ${timeoutMs} ms, got ${items.length}`)), timeoutMs))),
        ]).finally(() => clearTimeout(timer));
      }
      return items;
    },
  };
}

async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (check(v) || Date.now() > deadline) return v;
    await sleep(25);
  }
}

async function expectAppError(p: Promise<unknown>, code: string, mentions?: string): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe(code);
  if (mentions) expect((err as AppError).message).toContain(mentions);
}

describe.each(targets)('bus contract on $name', (target) => {
  let t: TestDb;
  let bus: Bus;
  const prefix = `T${hex()}`;
  const extraBuses: Bus[] = [];
  const consumers: Consumer[] = [];
  let seq = 0;
  /** A queue (or event-name root) no other test uses. */
  const unique = (what: string): string => `${what}${++seq}.${hex()}`;

  const openBus = async (db: Db, extra: Partial<CreateBusOptions> = {}): Promise<Bus> =>
    createBus({
      db,
      natsUrl: target.isNats ? TEST_NATS_URL : undefined,
      prefix,
      serviceName: 'contract-test',
      logger,
      maxAttempts: MAX_ATTEMPTS,
      leaseMs: LEASE_MS,
      pollMs: 250,
      drainTimeoutMs: 3_000,
      ...extra,
    });
  const extraBus = async (db: Db, extra: Partial<CreateBusOptions> = {}): Promise<Bus> => {
    const b = await openBus(db, extra);
    extraBuses.push(b);
    return b;
  };
  /**
   * Runs `fn` with a bus of "another process" (on PostgreSQL its own pool and LISTEN connection),
   * polling so rarely that only a notification can explain a fast delivery.
   */
  const withOtherProcess = async (fn: (other: Bus) => Promise<void>): Promise<void> => {
    const otherDb = target.db === 'postgres' ? await openDb({ url: t.url, schema: t.schema, poolSize: 2 }) : t.db;
    const other = await openBus(otherDb, { pollMs: 10_000 });
    try {
      await fn(other);
    } finally {
      await other.close();
      if (otherDb !== t.db) await otherDb.close();
    }
  };
  const track = (c: Consumer): Consumer => {
    consumers.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await openTestDb(target.db);
    bus = await openBus(t.db);
  });

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
  });

  afterAll(async () => {
    await Promise.all(extraBuses.map((b) => b.close()));
    await bus?.close();
    if (target.isNats) {
      const nc = await connect({ servers: TEST_NATS_URL });
      const jsm = await jetstreamManager(nc);
      for (const stream of [`${prefix}_JOBS`, `${prefix}_EVENTS`]) await jsm.streams.delete(stream).catch(() => false);
      await nc.close();
    }
    await t?.drop();
  });

  it('rejects bad queue, event, group and pattern names, naming the value', async () => {
    await expectAppError(bus.enqueue('bad queue', 1), 'VALIDATION_FAILED', '"bad queue"');
    await expectAppError(bus.enqueueMany('a..b', [1]), 'VALIDATION_FAILED', '"a..b"');
    await expectAppError(bus.publish('flow.*', {}), 'VALIDATION_FAILED', '"flow.*"');
    await expectAppError(bus.subscribe('a.>.b', 'g', async () => {}), 'VALIDATION_FAILED', '"a.>.b"');
    await expectAppError(bus.subscribe('a.*', 'bad group!', async () => {}), 'VALIDATION_FAILED', '"bad group!"');
    await expectAppError(bus.consume('q/1', async () => {}), 'VALIDATION_FAILED', '"q/1"');
    await expectAppError(bus.enqueue('_evt.g.x', 1), 'VALIDATION_FAILED', 'reserved');
  });

  it('delivers an enqueued job once, with its payload and attempt 1, then acks it', async () => {
    const queue = unique('basic');
    const seen = recorder<Job<{ n: number; s: string }>>();
    track(await bus.consume<{ n: number; s: string }>(queue, async (job) => seen.push(job)));
    const payload = { n: 1, s: 'quote " backslash \\ nul \u0000 é 😀' };
    const id = await bus.enqueue(queue, payload);
    const [job] = await seen.waitFor(1);
    expect(job).toMatchObject({ id, queue, payload, attempt: 1 });
    expect(job!.enqueuedAt).toBeInstanceOf(Date);
    const stats = await eventually(() => bus.stats(queue), (s) => s.depth === 0);
    expect(stats).toMatchObject({ queue, depth: 0, ready: 0, inFlight: 0, deadLettered: 0 });
    await sleep(LEASE_MS + 100);
    expect(seen.items).toHaveLength(1);
  });

  it('keeps FIFO order of enqueueMany for a single consumer', async () => {
    const queue = unique('fifo');
    const payloads = Array.from({ length: 30 }, (_, i) => i);
    const ids = await bus.enqueueMany(queue, payloads);
    expect(new Set(ids).size).toBe(30);
    const seen = recorder<number>();
    track(await bus.consume<number>(queue, async (job) => seen.push(job.payload)));
    expect(await seen.waitFor(30)).toEqual(payloads);
  });

  it('enqueues inside a transaction: nothing if it rolls back, delivered once it commits', async () => {
    const queue = unique('tx');
    const seen = recorder<string>();
    track(await bus.consume<string>(queue, async (job) => seen.push(job.payload)));
    await expect(
      t.db.transaction(async (tx) => {
        await bus.enqueue(queue, 'rolled back', { tx });
        await bus.enqueueMany(queue, ['rolled back too'], { tx });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    await t.db.transaction(async (tx) => {
      await bus.enqueue(queue, 'committed', { tx });
    });
    await seen.waitFor(1);
    await sleep(300);
    expect(seen.items).toEqual(['committed']);
  });

  it('enqueues onto several queues in one transaction: all or none', async () => {
    const q1 = unique('each');
    const q2 = unique('each');
    const seen = recorder<string>();
    track(await bus.consume<string>(q1, async (job) => seen.push(`1:${job.payload}`)));
    track(await bus.consume<string>(q2, async (job) => seen.push(`2:${job.payload}`)));
    await expect(
      t.db.transaction(async (tx) => {
        await bus.enqueueEach([{ queue: q1, payload: 'gone' }, { queue: q2, payload: 'gone' }], { tx });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const ids = await t.db.transaction((tx) => bus.enqueueEach([{ queue: q1, payload: 'a' }, { queue: q2, payload: 'b' }, { queue: q1, payload: 'c' }], { tx }));
    expect(new Set(ids).size).toBe(3);
    await seen.waitFor(3);
    await sleep(300);
    expect([...seen.items].sort()).toEqual(['1:a', '1:c', '2:b']);
    await expectAppError(bus.enqueueEach([{ queue: 'bad queue!', payload: 1 }]), 'VALIDATION_FAILED', 'bad queue!');
  });

  it('publishes the event envelope to every matching group, once per group, by pattern', async () => {
    const root = unique('ev');
    const a = recorder<BusEvent<number>>();
    const b = recorder<BusEvent<number>>();
    const c = recorder<BusEvent<number>>();
    // Two competing consumers in group A.
    track(await bus.subscribe<number>(`${root}.flow.*`, 'groupA', async (e) => a.push(e)));
    track(await bus.subscribe<number>(`${root}.flow.*`, 'groupA', async (e) => a.push(e)));
    track(await bus.subscribe<number>(`${root}.flow.started`, 'groupB', async (e) => b.push(e)));
    track(await bus.subscribe<number>(`${root}.audit.>`, 'groupC', async (e) => c.push(e)));
    const before = Date.now();
    await Promise.all(Array.from({ length: 10 }, (_, i) => bus.publish(`${root}.flow.started`, i)));
    await bus.publish(`${root}.flow.deep.nested`, 100);
    await bus.publish(`${root}.audit.iam.login`, 200);
    await Promise.all([a.waitFor(10), b.waitFor(10), c.waitFor(1)]);
    await sleep(300);
    expect(a.items.map((e) => e.payload).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(b.items.map((e) => e.payload).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(c.items.map((e) => e.payload)).toEqual([200]);
    const e = b.items[0]!;
    expect(e.headers).toMatchObject({ name: `${root}.flow.started`, serviceName: 'contract-test' });
    expect(new Date(e.headers.createdAt).toISOString()).toBe(e.headers.createdAt);
    expect(new Date(e.headers.createdAt).getTime()).toBeGreaterThanOrEqual(before - 5);
  });

  it('keeps a group subscription while its consumers are down', async () => {
    const root = unique('durable');
    const first = recorder<number>();
    const consumer = await bus.subscribe<number>(`${root}.*`, 'sleepy', async (e) => first.push(e.payload));
    await bus.publish(`${root}.x`, 1);
    await first.waitFor(1);
    await consumer.stop();
    await bus.publish(`${root}.x`, 2);
    await bus.publish(`${root}.y`, 3);
    const later = recorder<number>();
    track(await bus.subscribe<number>(`${root}.*`, 'sleepy', async (e) => later.push(e.payload)));
    expect((await later.waitFor(2)).sort()).toEqual([2, 3]);
    expect(first.items).toEqual([1]);
  });

  it('stops a consumer stopped right after it started at once, not when its first pull expires', async () => {
    // Every hub start subscribes the audit group and stops that consumer at once; on NATS the
    // stop waited for the pull set up meanwhile to expire (5 s), on every start.
    for (let i = 0; i < 3; i++) {
      const consumer = await bus.subscribe(`${unique('quick')}.*`, 'quick', async () => {});
      const before = Date.now();
      await consumer.stop();
      // Not a speed check: a pull left to expire takes 5 s; a stop takes milliseconds.
      expect(Date.now() - before).toBeLessThan(4_000);
    }
  });

  it('publishes inside a transaction: dropped on rollback, delivered on commit', async () => {
    const root = unique('evtx');
    const seen = recorder<string>();
    track(await bus.subscribe<string>(`${root}.>`, 'g', async (e) => seen.push(e.payload)));
    await expect(
      t.db.transaction(async (tx) => {
        await bus.publish(`${root}.a`, 'rolled back', { tx });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    await t.db.transaction(async (tx) => bus.publish(`${root}.a`, 'committed', { tx }));
    await seen.waitFor(1);
    await sleep(300);
    expect(seen.items).toEqual(['committed']);
  });

  it('publishes several events at once: in a transaction all or none; without one, each', async () => {
    const root = unique('evmany');
    const seen = recorder<string>();
    track(await bus.subscribe<string>(`${root}.>`, 'g', async (e) => seen.push(`${e.headers.name}:${e.payload}`)));
    await expect(
      t.db.transaction(async (tx) => {
        await bus.publishMany([{ name: `${root}.a`, payload: 'gone' }, { name: `${root}.b`, payload: 'gone' }], { tx });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    await t.db.transaction(async (tx) => bus.publishMany([{ name: `${root}.a`, payload: '1' }, { name: `${root}.b`, payload: '2' }, { name: 'elsewhere.c', payload: 'x' }], { tx }));
    await bus.publishMany([{ name: `${root}.c`, payload: '3' }]);
    await bus.publishMany([]);
    await seen.waitFor(3);
    await sleep(300);
    expect([...seen.items].sort()).toEqual([`${root}.a:1`, `${root}.b:2`, `${root}.c:3`]);
    await expect(bus.publishMany([{ name: 'bad name!', payload: 1 }])).rejects.toThrow('bad name!');
  });

  it('live events reach the listeners of every process subscribed now, by pattern; nothing is kept', async () => {
    const root = unique('live');
    // Embedded PGlite has one process by design: its live events stay in memory, in that bus.
    const run = async (publisher: Bus, listener: Bus): Promise<void> => {
      await publisher.live.publish(`${root}.early`, { n: 0 });
      const heard = recorder<LiveEvent>();
      const stop = await listener.live.subscribe(`${root}.*`, (e) => heard.push(e));
      await publisher.live.publish('unrelated.topic', { n: -1 });
      await publisher.live.publish(`${root}.a`, { n: 1 });
      await publisher.live.publish(`${root}.b`, { n: 2 });
      expect(await heard.waitFor(2)).toEqual([
        { name: `${root}.a`, payload: { n: 1 } },
        { name: `${root}.b`, payload: { n: 2 } },
      ]);
      await expect(publisher.live.publish(`${root}.big`, { text: 'x'.repeat(10_000) })).rejects.toThrow(/larger than/);
      await stop();
      // A later listener hears the sentinel after the event the stopped one must miss.
      const later = recorder<LiveEvent>();
      const stopLater = await listener.live.subscribe(`${root}.>`, (e) => later.push(e));
      await publisher.live.publish(`${root}.c`, { n: 3 });
      await publisher.live.publish(`${root}.sentinel`, {});
      await later.waitFor(2);
      await stopLater();
      expect(heard.items).toHaveLength(2);
    };
    if (target.db === 'pglite' && !target.isNats) await run(bus, bus);
    else await withOtherProcess((other) => run(bus, other));
  });

  it('claims, acks, nacks with a delay, dead-letters and requeues (low level)', async () => {
    const queue = unique('low');
    // Leases that outlast the test: a NATS claim may wait 1 s, and nothing here may expire.
    const HELD_MS = 30_000;
    await bus.enqueueMany(queue, ['a', 'b', 'c']);
    const claimed = await bus.claim<string>(queue, { max: 2, leaseMs: HELD_MS });
    expect(claimed.map((j) => [j.payload, j.attempt])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);
    expect(await bus.stats(queue)).toMatchObject({ depth: 3, ready: 1, inFlight: 2 });
    const [a, b] = claimed as [Job<string>, Job<string>];
    await bus.ack(a);
    // Longer than a NATS claim that finds nothing pending waits for a redelivery (1 s).
    await bus.nack(b, { delayMs: 1_500, error: 'not yet' });
    const [c] = (await bus.claim<string>(queue, { max: 5, leaseMs: HELD_MS })) as [Job<string>];
    expect(c.payload).toBe('c');
    expect(await bus.claim(queue, { leaseMs: HELD_MS })).toEqual([]);
    await bus.deadLetter(c, 'cannot do c');
    const [dead] = await bus.listDeadLetters<string>(queue);
    expect(dead).toMatchObject({ id: c.id, queue, payload: 'c', attempts: 1, error: 'cannot do c' });
    expect(dead!.failedAt).toBeInstanceOf(Date);
    // NATS applies acks asynchronously: its stats catch up within milliseconds.
    const after = await eventually(() => bus.stats(queue), (st) => st.depth === 1);
    expect(after).toMatchObject({ depth: 1, deadLettered: 1 });
    const again = await eventually(() => bus.claim<string>(queue, { leaseMs: HELD_MS }), (jobs) => jobs.length > 0, 5_000);
    expect(again.map((j) => [j.payload, j.attempt])).toEqual([['b', 2]]);
    await bus.ack(again[0]!);
    await bus.requeueDeadLetter(dead!.id);
    expect(await bus.listDeadLetters(queue)).toEqual([]);
    const requeued = await eventually(() => bus.claim<string>(queue, { leaseMs: HELD_MS }), (jobs) => jobs.length > 0, 2_000);
    expect(requeued.map((j) => [j.id, j.payload, j.attempt])).toEqual([[c.id, 'c', 1]]);
    await bus.ack(requeued[0]!);
    await expectAppError(bus.requeueDeadLetter('no-such-dead-letter'), 'NOT_FOUND');
  });

  it('dead-letters at once when a handler throws a user or bug AppError', async () => {
    const queue = unique('user');
    let calls = 0;
    track(
      await bus.consume(queue, async (job) => {
        calls++;
        throw new AppError(job.payload === 'bug' ? 'INTERNAL' : 'VALIDATION_FAILED', `refused ${String(job.payload)}`);
      }),
    );
    await bus.enqueueMany(queue, ['user', 'bug']);
    const dead = await eventually(() => bus.listDeadLetters(queue), (d) => d.length === 2);
    expect(dead.map((d) => [d.payload, d.attempts]).sort()).toEqual([
      ['bug', 1],
      ['user', 1],
    ]);
    expect(dead.find((d) => d.payload === 'user')!.error).toContain('refused user');
    expect(calls).toBe(2);
  });

  it('retries other errors with backoff, then dead-letters with the last error', async () => {
    const queue = unique('retry');
    const attempts: number[] = [];
    track(
      await bus.consume(
        queue,
        async (job) => {
          attempts.push(job.attempt);
          throw new Error(`boom ${job.attempt}`);
        },
        { retryDelayMs: () => 30 },
      ),
    );
    await bus.enqueue(queue, { x: 1 });
    const [dead] = await eventually(() => bus.listDeadLetters(queue), (d) => d.length === 1);
    expect(attempts).toEqual([1, 2, 3]);
    expect(dead).toMatchObject({ payload: { x: 1 }, attempts: MAX_ATTEMPTS, error: 'boom 3' });
    expect(await eventually(() => bus.stats(queue), (st) => st.depth === 0)).toMatchObject({ depth: 0, deadLettered: 1 });
  });

  it('brings a job back after the delay a handler asked for with RetryLater', async () => {
    const queue = unique('later');
    const seen = recorder<{ attempt: number; at: number }>();
    track(
      await bus.consume(queue, async (job) => {
        seen.push({ attempt: job.attempt, at: Date.now() });
        if (job.attempt === 1) throw new RetryLater(400, 'rate limited');
      }),
    );
    await bus.enqueue(queue, 1);
    const [first, second] = await seen.waitFor(2);
    expect(second!.attempt).toBe(2);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(380);
    expect(second!.at - first!.at).toBeLessThan(1_500);
  });

  it('heartbeats the lease of a slow handler so no other consumer gets its job', async () => {
    const queue = unique('slow');
    const deliveries = recorder<number>();
    const handler = async (job: Job): Promise<void> => {
      deliveries.push(job.attempt);
      await sleep(LEASE_MS * 3);
    };
    track(await bus.consume(queue, handler));
    track(await bus.consume(queue, handler));
    await bus.enqueue(queue, 'slow');
    await deliveries.waitFor(1);
    await sleep(LEASE_MS * 3 + 300);
    expect(deliveries.items).toEqual([1]);
    expect(await bus.stats(queue)).toMatchObject({ depth: 0 });
  });

  it('redelivers a job whose lease expired (its consumer died) with attempt + 1', async () => {
    const queue = unique('expire');
    await bus.enqueue(queue, 'orphan');
    const [claimed] = await bus.claim(queue, { leaseMs: 300 });
    const claimedAt = Date.now();
    expect(claimed!.attempt).toBe(1);
    // The claimer "dies": it never acks. Another consumer must get the job after the lease.
    const seen = recorder<{ job: Job; at: number }>();
    track(await bus.consume(queue, async (job) => seen.push({ job, at: Date.now() }), { leaseMs: 300 }));
    const [{ job, at }] = (await seen.waitFor(1, 3_000)) as [{ job: Job; at: number }];
    expect(job).toMatchObject({ id: claimed!.id, payload: 'orphan', attempt: 2 });
    expect(at - claimedAt).toBeGreaterThanOrEqual(250);
  });

  it('dead-letters a job whose leases keep expiring instead of running it again', async () => {
    const queue = unique('crashloop');
    await bus.enqueue(queue, 'poison');
    for (let i = 1; i <= MAX_ATTEMPTS; i++) {
      const jobs = await eventually(() => bus.claim(queue, { leaseMs: 150 }), (j) => j.length > 0, 2_000);
      expect(jobs[0]!.attempt).toBe(i);
    }
    let calls = 0;
    track(
      await bus.consume(
        queue,
        async () => {
          calls++;
        },
        { leaseMs: 150 },
      ),
    );
    const [dead] = await eventually(() => bus.listDeadLetters(queue), (d) => d.length === 1);
    expect(dead).toMatchObject({ payload: 'poison', attempts: MAX_ATTEMPTS + 1 });
    expect(dead!.error).toMatch(/without an ack/);
    expect(calls).toBe(0);
  });

  it('stop() waits for running handlers and gives back unstarted jobs at once', async () => {
    const queue = unique('drain');
    // Leases far longer than the test: only an explicit give-back can move the unstarted jobs.
    const leaseMs = 5_000;
    await bus.enqueueMany(queue, [1, 2, 3, 4, 5]);
    const started = recorder<number>();
    let finished = 0;
    const slow = await bus.consume<number>(
      queue,
      async (job) => {
        started.push(job.payload);
        await sleep(300);
        finished++;
      },
      { concurrency: 1, batchSize: 5, leaseMs },
    );
    await started.waitFor(1);
    const other = recorder<number>();
    track(await bus.consume<number>(queue, async (job) => other.push(job.payload), { concurrency: 5, leaseMs }));
    await slow.stop();
    // The running handler finished before stop() resolved; the four unstarted jobs were handed
    // to the other consumer while it still ran.
    expect(finished).toBe(1);
    await other.waitFor(4, 200);
    expect([...started.items, ...other.items].sort()).toEqual([1, 2, 3, 4, 5]);
    expect(started.items).toHaveLength(1);
  });

  it('keeps an enqueued job across closing and reopening the bus and its storage', async () => {
    const queue = unique('restart');
    let dataDir: string | undefined;
    const openStorage = async (): Promise<{ db: Db; close: () => Promise<void> }> => {
      if (target.isNats) return { db: t.db, close: async () => {} };
      if (target.db === 'pglite') {
        dataDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bus-'));
        const db = await openDb({ dataDir });
        return { db, close: () => db.close() };
      }
      const db = await openDb({ url: t.url, schema: t.schema, poolSize: 2 });
      return { db, close: () => db.close() };
    };
    const first = await openStorage();
    const writer = await openBus(first.db);
    const id = await writer.enqueue(queue, { survives: true });
    await writer.close();
    await first.close();

    const second = await openStorage();
    const reader = await openBus(second.db);
    try {
      const seen = recorder<Job>();
      await reader.consume(queue, async (job) => seen.push(job));
      const [job] = await seen.waitFor(1);
      expect(job).toMatchObject({ id, payload: { survives: true } });
    } finally {
      await reader.close();
      await second.close();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('does not deliver a delayed job before its time', async () => {
    const queue = unique('delay');
    const seen = recorder<number>();
    track(await bus.consume(queue, async () => seen.push(Date.now())));
    const at = Date.now();
    await bus.enqueue(queue, 'later', { delayMs: 600 });
    expect(await bus.stats(queue)).toMatchObject({ depth: 1, delayed: 1, ready: 0 });
    const [deliveredAt] = await seen.waitFor(1, 3_000);
    expect(deliveredAt! - at).toBeGreaterThanOrEqual(590);
    expect(deliveredAt! - at).toBeLessThan(1_200);
  });

  it('wakes an idle consumer within a few milliseconds', async () => {
    const queue = unique('wake');
    // A bus whose fallback poll is 10 s: only a wakeup can explain a delivery within a second,
    // however loaded the machine is.
    const b = await extraBus(t.db, { pollMs: 10_000 });
    const latencies: number[] = [];
    let started: () => void = () => {};
    track(
      await b.consume<number>(queue, async (job) => {
        latencies.push(performance.now() - job.payload);
        started();
      }),
    );
    await sleep(300);
    for (let i = 0; i < 20; i++) {
      const handled = new Promise<void>((resolve) => (started = resolve));
      await b.enqueue(queue, performance.now());
      await handled;
      await sleep(20);
    }
    latencies.sort((x, y) => x - y);
    const p50 = latencies[10]!;
    // The wakeup did it (a poll would take seconds); typically a few milliseconds when the machine is quiet.
    expect(p50).toBeLessThan(1_000);
  });

  it('wakes consumers of another bus instance at once when a transaction commits (NOTIFY)', async () => {
    const queue = unique('notify');
    await withOtherProcess(async (other) => {
      const seen = recorder<number>();
      await other.consume<number>(queue, async () => seen.push(performance.now()));
      await sleep(300);
      await t.db.transaction(async (tx) => bus.enqueue(queue, 1, { tx }));
      const committedAt = performance.now();
      const [at] = await seen.waitFor(1, 2_000);
      expect(at! - committedAt).toBeLessThan(150);
      await bus.enqueue(queue, 2);
      const sentAt = performance.now();
      const [, at2] = await seen.waitFor(2, 2_000);
      expect(at2! - sentAt).toBeLessThan(150);
    });
  });

  it('wakes another bus instance at once for a published event and for a requeued dead letter', async () => {
    const root = unique('wake');
    const queue = unique('wakeq');
    // A dead letter to requeue later, made before the other instance consumes its queue.
    await bus.enqueue(queue, 'again');
    const [job] = await bus.claim(queue);
    await bus.deadLetter(job!, 'for the requeue');
    await withOtherProcess(async (other) => {
      const events = recorder<number>();
      const jobs = recorder<number>();
      await other.subscribe(`${root}.>`, 'waker', async () => events.push(performance.now()));
      await other.consume(queue, async () => jobs.push(performance.now()));
      await sleep(300);
      await bus.publish(`${root}.happened`, 1);
      const publishedAt = performance.now();
      const [at] = await events.waitFor(1, 2_000);
      expect(at! - publishedAt).toBeLessThan(150);
      const [dead] = await eventually(() => bus.listDeadLetters(queue), (l) => l.length === 1);
      await bus.requeueDeadLetter(dead!.id);
      const requeuedAt = performance.now();
      const [at2] = await jobs.waitFor(1, 2_000);
      expect(at2! - requeuedAt).toBeLessThan(150);
    });
  });

  it('stores acks and an enqueue made in the same moment, each exactly once', async () => {
    const queue = unique('together');
    await bus.enqueueMany(queue, [1, 2, 3]);
    const held = await bus.claim<number>(queue, { max: 3 });
    expect(held).toHaveLength(3);
    // Enqueue first, ack right after: the SQL adapter stores the waiting acks with the insert.
    const enqueued = bus.enqueue(queue, 4);
    await Promise.all(held.map((j) => bus.ack(j)));
    await enqueued;
    expect((await eventually(() => bus.stats(queue), (st) => st.depth === 1)).depth).toBe(1);
    const [last] = await bus.claim<number>(queue);
    expect(last!.payload).toBe(4);
    await bus.ack(last!);
    // NATS acks without waiting for the server: its count follows shortly.
    expect((await eventually(() => bus.stats(queue), (st) => st.depth === 0)).depth).toBe(0);
  });

  it('reports stats per queue and for all queues', async () => {
    const queue = unique('stats');
    await bus.enqueueMany(queue, [1, 2]);
    await bus.enqueue(queue, 3, { delayMs: 10_000 });
    const [held] = await bus.claim(queue);
    await sleep(30);
    const stats = await bus.stats(queue);
    expect(stats).toMatchObject({ queue, depth: 3, ready: 1, inFlight: 1, delayed: 1, deadLettered: 0 });
    expect(stats.oldestAgeMs).toBeGreaterThanOrEqual(20);
    await bus.deadLetter(held!, 'for the stats');
    const all = await eventually(() => bus.allStats(), (list) => list.find((s) => s.queue === queue)?.depth === 2);
    expect(all.find((s) => s.queue === queue)).toMatchObject({ depth: 2, deadLettered: 1 });
    expect(await bus.stats(unique('empty'))).toMatchObject({ depth: 0, ready: 0, delayed: 0, inFlight: 0, deadLettered: 0, oldestAgeMs: 0 });
  });

  it('requeues a dead event to its own group only', async () => {
    const root = unique('deadev');
    const a = recorder<number>();
    const b = recorder<number>();
    let failOnce = true;
    track(
      await bus.subscribe<number>(`${root}.*`, 'picky', async (e) => {
        a.push(e.payload);
        if (failOnce) {
          failOnce = false;
          throw new AppError('VALIDATION_FAILED', 'not today');
        }
      }),
    );
    track(await bus.subscribe<number>(`${root}.*`, 'easy', async (e) => b.push(e.payload)));
    await bus.publish(`${root}.x`, 7);
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    const picky = (all: QueueStats[]): QueueStats[] => all.filter((s) => s.deadLettered > 0 && s.queue.startsWith('_evt.picky.'));
    const queues = picky(await eventually(() => bus.allStats(), (all) => picky(all).length > 0));
    expect(queues).toHaveLength(1);
    const [dead] = await eventually(() => bus.listDeadLetters<BusEvent<number>>(queues[0]!.queue), (d) => d.length === 1);
    expect(dead!.payload.payload).toBe(7);
    await bus.requeueDeadLetter(dead!.id);
    await a.waitFor(2);
    await sleep(300);
    expect(a.items).toEqual([7, 7]);
    expect(b.items).toEqual([7]);
  });

  onlyIf(!target.isNats)('coalesces concurrent enqueues and acks into few statements (group commit)', async () => {
    const queue = unique('group');
    const statements: string[] = [];
    const counting: Db = {
      ...t.db,
      query: (sql, params) => {
        statements.push(sql);
        return t.db.query(sql, params);
      },
    };
    const b = await extraBus(counting);
    const ids = await Promise.all(Array.from({ length: 300 }, (_, i) => b.enqueue(queue, i)));
    expect(new Set(ids).size).toBe(300);
    expect(statements.filter((s) => s.includes('INSERT INTO bus_jobs')).length).toBeLessThanOrEqual(2);
    const seen = recorder<number>();
    const c = await b.consume<number>(queue, async (job) => seen.push(job.payload), { concurrency: 100 });
    await seen.waitFor(300);
    await c.stop();
    expect(statements.filter((s) => s.startsWith('DELETE FROM bus_jobs')).length).toBeLessThan(30);
    expect(await b.stats(queue)).toMatchObject({ depth: 0 });
  });

  it('carries messages larger than NATS max_payload: jobs sent directly, in a transaction, delayed, requeued, and events', async () => {
    const queue = unique('big');
    const root = unique('bigev');
    // 1.5 MiB each, told apart by their first characters.
    const big = (tag: string): string => tag + 'x'.repeat(1_536 * 1024);
    // Moving 1.5 MiB bodies on a loaded machine can stall the event loop past a short lease: a
    // long one keeps every delivery single (at-least-once would allow a second), and the waits
    // below are bounds, not expectations.
    const held = { leaseMs: 30_000 };
    const WAIT_MS = 60_000;
    const jobs = recorder<string>();
    let failOnce = true;
    track(
      await bus.consume<string>(queue, async (job) => {
        if (job.payload.startsWith('dead') && failOnce) {
          failOnce = false;
          throw new AppError('VALIDATION_FAILED', 'not this one');
        }
        jobs.push(job.payload);
      }, held),
    );
    const a = recorder<string>();
    const b = recorder<string>();
    track(await bus.subscribe<string>(`${root}.*`, 'biga', async (e) => a.push(e.payload), held));
    track(await bus.subscribe<string>(`${root}.*`, 'bigb', async (e) => b.push(e.payload), held));

    await bus.enqueue(queue, big('direct'));
    await t.db.transaction(async (tx) => bus.enqueue(queue, big('tx'), { tx }));
    await bus.enqueue(queue, big('later'), { delayMs: 50 });
    await bus.enqueueEach([{ queue, payload: big('each') }, { queue, payload: 'small' }]);
    await bus.enqueue(queue, big('dead'));
    await bus.publish(`${root}.happened`, big('event'));
    await jobs.waitFor(5, WAIT_MS);
    const [dead] = await eventually(() => bus.listDeadLetters<string>(queue), (d) => d.length === 1, WAIT_MS);
    expect(dead!.payload).toBe(big('dead'));
    await bus.requeueDeadLetter(dead!.id);
    await jobs.waitFor(6, WAIT_MS);
    await Promise.all([a.waitFor(1, WAIT_MS), b.waitFor(1, WAIT_MS)]);

    expect([...jobs.items].sort()).toEqual([big('dead'), big('direct'), big('each'), big('later'), big('tx'), 'small'].sort());
    expect(a.items).toEqual([big('event')]);
    expect(b.items).toEqual([big('event')]);
    if (target.isNats) {
      // Stored beside the messages; the bodies of settled jobs are marked for the sweep.
      const rows = await eventually(
        () => t.db.query<{ settled: boolean }>('SELECT settled_at IS NOT NULL AS settled FROM bus_payloads'),
        (r) => r.rows.filter((x) => x.settled).length >= 6,
        WAIT_MS,
      );
      expect(rows.rows.filter((x) => x.settled).length).toBeGreaterThanOrEqual(6);
      // The sweep takes settled bodies (here at once) and leaves the event's.
      expect(await sweepPayloads(t.db, 0, 30 * 86_400_000)).toBeGreaterThanOrEqual(6);
      const left = await t.db.query<{ payload: string }>('SELECT payload FROM bus_payloads');
      expect(left.rows.map((r) => (JSON.parse(r.payload) as BusEvent<string>).payload)).toContain(big('event'));
    }
  }, 240_000);

  onlyIf(target.isNats)('refuses a message over 64 MiB on NATS', async () => {
    const huge = 'x'.repeat(64 * 1024 * 1024 + 1);
    await expectAppError(bus.enqueue(unique('huge'), huge), 'PAYLOAD_TOO_LARGE', '67108864');
    await expectAppError(bus.publish(`${unique('huge')}.x`, huge), 'PAYLOAD_TOO_LARGE');
  });

  it('answers ping, and after close refuses work and leaves no timers behind', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const b = await openBus(t.db);
    await b.ping();
    const queue = unique('close');
    await b.consume(queue, async () => {});
    await b.subscribe(`${unique('close')}.*`, 'g', async () => {});
    await b.enqueue(queue, 1);
    await sleep(100);
    await b.close();
    await expect(b.ping()).rejects.toThrow(/closed/);
    await expectAppError(b.enqueue(queue, 2), 'UNAVAILABLE');
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
