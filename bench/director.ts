/**
 * Director throughput on the embedded default (PGlite on a data directory, SQL bus), through the
 * real HTTP origin:
 * - registerApplication mutations/s: autocannon, 20 connections for 10 s, each request a new
 *   application (unique name, labels, one API definition without a spec);
 * - applications(first: 100) queries/s with 10,000 registered applications: the store is topped up
 *   to 10,000, then autocannon, 20 connections for 10 s, asks for the first page of 100 with
 *   `id name description providerName integrationLevel labels status pageInfo totalCount`.
 *
 * autocannon runs in the hub's own process, so the client's CPU is counted against the hub.
 *
 * `npm run bench -- director [--apps=10000] [--seconds=10] [--connections=20]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { createHub } from '../server/src/entrypoints/hub.js';
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
const REGISTER = 'mutation($in: ApplicationRegisterInput!) { registerApplication(in: $in) { id name labels status { condition } } }';

function registerBody(n: number, tag: string): string {
  return JSON.stringify({
    query: REGISTER,
    variables: { in: { name: `b${tag}-${n}`, providerName: 'bench', description: 'benchmark application', labels: { scenarios: ['DEFAULT'], team: 'bench' }, apiDefinitions: [{ name: 'orders', targetURL: 'http://orders.example/api' }] } },
  });
}

export async function run(args: string[]): Promise<void> {
  const apps = arg(args, 'apps', 10_000);
  const seconds = arg(args, 'seconds', 10);
  const connections = arg(args, 'connections', 20);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-director-'));
  const config = loadConfig({ PLEXUS_DATA_DIR: dataDir, PLEXUS_HTTP_PORT: '0', PLEXUS_LOG_LEVEL: 'warn', PLEXUS_ADMIN_PASSWORD: PASSWORD, NODE_ENV: 'production', PLEXUS_SECRET_KEY: Buffer.alloc(32, 7).toString('base64') });
  const load = os.loadavg()[0]!.toFixed(2);
  const hub = await createHub(config, { logger: createLogger('warn') });
  try {
    const url = await hub.listen();
    const login = await fetch(`${url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
    const token = ((await login.json()) as { token: string }).token;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const gql = async (body: string) => (await fetch(`${url}/director/graphql`, { method: 'POST', headers, body })).json() as Promise<{ data?: unknown; errors?: unknown[] }>;

    // registerApplication
    let n = 0;
    const first = await gql(registerBody(n++, 'w'));
    if (first.errors) throw new Error(`registerApplication failed: ${JSON.stringify(first.errors)}`);
    const mutations = await autocannon({
      url,
      connections,
      duration: seconds,
      requests: [{ method: 'POST', path: '/director/graphql', headers, setupRequest: (req) => ({ ...req, body: registerBody(n++, 'm') }) }],
    });
    const mutationRate = mutations['2xx'] / (mutations.duration || seconds);
    console.log(`registerApplication: ${mutationRate.toFixed(0)}/s (2xx ${mutations['2xx']}, non-2xx ${mutations.non2xx}, errors ${mutations.errors}), p50 ${mutations.latency.p50} ms, p99 ${mutations.latency.p99} ms`);

    // Top up to `apps` applications in one transaction (seeding, not measured): the same rows
    // registerApplication writes, without its audit events.
    const counted = await gql(JSON.stringify({ query: '{ applications(first: 1) { totalCount } }' }));
    if (!counted.data) throw new Error(`applications failed: ${JSON.stringify(counted)}`);
    let count = (counted.data as { applications: { totalCount: number } }).applications.totalCount;
    const topUpStart = performance.now();
    await hub.db.transaction(async (tx) => {
      for (; count < apps; count++) {
        const name = `bt-${n++}`;
        await insertApplication(tx, { tenantId: 'default', id: randomUUID(), name, providerName: 'bench', description: 'benchmark application', integrationLevel: 'APPLICATION', healthCheckUrl: null, labels: { scenarios: ['DEFAULT'], team: 'bench', name } });
      }
    });
    console.log(`store: ${count} applications (top-up took ${((performance.now() - topUpStart) / 1000).toFixed(1)} s)`);

    // applications(first: 100)
    const probe = await gql(JSON.stringify({ query: PAGE_QUERY }));
    if (probe.errors) throw new Error(`applications failed: ${JSON.stringify(probe.errors)}`);
    const total = (probe.data as { applications: { totalCount: number; data: unknown[] } }).applications;
    const queries = await autocannon({ url, connections, duration: seconds, requests: [{ method: 'POST', path: '/director/graphql', headers, body: JSON.stringify({ query: PAGE_QUERY }) }] });
    const queryRate = queries['2xx'] / (queries.duration || seconds);
    console.log(`applications(first: 100) over ${total.totalCount}: ${queryRate.toFixed(0)}/s (non-2xx ${queries.non2xx}, errors ${queries.errors}), p50 ${queries.latency.p50} ms, p99 ${queries.latency.p99} ms`);

    recordResults('director', {
      tables: [
        {
          columns: ['operation', 'store', 'requests/s', 'goal/s (met)', 'p50 ms', 'p99 ms', 'non-2xx'],
          rows: [
            ['registerApplication (one API definition)', 'PGlite data dir, SQL bus', Math.round(mutationRate), `${MUTATION_GOAL} (${mutationRate >= MUTATION_GOAL ? 'yes' : 'no'})`, mutations.latency.p50, mutations.latency.p99, mutations.non2xx],
            [`applications(first: 100) of ${total.totalCount}`, 'PGlite data dir, SQL bus', Math.round(queryRate), `${QUERY_GOAL} (${queryRate >= QUERY_GOAL ? 'yes' : 'no'})`, queries.latency.p50, queries.latency.p99, queries.non2xx],
          ],
        },
      ],
      notes: [
        `Load average ${load} at start; the machine is shared with other engineers' work while this runs, so figures vary between runs.`,
        `autocannon in the hub's own process, ${connections} connections, ${seconds} s per operation, over a loopback socket with an admin session token (IAM middleware included).`,
        'registerApplication: a new application per request (name, provider, description, two labels, one API definition without a spec), audited, in one transaction.',
        'applications(first: 100): 100 applications with id, name, description, providerName, integrationLevel, labels, status, plus pageInfo and totalCount.',
        `Machine: ${machineSummary()}.`,
        'Goals not met. Cost of one applications(first: 100) in-process (inject, 10,000 stored, same loaded machine): count(*) 3.5 ms, the 101-row page 4.7 ms (PGlite decoding jsonb labels), GraphQL execution and serialisation ~4 ms. The next step is a per-tenant page cache invalidated by the writes (NOTIFY across processes); registerApplication is one PGlite commit per application, so its ceiling is the commit rate unless registrations are group-committed.',
      ],
    });
  } finally {
    await hub.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
