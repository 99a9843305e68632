/**
 * What one hub costs a machine at rest and after work: the process as an operator starts it
 * (`npm start` from the repository root, which execs node on the compiled server), for the
 * embedded default and for PostgreSQL + NATS.
 *
 * - ready: spawn of `npm start` → the "listening" line (and → the first 200 from /readyz), and
 *   the CPU time the hub process had used by then (all its threads; unlike the wall times, it
 *   hardly moves with the machine's load);
 * - idle memory of the whole process tree (npm and the hub; code-step runners if any were
 *   started): its resident pages counted once (pagemap, as root), and RSS summed over the tree,
 *   sampled every 5 s for `--idle-ms` (default 30 s) after ready: the last sample is the figure,
 *   the highest is shown beside it; the hub process alone (what a container running the same
 *   command as `npm start` holds, docs/adr/0010-compiled-at-install.md); and npm by itself;
 * - after 10,000 executions of webhook → transform → filter → http-request (bench/flow.ts's flow)
 *   to a local sink, sent 16 at a time: the highest tree RSS sampled during the run, the tree
 *   RSS after the same idle period, and the hub process's CPU time per execution.
 *
 * Node-RED 4 and n8n 1.x are measured the same way (the peer process alone, started as
 * bench/flow.ts starts them) when they are already installed in bench/flow.ts's peer folder
 * (`PLEXUS_BENCH_PEERS=1 npm run bench -- flow` installs them); a peer that is not installed is
 * skipped, and the results say so.
 *
 * `npm run bench -- footprint [--executions=10000] [--idle-ms=30000] [--only=embedded,cluster,node-red,n8n]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasNats, hasPostgres, TEST_NATS_URL } from '../server/test/helpers/services.js';
import { ADMIN_PASSWORD, argValue, benchHubEnv, createDatabase, freePort, PEERS_DIR, sleep, setupFlow, startN8n, startNodeRed, startSink, type PeerProcess, type Sink } from './flow.js';
import { recordResults, type ResultTable } from './results.js';

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// ---- process trees from /proc ----

interface ProcEntry {
  pid: number;
  ppid: number;
  rssKb: number;
  name: string;
  /** User + system CPU time so far, ms (load-independent, unlike wall times). */
  cpuMs: number;
}

