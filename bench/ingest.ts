/**
 * Webhook ingest: how many small JSON POSTs `/hook/:flowId` accepts per second — each durably
 * enqueued for the flow's first step before its 202 — next to a bare `node:http` server that
 * parses the JSON and answers 202, measured in the same run on the same machine.
 *
 * The hub runs in this process on embedded PGlite (the default install) with the roles that
 * take part in ingest; no orchestrator consumes the step queue, so afterwards its depth must
 * equal the number of 202s (every accepted message stored). A stand-in answers the flow
 * lifecycle in its place. The load comes from autocannon in a worker thread, so the server under
 * test has the main thread to itself. Each target gets a short warm-up first.
 *
 * `npm run bench -- ingest [--duration-ms=10000] [--connections=50] [--warmup-ms=2000] [--hub-only]`
 */
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { stepQueueName } from '../server/src/contracts/flows.js';
import { createHub } from '../server/src/entrypoints/hub.js';
import { loadConfig } from '../server/src/platform/config.js';
import { createLogger } from '../server/src/platform/logger.js';
import { recordResults } from './results.js';

// autocannon ships no types; the parts used here.
interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  workers?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}
interface AutocannonResult {
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  latency: { p50: number; p99: number; max: number };
  requests: { average: number };
  statusCodeStats?: Record<string, { count: number }>;
}
type Autocannon = (opts: AutocannonOptions) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const ADMIN_PASSWORD = 'bench-admin-password';
const BODY = JSON.stringify({ orderId: 4711, customer: { id: 'c-42', name: 'Ada' }, items: [{ sku: 'book', qty: 1 }], total: 19.9 });

