/**
 * The scheduler against a real database and bus: several schedulers on one database never
 * fire a due time twice, downtime fires once, and every firing is a stored job.
 * Tests wait for firings (the `onFired` hook) with generous timeouts rather than sleeping for a
 * fixed time: on a loaded machine a pass may come late, which must not fail a test.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { stepQueueName, type Flow, type StepJob } from '../../contracts/flows.js';
import { createBus, type Bus } from '../../platform/bus/index.js';
import { openDb, type Db } from '../../platform/db/index.js';
import { createLogger } from '../../platform/logger.js';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import * as repo from './scheduler.repo.js';
import { nameBasedUuid, SchedulerService, type Firing } from './scheduler.service.js';

const logger = createLogger('silent');

function flow(id: string, cron: string | undefined): Flow {
  return {
    id,
    tenant: 'default',
    name: id,
    ...(cron ? { cron } : {}),
    graph: {
      nodes: [
        { id: 'poll', componentId: 'http-request', function: 'request' },
        { id: 'log', componentId: 'log', function: 'write' },
      ],
      edges: [{ source: 'poll', target: 'log' }],
    },
    status: 'starting',
    owners: [],
    version: 3,
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  };
}

const newBus = (db: Db) => createBus({ db, serviceName: 'scheduler-test', logger, maxAttempts: 3, leaseMs: 5_000 });

describe.each(dbTargets)('scheduler on %s', (target) => {
  let testDb: TestDb;
  const cleanup: Array<() => Promise<void>> = [];
  /** Called after every batch of firings. */
  const firingListeners = new Set<() => void>();
  afterEach(async () => {
    firingListeners.clear();
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /** Resolves once `condition` holds, checked after each batch of firings; fails after `timeoutMs`. */
  const firingsUntil = (condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> =>
    new Promise((resolve, reject) => {
      if (condition()) return resolve();
      const check = (): void => {
        if (!condition()) return;
        firingListeners.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        firingListeners.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      firingListeners.add(check);
    });

  /** Retries `fn` until it returns `expected` (a lease to expire, a row to appear). */
  const eventually = async <T>(fn: () => Promise<T>, expected: T, timeoutMs = 15_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last = await fn();
    while (last !== expected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      last = await fn();
    }
    expect(last).toBe(expected);
  };

  async function setUp(instances: number): Promise<{ db: Db; buses: Bus[]; schedulers: SchedulerService[]; firings: Firing[]; byInstance: number[] }> {
    testDb = await openTestDb(target);
    cleanup.push(() => testDb.drop());
    const firings: Firing[] = [];
    const byInstance = Array.from({ length: instances }, () => 0);
    const buses: Bus[] = [];
    const schedulers: SchedulerService[] = [];
    for (let i = 0; i < instances; i++) {
      // PostgreSQL: each scheduler has its own pool, as separate processes would.
      const db = i === 0 || !testDb.url ? testDb.db : await openDb({ url: testDb.url, poolSize: 3, schema: testDb.schema });
      if (db !== testDb.db) cleanup.push(() => db.close());
      const bus = await newBus(db);
      cleanup.push(() => bus.close());
      const s = new SchedulerService(db, bus, logger, {
        batchSize: 7,
        onFired: (f) => {
          firings.push(...f);
          byInstance[i]! += f.length;
          for (const l of [...firingListeners]) l();
        },
      });
      cleanup.push(() => s.stop());
      buses.push(bus);
      schedulers.push(s);
    }
    return { db: testDb.db, buses, schedulers, firings, byInstance };
  }

  it('three schedulers never fire one due time twice, and every firing is a queued job', async () => {
    const { buses, schedulers, firings, byInstance } = await setUp(3);
    const ids = Array.from({ length: 40 }, (_, i) => `f${i}`);
    for (const id of ids) {
      await schedulers[0]!.recordFlow(flow(id, '* * * * * *'));
      await schedulers[0]!.scheduleFlow(id);
    }
    const perFlow = new Map<string, number>();
    const startedAt = Date.now();
    await Promise.all(schedulers.map((s) => s.start()));
    await firingsUntil(() => {
      perFlow.clear();
      for (const f of firings) perFlow.set(f.flowId, (perFlow.get(f.flowId) ?? 0) + 1);
      return ids.every((id) => (perFlow.get(id) ?? 0) >= 2);
    }, 'every flow to fire twice');
    await Promise.all(schedulers.map((s) => s.stop()));
    const stoppedAt = Date.now();

    const keys = firings.map((f) => `${f.flowId}@${f.dueAt.toISOString()}`);
    expect(new Set(keys).size).toBe(keys.length);
    perFlow.clear();
    for (const f of firings) perFlow.set(f.flowId, (perFlow.get(f.flowId) ?? 0) + 1);
    // Once per second at most: never more firings than seconds that began while they ran.
    const seconds = Math.ceil((stoppedAt - startedAt) / 1_000) + 1;
    for (const id of ids) expect(perFlow.get(id), id).toBeLessThanOrEqual(seconds);

    let queued = 0;
    for (const id of ids) queued += (await buses[0]!.stats(stepQueueName(id, 'poll'))).depth;
    expect(queued).toBe(firings.length);
    const [job] = await buses[0]!.claim<StepJob>(stepQueueName('f0', 'poll'));
    expect(job!.payload).toMatchObject({
      flowId: 'f0',
      tenant: 'default',
      nodeId: 'poll',
      trigger: 'schedule',
      sequence: 0,
      flowVersion: 3,
      message: { attachments: {}, body: {}, headers: {}, metadata: { source: 'schedule', scheduledFor: expect.any(String) } },
    });
    if (target === 'postgres') {
      // The schedulers really competed: claims of several pools interleaved.
      expect(byInstance.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
      // On time as a rule (median within a second); the worst case only bounded, since a loaded
      // machine can delay any one pass.
      const lateness = firings.map((f) => f.firedAtMs - f.dueAt.getTime()).sort((a, b) => a - b);
      expect(lateness[Math.floor(lateness.length / 2)]!).toBeLessThan(1_000);
      expect(lateness.at(-1)!).toBeLessThan(15_000);
    }
  });

  it('fires once for a due time missed during downtime, then at the next time after now', async () => {
    const { db, schedulers, firings } = await setUp(1);
    const s = schedulers[0]!;
    await s.recordFlow(flow('missed', '*/10 * * * * *'));
    const longAgo = new Date(Date.now() - 10 * 60_000);
    expect(await repo.setFirstDueExecution(db, 'missed', longAgo)).toBe(true);

    expect(await s.fireDue()).toBe(1);
    expect(await s.fireDue()).toBe(0);
    expect(firings.map((f) => f.dueAt.getTime())).toEqual([longAgo.getTime()]);
    const next = (await repo.findScheduledFlow(db, 'missed'))!.due_execution!;
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(next.getTime()).toBeLessThanOrEqual(Date.now() + 10_000);
    expect(next.getUTCSeconds() % 10).toBe(0);
  });

  it('takes over a due time whose scheduler died after claiming it, as the same execution', async () => {
    const { db, schedulers, firings } = await setUp(1);
    const s = schedulers[0]!;
    await s.recordFlow(flow('orphan', '0 0 1 1 *'));
    const due = new Date(Date.now() - 1_000);
    await repo.setFirstDueExecution(db, 'orphan', due);
    // Another scheduler claimed it and died before advancing it.
    const claimedAt = Date.now();
    expect((await repo.claimDueFlows(db, 10, 2_000)).map((r) => r.flow_id)).toEqual(['orphan']);
    expect(await s.fireDue()).toBe(0);
    // Taken over once the dead scheduler's claim expires, not before.
    await eventually(() => s.fireDue(), 1);
    expect(Date.now() - claimedAt).toBeGreaterThanOrEqual(1_900);
    expect(firings[0]).toMatchObject({ flowId: 'orphan', executionId: nameBasedUuid(`orphan@${due.toISOString()}`) });
    expect(firings[0]!.executionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((await repo.findScheduledFlow(db, 'orphan'))!.due_execution!.getTime()).toBeGreaterThan(Date.now());
  });

  it('follows the lifecycle: not before flow.started, nothing without cron, nothing after flow.stopping', async () => {
    const { db, schedulers, firings } = await setUp(1);
    const s = schedulers[0]!;
    await s.recordFlow(flow('hook-only', undefined));
    expect(await repo.findScheduledFlow(db, 'hook-only')).toBeUndefined();

    await s.recordFlow(flow('cron', '* * * * * *'));
    expect((await repo.findScheduledFlow(db, 'cron'))!.due_execution).toBeNull();
    // Recorded but not started: nothing is due, however long one waits.
    expect(await s.fireDue()).toBe(0);
    expect(firings).toEqual([]);

    await s.start();
    await s.scheduleFlow('cron');
    await firingsUntil(() => firings.length >= 1, 'the first firing after scheduleFlow');
    await s.unscheduleFlow('cron');
    // Its row is gone, so no pass can fire it again.
    expect(await repo.findScheduledFlow(db, 'cron')).toBeUndefined();
    expect(await s.fireDue()).toBe(0);
  });

  it('wakes up for a newly scheduled flow instead of sleeping the full bound', async () => {
    const { schedulers, firings } = await setUp(1);
    const s = new SchedulerService(testDb.db, await newBus(testDb.db), logger, { maxSleepMs: 60_000, onFired: (f) => firings.push(...f) });
    cleanup.push(() => s.stop());
    void schedulers;
    await s.start();
    await new Promise((r) => setTimeout(r, 100)); // asleep now, for up to a minute
    await s.recordFlow(flow('late', '* * * * * *'));
    await s.scheduleFlow('late');
    const started = Date.now();
    while (firings.length === 0 && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 20));
    expect(firings.length).toBe(1);
    // Woken: well before the minute it would otherwise sleep (a loaded machine may add seconds).
    expect(firings[0]!.firedAtMs - firings[0]!.dueAt.getTime()).toBeLessThan(15_000);
  });
});