function readProc(pid: number): ProcEntry | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    const rss = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { pid, ppid, rssKb: rss ? Number(rss[1]) : 0, name, cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/** `root` and every live descendant. */
function tree(root: number): ProcEntry[] {
  const all = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is ProcEntry => p !== undefined);
  const self = all.find((p) => p.pid === root);
  if (!self) return [];
  const out = [self];
  const members = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (members.has(p.ppid) && !members.has(p.pid)) {
        members.add(p.pid);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}

/** USER_HZ: 100 on Linux on every architecture Node runs on. */
const CLOCK_TICKS = 100;
const mb = (kb: number): number => kb / 1024;
const treeRssMb = (root: number): number => mb(tree(root).reduce((sum, p) => sum + p.rssKb, 0));

/**
 * The memory the tree holds: its resident physical pages, each counted once. Summing RSS counts a
 * page once per process that maps it, and npm and the hub run the same node binary (about 40 MB
 * of its pages are resident in both), so the sum overstates what the tree costs the machine.
 * Page frame numbers come from /proc/<pid>/pagemap, which shows them only to root; otherwise
 * (every present page reads as frame 0) this answers undefined and the table says so.
 */
function treeResidentMb(root: number): number | undefined {
  const frames = new Set<number>();
  let present = 0;
  for (const p of tree(root)) {
    let maps: string;
    let fd: number;
    try {
      maps = fs.readFileSync(`/proc/${p.pid}/maps`, 'utf8');
      fd = fs.openSync(`/proc/${p.pid}/pagemap`, 'r');
    } catch {
      continue; // the process ended meanwhile
    }
    try {
      for (const line of maps.split('\n')) {
        const range = /^([0-9a-f]+)-([0-9a-f]+)/.exec(line);
        if (!range || line.endsWith('[vsyscall]')) continue;
        const first = Number.parseInt(range[1]!, 16) / 4096;
        const pages = Number.parseInt(range[2]!, 16) / 4096 - first;
        // Read in slices: V8 and WebAssembly reserve gigabytes that are mostly not present.
        for (let done = 0; done < pages; done += 65_536) {
          const count = Math.min(65_536, pages - done);
          const buf = Buffer.alloc(count * 8);
          const read = fs.readSync(fd, buf, 0, buf.length, (first + done) * 8);
          for (let off = 0; off + 8 <= read; off += 8) {
            const hi = buf.readUInt32LE(off + 4);
            if ((hi & 0x80000000) === 0) continue; // not present
            present += 1;
            frames.add((hi & 0x7fffff) * 2 ** 32 + buf.readUInt32LE(off));
          }
        }
      }
    } catch {
      // the process ended while being read: what was read still counts
    } finally {
      fs.closeSync(fd);
    }
  }
  if (present > 0 && frames.size === 1 && frames.has(0)) return undefined;
  return (frames.size * 4096) / (1024 * 1024);
}

// ---- the subjects ----

interface Subject {
  label: string;
  /** The process whose tree is measured. */
  root: number;
  /** The process doing the work (the hub under npm; the peer itself). */
  worker: number;
  hookUrl: string;
  readyMs: number;
  readyzMs: number | undefined;
  /** CPU time the worker process had used when it was ready (all its threads). */
  readyCpuMs: number | undefined;
  stop(): Promise<void>;
}

/** `npm start` in the repository root, as the README's quick start runs it. */
async function startWithNpm(label: string, env: Record<string, string>, sink: Sink): Promise<Subject> {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-footprint-'));
  const spawnedAt = performance.now();
  const child: ChildProcess = spawn('npm', ['start'], {
    cwd: ROOT_DIR,
    env: {
      ...(await benchHubEnv(port)),
      PLEXUS_DATA_DIR: dataDir,
      PLEXUS_STEPS_ALLOWED_HOSTS: '127.0.0.1',
      PLEXUS_LIMITS_WEBHOOK_REQUESTS_PER_SECOND: '1000000',
      PLEXUS_LIMITS_CONCURRENT_EXECUTIONS: '100000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  let url: string | undefined;
  let readyMs = 0;
  let readyzMs: number | undefined;
  // Polled every 10 ms: the figure is a start-up time, so the poll must not add much to it.
  while (readyzMs === undefined) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}: ${out}`);
    if (performance.now() - spawnedAt > 120_000) throw new Error(`npm start did not get ready: ${out}`);
    if (!url) {
      url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url) readyMs = performance.now() - spawnedAt;
    } else {
      const ok = await fetch(`${url}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) readyzMs = performance.now() - spawnedAt;
    }
    await sleep(10);
  }
  const root = child.pid!;
  const hub = tree(root).find((p) => p.pid !== root && p.name === 'node');
  if (!hub) throw new Error(`no node process under npm start: ${JSON.stringify(tree(root))}`);
  const readyCpuMs = hub.cpuMs;
  const flowId = await setupFlow(url!, sink.url);
  return {
    label,
    root,
    worker: hub.pid,
    hookUrl: `${url!}/hook/${flowId}`,
    readyMs,
    readyzMs,
    readyCpuMs,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(30_000)]);
        for (const p of tree(root)) process.kill(p.pid, 'SIGKILL');
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function fromPeer(label: string, peer: PeerProcess, readyMs: number): Subject {
  return { label, root: peer.pid!, worker: peer.pid!, hookUrl: peer.hookUrl, readyMs, readyzMs: undefined, readyCpuMs: undefined, stop: () => peer.stop() };
}

// ---- measuring ----

interface Figures {
  label: string;
  readyMs: number;
  readyzMs: number | undefined;
  readyCpuMs: number | undefined;
  idleTreeMb: number;
  /** Resident pages of the whole tree, each counted once (undefined when pagemap is not readable). */
  idleResidentMb: number | undefined;
  afterResidentMb: number | undefined;
  idleTreeMaxMb: number;
  idleWorkerMb: number;
  /** The tree minus the worker and its descendants: npm (and its shell, if any) under `npm start`. */
  idleLauncherMb: number;
  idleProcesses: number;
  runPeakMb: number;
  afterTreeMb: number;
  afterWorkerMb: number;
  completed: number;
  runSeconds: number;
  /** The worker's CPU time over the executions (µs per execution; its runners not included). */
  cpuUsPerExecution: number;
}

/** Samples the tree every 5 s for `ms`; returns the last and the highest sample. */
async function idle(root: number, ms: number): Promise<{ last: number; max: number }> {
  let max = 0;
  let last = 0;
  for (let waited = 0; waited < ms; waited += 5_000) {
    await sleep(5_000);
    last = treeRssMb(root);
    max = Math.max(max, last);
  }
  return { last, max };
}