function argValue(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

interface Measured {
  accepted: number;
  acceptedPerS: number;
  p50: number;
  p99: number;
  max: number;
  other: number;
}

async function load(url: string, connections: number, durationMs: number): Promise<Measured> {
  const r = await autocannon({
    url,
    connections,
    duration: durationMs / 1000,
    // One worker thread: the load generator stays off the server's event loop.
    workers: 1,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BODY,
  });
  const accepted = r.statusCodeStats?.['202']?.count ?? r['2xx'];
  return {
    accepted,
    acceptedPerS: accepted / (durationMs / 1000),
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    other: r.non2xx + r.errors + r.timeouts + (r['2xx'] - accepted),
  };
}

/** 202s the hub sent on the hook route so far, from its own Prometheus counter. */
async function hub202s(base: string, auth: { authorization: string }): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { headers: auth })).text();
  const line = text.split('\n').find((l) => l.startsWith('plexus_http_requests_total{') && l.includes('route="/hook/:flowId"') && l.includes('status_code="202"') && l.includes('method="POST"'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

async function bareServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"data":{"requestId":"r","executionId":"e"}}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export async function run(args: string[]): Promise<void> {
  const durationMs = Number(argValue(args, 'duration-ms') ?? 10_000);
  const warmupMs = Number(argValue(args, 'warmup-ms') ?? 2_000);
  const connections = Number(argValue(args, 'connections') ?? 50);

  const hubOnly = args.includes('--hub-only'); // for profiling the hub alone; records nothing

  // ---- bare node:http
  let bareResult: Measured = { accepted: 0, acceptedPerS: NaN, p50: NaN, p99: NaN, max: NaN, other: 0 };
  if (!hubOnly) {
    const bare = await bareServer();
    await load(bare.url, connections, warmupMs);
    bareResult = await load(bare.url, connections, durationMs);
    await bare.close();
    console.log(`bare node:http: ${Math.round(bareResult.acceptedPerS)} req/s, p99 ${bareResult.p99} ms`);
  }

  // ---- the hub on embedded PGlite
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-ingest-'));
  // The bench measures ingestion, not one tenant's webhook rate limit (the check still runs).
  const config = loadConfig({ PLEXUS_HTTP_PORT: '0', PLEXUS_DATA_DIR: dataDir, PLEXUS_LOG_LEVEL: 'warn', PLEXUS_ADMIN_PASSWORD: ADMIN_PASSWORD, PLEXUS_LIMITS_WEBHOOK_REQUESTS_PER_SECOND: '1000000' });
  const hub = await createHub(config, { logger: createLogger('warn'), roles: ['gateway', 'iam', 'audit', 'flows', 'webhooks', 'scheduler'] });
  // The orchestrator's part of the lifecycle, so the flow becomes active without anyone consuming its queue.
  const standIn = await hub.bus.subscribe<{ id: string }>('flow.*', 'bench-orchestrator', async (e) => {
    if (e.headers.name === 'flow.starting') await hub.bus.publish('flow.started', { id: e.payload.id });
    if (e.headers.name === 'flow.stopping') await hub.bus.publish('flow.stopped', { id: e.payload.id });
  });
  try {
    const base = await hub.listen();
    const login = await hub.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: ADMIN_PASSWORD } });
    const auth = { authorization: `Bearer ${(JSON.parse(login.body) as { token: string }).token}` };
    const flowBody = {
      name: 'ingest bench',
      graph: { nodes: [{ id: 'receive', componentId: 'log', function: 'write' }], edges: [] },
    };
    const created = await hub.app.inject({ method: 'POST', url: '/api/v1/flows', headers: auth, payload: flowBody });
    if (created.statusCode !== 201) throw new Error(`cannot create the flow: ${created.body}`);
    const flowId = (JSON.parse(created.body) as { data: { id: string } }).data.id;
    await hub.app.inject({ method: 'POST', url: `/api/v1/flows/${flowId}/start`, headers: auth });
    for (let i = 0; (await hub.app.inject({ method: 'HEAD', url: `/hook/${flowId}` })).statusCode !== 200; i++) {
      if (i > 500) throw new Error('the flow did not become active');
      await new Promise((r) => setTimeout(r, 10));
    }
    const url = `${base}/hook/${flowId}`;
    const queue = stepQueueName(flowId, 'receive');

    const warm = await load(url, connections, warmupMs);
    await new Promise((r) => setTimeout(r, 500)); // answers still in flight when the warm-up ended
    const depthBefore = (await hub.bus.stats(queue)).depth;
    const sentBefore = await hub202s(base, auth);
    const hubResult = await load(url, connections, durationMs);
    await new Promise((r) => setTimeout(r, 500));
    const stored = (await hub.bus.stats(queue)).depth - depthBefore;
    // The server's own count: autocannon stops counting when its time is up, with requests in flight.
    const sent = (await hub202s(base, auth)) - sentBefore;
    const ratio = hubResult.acceptedPerS / bareResult.acceptedPerS;
    console.log(`hub /hook (PGlite): ${Math.round(hubResult.acceptedPerS)} accepted/s, p99 ${hubResult.p99} ms, ratio ${ratio.toFixed(2)}; ${sent} answered 202, ${stored} stored (warm-up ${warm.accepted})`);
    if (stored !== sent) console.error(`MISMATCH: the hub answered 202 ${sent} times but stored ${stored} jobs`);

    if (hubOnly) return;
    recordResults('ingest', {
      tables: [
        {
          columns: ['target', 'accepted/s', 'p50 ms', 'p99 ms', 'max ms', 'accepted', 'not accepted', 'stored jobs'],
          rows: [
            ['bare node:http (parse JSON, 202)', Math.round(bareResult.acceptedPerS), bareResult.p50, bareResult.p99, bareResult.max, bareResult.accepted, bareResult.other, '—'],
            ['Plexus /hook/:flowId, embedded PGlite', Math.round(hubResult.acceptedPerS), hubResult.p50, hubResult.p99, hubResult.max, hubResult.accepted, hubResult.other, stored],
          ],
        },
      ],
      notes: [
        `Plexus ÷ bare = ${ratio.toFixed(2)} (goal ≥ 0.25); goal ≥ 10,000 accepted/s and p99 ≤ 20 ms.`,
        `Every 202 durably enqueued: ${stored === sent ? 'yes' : 'NO'} — the hub answered 202 ${sent} times (its own counter; autocannon counted ${hubResult.accepted} before its time was up) and the step queue grew by ${stored} jobs.`,
        `${connections} connections, ${durationMs / 1000} s per target after a ${warmupMs / 1000} s warm-up; autocannon in one worker thread, server on the main thread of the same process.`,
        `Body: ${BODY.length} bytes of JSON; no idempotency key, no auth (the flow's defaults).`,
      ],
    });
  } finally {
    await standIn.stop();
    await hub.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
