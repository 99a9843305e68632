/**
 * Code steps: the cost of running tenant JavaScript out of the hub.
 *
 * First the `code` component directly (prepare once, then `run` per message, as the engine calls
 * it): the sandbox is what changed, and the component is where both the old and the new sandbox
 * can be driven the same way in one run. For each sandbox:
 * - idle: 2,000 runs one after another → latency p50 / p99;
 * - saturated: 32 runs kept in flight for 5 s → code-steps/s, and latency p50 / p99 under that load;
 * - (new sandbox) the same with the load spread over two tenants and over three (more tenants than
 *   processes), a cold start (first run: process spawn + isolate), and a run whose tenant differs
 *   from every runner's (a process replaced).
 * Then a whole embedded hub (`plexus start`, defaults) running webhook → code → http-request, as
 * bench/flow.ts measures flows: completed executions/s, and latency at half that rate.
 * With `--main=<dir>` (a checkout of main with its node_modules) the old node:vm worker-thread
 * sandbox from that checkout is measured in the same run, both ways.
 *
 * `npm run bench -- code [--main=/tmp/plexus-main] [--duration-ms=5000] [--concurrency=32]`
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createCodeComponent } from '../server/src/modules/components/builtins/code.js';
import type { ComponentFunction, PreparedStep } from '../server/src/modules/components/components.descriptor.js';
import { SandboxPool } from '../server/src/modules/components/components.sandbox.js';
import { context, message } from '../server/src/modules/components/components.testing.js';
import { createLogger } from '../server/src/platform/logger.js';
import { createOutbound, type Outbound } from '../server/src/platform/outbound/index.js';
import { ADMIN_PASSWORD, api, measure as measureFlow, startHub, startSink, type Measured } from './flow.js';
import { recordResults, type ResultTable } from './results.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const TRIVIAL = 'return { n: body.n + 1 };';
const logger = createLogger('silent');

interface Figures {
  idleP50: number;
  idleP99: number;
  perSecond: number;
  loadP50: number;
  loadP99: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

async function runOne(step: PreparedStep, tenant: string, n: number): Promise<number> {
  const started = performance.now();
  const out = await step.run(context(message({ n }), { tenant }));
  if ((out.messages[0]?.message.body as { n?: number } | undefined)?.n !== n + 1) throw new Error('wrong result');
  return performance.now() - started;
}

async function measure(step: PreparedStep, tenants: string[], durationMs: number, concurrency: number): Promise<Figures> {
  for (let i = 0; i < 200; i++) await runOne(step, tenants[i % tenants.length]!, i);
  const idle: number[] = [];
  for (let i = 0; i < 2_000; i++) idle.push(await runOne(step, tenants[0]!, i));
  idle.sort((a, b) => a - b);
  const loaded: number[] = [];
  const until = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      for (let i = 0; performance.now() < until; i++) loaded.push(await runOne(step, tenants[lane % tenants.length]!, i));
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  loaded.sort((a, b) => a - b);
  return { idleP50: percentile(idle, 50), idleP99: percentile(idle, 99), perSecond: loaded.length / elapsedS, loadP50: percentile(loaded, 50), loadP99: percentile(loaded, 99) };
}

const row = (name: string, f: Figures): (string | number)[] => [name, f.idleP50, f.idleP99, f.perSecond, f.loadP50, f.loadP99];

/** The old sandbox's API, as main's code.ts and components.sandbox.ts export it. */
interface LegacyModules {
  createCodeComponent(o: { pool: unknown; outbound: Outbound }): { fn(name: string): ComponentFunction | undefined };
  SandboxPool: new (o: { size: number; memoryMb: number }) => { close(): Promise<void> };
}