/** Sends `count` webhook requests, `concurrency` at a time, and waits until the sink has them all. */
async function execute(subject: Subject, sink: Sink, count: number, concurrency: number): Promise<{ peakMb: number; completed: number; seconds: number }> {
  sink.reset();
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL(subject.hookUrl);
  let sent = 0;
  let refused = 0;
  let peakMb = 0;
  const sampler = setInterval(() => (peakMb = Math.max(peakMb, treeRssMb(subject.root))), 500);
  const startedAt = performance.now();
  const post = (n: number): Promise<boolean> =>
    new Promise((resolve) => {
      const body = JSON.stringify({ t: Date.now(), n, amount: 21, customer: 'acme' });
      const req = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          res.resume();
          res.on('end', () => resolve((res.statusCode ?? 500) < 300));
        },
      );
      req.on('error', () => resolve(false));
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (sent < count) {
        const n = ++sent;
        // A refusal (e.g. 503 while the hub sheds load) is retried: the figure is for `count` executions.
        while (!(await post(n))) {
          refused += 1;
          await sleep(100);
        }
      }
    }),
  );
  let lastCount = -1;
  let lastChange = performance.now();
  while (sink.count() < count) {
    if (sink.count() !== lastCount) {
      lastCount = sink.count();
      lastChange = performance.now();
    }
    if (performance.now() - lastChange > 60_000) break;
    await sleep(200);
  }
  const seconds = (performance.now() - startedAt) / 1000;
  clearInterval(sampler);
  peakMb = Math.max(peakMb, treeRssMb(subject.root));
  agent.destroy();
  if (refused > 0) process.stdout.write(`  ${subject.label}: ${refused} refused requests retried\n`);
  return { peakMb, completed: sink.count(), seconds };
}

async function measureSubject(subject: Subject, sink: Sink, executions: number, idleMs: number): Promise<Figures> {
  process.stdout.write(`  ${subject.label}: ready in ${subject.readyMs.toFixed(0)} ms; idling ${idleMs / 1000} s …\n`);
  const idleRss = await idle(subject.root, idleMs);
  const idleWorkerMb = mb(readProc(subject.worker)?.rssKb ?? 0);
  const idleLauncherMb = idleRss.last - treeRssMb(subject.worker);
  const idleProcesses = tree(subject.root).length;
  const idleResidentMb = treeResidentMb(subject.root);
  process.stdout.write(`  ${subject.label}: idle ${idleRss.last.toFixed(0)} MB (${idleProcesses} processes); ${executions} executions …\n`);
  const cpuBefore = readProc(subject.worker)?.cpuMs ?? 0;
  const run = await execute(subject, sink, executions, 16);
  const cpuUsPerExecution = (((readProc(subject.worker)?.cpuMs ?? 0) - cpuBefore) * 1000) / Math.max(1, run.completed);
  const after = await idle(subject.root, idleMs);
  const afterWorkerMb = mb(readProc(subject.worker)?.rssKb ?? 0);
  const afterResidentMb = treeResidentMb(subject.root);
  process.stdout.write(`  ${subject.label}: ${run.completed} completed in ${run.seconds.toFixed(1)} s, peak ${run.peakMb.toFixed(0)} MB, after ${after.last.toFixed(0)} MB\n`);
  return {
    label: subject.label,
    readyMs: subject.readyMs,
    readyzMs: subject.readyzMs,
    readyCpuMs: subject.readyCpuMs,
    idleTreeMb: idleRss.last,
    idleResidentMb,
    afterResidentMb,
    idleTreeMaxMb: idleRss.max,
    idleWorkerMb,
    idleLauncherMb,
    idleProcesses,
    runPeakMb: run.peakMb,
    afterTreeMb: after.last,
    afterWorkerMb,
    completed: run.completed,
    runSeconds: run.seconds,
    cpuUsPerExecution,
  };
}

