/**
 * OIH components: the cost of running them out of the hub, in per-tenant child processes.
 *
 * A one-action component (async `process`, returns `{data: {n: n + 1}}`) prepared once and run as
 * the engine runs it (`step.run(ctx)`), through the components module's pool:
 * - cold: the first call of a tenant (a process started, the module loaded);
 * - idle: 500 calls one after another → latency p50 / p99;
 * - saturated: `--concurrency` calls kept in flight for `--duration-ms` → steps/s and latency,
 *   for one tenant (its 2 processes) and for two tenants (4 processes);
 * - callback style: the same component written with `this.emit('data')` + `emit('end')`, idle
 *   (its run ends once the runner says nothing of it is pending: at once here).
 *
 * `npm run bench -- oih [--duration-ms=5000] [--concurrency=8]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PreparedStep } from '../server/src/modules/components/components.descriptor.js';
import { OihPool, oihComponent, readOihComponent, type OihRuntime } from '../server/src/modules/components/components.oih.js';
import { context, message } from '../server/src/modules/components/components.testing.js';
import { createLogger } from '../server/src/platform/logger.js';
import { recordResults } from './results.js';

const logger = createLogger('silent');

function arg(args: string[], name: string, fallback: number): number {
  const found = args.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

function writeComponent(root: string): void {
  fs.mkdirSync(path.join(root, 'bench-oih', 'lib'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'bench-oih', 'component.json'),
    JSON.stringify({ title: 'bench', actions: { inc: { main: './lib/inc.js' }, incCallback: { main: './lib/inc-callback.js' } } }),
  );
  fs.writeFileSync(path.join(root, 'bench-oih', 'lib', 'inc.js'), 'exports.process = async function (msg) { return { data: { n: msg.data.n + 1 } }; };');
  fs.writeFileSync(
    path.join(root, 'bench-oih', 'lib', 'inc-callback.js'),
    "exports.process = function (msg) { this.emit('data', { data: { n: msg.data.n + 1 } }); this.emit('end'); };",
  );
}

async function once(step: PreparedStep, tenant: string, n: number): Promise<number> {
  const started = performance.now();
  const out = await step.run(context(message({ n }), { tenant }));
  if ((out.messages[0]?.message.body as { n?: number } | undefined)?.n !== n + 1) throw new Error('wrong result');
  return performance.now() - started;
}

async function saturate(step: PreparedStep, tenants: string[], durationMs: number, concurrency: number): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const until = performance.now() + durationMs;
  let i = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (performance.now() < until) latencies.push(await once(step, tenants[w % tenants.length]!, i++));
    }),
  );
  const elapsed = performance.now() - started;
  latencies.sort((a, b) => a - b);
  return { perSecond: (latencies.length / elapsed) * 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

export async function run(args: string[]): Promise<void> {
  const durationMs = arg(args, 'duration-ms', 5_000);
  const concurrency = arg(args, 'concurrency', 8);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-oih-'));
  fs.chmodSync(root, 0o755);
  writeComponent(root);
  const pool = new OihPool({ size: 4, perTenant: 2, readRoots: () => [root], checkAddress: () => undefined, logger });
  const runtime: OihRuntime = { pool };
  try {
    const def = readOihComponent(path.join(root, 'bench-oih'));
    const component = oihComponent(def, { kind: 'directory', path: root }, runtime, logger);
    const step = await component.fn('inc')!.prepare({}, { logger });
    const callback = await component.fn('incCallback')!.prepare({}, { logger });
    const cold = await once(step, 'tenant-a', 0);
    for (let i = 0; i < 100; i++) await once(step, 'tenant-a', i);
    const idle: number[] = [];
    for (let i = 0; i < 500; i++) idle.push(await once(step, 'tenant-a', i));
    idle.sort((a, b) => a - b);
    const callbackIdle: number[] = [];
    for (let i = 0; i < 100; i++) callbackIdle.push(await once(callback, 'tenant-a', i));
    callbackIdle.sort((a, b) => a - b);
    const one = await saturate(step, ['tenant-a'], durationMs, concurrency);
    await once(step, 'tenant-b', 0);
    const two = await saturate(step, ['tenant-a', 'tenant-b'], durationMs, concurrency);
    const ms = (v: number): string => v.toFixed(2);
    const rows: (string | number)[][] = [
      ['cold start (process + module load)', ms(cold), '', ''],
      ['idle, async process', ms(percentile(idle, 50)), ms(percentile(idle, 99)), ''],
      ['idle, callback style (emit end, nothing pending)', ms(percentile(callbackIdle, 50)), ms(percentile(callbackIdle, 99)), ''],
      [`saturated, 1 tenant (2 processes), ${concurrency} in flight`, ms(one.p50), ms(one.p99), one.perSecond.toFixed(0)],
      [`saturated, 2 tenants (4 processes), ${concurrency} in flight`, ms(two.p50), ms(two.p99), two.perSecond.toFixed(0)],
    ];
    console.table(rows);
    recordResults('oih', {
      tables: [{ columns: ['case', 'p50 ms', 'p99 ms', 'steps/s'], rows }],
      notes: [
        'One OIH action run through the components module’s pool of per-tenant child processes (step.run as the engine calls it; no database, no bus): one IPC round trip per call plus the emits.',
        ...(os.loadavg()[0]! > os.cpus().length ? [`Measured under load: the machine is shared (load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores at the end); figures on a quiet machine will differ.`] : []),
        `Saturated runs last ${durationMs} ms each. A run that is over ends when the runner says nothing of it is pending (no fixed linger); one with timers or requests still under way is held for their emits, up to its time limit.`,
      ],
    });
  } finally {
    await pool.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}
