/**
 * Director throughput on the embedded default (`plexus start`: PGlite on a data directory, SQL
 * bus) as a client sees it: the hub is a process of its own and wrk (Debian's package) the load
 * generator in another, so the hub's CPU per request is its own.
 * - registerApplication mutations/s: 20 connections, each request a new application (unique
 *   name, labels, one API definition without a spec); counted by the applications the hub holds
 *   afterwards, not by HTTP statuses (GraphQL answers errors with 200);
 * - applications(first: 100) queries/s with 10,000 registered applications: the store is topped up
 *   to 10,000 through registerApplication (50 per request, not measured), then the first page of
 *   100 with `id name description providerName integrationLevel labels status pageInfo
 *   totalCount` — with the query cache (the default), and on a second hub over the same data
 *   directory without it (PLEXUS_DIRECTOR_QUERY_CACHE_MB=0);
 * - the same page with each application's API definitions, event definitions and webhooks
 *   (nested lists), without the cache.
 * Each measured phase starts once the hub is idle: registrations leave their audit events to the
 * audit consumer, whose CPU is reported with them ("including background work") rather than
 * billed to the queries measured next.
 *
 * `npm run bench -- director [--apps=10000] [--seconds=10] [--connections=20] [--no-record]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ADMIN_PASSWORD, processCpuSeconds, sleep, startHub, type HubProcess } from './flow.js';
import { machineSummary, recordResults } from './results.js';
import { hasWrk, luaScript, runWrk, type WrkResult } from './wrk.js';

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

/** The registerApplication input besides its name, as GraphQL literal arguments. */
const APP_FIELDS = 'providerName: "bench", description: "benchmark application", labels: {scenarios: ["DEFAULT"], team: "bench"}, apiDefinitions: [{name: "orders", targetURL: "http://orders.example/api"}]';

/**
 * A Lua request body registering a new application per request, named from the thread and its
 * counter. The input goes in variables, as a client would send it: the document stays the same,
 * so the server parses and validates it once (a name inlined in the text made every request a
 * new document: 2.0 instead of ~0.8 ms of hub CPU, most of it GraphQL validation).
 */
function registering(): string {
  const input = { name: 'NAME', providerName: 'bench', description: 'benchmark application', labels: { scenarios: ['DEFAULT'], team: 'bench' }, apiDefinitions: [{ name: 'orders', targetURL: 'http://orders.example/api' }] };
  const [pre, post] = JSON.stringify({ query: REGISTER, variables: { in: input } }).split('NAME');
  return `return wrk.format(nil, nil, nil, [==[${pre}]==] .. 'm-' .. thread_id .. '-' .. counter .. [==[${post}]==])`;
}

interface Measured {
  rate: number;
  succeeded: number;
  cpuMsPerRequest: number;
  result: WrkResult;
}

interface Hub {
  process: HubProcess;
  url: string;
  headers: Record<string, string>;
}

