/**
 * Memory under large webhook bodies: the hub's resident set size (RSS) before, during and after
 * 24 concurrent 10 MB webhook calls (issue 10: they used to leave the hub 400 MB larger for good).
 *
 * A `plexus start` child process (embedded PGlite) runs a flow log → log; its RSS is read from
 * /proc/<pid>/status every 50 ms. "After" is the RSS 10 s and 30 s after the last answer.
 * With --baseline-bin=<path to another checkout's server/bin/plexus.js> the same run is made
 * against that build first (e.g. the code before the in-flight byte budget).
 *
 * `npm run bench -- bodies [--calls=24] [--mb=10] [--baseline-bin=… [--baseline-label=…]]`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { recordResults } from './results.js';
import { ADMIN_PASSWORD, argValue, benchHubEnv, freePort, sleep } from './flow.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const PLEXUS_BIN = path.resolve(here, '../server/bin/plexus.js');

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function startHub(bin: string, dataDir: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, 'start'], {
    cwd: path.dirname(path.dirname(bin)),
    env: {
      ...(await benchHubEnv(port)),
      PLEXUS_DATA_DIR: dataDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const started = Date.now();
  for (;;) {
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) {
      return {
        url: m[1]!,
        child,
        async stop() {
          if (child.exitCode !== null) return;
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await Promise.race([exited, sleep(20_000)]);
          if (child.exitCode === null) child.kill('SIGKILL');
        },
      };
    }
    if (child.exitCode !== null) throw new Error(`hub exited ${child.exitCode}: ${err || out}`);
    if (Date.now() - started > 60_000) throw new Error(`hub did not start: ${err || out}`);
    await sleep(50);
  }
}

async function api(base: string, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(base + url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
}

/** One POST with a Content-Length, over its own socket; resolves with the status and Retry-After (s). */
function post(url: string, body: Buffer): Promise<{ status: number; retryAfterS: number }> {
  return new Promise((resolve) => {
    let answered: { status: number; retryAfterS: number } | undefined;
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } }, (res) => {
      answered = { status: res.statusCode ?? 0, retryAfterS: Number(res.headers['retry-after'] ?? 1) };
      res.resume();
      res.on('end', () => resolve(answered!));
    });
    // A hub that refuses before reading the whole body closes the socket under the upload.
    req.on('error', () => resolve(answered ?? { status: -1, retryAfterS: 1 }));
    req.end(body);
  });
}

interface Run {
  target: string;
  idleMb: number;
  peakMb: number;
  after10sMb: number;
  after30sMb: number;
  statuses: Record<string, number>;
}

/** `retry`: a caller refused with 429/503 sends again after Retry-After, until its body is accepted. */
async function measure(target: string, bin: string, calls: number, mb: number, retry: boolean): Promise<Run> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-bodies-'));
  const hub = await startHub(bin, dataDir);
  try {
    const login = await api(hub.url, 'POST', '/api/v1/login', { username: 'admin', password: ADMIN_PASSWORD });
    const token = (login.body as { token: string }).token;
    const flow = await api(
      hub.url,
      'POST',
      '/api/v1/flows',
      {
        name: 'bodies',
        graph: {
          nodes: [
            { id: 'receive', componentId: 'log', function: 'write', fields: { level: 'debug' } },
            { id: 'write', componentId: 'log', function: 'write', fields: { level: 'debug' } },
          ],
          edges: [{ source: 'receive', target: 'write' }],
        },
      },
      token,
    );
    const flowId = (flow.body as { data: { id: string } }).data.id;
    await api(hub.url, 'POST', `/api/v1/flows/${flowId}/start`, undefined, token);
    const hookUrl = `${hub.url}/hook/${flowId}`;
    for (let i = 0; i < 100; i++) {
      if ((await post(hookUrl, Buffer.from('{"warm":true}'))).status === 202) break;
      await sleep(100);
    }
    await sleep(3_000);
    const pid = hub.child.pid!;
    const idleMb = rssMb(pid);
    let peakMb = idleMb;
    const sampler = setInterval(() => (peakMb = Math.max(peakMb, rssMb(pid))), 50);
    // Just under the default PLEXUS_WEBHOOK_MAX_BYTES (10 MiB): JSON with one long string.
    const size = mb * 1024 * 1024 - 64;
    const body = Buffer.from(`{"blob":"${'x'.repeat(size - 12)}"}`);
    const statuses: Record<string, number> = {};
    await Promise.all(
      Array.from({ length: calls }, async () => {
        for (;;) {
          const answer = await post(hookUrl, body);
          statuses[answer.status] = (statuses[answer.status] ?? 0) + 1;
          if (!retry || (answer.status !== 429 && answer.status !== 503)) return;
          await sleep(answer.retryAfterS * 1_000);
        }
      }),
    );
    await sleep(10_000);
    const after10sMb = rssMb(pid);
    await sleep(20_000);
    const after30sMb = rssMb(pid);
    clearInterval(sampler);
    return { target, idleMb, peakMb, after10sMb, after30sMb, statuses };
  } finally {
    await hub.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function run(args: string[]): Promise<void> {
  const calls = Number(argValue(args, 'calls') ?? 24);
  const mb = Number(argValue(args, 'mb') ?? 10);
  const baseline = argValue(args, 'baseline-bin');
  const runs: Run[] = [];
  if (baseline) runs.push(await measure(argValue(args, 'baseline-label') ?? `baseline (${baseline})`, path.resolve(baseline), calls, mb, false));
  runs.push(await measure('this checkout, callers give up when refused', PLEXUS_BIN, calls, mb, false));
  runs.push(await measure('this checkout, callers retry after Retry-After until accepted', PLEXUS_BIN, calls, mb, true));
  for (const r of runs) console.log(JSON.stringify(r));
  recordResults('bodies', {
    tables: [
      {
        columns: ['hub', 'RSS idle MB', 'RSS peak MB', 'RSS +10 s MB', 'RSS +30 s MB', '+30 s − idle MB', 'answers'],
        rows: runs.map((r) => [
          r.target,
          Math.round(r.idleMb),
          Math.round(r.peakMb),
          Math.round(r.after10sMb),
          Math.round(r.after30sMb),
          Math.round(r.after30sMb - r.idleMb),
          Object.entries(r.statuses)
            .map(([s, n]) => `${n} × ${s}`)
            .join(', '),
        ]),
      },
    ],
    notes: [
      `${calls} concurrent POSTs of ${mb} MB JSON (one long string) each, with Content-Length, to a started flow log → log; embedded PGlite, default configuration.`,
      'Answers: counts per HTTP status over all tries (−1: the socket closed before an answer). A retrying caller waits its Retry-After and sends the whole body again.',
      'RSS from /proc/<pid>/status of the `plexus start` child, sampled every 50 ms; "+10 s" and "+30 s" after the last answer.',
    ],
  });
}