export async function run(args: string[]): Promise<void> {
  const executions = Number(argValue(args, 'executions') ?? 10_000);
  const idleMs = Number(argValue(args, 'idle-ms') ?? 30_000);
  const only = argValue(args, 'only')?.split(',');
  const wants = (name: string): boolean => !only || only.includes(name);
  const loadAtStart = os.loadavg()[0]!;
  const sink = await startSink();
  const figures: Figures[] = [];
  const notes: string[] = [];
  try {
    if (wants('embedded')) {
      const subject = await startWithNpm('Plexus, embedded (PGlite + SQL bus)', {}, sink);
      try {
        figures.push(await measureSubject(subject, sink, executions, idleMs));
      } finally {
        await subject.stop();
      }
    }
    if (wants('cluster')) {
      if (!hasPostgres || !hasNats) notes.push('PostgreSQL + NATS: not measured (PostgreSQL or NATS not reachable).');
      else {
        const database = await createDatabase();
        try {
          const subject = await startWithNpm('Plexus, PostgreSQL + NATS', { PLEXUS_DATABASE_URL: database.url, PLEXUS_NATS_URL: TEST_NATS_URL }, sink);
          try {
            figures.push(await measureSubject(subject, sink, executions, idleMs));
          } finally {
            await subject.stop();
          }
        } finally {
          await database.drop();
        }
      }
    }
    const peers: Array<{ name: string; label: string; installed: string; start: (sinkUrl: string) => Promise<PeerProcess> }> = [
      { name: 'node-red', label: 'Node-RED 4', installed: path.join(PEERS_DIR, 'node-red/node_modules/node-red/red.js'), start: startNodeRed },
      { name: 'n8n', label: 'n8n 1.x (SQLite)', installed: path.join(PEERS_DIR, 'n8n/node_modules/n8n/bin/n8n'), start: startN8n },
    ];
    for (const peer of peers) {
      if (!wants(peer.name)) continue;
      if (!fs.existsSync(peer.installed)) {
        notes.push(`${peer.label}: not measured, not installed (${path.dirname(peer.installed)} is missing; \`PLEXUS_BENCH_PEERS=1 npm run bench -- flow\` installs it).`);
        continue;
      }
      const startedAt = performance.now();
      const subject = fromPeer(peer.label, await peer.start(sink.url), 0);
      // Its webhook answering is its readiness (bench/flow.ts probes it every 500 ms).
      subject.readyMs = performance.now() - startedAt;
      try {
        figures.push(await measureSubject(subject, sink, executions, idleMs));
      } finally {
        await subject.stop();
      }
    }
  } finally {
    await sink.close();
  }

  const table: ResultTable = {
    columns: [
      'process',
      'ready (listening / readyz; hub CPU by then)',
      'idle memory of the whole tree (resident pages counted once)',
      'idle RSS summed over the tree (max while idle)',
      'idle RSS, hub process alone',
      'idle RSS, npm',
      'processes idle',
      `peak RSS during ${executions.toLocaleString('en-US')} executions`,
      'after them: tree memory / RSS summed (hub alone)',
      'completed (s)',
      'hub CPU per execution',
    ],
    rows: figures.map((f) => [
      f.label,
      `${(f.readyMs / 1000).toFixed(2)} s${f.readyzMs !== undefined ? ` / ${(f.readyzMs / 1000).toFixed(2)} s` : ''}${f.readyCpuMs !== undefined ? `; ${(f.readyCpuMs / 1000).toFixed(2)} s CPU` : ''}`,
      f.idleResidentMb !== undefined ? `${f.idleResidentMb.toFixed(0)} MB` : 'not readable (needs root)',
      `${f.idleTreeMb.toFixed(0)} MB (${f.idleTreeMaxMb.toFixed(0)})`,
      `${f.idleWorkerMb.toFixed(0)} MB`,
      f.idleLauncherMb > 0.5 ? `${f.idleLauncherMb.toFixed(0)} MB` : '—',
      f.idleProcesses,
      `${f.runPeakMb.toFixed(0)} MB`,
      `${f.afterResidentMb !== undefined ? `${f.afterResidentMb.toFixed(0)} MB / ` : ''}${f.afterTreeMb.toFixed(0)} MB (${f.afterWorkerMb.toFixed(0)} MB)`,
      `${f.completed.toLocaleString('en-US')} (${f.runSeconds.toFixed(1)} s)`,
      `${Math.round(f.cpuUsPerExecution)} µs`,
    ]),
  };
  for (const f of figures) console.log(JSON.stringify(f));
  recordResults('footprint', {
    tables: [table],
    notes: [
      `Plexus started by \`npm start\` in the repository root (npm execs node on server/dist); the whole tree is npm plus the hub plus any code-step runner; "hub process alone" is what the same command without npm (\`node --max-semi-space-size=4 server/bin/plexus.js start\` with the same MALLOC_* environment, a container's command) holds; "npm" is the tree minus the hub and its children. Peers: the peer's own process.`,
      `Memory of the whole tree: its resident physical pages, each counted once (frame numbers from /proc/<pid>/pagemap, read as root). Summing RSS over the tree counts the pages npm and the hub share (the node binary, about 40 MB) twice; both figures are in the table.`,
      `A first start on an empty data directory (the embedded database is copied from the install-time template and migrated). Hub CPU: user + system time of the hub process from /proc (all its threads), by ready and over the executions.`,
      `Idle: ${idleMs / 1000} s after ready, sampled every 5 s; the figure is the last sample. Executions: webhook → transform → filter → http-request to a local sink, 16 requests at a time; "after" is the last sample of another ${idleMs / 1000} s idle period.`,
      `Load average ${loadAtStart.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at the end: the machine is shared${loadAtStart > 2 ? ', so ready times and run durations are figures under load' : ''}.`,
      ...notes,
    ],
  });
}