async function start(dataDir: string, env: Record<string, string>): Promise<Hub> {
  const hub = await startHub({ PLEXUS_DATA_DIR: dataDir, NODE_ENV: 'production', PLEXUS_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'), ...env });
  const login = await fetch(`${hub.url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }) });
  const token = ((await login.json()) as { token: string }).token;
  return { process: hub, url: hub.url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } };
}

async function gql(hub: Hub, query: string): Promise<{ data?: unknown; errors?: unknown[] }> {
  const res = await fetch(`${hub.url}/director/graphql`, { method: 'POST', headers: hub.headers, body: JSON.stringify({ query }) });
  return (await res.json()) as { data?: unknown; errors?: unknown[] };
}

async function countApplications(hub: Hub): Promise<number> {
  const counted = await gql(hub, '{ applications(first: 1) { totalCount } }');
  if (!counted.data) throw new Error(`applications failed: ${JSON.stringify(counted)}`);
  return (counted.data as { applications: { totalCount: number } }).applications.totalCount;
}

/** One wrk run against the Director, with the hub's CPU over it; `done` counts what succeeded. */
async function measure(label: string, hub: Hub, connections: number, seconds: number, request: string, done?: () => Promise<number>): Promise<Measured> {
  const cpu0 = processCpuSeconds(hub.process.child.pid);
  const script = luaScript({ method: 'POST', path: '/director/graphql', headers: hub.headers, request });
  const result = await runWrk(hub.url, { connections, seconds, script });
  const cpu1 = processCpuSeconds(hub.process.child.pid);
  const succeeded = done ? await done() : result.requests - result.non2xx;
  const rate = succeeded / seconds;
  const cpuMsPerRequest = ((cpu1 - cpu0) * 1000) / Math.max(1, succeeded);
  console.log(
    `${label}: ${rate.toFixed(0)}/s (${succeeded} succeeded of ${result.requests}, non-2xx ${result.non2xx}, socket errors ${result.socketErrors}), hub CPU ${cpuMsPerRequest.toFixed(2)} ms/request, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, load ${os.loadavg()[0]!.toFixed(1)}`,
  );
  return { rate, succeeded, cpuMsPerRequest, result };
}

/**
 * Waits until the hub is idle (under 5 % of a core over half a second, at most two minutes) and
 * returns how long that took and the hub CPU it spent meanwhile. Registrations leave work behind
 * them: the audit consumer stores their events after the answers went out. Measured phases start
 * from an idle hub, so one phase's backlog is not billed to the next.
 */
async function untilIdle(hub: Hub): Promise<{ seconds: number; cpuSeconds: number }> {
  const pid = hub.process.child.pid;
  const start = performance.now();
  const cpu0 = processCpuSeconds(pid);
  for (;;) {
    const before = processCpuSeconds(pid);
    await sleep(500);
    if (processCpuSeconds(pid) - before < 0.025 || performance.now() - start > 120_000) break;
  }
  return { seconds: (performance.now() - start) / 1000, cpuSeconds: processCpuSeconds(pid) - cpu0 };
}

/** A Lua request body sending a fixed query. */
function fixed(query: string): string {
  return `return wrk.format(nil, nil, nil, [==[${JSON.stringify({ query })}]==])`;
}

export async function run(args: string[]): Promise<void> {
  if (!hasWrk()) throw new Error('this bench drives the hub with wrk: apt-get install wrk');
  const apps = arg(args, 'apps', 10_000);
  const seconds = arg(args, 'seconds', 10);
  const connections = arg(args, 'connections', 20);
  const record = !args.includes('--no-record');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-director-'));
  const loads: string[] = [os.loadavg()[0]!.toFixed(1)];
  let hub: Hub | undefined;
  try {
    // First hub: the default configuration (query cache on).
    hub = await start(dataDir, {});
    const probe = await gql(hub, `mutation { registerApplication(in: {name: "probe", ${APP_FIELDS}}) { id } }`);
    if (probe.errors) throw new Error(`registerApplication failed: ${JSON.stringify(probe.errors)}`);
    const before = await countApplications(hub);
    const first = hub;
    const mutations = await measure(
      'registerApplication',
      hub,
      connections,
      seconds,
      registering(),
      async () => (await countApplications(first)) - before,
    );
    const backlog = await untilIdle(hub);
    const withBackground = mutations.cpuMsPerRequest + (backlog.cpuSeconds * 1000) / Math.max(1, mutations.succeeded);
    console.log(`registerApplication background work (audit events stored): ${backlog.seconds.toFixed(1)} s until idle; hub CPU with it ${withBackground.toFixed(2)} ms/registration`);
    loads.push(os.loadavg()[0]!.toFixed(1));

    // Top up to `apps` applications (not measured): 50 registrations per request.
    let count = await countApplications(hub);
    const topUpStart = performance.now();
    for (let batch = 0; count < apps; batch++) {
      const k = Math.min(50, apps - count);
      const fields = Array.from({ length: k }, (_, i) => `a${i}: registerApplication(in: {name: "t-${batch}-${i}", ${APP_FIELDS}}) { id }`);
      const res = await gql(hub, `mutation { ${fields.join(' ')} }`);
      if (res.errors) throw new Error(`top-up failed: ${JSON.stringify(res.errors).slice(0, 500)}`);
      count += k;
    }
    count = await countApplications(hub);
    console.log(`store: ${count} applications (top-up took ${((performance.now() - topUpStart) / 1000).toFixed(1)} s)`);
    await untilIdle(hub);

    const pageProbe = await gql(hub, PAGE_QUERY);
    if (pageProbe.errors) throw new Error(`applications failed: ${JSON.stringify(pageProbe.errors)}`);
    const total = (pageProbe.data as { applications: { totalCount: number } }).applications.totalCount;
    const cached = await measure(`applications(first: 100) of ${total}, query cache`, hub, connections, seconds, fixed(PAGE_QUERY));
    loads.push(os.loadavg()[0]!.toFixed(1));
    await hub.process.stop();

    // Second hub on the same data: no query cache, so every request runs the query.
    hub = await start(dataDir, { PLEXUS_DIRECTOR_QUERY_CACHE_MB: '0' });
    const uncached = await measure(`applications(first: 100) of ${total}, no cache`, hub, connections, seconds, fixed(PAGE_QUERY));
    loads.push(os.loadavg()[0]!.toFixed(1));
    const nestedProbe = await gql(hub, NESTED_QUERY);
    if (nestedProbe.errors) throw new Error(`nested applications failed: ${JSON.stringify(nestedProbe.errors)}`);
    const nested = await measure('applications(first: 100) with nested lists, no cache', hub, connections, seconds, fixed(NESTED_QUERY));
    loads.push(os.loadavg()[0]!.toFixed(1));
    await hub.process.stop();
    hub = undefined;

    if (!record) return;
    const row = (op: string, m: Measured, goal: number | undefined): (string | number)[] => [
      op,
      Math.round(m.rate),
      goal === undefined ? '—' : `${goal} (${m.rate >= goal ? 'yes' : 'no'})`,
      Number(m.cpuMsPerRequest.toFixed(2)),
      m.result.p50Ms,
      m.result.p99Ms,
      m.result.non2xx,
    ];
    recordResults('director', {
      tables: [
        {
          columns: ['operation (PGlite data dir, SQL bus)', 'requests/s', 'goal/s (met)', 'hub CPU ms/request', 'p50 ms', 'p99 ms', 'non-2xx'],
          rows: [
            row('registerApplication (one API definition)', mutations, MUTATION_GOAL),
            row(`applications(first: 100) of ${total}, query cache (default)`, cached, QUERY_GOAL),
            row(`applications(first: 100) of ${total}, no query cache`, uncached, QUERY_GOAL),
            row('applications(first: 100) with nested API / event definitions and webhooks, no query cache', nested, undefined),
          ],
        },
      ],
      notes: [
        `Load average (1 min) before each phase and at the end: ${loads.join(', ')}.`,
        `The hub is \`plexus start\` (embedded default, NODE_ENV=production) in a process of its own; wrk ${connections} connections, 2 threads, ${seconds} s per operation, over loopback with an admin session token (IAM included). Hub CPU ms/request: the hub process's user + system CPU over the run / requests that succeeded.`,
        'registerApplication: a new application per request (name, provider, description, two labels, one API definition without a spec), audited; requests/s counts the applications the hub holds afterwards.',
        `registerApplication leaves its audit events to the audit consumer: the hub was idle again ${backlog.seconds.toFixed(1)} s after the run; hub CPU per registration including that work: ${withBackground.toFixed(2)} ms. Every measured phase starts from an idle hub.`,
        'applications(first: 100): 100 applications with id, name, description, providerName, integrationLevel, labels, status, plus pageInfo and totalCount. "no query cache": a second hub on the same data directory with PLEXUS_DIRECTOR_QUERY_CACHE_MB=0.',
        `Machine: ${machineSummary()}.`,
      ],
    });
  } finally {
    await hub?.process.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
