/**
 * Workers: the cost of running a flow step out of process, on a gRPC worker.
 *
 * 1. Component calls through one TypeScript worker: a router (Dispatcher + gRPC server, as the
 *    hub runs it) in the bench process and one SDK worker child process on loopback serving
 *    `bench.echo`; 256 calls kept in flight for the duration → calls/s; then an open loop at half
 *    that rate → round-trip p50/p99 (delivery sent → outcome received).
 * 2. Command round trip: an SDK worker in the bench process sends `ping` commands through the
 *    router (schema check, hand-over or durable queue `router.commands`, receipt) to the child
 *    worker; 64 in flight → commands/s, then half that rate → p50/p99; `--rounds` times (5).
 *    An idle witness process (workers/witness.mjs) records how late it wakes in each counted
 *    window: the machine's own stalls, beside the figures they disturb.
 * 3. Scale-out: `bench.spin` burns 2 ms of CPU time per call in a worker holding one call at a
 *    time, each worker process in a cgroup held to 40 % of one core (when cgroup v1 cpu groups are
 *    writable, i.e. as root); one worker vs two → calls/s.
 * 4. Whole hub: an embedded hub (`plexus start`) and a `plexus worker --component builtin:transform`,
 *    webhook → transform → transform (on the worker) → http-request to a local sink, measured as
 *    bench/flow.ts measures flows; then the same flow with that step local.
 *
 * `npm run bench -- workers [--duration-ms=5000] [--rounds=5] [--only=calls,commands,scale,flow]`
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAuditPublisher } from '../server/src/platform/audit.js';
import { createBus } from '../server/src/platform/bus/index.js';
import { openDb } from '../server/src/platform/db/index.js';
import type { Principal } from '../server/src/platform/http/index.js';
import { createLogger } from '../server/src/platform/logger.js';
import { Commands } from '../server/src/modules/router/router.commands.js';
import { Dispatcher } from '../server/src/modules/router/router.dispatch.js';
import { RouterGrpcServer } from '../server/src/modules/router/router.grpc.js';
import { RouterService } from '../server/src/modules/router/router.service.js';
import { Worker } from '../server/src/worker-sdk/index.js';
import { ADMIN_PASSWORD, api, argValue, canUseCpuGroups, createCpuGroup, freePort, measure, processCpuSeconds, sleep, startHub, startSink, stopChild, type CpuGroup, type Measured } from './flow.js';
import { recordResults, type ResultTable } from './results.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'workers', 'child.ts');
const WITNESS = path.join(here, 'workers', 'witness.mjs');
const SERVER_DIR = path.resolve(here, '../server');
const logger = createLogger('silent');

function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

function cpuBusy(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t;
    busy += t - c.times.idle;
  }
  return { busy, total };
}

interface Router {
  address: string;
  dispatcher: Dispatcher;
  enrol(components: string[]): Promise<string>;
  close(): Promise<void>;
}

/** A router as the hub runs it (router role), on embedded PGlite and the SQL bus. */
async function startRouter(): Promise<Router> {
  const db = await openDb({});
  const bus = await createBus({ db, serviceName: 'bench-router', logger, maxAttempts: 5, leaseMs: 30_000 });
  const service = new RouterService(db, createAuditPublisher(bus, 'router', logger), logger);
  const dispatcher = new Dispatcher({ leaseMs: 10_000, logger });
  const commands = new Commands(bus, dispatcher, 'bench', logger);
  const grpc = new RouterGrpcServer(
    { host: '127.0.0.1', port: 0, aggregatorName: 'plexus', instanceId: 'bench', maxMessageBytes: 4 * 1024 * 1024, leaseMs: 10_000, helloTimeoutMs: 10_000, tls: undefined },
    dispatcher,
    service,
    commands,
    logger,
  );
  await commands.start();
  const port = await grpc.start();
  const admin: Principal = { accountId: 'bench', username: 'bench', tenantId: 'default', homeTenantId: 'default', permissions: ['all'], roles: [], kind: 'user', tokenId: 'bench' };
  return {
    address: `127.0.0.1:${port}`,
    dispatcher,
    enrol: async (components) => (await service.createEnrolment(admin, { components, expiresInSeconds: 3_600 })).secret,
    async close() {
      dispatcher.close();
      await grpc.stop(2_000);
      await commands.stop();
      await bus.close();
      await db.close();
    },
  };
}

