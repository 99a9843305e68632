import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { createLogger } from '../../platform/logger.js';
import { bucketUpperMs, executionStats, quantileMs, StatsRollup } from './orchestrator.stats.js';

const MINUTE = 60_000;
/** A fixed "now": 12:00:30 on some day, so minutes are easy to name. */
const NOW = new Date('2026-03-01T12:00:30Z');
const at = (hhmmss: string): Date => new Date(`2026-03-01T${hhmmss}Z`);

describe('quantiles from duration histograms', () => {
  it('answers the upper bound of the bucket holding the quantile, at most 20 % above the value', () => {
    expect(quantileMs(new Map(), 0.99)).toBeNull();
    for (const ms of [1, 7, 95, 1_234, 59_000]) {
      const b = Math.max(1, Math.ceil((Math.log(ms) * 80) / Math.log(3_600_000)));
      const p = quantileMs(new Map([[b, 10]]), 0.99)!;
      expect(p).toBeGreaterThanOrEqual(ms);
      expect(p).toBeLessThanOrEqual(ms * 1.2 + 1);
    }
    // 99 fast and 1 slow: the p99 is the fast one; 98 and 2: the slow one.
    expect(quantileMs(new Map([[10, 99], [60, 1]]), 0.99)).toBe(Math.round(bucketUpperMs(10)));
    expect(quantileMs(new Map([[10, 98], [60, 2]]), 0.99)).toBe(Math.round(bucketUpperMs(60)));
  });
});

describe.each(dbTargets)('execution stats on %s', (target) => {
  let t: TestDb;
  const rollup = (): StatsRollup => new StatsRollup(t.db, createLogger('silent'), 7 * 86_400_000);

  /** An execution of `flow` that finished at `end` after `ms`. */
  const finished = async (id: string, tenant: string, flow: string, end: Date, ms: number, status = 'succeeded'): Promise<void> => {
    await t.db.query(
      `INSERT INTO orchestrator_executions (id, tenant_id, flow_id, flow_version, trigger, status, pending, started_at, finished_at)
       VALUES ($1, $2, $3, 1, 'webhook', $4, 0, $5, $6)`,
      [id, tenant, flow, status, new Date(end.getTime() - ms), end],
    );
  };

  beforeAll(async () => {
    t = await openTestDb(target);
    await finished('old', 'acme', 'a', at('09:00:00'), 10); // before the first roll-up's hour
    await finished('x1', 'acme', 'a', at('11:58:10'), 20);
    await finished('x2', 'acme', 'a', at('11:58:50'), 40, 'failed');
    await finished('x3', 'acme', 'b', at('11:59:20'), 2_000);
    await finished('x4', 'acme', 'a', at('12:00:05'), 30); // the current minute: never rolled up yet
    await finished('y1', 'beta', 'a', at('11:59:00'), 5);
    await t.db.query(`INSERT INTO orchestrator_executions (id, tenant_id, flow_id, flow_version, trigger, status, pending, started_at) VALUES ('run', 'acme', 'a', 1, 'webhook', 'running', 1, $1)`, [at('11:59:00')]);
  });

  afterAll(async () => {
    await t?.drop();
  });

  it('gives the same figures from rolled-up minutes as from the executions themselves', async () => {
    const before = await executionStats(t.db, 'acme', undefined, 5, NOW);
    expect(before.total).toMatchObject({ executions: 4, failures: 1 });
    expect(before.flows.map((f) => [f.flowId, f.executions, f.failures])).toEqual([
      ['a', 3, 1],
      ['b', 1, 0],
    ]);
    expect(before.buckets.map((b) => b.executions)).toEqual([0, 0, 2, 1, 1]);
    expect(before.total.p99Ms).toBeGreaterThanOrEqual(2_000);
    expect(before.total.p99Ms).toBeLessThanOrEqual(2_400);

    await rollup().run(NOW);
    const stored = await t.db.query<{ n: number; next: Date }>('SELECT (SELECT count(*)::int8 FROM orchestrator_minute_stats) AS n, (SELECT next_minute FROM orchestrator_stats_progress) AS next');
    // acme a 11:58, acme b 11:59, beta a 11:59: the 09:00 one is older than the first hour, 12:00 is not over.
    expect(stored.rows[0]).toEqual({ n: 3, next: at('12:00:00') });
    expect(await executionStats(t.db, 'acme', undefined, 5, NOW)).toEqual(before);
    expect((await executionStats(t.db, 'acme', 'b', 5, NOW)).total).toMatchObject({ executions: 1, failures: 0 });
    expect((await executionStats(t.db, 'beta', undefined, 5, NOW)).total).toMatchObject({ executions: 1 });
  });

  it('rolls each minute up once, however often it runs, and catches up after a pause', async () => {
    await rollup().run(NOW);
    expect((await t.db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM orchestrator_minute_stats')).rows[0]!.n).toBe(3);
    const later = new Date(NOW.getTime() + 3 * MINUTE);
    await finished('x5', 'acme', 'a', at('12:01:30'), 25);
    await rollup().run(later);
    const next = await t.db.query<{ next: Date }>('SELECT next_minute AS next FROM orchestrator_stats_progress');
    expect(next.rows[0]!.next).toEqual(at('12:03:00'));
    const stats = await executionStats(t.db, 'acme', 'a', 10, later);
    expect(stats.total).toMatchObject({ executions: 4, failures: 1 });
  });

  it('forgets rolled-up minutes older than the retention', async () => {
    await new StatsRollup(t.db, createLogger('silent'), 60 * MINUTE).run(new Date(NOW.getTime() + 2 * 3_600_000));
    expect((await t.db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM orchestrator_minute_stats')).rows[0]!.n).toBe(0);
  });
});
