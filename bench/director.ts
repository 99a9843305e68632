/**
 * Director throughput on the embedded default (PGlite on a data directory, SQL bus), through the
 * real HTTP origin, and the CPU each request costs:
 * - registerApplication mutations/s: autocannon, 20 connections, each request a new application
 *   (unique name, labels, one API definition without a spec);
 * - applications(first: 100) queries/s with 10,000 registered applications: the store is topped up
 *   to 10,000, then the first page of 100 with `id name description providerName integrationLevel
 *   labels status pageInfo totalCount` — with the query cache (the default), and on a second hub
 *   over the same data directory without it (PLEXUS_DIRECTOR_QUERY_CACHE_MB=0);
 * - the same page with each application's API definitions, event definitions and webhooks
 *   (nested lists), without the cache.
 *
 * CPU per request is process.cpuUsage() (user + system) over the run divided by the answers:
 * autocannon runs in the hub's own process, so its client work is counted too.
 *
 * `npm run bench -- director [--apps=10000] [--seconds=10] [--connections=20] [--no-record]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { createHub, type Hub } from '../server/src/entrypoints/hub.js';
import { insertApplication } from '../server/src/modules/director/director.repo.js';
import { loadConfig } from '../server/src/platform/config.js';
import { createLogger } from '../server/src/platform/logger.js';
import { machineSummary, recordResults } from './results.js';

interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (req: AutocannonRequest) => AutocannonRequest;
}
interface AutocannonResult {
  '2xx': number;
  non2xx: number;
  errors: number;
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  duration: number;
}
type Autocannon = (opts: { url: string; connections: number; duration: number; requests: AutocannonRequest[] }) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const QUERY_GOAL = 2_000;
const MUTATION_GOAL = 1_000;
const PASSWORD = 'bench-admin-password';

function arg(args: string[], name: string, fallback: number): number {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  const n = hit ? Number(hit.split('=')[1]) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

const PAGE_QUERY = '{ applications(first: 100) { data { id name description providerName integrationLevel labels status { condition timestamp } } pageInfo { startCursor endCursor hasNextPage } totalCount } }';
const NESTED_QUERY =
  '{ applications(first: 100) { data { id name apiDefinitions { data { id name targetURL } totalCount } eventDefinitions { data { id name } totalCount } webhooks { id url } } totalCount } }';
const REGISTER = 'mutation($in: ApplicationRegisterInput!) { registerApplication(in: $in) { id name labels status { condition } } }';

function registerBody(n: number, tag: string): string {
  return JSON.stringify({
    query: REGISTER,
    variables: { in: { name: `b${tag}-${n}`, providerName: 'bench', description: 'benchmark application', labels: { scenarios: ['DEFAULT'], team: 'bench' }, apiDefinitions: [{ name: 'orders', targetURL: 'http://orders.example/api' }] } },
  });
}

interface Measured {
  rate: number;
  cpuMsPerRequest: number;
  result: AutocannonResult;
}

/** One autocannon run, with the process's CPU over it. */
async function measure(label: string, url: string, connections: number, seconds: number, requests: AutocannonRequest[]): Promise<Measured> {
  const cpu = process.cpuUsage();
  const result = await autocannon({ url, connections, duration: seconds, requests });
  const used = process.cpuUsage(cpu);
  const rate = result['2xx'] / (result.duration || seconds);
  const cpuMsPerRequest = (used.user + used.system) / 1000 / Math.max(1, result['2xx']);
  console.log(
    `${label}: ${rate.toFixed(0)}/s (2xx ${result['2xx']}, non-2xx ${result.non2xx}, errors ${result.errors}), CPU ${cpuMsPerRequest.toFixed(2)} ms/request, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, load ${os.loadavg()[0]!.toFixed(1)}`,
  );
  return { rate, cpuMsPerRequest, result };
}