async function loadLegacy(dir: string): Promise<LegacyModules> {
  const base = path.join(dir, 'server/src/modules/components');
  const code = (await import(pathToFileURL(path.join(base, 'builtins/code.ts')).href)) as Partial<LegacyModules>;
  const sandbox = (await import(pathToFileURL(path.join(base, 'components.sandbox.ts')).href)) as Partial<LegacyModules>;
  if (typeof code.createCodeComponent !== 'function' || typeof sandbox.SandboxPool !== 'function') throw new Error(`${dir} has no node:vm sandbox to compare with`);
  return { createCodeComponent: code.createCodeComponent, SandboxPool: sandbox.SandboxPool };
}

/** What a new isolate costs inside a runner-like process (bench/code-isolate-cost.mjs), for the ADR's comparison. */
function isolateCostMs(): string {
  const res = spawnSync(process.execPath, ['--no-node-snapshot', path.join(here, 'code-isolate-cost.mjs')], { encoding: 'utf8', cwd: path.join(here, '../server') });
  return res.status === 0 ? res.stdout.trim() : `not measured (${res.stderr.trim().split('\n').pop()})`;
}

/** webhook → code → http-request to the sink, created and started; its webhook URL. */
async function startCodeFlow(base: string, sinkUrl: string): Promise<string> {
  const login = await api(base, 'POST', '/api/v1/login', { username: 'admin', password: ADMIN_PASSWORD });
  const token = (login.body as { token: string }).token;
  const created = await api(
    base,
    'POST',
    '/api/v1/flows',
    {
      name: 'bench: webhook → code → http',
      flowSettings: { webhooks: { auth: 'none', respond: 'async' } },
      graph: {
        nodes: [
          { id: 'code', componentId: 'code', function: 'run', fields: { code: 'return { t: body.t, order: body.n, total: body.amount * 2 };' } },
          { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sinkUrl } },
        ],
        edges: [{ source: 'code', target: 'send' }],
      },
    },
    token,
  );
  if (created.status !== 201) throw new Error(`creating the flow failed: ${created.status} ${JSON.stringify(created.body)}`);
  const id = (created.body as { data: { id: string } }).data.id;
  const started = await api(base, 'POST', `/api/v1/flows/${id}/start`, undefined, token);
  if (started.status >= 300) throw new Error(`starting the flow failed: ${started.status} ${JSON.stringify(started.body)}`);
  for (const until = Date.now() + 60_000; ; ) {
    const f = await api(base, 'GET', `/api/v1/flows/${id}`, undefined, token);
    if ((f.body as { data: { status: string } }).data.status === 'active') return `${base}/hook/${id}`;
    if (Date.now() > until) throw new Error(`flow not active: ${JSON.stringify(f.body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The code flow through a whole embedded hub (`plexus start` from `serverDir`). */
async function measureHub(label: string, serverDir: string | undefined, durationMs: number): Promise<Measured> {
  const sink = await startSink();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-code-'));
  const hub = await startHub({ PLEXUS_DATA_DIR: dataDir }, serverDir);
  try {
    const hookUrl = await startCodeFlow(hub.url, sink.url);
    return await measureFlow(label, [hookUrl], sink, 50, durationMs, [hub.child.pid]);
  } finally {
    await hub.stop();
    await sink.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function run(args: string[]): Promise<void> {
  const arg = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const durationMs = Number(arg('duration-ms') ?? 5_000);
  const concurrency = Number(arg('concurrency') ?? 32);
  const mainDir = arg('main');
  const outbound = createOutbound({ allowPrivateNetwork: false, allowedHosts: [] });
  const rows: (string | number)[][] = [];
  const notes: string[] = [];

  if (mainDir) {
    const legacy = await loadLegacy(mainDir);
    const pool = new legacy.SandboxPool({ size: 2, memoryMb: 64 });
    const step = await legacy.createCodeComponent({ pool, outbound }).fn('run')!.prepare({ code: TRIVIAL }, { logger });
    const f = await measure(step, ['default'], durationMs, concurrency);
    rows.push(row('main: node:vm in 2 worker threads of the hub', f));
    console.log('main', f);
    await pool.close();
  }

  const pool = new SandboxPool({ size: 2, memoryMb: 64, cpuTimeMs: 10_000, slotsFor: () => 1, logger });
  const step = await createCodeComponent({ sandbox: pool, outbound }).fn('run')!.prepare({ code: TRIVIAL }, { logger });
  const coldMs = await runOne(step, 'cold', 0);
  const one = await measure(step, ['acme'], durationMs, concurrency);
  rows.push(row('isolated-vm in child processes, 1 tenant (1 slot: 1 process)', one));
  console.log('one tenant', one);
  const two = await measure(step, ['acme', 'globex'], durationMs, concurrency);
  rows.push(row('isolated-vm in child processes, 2 tenants (2 processes)', two));
  console.log('two tenants', two);
  // More tenants than processes, all saturating: round-robin makes most runs replace a process.
  const three = await measure(step, ['acme', 'globex', 'initech'], Math.min(durationMs, 3_000), concurrency);
  rows.push(row('isolated-vm in child processes, 3 tenants on 2 processes (a process handed to another tenant after 1 s)', three));
  console.log('three tenants', three);
  // Every run for a tenant no runner belongs to: each one replaces a process.
  const switches: number[] = [];
  for (let i = 0; i < 30; i++) switches.push(await runOne(step, `tenant-${i}`, i));
  switches.sort((a, b) => a - b);
  await pool.close();

  const flows: Measured[] = [];
  if (mainDir) flows.push(await measureHub('main (node:vm in worker threads of the hub)', path.join(mainDir, 'server'), Math.max(durationMs, 10_000)));
  flows.push(await measureHub('this branch (isolated-vm in child processes)', undefined, Math.max(durationMs, 10_000)));

  const table: ResultTable = {
    title: 'The code component alone',
    columns: ['sandbox', 'idle p50 ms', 'idle p99 ms', 'code-steps/s (saturated)', 'saturated p50 ms', 'saturated p99 ms'],
    rows,
  };
  const flowTable: ResultTable = {
    title: 'A whole embedded hub: webhook → code → http-request',
    columns: ['hub', 'completed executions/s (= code-steps/s)', 'server CPU per execution', 'half load (msg/s)', 'half-load p50 ms', 'half-load p99 ms'],
    rows: flows.map((f) => [f.label, Math.round(f.completedPerSec), `${Math.round(f.cpuUsPerExecution)} µs`, f.halfRate, f.halfP50, f.halfP99]),
  };
  notes.push(
    `The \`code\` component called directly (prepare once, run per message, as the engine calls it), trivial code \`${TRIVIAL}\`; not a whole flow.`,
    `Idle: 2,000 runs one after another after 200 to warm up. Saturated: ${concurrency} runs in flight for ${durationMs / 1000} s.`,
    'Both sandboxes with their defaults: 2 workers / processes, 64 MB; the new one gives a tenant 1 of its 2 processes (PLEXUS_LIMITS_CODE_SLOTS=1), so one tenant alone uses one process.',
    `New sandbox, cold start (spawn a process, load isolated-vm, first isolate and context, first run): ${coldMs.toFixed(0)} ms.`,
    `New sandbox, a run for a tenant with no process of its own while both are idle and bound to others (one process stopped, one started): p50 ${percentile(switches, 50).toFixed(0)} ms, max ${Math.max(...switches).toFixed(0)} ms over 30 runs.`,
    `For comparison, a new isolate plus its first context and run inside one process (bench/code-isolate-cost.mjs): ${isolateCostMs()}.`,
    'Goal: ≥ 1,000 code-steps/s on the embedded default.',
  );
  notes.push(
    'Whole hub: `plexus start` with its defaults (embedded PGlite, SQL bus, 2 code processes, 1 slot per tenant; one tenant here), 50 connections for the saturated run then until drained, then an open loop at half that rate; latency = request built → received by the sink (bench/flow.ts measures the same way). The code sandbox processes are not counted in the hub\'s CPU.',
  );
  recordResults('code', { tables: [table, flowTable], notes });
}
