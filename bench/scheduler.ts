/**
 * Scheduler precision: with 10,000 started scheduled flows, how late does each firing come
 * (commit of its job − its due time)? Goal: within 1 s.
 *
 * Two loads: each flow fires every `period` seconds at its own offset
 * (`<i mod period>-59/<period> * * * * *`), so 10,000 flows with a 10 s period make 1,000
 * firings every second; or all of them at the same second (`0-59/<period> * * * * *`, the burst a
 * plain `* * * * *` makes at :00). Each firing stores a job for the flow's first step; nobody
 * consumes those queues. Runs on
 * embedded PGlite (the default install) and, when it answers, on PostgreSQL with three
 * scheduler instances (separate pools) sharing the table, which also checks that no due time
 * fires twice.
 *
 * `npm run bench -- scheduler [--flows=10000] [--period-s=10] [--duration-ms=30000] [--only=pglite|postgres]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Flow } from '../server/src/contracts/flows.js';
import { SchedulerService, type Firing } from '../server/src/modules/scheduler/index.js';
import { createBus, type Bus } from '../server/src/platform/bus/index.js';
import { openDb, type Db } from '../server/src/platform/db/index.js';
import { createLogger } from '../server/src/platform/logger.js';
import { dropSchema } from '../server/test/helpers/db.js';
import { hasPostgres, TEST_DATABASE_URL } from '../server/test/helpers/services.js';
import { recordResults } from './results.js';

const logger = createLogger('warn');

function argValue(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** `spread`: each flow at its own offset within the period; otherwise all at once (like `* * * * *` at :00). */
function scheduledFlow(i: number, periodS: number, spread: boolean): Flow {
  const now = new Date().toISOString();
  return {
    id: `bench-${i}`,
    tenant: 'default',
    name: `scheduled ${i}`,
    cron: spread ? `${i % periodS}-59/${periodS} * * * * *` : `0-59/${periodS} * * * * *`,
    graph: { nodes: [{ id: 'poll', componentId: 'http-request', function: 'request' }], edges: [] },
    status: 'starting',
    owners: [],
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
}

interface Row {
  target: string;
  load: string;
  instances: number;
  firings: number;
  perS: number;
  p50: number;
  p99: number;
  max: number;
  duplicates: number;
  setupS: number;
}

async function measure(target: string, dbs: Db[], flows: number, periodS: number, durationMs: number, spread: boolean): Promise<Row> {
  const buses: Bus[] = [];
  const schedulers: SchedulerService[] = [];
  const firings: Firing[] = [];
  for (const db of dbs) {
    const bus = await createBus({ db, serviceName: 'bench-scheduler', logger, maxAttempts: 3, leaseMs: 30_000 });
    buses.push(bus);
    schedulers.push(new SchedulerService(db, bus, logger, { onFired: (f) => firings.push(...f) }));
  }
  const setupStarted = performance.now();
  // The lifecycle the events drive: flow.starting records, flow.started schedules.
  const s0 = schedulers[0]!;
  for (let i = 0; i < flows; i++) await s0.recordFlow(scheduledFlow(i, periodS, spread));
  for (let i = 0; i < flows; i++) await s0.scheduleFlow(`bench-${i}`);
  const setupS = (performance.now() - setupStarted) / 1000;
  console.log(`${target}: ${flows} flows scheduled in ${setupS.toFixed(1)} s`);

  await Promise.all(schedulers.map((s) => s.start()));
  // The first second after start fires what came due during setup, late by design: skip it.
  const measureFrom = Date.now() + 2_000;
  await new Promise((r) => setTimeout(r, durationMs + 2_000));
  await Promise.all(schedulers.map((s) => s.stop()));
  await Promise.all(buses.map((b) => b.close()));

  const counted = firings.filter((f) => f.dueAt.getTime() >= measureFrom);
  const keys = new Set(firings.map((f) => `${f.flowId}@${f.dueAt.getTime()}`));
  const lateness = counted.map((f) => f.firedAtMs - f.dueAt.getTime()).sort((a, b) => a - b);
  const row: Row = {
    target,
    load: spread ? `${Math.round(flows / periodS)} due every second` : `all ${flows} due at once every ${periodS} s`,
    instances: dbs.length,
    firings: counted.length,
    perS: counted.length / (durationMs / 1000),
    p50: percentile(lateness, 50),
    p99: percentile(lateness, 99),
    max: lateness[lateness.length - 1] ?? NaN,
    duplicates: firings.length - keys.size,
    setupS,
  };
  console.log(`${target}, ${row.load}: ${row.firings} firings (${Math.round(row.perS)}/s), lateness p50 ${row.p50} ms, p99 ${row.p99} ms, max ${row.max} ms, duplicates ${row.duplicates}`);
  return row;
}

export async function run(args: string[]): Promise<void> {
  const flows = Number(argValue(args, 'flows') ?? 10_000);
  const periodS = Number(argValue(args, 'period-s') ?? 10);
  const durationMs = Number(argValue(args, 'duration-ms') ?? 30_000);
  const only = argValue(args, 'only');
  const rows: Row[] = [];

  for (const spread of [true, false]) {
    if (!only || only === 'pglite') {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-scheduler-'));
      const db = await openDb({ dataDir });
      try {
        rows.push(await measure('embedded PGlite', [db], flows, periodS, durationMs, spread));
      } finally {
        await db.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    }
    if ((!only || only === 'postgres') && hasPostgres) {
      const schema = `bench_sched_${Date.now().toString(36)}`;
      const dbs: Db[] = [];
      try {
        for (let i = 0; i < 3; i++) dbs.push(await openDb({ url: TEST_DATABASE_URL, poolSize: 4, schema }));
        rows.push(await measure('PostgreSQL', dbs, flows, periodS, durationMs, spread));
      } finally {
        for (const db of dbs) await db.close();
        await dropSchema(schema);
      }
    }
  }

  recordResults('scheduler', {
    tables: [
      {
        columns: ['database', 'schedulers', 'active flows', 'load', 'firings measured', 'lateness p50 ms', 'p99 ms', 'max ms', 'fired twice'],
        rows: rows.map((r) => [r.target, r.instances, flows, r.load, r.firings, r.p50, r.p99, r.max, r.duplicates]),
      },
    ],
    notes: [
      `${flows} active scheduled flows firing every ${periodS} s, either spread over the period (each at its own second) or all at the same second (the \`* * * * *\` at :00 case); measured for ${durationMs / 1000} s after a 2 s settling period.`,
      'Lateness = the job for the flow\'s first step is stored − the due time. Goal: every firing within 1 s.',
      'PostgreSQL runs three scheduler instances (separate pools) on one table; "fired twice" counts due times fired more than once across them.',
    ],
  });
}