async function startHub(dataDir: string, env: Record<string, string>): Promise<{ hub: Hub; url: string; headers: Record<string, string> }> {
  const config = loadConfig({
    PLEXUS_DATA_DIR: dataDir,
    PLEXUS_HTTP_PORT: '0',
    PLEXUS_MTLS_PORT: '0',
    PLEXUS_LOG_LEVEL: 'warn',
    PLEXUS_ADMIN_PASSWORD: PASSWORD,
    NODE_ENV: 'production',
    PLEXUS_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
    ...env,
  });
  const hub = await createHub(config, { logger: createLogger('warn') });
  const url = await hub.listen();
  const login = await fetch(`${url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
  const token = ((await login.json()) as { token: string }).token;
  return { hub, url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } };
}

async function gql(url: string, headers: Record<string, string>, body: string): Promise<{ data?: unknown; errors?: unknown[] }> {
  const res = await fetch(`${url}/director/graphql`, { method: 'POST', headers, body });
  return (await res.json()) as { data?: unknown; errors?: unknown[] };
}

export async function run(args: string[]): Promise<void> {
  const apps = arg(args, 'apps', 10_000);
  const seconds = arg(args, 'seconds', 10);
  const connections = arg(args, 'connections', 20);
  const record = !args.includes('--no-record');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-director-'));
  const loads: string[] = [os.loadavg()[0]!.toFixed(1)];
  try {
    // First hub: the default configuration (query cache on).
    let { hub, url, headers } = await startHub(dataDir, {});
    let n = 0;
    const first = await gql(url, headers, registerBody(n++, 'w'));
    if (first.errors) throw new Error(`registerApplication failed: ${JSON.stringify(first.errors)}`);
    const mutations = await measure('registerApplication', url, connections, seconds, [
      { method: 'POST', path: '/director/graphql', headers, setupRequest: (req) => ({ ...req, body: registerBody(n++, 'm') }) },
    ]);
    loads.push(os.loadavg()[0]!.toFixed(1));

    // Top up to `apps` applications (seeding, not measured): the same rows registerApplication
    // writes, without its audit events. 200 per transaction: each insert raises the tenant's
    // version row, and one transaction's versions of a row cannot be pruned before it ends.
    const counted = await gql(url, headers, JSON.stringify({ query: '{ applications(first: 1) { totalCount } }' }));
    if (!counted.data) throw new Error(`applications failed: ${JSON.stringify(counted)}`);
    let count = (counted.data as { applications: { totalCount: number } }).applications.totalCount;
    const topUpStart = performance.now();
    while (count < apps) {
      await hub.db.transaction(async (tx) => {
        for (let i = 0; i < 200 && count < apps; i++, count++) {
          const name = `bt-${n++}`;
          await insertApplication(tx, { tenantId: 'default', id: randomUUID(), name, providerName: 'bench', description: 'benchmark application', integrationLevel: 'APPLICATION', healthCheckUrl: null, labels: { scenarios: ['DEFAULT'], team: 'bench', name } });
        }
      });
    }
    console.log(`store: ${count} applications (top-up took ${((performance.now() - topUpStart) / 1000).toFixed(1)} s)`);

    const probe = await gql(url, headers, JSON.stringify({ query: PAGE_QUERY }));
    if (probe.errors) throw new Error(`applications failed: ${JSON.stringify(probe.errors)}`);
    const total = (probe.data as { applications: { totalCount: number } }).applications.totalCount;
    const page = { method: 'POST', path: '/director/graphql', headers, body: JSON.stringify({ query: PAGE_QUERY }) };
    const cached = await measure(`applications(first: 100) of ${total}, query cache`, url, connections, seconds, [page]);
    loads.push(os.loadavg()[0]!.toFixed(1));
    await hub.stop();

    // Second hub on the same data: no query cache, so every request runs the query.
    ({ hub, url, headers } = await startHub(dataDir, { PLEXUS_DIRECTOR_QUERY_CACHE_MB: '0' }));
    const uncachedPage = { method: 'POST', path: '/director/graphql', headers, body: JSON.stringify({ query: PAGE_QUERY }) };
    const uncached = await measure(`applications(first: 100) of ${total}, no cache`, url, connections, seconds, [uncachedPage]);
    loads.push(os.loadavg()[0]!.toFixed(1));
    const nestedProbe = await gql(url, headers, JSON.stringify({ query: NESTED_QUERY }));
    if (nestedProbe.errors) throw new Error(`nested applications failed: ${JSON.stringify(nestedProbe.errors)}`);
    const nested = await measure('applications(first: 100) with nested lists, no cache', url, connections, seconds, [
      { method: 'POST', path: '/director/graphql', headers, body: JSON.stringify({ query: NESTED_QUERY }) },
    ]);
    loads.push(os.loadavg()[0]!.toFixed(1));
    await hub.stop();

    if (!record) return;
    const row = (op: string, m: Measured, goal: number | undefined): (string | number)[] => [
      op,
      Math.round(m.rate),
      goal === undefined ? '—' : `${goal} (${m.rate >= goal ? 'yes' : 'no'})`,
      Number(m.cpuMsPerRequest.toFixed(2)),
      m.result.latency.p50,
      m.result.latency.p99,
      m.result.non2xx,
    ];
    recordResults('director', {
      tables: [
        {
          columns: ['operation (PGlite data dir, SQL bus)', 'requests/s', 'goal/s (met)', 'CPU ms/request', 'p50 ms', 'p99 ms', 'non-2xx'],
          rows: [
            row('registerApplication (one API definition)', mutations, MUTATION_GOAL),
            row(`applications(first: 100) of ${total}, query cache (default)`, cached, QUERY_GOAL),
            row(`applications(first: 100) of ${total}, no query cache`, uncached, QUERY_GOAL),
            row('applications(first: 100) with nested API / event definitions and webhooks, no query cache', nested, undefined),
          ],
        },
      ],
      notes: [
        `Load average (1 min) before each phase and at the end: ${loads.join(', ')}; the machine is shared with other engineers' work while this runs, so throughput varies between runs more than CPU per request does.`,
        `autocannon in the hub's own process, ${connections} connections, ${seconds} s per operation, over a loopback socket with an admin session token (IAM middleware included). CPU ms/request: the process's user + system CPU over the run / 2xx answers, client work included.`,
        'registerApplication: a new application per request (name, provider, description, two labels, one API definition without a spec), audited.',
        'applications(first: 100): 100 applications with id, name, description, providerName, integrationLevel, labels, status, plus pageInfo and totalCount. "no query cache": a second hub on the same data directory with PLEXUS_DIRECTOR_QUERY_CACHE_MB=0.',
        `Machine: ${machineSummary()}.`,
      ],
    });
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