interface Child {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Each scale-out worker's CPU share (cgroup cpu.cfs_quota_us / cpu.cfs_period_us): 40 % of one core. */
const WORKER_CPU_SHARE = 0.4;

/** A worker child process; with `cpuShare`, in a cpu group of its own from its first instruction. */
async function startChild(router: string, id: string, concurrency: number, secret: string, dir: string, cpuShare?: number): Promise<Child> {
  const command = [process.execPath, '--import', 'tsx', CHILD, router, path.join(dir, `${id}.cred`), id, String(concurrency), secret];
  const group: CpuGroup | undefined = cpuShare !== undefined ? createCpuGroup(cpuShare) : undefined;
  const [file, ...argv] = group ? ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', group.dir, ...command] : command;
  const child = spawn(file!, argv, { cwd: SERVER_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const until = Date.now() + 60_000;
  while (!out.includes('bench worker attached')) {
    if (child.exitCode !== null || Date.now() > until) throw new Error(`bench worker ${id} did not attach: ${out}`);
    await sleep(50);
  }
  return {
    child,
    async stop() {
      await stopChild(child, 5_000);
      await group?.remove();
    },
  };
}

/** How late the idle witness (workers/witness.mjs) woke while latencies were counted. */
interface Stalls {
  longestMs: number;
  over3: number;
  over10: number;
}

/** The idle witness process: started once, asked about each counted window. */
class Witness {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<Witness> {
    // Plain node (not the bench's tsx loader): it loads nothing and starts at once.
    const child = fork(WITNESS, [], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    return new Witness(child);
  }

  clear(): void {
    this.child.send('start');
  }

  report(): Promise<Stalls> {
    return new Promise((resolve) => {
      this.child.once('message', (m) => resolve(m as Stalls));
      this.child.send('report');
    });
  }

  stop(): void {
    this.child.kill();
  }
}

/** The witness's record for a table cell. */
function stallText(s: Stalls): string {
  return `${s.longestMs.toFixed(1)} ms (${s.over3} > 3 ms, ${s.over10} > 10 ms)`;
}

function call(router: Router, fn: 'echo' | 'spin', n: number): Promise<unknown> {
  return router.dispatcher.call({
    tenant: 'default',
    component: 'bench',
    function: fn,
    version: '1',
    needsSecure: false,
    deadline: Date.now() + 30_000,
    payload: { tenant: 'default', flowId: 'f', nodeId: 'n', executionId: 'e', idempotencyKey: `e:n:${n}`, attempt: 1, message: { id: String(n), body: { n }, headers: {}, metadata: {}, attachments: {} }, fields: {}, snapshot: null },
  });
}

interface Rate {
  perSecond: number;
  p50: number;
  p99: number;
  halfRate: number;
  cpuPct: number;
  /** CPU time of the bench process (router, and for commands the sender) per operation in the counted half-load window, µs. */
  cpuUsPerOp: number;
  /** The counted half-load latencies, ms, sorted. */
  latencies: Float64Array;
  /** What the idle witness saw in the same window. */
  stalls: Stalls;
}

/** The open loop's first part, not counted (see saturateThenHalf). */
const WARMUP_MS = 1_000;

/** Saturated with `inFlight` at once, then an open loop at half the rate; latencies in ms. */
async function saturateThenHalf(op: (n: number) => Promise<unknown>, inFlight: number, durationMs: number, witness: Witness): Promise<Rate> {
  for (let i = 0; i < 500; i++) await op(i);
  let done = 0;
  const until = performance.now() + durationMs;
  const t0 = performance.now();
  const c0 = cpuBusy();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, lane) => {
      for (let i = lane; performance.now() < until; i += inFlight) {
        await op(i);
        done++;
      }
    }),
  );
  const c1 = cpuBusy();
  const perSecond = done / ((performance.now() - t0) / 1000);
  const halfRate = Math.max(1, Math.round(perSecond / 2));
  // The open loop runs WARMUP_MS at the half rate before its latencies count: the switch from the
  // saturated phase (drained queues, the collector's debt from it, code paths of a half-empty
  // pipeline) is a transient of the bench, not the steady state the goal is about.
  // Latencies in a typed array and in-flight operations counted, not kept: the open loop shares
  // its process with the router, and tens of thousands of retained promises and boxed numbers
  // grew the old generation until a full collection paused the router mid-measure.
  const latencies = new Float64Array(Math.ceil((halfRate * (WARMUP_MS + durationMs)) / 1000) + 1_000);
  let measured = 0;
  let cpuAtMeasure: NodeJS.CpuUsage | undefined;
  let outstanding = 0;
  let allDone: (() => void) | undefined;
  let failure: unknown;
  const start = performance.now();
  const measureFrom = start + WARMUP_MS;
  for (let i = 0; performance.now() - start < WARMUP_MS + durationMs; i++) {
    const due = start + (i * 1000) / halfRate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const sent = performance.now();
    const counted = sent >= measureFrom;
    if (counted && !cpuAtMeasure) {
      cpuAtMeasure = process.cpuUsage();
      witness.clear();
    }
    outstanding++;
    void op(1_000_000 + i).then(
      () => {
        if (counted && measured < latencies.length) latencies[measured++] = performance.now() - sent;
        if (--outstanding === 0) allDone?.();
      },
      (err: unknown) => {
        failure ??= err;
        if (--outstanding === 0) allDone?.();
      },
    );
  }
  if (outstanding > 0) await new Promise<void>((resolve) => (allDone = resolve));
  const cpu = process.cpuUsage(cpuAtMeasure);
  const stalls = await witness.report();
  if (failure) throw failure;
  const sorted = latencies.slice(0, measured).sort();
  return { perSecond, p50: percentile(sorted, 50), p99: percentile(sorted, 99), halfRate, cpuPct: (100 * (c1.busy - c0.busy)) / (c1.total - c0.total), cpuUsPerOp: (cpu.user + cpu.system) / measured, latencies: sorted, stalls };
}

/**
 * `n` times saturateThenHalf, each round with its own half rate, all reported; the verdict takes the
 * median round, and the p99 of all rounds' commands pooled is given too. One round a few seconds
 * after start measures a router whose old generation has not filled yet: the steady state, with the
 * full collections it may bring, shows from about the third round on (that is how the message ids
 * kept for deduplication were found to fill it). And this machine's speed drifts within seconds
 * (the column of CPU per operation shows it), so one slow round should not decide alone.
 */
async function rounds(op: (n: number) => Promise<unknown>, inFlight: number, durationMs: number, n: number, witness: Witness): Promise<{ each: Rate[]; median: Rate; pooledP99: number }> {
  const each: Rate[] = [];
  for (let i = 0; i < n; i++) each.push(await saturateThenHalf(op, inFlight, durationMs, witness));
  const byP99 = [...each].sort((a, b) => a.p99 - b.p99);
  const pooled = new Float64Array(each.reduce((sum, r) => sum + r.latencies.length, 0));
  let at = 0;
  for (const r of each) {
    pooled.set(r.latencies, at);
    at += r.latencies.length;
  }
  return { each, median: byP99[Math.floor((n - 1) / 2)]!, pooledP99: percentile(pooled.sort(), 99) };
}

async function flowRuns(durationMs: number): Promise<Measured[]> {
  const sink = await startSink();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-workers-'));
  const grpcPort = await freePort();
  const hub = await startHub({ PLEXUS_DATA_DIR: dataDir, PLEXUS_GRPC_PORT: String(grpcPort) });
  let worker: ChildProcess | undefined;
  try {
    const token = ((await api(hub.url, 'POST', '/api/v1/login', { username: 'admin', password: ADMIN_PASSWORD })).body as { token: string }).token;
    const secret = ((await api(hub.url, 'POST', '/api/v1/workers/enrolments', { components: ['transform'] }, token)).body as { data: { secret: string } }).data.secret;
    worker = spawn(process.execPath, [path.join(SERVER_DIR, 'bin', 'plexus.js'), 'worker', '--router', `127.0.0.1:${grpcPort}`, '--component', 'builtin:transform', '--secret', secret, '--id', 'bench', '--credential-file', path.join(dataDir, 'w.cred'), '--concurrency', '256'], {
      cwd: SERVER_DIR,
      env: { PATH: process.env.PATH ?? '', HOME: dataDir, PLEXUS_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    worker.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const until = Date.now() + 60_000;
    while (!out.includes('Plexus worker attached')) {
      if (worker.exitCode !== null || Date.now() > until) throw new Error(`plexus worker did not attach: ${out}`);
      await sleep(50);
    }
    const results: Measured[] = [];
    for (const runtime of ['workers', 'local'] as const) {
      const created = await api(
        hub.url,
        'POST',
        '/api/v1/flows',
        {
          name: `bench: step on ${runtime}`,
          flowSettings: { webhooks: { auth: 'none', respond: 'async' } },
          graph: {
            nodes: [
              { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"t": t, "order": n}' } },
              { id: 'remote', componentId: 'transform', function: 'jsonata', fields: { expression: '$' }, nodeSettings: { runtime, concurrency: 256 } },
              { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } },
            ],
            edges: [
              { source: 'shape', target: 'remote' },
              { source: 'remote', target: 'send' },
            ],
          },
        },
        token,
      );
      const flowId = (created.body as { data: { id: string } }).data.id;
      await api(hub.url, 'POST', `/api/v1/flows/${flowId}/start`, undefined, token);
      for (let i = 0; i < 200; i++) {
        const s = await api(hub.url, 'GET', `/api/v1/flows/${flowId}`, undefined, token);
        if ((s.body as { data: { status: string } }).data.status === 'active') break;
        await sleep(50);
      }
      results.push(await measure(`hub + flow, middle step ${runtime === 'workers' ? 'on a plexus worker' : 'local'}`, [`${hub.url}/hook/${flowId}`], sink, 50, durationMs, [hub.child.pid, ...(runtime === 'workers' ? [worker.pid] : [])]));
      await api(hub.url, 'POST', `/api/v1/flows/${flowId}/stop`, undefined, token);
    }
    return results;
  } finally {
    worker?.kill('SIGTERM');
    await hub.stop();
    await sink.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function run(args: string[]): Promise<void> {
  const durationMs = Number(argValue(args, 'duration-ms') ?? 5_000);
  const commandRounds = Math.max(1, Number(argValue(args, 'rounds') ?? 5));
  const only = argValue(args, 'only')?.split(',');
  const wants = (k: string): boolean => !only || only.includes(k);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-workers-'));
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  let flows: Measured[] = [];
  let commandGoal: string | undefined;
  let scale: { one: number; two: number; cpuOne: number; cpuTwo: number; cpuShare: number | undefined; perCall: [number, number]; cores: [number, number] } | undefined;

  const router = await startRouter();
  const witness = await Witness.start();
  const children: Child[] = [];
  try {
    if (wants('calls') || wants('commands')) {
      children.push(await startChild(router.address, 'w1', 256, await router.enrol(['bench']), dir));
    }
    if (wants('calls')) {
      const r = await saturateThenHalf((n) => call(router, 'echo', n), 256, durationMs, witness);
      process.stdout.write(`  component calls through one worker: ${r.perSecond.toFixed(0)}/s; half load p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms\n`);
      rows.push(['step component calls, 1 TS worker (256 in flight)', Math.round(r.perSecond), `${Math.round(r.cpuPct)} %`, r.halfRate, r.p50, r.p99, `${r.cpuUsPerOp.toFixed(1)} µs`, stallText(r.stalls)]);
    }
    if (wants('commands')) {
      const sender = new Worker({ routers: [router.address], workerId: 'sender', enrolmentSecret: await router.enrol(['sender']), credentialFile: path.join(dir, 'sender.cred'), components: [{ name: 'sender', version: '1.0.0', functions: {} }] });
      await sender.start();
      try {
        const r = await rounds((n) => sender.sendCommand('bench', 'ping', { n }, { timeoutMs: 30_000 }), 64, durationMs, commandRounds, witness);
        r.each.forEach((x, i) => {
          process.stdout.write(`  command round trip, round ${i + 1} of ${commandRounds}: ${x.perSecond.toFixed(0)}/s; half load p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms; ${x.cpuUsPerOp.toFixed(1)} µs of router-process CPU per command; idle witness ${stallText(x.stalls)}\n`);
          rows.push([`command round trip worker → router → worker (64 in flight), round ${i + 1} of ${commandRounds}`, Math.round(x.perSecond), `${Math.round(x.cpuPct)} %`, x.halfRate, x.p50, x.p99, `${x.cpuUsPerOp.toFixed(1)} µs`, stallText(x.stalls)]);
        });
        const met = r.each.filter((x) => x.p99 <= 5).length;
        commandGoal =
          `Goal command round trip p99 ≤ 5 ms at half load: ${r.median.p99 <= 5 ? 'met' : 'NOT met'} in the median round (${r.median.p99.toFixed(2)} ms); ${met} of ${commandRounds} rounds ≤ 5 ms (${r.each.map((x) => x.p99.toFixed(2)).join(' / ')} ms); all rounds' commands pooled: p99 ${r.pooledP99.toFixed(2)} ms.`;
      } finally {
        await sender.stop();
      }
    }
    for (const c of children.splice(0)) await c.stop();
    if (wants('scale')) {
      // Each worker held to the same CPU share, so that two of them are two units of capacity even
      // on a machine whose cores the router and other work also use (DEVELOPERS.md).
      const cpuShare = canUseCpuGroups() ? WORKER_CPU_SHARE : undefined;
      if (cpuShare === undefined) process.stdout.write('  (cgroup v1 cpu groups not writable here: the scale-out workers run without a CPU share)\n');
      const measureSpin = async (workers: number) => {
        const started: Child[] = [];
        for (let i = 0; i < workers; i++) started.push(await startChild(router.address, `spin-${workers}-${i}`, 1, await router.enrol(['bench']), dir, cpuShare));
        try {
          // The workers' own CPU time per call and the cores they got: independent of how busy
          // the machine was, unlike the rate.
          let calls = 0;
          const cpu = () => started.reduce((sum, c) => sum + processCpuSeconds(c.child.pid), 0);
          const cpu0 = cpu();
          const r = await saturateThenHalf((n) => call(router, 'spin', n).then(() => void calls++), 16, durationMs, witness);
          const perCall = (cpu() - cpu0) / calls;
          // Cores the workers got while saturated: calls/s × CPU per call.
          return { ...r, workerCpuUsPerCall: perCall * 1e6, workerCores: r.perSecond * perCall };
        } finally {
          for (const c of started) await c.stop();
        }
      };
      const one = await measureSpin(1);
      const two = await measureSpin(2);
      scale = { one: one.perSecond, two: two.perSecond, cpuOne: one.cpuPct, cpuTwo: two.cpuPct, cpuShare, perCall: [one.workerCpuUsPerCall, two.workerCpuUsPerCall], cores: [one.workerCores, two.workerCores] };
      process.stdout.write(`  scale-out (2 ms CPU per call, one call at a time per worker): 1 worker ${one.perSecond.toFixed(0)}/s, 2 workers ${two.perSecond.toFixed(0)}/s (${(two.perSecond / one.perSecond).toFixed(2)}×)\n`);
      rows.push(['spin 2 ms CPU, 1 worker × 1 slot', Math.round(one.perSecond), `${Math.round(one.cpuPct)} %`, one.halfRate, one.p50, one.p99, `${one.cpuUsPerOp.toFixed(1)} µs`, stallText(one.stalls)]);
      rows.push(['spin 2 ms CPU, 2 workers × 1 slot', Math.round(two.perSecond), `${Math.round(two.cpuPct)} %`, two.halfRate, two.p50, two.p99, `${two.cpuUsPerOp.toFixed(1)} µs`, stallText(two.stalls)]);
    }
  } finally {
    for (const c of children) await c.stop();
    witness.stop();
    await router.close();
  }
  if (wants('flow')) flows = await flowRuns(Math.max(durationMs, 5_000));
  fs.rmSync(dir, { recursive: true, force: true });

  const tables: ResultTable[] = [
    { title: 'Router and workers on loopback (router in the bench process, workers are child processes)', columns: ['what', 'per second (saturated)', 'machine CPU busy', 'half load (per second)', 'half-load p50 ms', 'half-load p99 ms', 'bench-process CPU per op (half load)', 'idle witness: longest late wake-up (half load)'], rows },
  ];
  if (flows.length > 0) {
    tables.push({
      title: 'Whole hub: webhook → transform → transform → http-request (sink), embedded hub (`plexus start`)',
      columns: ['middle step', 'completed executions/s', 'machine CPU busy', 'CPU per execution (hub + worker)', 'half load (msg/s)', 'half-load p50 ms', 'half-load p99 ms'],
      rows: flows.map((f) => [f.label, Math.round(f.completedPerSec), `${Math.round(f.cpuBusyPct)} %`, `${Math.round(f.cpuUsPerExecution)} µs`, f.halfRate, f.halfP50, f.halfP99]),
    });
  }
  notes.push(
    `Durations: ${durationMs / 1000} s saturated, then ${durationMs / 1000} s at half the measured rate (open loop, after ${WARMUP_MS / 1000} s at that rate not counted); commands: ${commandRounds} such rounds, each with its own half rate. Latency = call or command sent → answer received, in the sending process. The column before last is the bench process's CPU time (router, and for commands the sending worker too) per operation while the latencies were counted: the same work, so it shows how fast the machine was in that window. The last is an idle process that only wakes every millisecond (bench/workers/witness.mjs), in the same window: how late it woke, i.e. how long the machine held back an ordinary process that had nothing to do.`,
  );
  notes.push('Calls: the router’s Dispatcher (what a remote flow step calls) → gRPC Delivery → SDK worker → StepOutcome; no engine, no database in the path. Commands: an SDK worker → router (ajv schema check; the target worker is attached to the same instance, so the command is handed over directly and its Receipt ends the router’s part; the durable queue `router.commands` is used only when no worker here serves the target) → worker → result Event → sender.');
  const calls = rows.find((r) => String(r[0]).startsWith('step component calls'));
  if (calls) notes.push(`Goal ≥ 5,000 step messages/s through one TypeScript worker: ${Number(calls[1]) >= 5_000 ? 'met' : 'NOT met'} (${calls[1]}/s, component calls alone).`);
  if (commandGoal) notes.push(commandGoal);
  if (scale) {
    notes.push(
      `Scale-out: each worker holds one call at a time and burns 2 ms of CPU time on it; 16 calls in flight; ${scale.cpuShare !== undefined ? `each worker process in a cgroup of its own held to ${Math.round(scale.cpuShare * 100)} % of one core (cpu.cfs_quota_us ${Math.round(scale.cpuShare * 100_000)} / cpu.cfs_period_us 100000)` : 'no cgroups here: the workers share the machine freely'}. Two workers ${(scale.two / scale.one).toFixed(2)}× one (goal ≥ 1.7×: ${scale.two >= 1.7 * scale.one ? 'met' : 'NOT met'}); machine CPU ${Math.round(scale.cpuOne)} % → ${Math.round(scale.cpuTwo)} % busy. Workers' own CPU per call ${Math.round(scale.perCall[0])} µs → ${Math.round(scale.perCall[1])} µs; CPU the workers got while saturated ${scale.cores[0].toFixed(2)} → ${scale.cores[1].toFixed(2)} cores (of ${scale.cpuShare !== undefined ? `${scale.cpuShare} → ${2 * scale.cpuShare}` : 'no'} allowed): the rate follows the CPU the workers were given.`,
    );
  }
  if (flows.length > 0) notes.push('Whole hub: measured like bench/flow.ts (50 connections, then half load); the remote step is never inlined or handed off, so it costs its own queued job (claim, commit, ack) on top of the gRPC round trip (that job then runs the http-request inline); the local one runs inline in the job that reached it.');
  recordResults('workers', { tables, notes });
  process.stdout.write(`\n${notes.join('\n')}\n`);
}
