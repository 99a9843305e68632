/**
 * Bus throughput and latency, per adapter and storage: enqueue → claim → handler → ack.
 *
 * For each target (SQL on PGlite, SQL on PostgreSQL, NATS JetStream) and 1 or 8 consumers:
 * - saturated: a closed-loop producer keeps WINDOW jobs outstanding for RUN_MS; throughput is
 *   jobs handled per second (acks included: consumers are stopped, which flushes acks, before
 *   the clock stops); its latency is mostly queueing (Little's law: ≈ WINDOW / throughput);
 * - half load: an open-loop producer at 50 % of that throughput; latency of a loaded system;
 * - idle: one job at a time; the wakeup path (enqueue call → handler start).
 * Latency is always enqueue call → handler start, in the same process.
 *
 * `npm run bench -- bus [--run-ms=5000] [--only=pglite,postgres,nats]`
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Db } from '../server/src/platform/db/db.js';
import { openDb } from '../server/src/platform/db/index.js';
import { createLogger } from '../server/src/platform/logger.js';
import type { Bus, Consumer } from '../server/src/platform/bus/bus.js';
import { createBus } from '../server/src/platform/bus/index.js';
import { dropSchema } from '../server/test/helpers/db.js';
import { hasNats, hasPostgres, TEST_DATABASE_URL, TEST_NATS_URL } from '../server/test/helpers/services.js';
import { recordResults, type ResultTable } from './results.js';

interface Payload {
  t: number;
  pad: string;
}

interface Storage {
  db: Db;
  natsUrl?: string;
  prefix?: string;
  cleanup(): Promise<void>;
}

interface Target {
  key: 'pglite' | 'postgres' | 'nats';
  label: string;
  goalPerSecond: number;
  isAvailable: boolean;
  open(): Promise<Storage>;
}

const WINDOW = 2_000;
const CONSUME = { concurrency: 100, batchSize: 100 };
const PAD = 'x'.repeat(64);
const IDLE_SAMPLES = 200;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const logger = createLogger('warn');

const targets: Target[] = [
  {
    key: 'pglite',
    label: 'sql · PGlite (data dir)',
    goalPerSecond: 5_000,
    isAvailable: true,
    async open() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-'));
      const db = await openDb({ dataDir: dir });
      return {
        db,
        async cleanup() {
          await db.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    key: 'postgres',
    label: 'sql · PostgreSQL',
    goalPerSecond: 10_000,
    isAvailable: hasPostgres,
    async open() {
      const schema = `bench_${randomBytes(4).toString('hex')}`;
      const db = await openDb({ url: TEST_DATABASE_URL, schema, poolSize: 10 });
      return {
        db,
        async cleanup() {
          await db.close();
          await dropSchema(schema);
        },
      };
    },
  },
  {
    key: 'nats',
    label: 'nats · JetStream',
    goalPerSecond: 30_000,
    isAvailable: hasNats,
    async open() {
      const db = await openDb({});
      const prefix = `BENCH${randomBytes(4).toString('hex')}`;
      return {
        db,
        natsUrl: TEST_NATS_URL,
        prefix,
        async cleanup() {
          const nc = await connect({ servers: TEST_NATS_URL });
          const jsm = await jetstreamManager(nc);
          for (const s of [`${prefix}_JOBS`, `${prefix}_EVENTS`]) await jsm.streams.delete(s).catch(() => false);
          await nc.close();
          await db.close();
        },
      };
    },
  },
];

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

interface Measured {
  perSecond: number;
  p50: number;
  p99: number;
  handled: number;
}

async function startConsumers(bus: Bus, queue: string, count: number, onJob: (p: Payload) => void): Promise<Consumer[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      bus.consume<Payload>(
        queue,
        async (job) => {
          onJob(job.payload);
        },
        CONSUME,
      ),
    ),
  );
}

/** Closed loop: WINDOW jobs outstanding for runMs; then stop producing and drain. */
async function saturated(bus: Bus, consumers: number, runMs: number): Promise<Measured> {
  const queue = `bench.sat.${randomBytes(3).toString('hex')}`;
  const latencies: number[] = [];
  let sent = 0;
  let handled = 0;
  let lastHandledAt = 0;
  let wakeProducer: (() => void) | undefined;
  let failure: unknown;
  const cs = await startConsumers(bus, queue, consumers, (p) => {
    const now = performance.now();
    latencies.push(now - p.t);
    handled++;
    lastHandledAt = now;
    wakeProducer?.();
    wakeProducer = undefined;
  });
  const startedAt = performance.now();
  while (performance.now() - startedAt < runMs && failure === undefined) {
    const room = WINDOW - (sent - handled);
    if (room <= 0) {
      await new Promise<void>((resolve) => (wakeProducer = resolve));
      continue;
    }
    for (let i = 0; i < Math.min(room, 200); i++) {
      sent++;
      bus.enqueue<Payload>(queue, { t: performance.now(), pad: PAD }).catch((err: unknown) => (failure = err));
    }
    // Let the event loop run: group commit and consumers need it.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  while (handled < sent && failure === undefined) await sleep(5);
  await Promise.all(cs.map((c) => c.stop()));
  if (failure !== undefined) throw failure;
  latencies.sort((a, b) => a - b);
  return { perSecond: handled / ((lastHandledAt - startedAt) / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99), handled };
}

/** Open loop at a fixed rate for runMs. */
async function atRate(bus: Bus, consumers: number, perSecond: number, runMs: number): Promise<Measured> {
  const queue = `bench.rate.${randomBytes(3).toString('hex')}`;
  const latencies: number[] = [];
  let sent = 0;
  let handled = 0;
  let failure: unknown;
  const cs = await startConsumers(bus, queue, consumers, (p) => {
    latencies.push(performance.now() - p.t);
    handled++;
  });
  const startedAt = performance.now();
  while (performance.now() - startedAt < runMs && failure === undefined) {
    const due = Math.floor(((performance.now() - startedAt) / 1000) * perSecond);
    for (; sent < due; sent++) bus.enqueue<Payload>(queue, { t: performance.now(), pad: PAD }).catch((err: unknown) => (failure = err));
    await sleep(1);
  }
  const endedAt = performance.now();
  while (handled < sent && failure === undefined) await sleep(5);
  await Promise.all(cs.map((c) => c.stop()));
  if (failure !== undefined) throw failure;
  latencies.sort((a, b) => a - b);
  return { perSecond: sent / ((endedAt - startedAt) / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99), handled };
}

/** One job at a time on an idle queue: the wakeup path. */
async function idle(bus: Bus): Promise<Measured> {
  const queue = `bench.idle.${randomBytes(3).toString('hex')}`;
  const latencies: number[] = [];
  let started: () => void = () => {};
  const [c] = await startConsumers(bus, queue, 1, (p) => {
    latencies.push(performance.now() - p.t);
    started();
  });
  await sleep(200);
  for (let i = 0; i < IDLE_SAMPLES; i++) {
    const handled = new Promise<void>((resolve) => (started = resolve));
    await bus.enqueue<Payload>(queue, { t: performance.now(), pad: PAD });
    await handled;
    await sleep(5);
  }
  await c!.stop();
  latencies.sort((a, b) => a - b);
  return { perSecond: Number.NaN, p50: percentile(latencies, 50), p99: percentile(latencies, 99), handled: latencies.length };
}

function parseArgs(args: string[]): { runMs: number; only: Set<string> | undefined } {
  let runMs = 5_000;
  let only: Set<string> | undefined;
  for (const a of args) {
    const [k, v] = a.replace(/^--/, '').split('=');
    if (k === 'run-ms' && v) runMs = Number(v);
    else if (k === 'only' && v) only = new Set(v.split(','));
    else throw new Error(`unknown argument ${a}; use --run-ms=5000 --only=pglite,postgres,nats`);
  }
  return { runMs, only };
}

export async function run(args: string[]): Promise<void> {
  const { runMs, only } = parseArgs(args);
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  for (const target of targets) {
    if (only && !only.has(target.key)) continue;
    if (!target.isAvailable) {
      notes.push(`${target.label}: skipped, service not running`);
      continue;
    }
    for (const consumers of [1, 8]) {
      const storage = await target.open();
      const bus = await createBus({
        db: storage.db,
        natsUrl: storage.natsUrl,
        ...(storage.prefix ? { prefix: storage.prefix } : {}),
        serviceName: 'bench',
        logger,
        maxAttempts: 5,
        leaseMs: 30_000,
      });
      try {
        await saturated(bus, consumers, Math.min(1_000, runMs)); // warm-up: JIT, caches, connections
        const sat = await saturated(bus, consumers, runMs);
        const half = await atRate(bus, consumers, sat.perSecond / 2, Math.min(3_000, runMs));
        const quiet = await idle(bus);
        const met = sat.perSecond >= target.goalPerSecond ? 'yes' : 'NO';
        const row = [
          target.label,
          consumers,
          Math.round(sat.perSecond),
          `${target.goalPerSecond.toLocaleString('en-US')} (${met})`,
          sat.p50,
          sat.p99,
          half.p50,
          half.p99,
          quiet.p50,
          quiet.p99,
        ];
        rows.push(row);
        console.log(
          `${target.label} × ${consumers}: ${Math.round(sat.perSecond)} msg/s (goal ${target.goalPerSecond}, ${met}); ` +
            `saturated p50 ${sat.p50.toFixed(1)} / p99 ${sat.p99.toFixed(1)} ms; ` +
            `at ${Math.round(half.perSecond)}/s p50 ${half.p50.toFixed(1)} / p99 ${half.p99.toFixed(1)} ms; ` +
            `idle p50 ${quiet.p50.toFixed(2)} / p99 ${quiet.p99.toFixed(2)} ms`,
        );
      } finally {
        await bus.close();
        await storage.cleanup();
      }
    }
  }
  const table: ResultTable = {
    columns: [
      'adapter',
      'consumers',
      'msg/s',
      'goal msg/s (met)',
      'saturated p50 ms',
      'saturated p99 ms',
      '50 % load p50 ms',
      '50 % load p99 ms',
      'idle p50 ms',
      'idle p99 ms',
    ],
    rows,
  };
  if (only) {
    // A partial run would replace the whole section with some of the rows.
    console.log('\n--only: figures printed, bench/RESULTS.md left as it was');
    return;
  }
  recordResults('bus', {
    tables: [table],
    notes: [
      `Each job: enqueue → claim → handler → ack, payload ~90 bytes of JSON; consumers run concurrency ${CONSUME.concurrency}, batchSize ${CONSUME.batchSize}, all in one process with the producer.`,
      `Saturated: closed loop with ${WINDOW.toLocaleString('en-US')} jobs outstanding for ${runMs} ms after a warm-up; its latency is queueing (≈ ${WINDOW} / throughput). 50 % load: open loop at half the saturated rate. Idle: ${IDLE_SAMPLES} jobs one at a time.`,
      'Latency = enqueue call → handler start. Enqueues are individual calls (as webhook ingest makes them); the SQL adapter coalesces them by group commit.',
      'PGlite on a data directory (the default deployment); PostgreSQL 15 on localhost with a pool of 10; NATS 2.9 (file storage) on localhost, its outbox on in-memory PGlite (unused here: no tx, no delay).',
      ...notes,
    ],
  });
}
