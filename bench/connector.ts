/**
 * Connector throughput on the embedded default (PGlite on a data directory, SQL bus), through the
 * real HTTP origin and the real mTLS listener:
 * - complete pairings/s: `requestOneTimeTokenForApplication` (admin, Director) → `configuration`
 *   (Connector-Token) → CSR built and signed by the client → `signCertificateSigningRequest`;
 *   20 pairing loops, each on its own application; client keys are generated before the run
 *   (not counted), building the CSR is counted;
 * - mTLS event ingress: 50 clients, each paired with its own certificate and holding one
 *   keep-alive TLS connection, POST structured CloudEvents one after another to
 *   `/events/:runtimeId` (type checked, id recorded, event published, 202);
 * - plain `/hook/:flowId` ingress of the same hub in the same run, by the same client (50
 *   keep-alive HTTP connections), for the ratio. As in bench/ingest.ts nothing consumes the
 *   step queue (a stand-in answers the flow lifecycle for the orchestrator).
 * The clients (pairing loops and ingress connections) run in a child process
 * (bench/connector-load.mjs), so the hub keeps its event loop and the bench process's CPU time
 * (process.cpuUsage over each measure) is the hub's own: printed as hub CPU per operation.
 *
 * `npm run bench -- connector [--seconds=10] [--pairers=20] [--clients=50] [--postgres] [--no-record]`
 * `--postgres`: a fresh database on PLEXUS_TEST_DATABASE_URL (SQL bus on it) instead of embedded
 * PGlite, so the database engine's CPU is out of the hub's process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork } from 'node:child_process';
import { createHub } from '../server/src/entrypoints/hub.js';
import { loadConfig } from '../server/src/platform/config.js';
import { createLogger } from '../server/src/platform/logger.js';
import { b64, csrPem, generateKeys, keyPem, unb64, type TlsIdentity } from '../server/test/helpers/connector.js';
import { createDatabase } from './flow.js';
import { recordResults } from './results.js';

const PASSWORD = 'bench-admin-password';
const PAIRING_GOAL = 200;

function arg(args: string[], name: string, fallback: number): number {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  const n = hit ? Number(hit.split('=')[1]) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

interface LoadResult {
  accepted: number;
  other: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  /** CPU of the client process (not the hub). */
  clientCpuMs: number;
  /** The hub process's CPU over the run (the bench process holds only the hub), all its threads. */
  hubCpuMs: number;
  /** Of it, the main thread's (the event loop; the signer threads are the rest), from /proc; NaN elsewhere. */
  mainCpuMs: number;
  identities?: Array<TlsIdentity | undefined>;
}

type LoadJob =
  | { kind: 'event' | 'hook'; url: string; clients: number; durationMs: number; identities?: TlsIdentity[] }
  | { kind: 'pair'; base: string; authorization: string; apps: string[]; durationMs: number };

/** How busy the client process was over its measure (it includes its start and the warm-up of its connections). */
const clientShare = (r: LoadResult): string => ((100 * r.clientCpuMs) / (r.seconds * 1000)).toFixed(0);

/** CPU of this process's main thread (its task id is the pid), ms; NaN where /proc is missing. Clock ticks of 10 ms. */
function mainThreadCpuMs(): number {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** Runs the clients in a child process; resolves with their figures and the hub's CPU meanwhile. */
function runLoad(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./connector-load.mjs', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const cpu = process.cpuUsage();
    const main = mainThreadCpuMs();
    child.once('message', (m: Omit<LoadResult, 'hubCpuMs' | 'mainCpuMs'>) => {
      const used = process.cpuUsage(cpu);
      resolve({ ...m, hubCpuMs: (used.user + used.system) / 1000, mainCpuMs: mainThreadCpuMs() - main });
    });
    child.once('error', reject);
    child.once('exit', (code) => code !== 0 && reject(new Error(`the load process exited with ${code}`)));
    child.send(job);
  });
}

export async function run(args: string[]): Promise<void> {
  const seconds = arg(args, 'seconds', 10);
  const pairers = arg(args, 'pairers', 20);
  const clients = arg(args, 'clients', 50);
  const record = !args.includes('--no-record');
  const database = args.includes('--postgres') ? await createDatabase() : undefined;
  /** `--pairings-only`: the pairing measure alone (A/B runs of the pairing path). */
  const pairingsOnly = args.includes('--pairings-only');
  const loads: string[] = [os.loadavg()[0]!.toFixed(1)];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-connector-'));
  const config = loadConfig({
    PLEXUS_DATA_DIR: dataDir,
    PLEXUS_HTTP_PORT: '0',
    PLEXUS_MTLS_PORT: '0',
    PLEXUS_LOG_LEVEL: 'warn',
    PLEXUS_ADMIN_PASSWORD: PASSWORD,
    NODE_ENV: 'production',
    PLEXUS_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
    // The bench measures ingestion, not one tenant's webhook rate limit (the check still runs).
    PLEXUS_LIMITS_WEBHOOK_REQUESTS_PER_SECOND: '1000000',
    ...(database ? { PLEXUS_DATABASE_URL: database.url } : {}),
    // A/B of the signer threads (0: on the main thread).
    ...(process.env.PLEXUS_CONNECTOR_SIGNER_THREADS ? { PLEXUS_CONNECTOR_SIGNER_THREADS: process.env.PLEXUS_CONNECTOR_SIGNER_THREADS } : {}),
  });
  const hub = await createHub(config, { logger: createLogger('warn'), roles: ['gateway', 'iam', 'audit', 'secrets', 'flows', 'webhooks', 'scheduler', 'director', 'connector'] });
  const standIn = await hub.bus.subscribe<{ id: string }>('flow.*', 'bench-orchestrator', async (e) => {
    if (e.headers.name === 'flow.starting') await hub.bus.publish('flow.started', { id: e.payload.id });
    if (e.headers.name === 'flow.stopping') await hub.bus.publish('flow.stopped', { id: e.payload.id });
  });
  try {
    const base = await hub.listen();
    const mtls = hub.mtlsUrl();
    const login = await fetch(`${base}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: PASSWORD }) });
    const admin = { authorization: `Bearer ${((await login.json()) as { token: string }).token}`, 'content-type': 'application/json' };
    const director = async (query: string, variables?: unknown): Promise<any> => {
      const body = (await (await fetch(`${base}/director/graphql`, { method: 'POST', headers: admin, body: JSON.stringify({ query, variables }) })).json()) as { data?: any; errors?: unknown };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    };
    const connector = async (token: string, query: string, variables?: unknown): Promise<any> => {
      const body = (await (await fetch(`${base}/connector/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'connector-token': token }, body: JSON.stringify({ query, variables }) })).json()) as { data?: any; errors?: unknown };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    };
    /** One complete pairing of an application with a key made beforehand. */
    const pair = async (appId: string, keys: Awaited<ReturnType<typeof generateKeys>>): Promise<{ cert: string; ca: string }> => {
      const { t } = await director(`mutation { t: requestOneTimeTokenForApplication(id: "${appId}") { token } }`);
      const cfg = (await connector(t.token, '{ configuration { token { token } certificateSigningRequestInfo { subject } } }')).configuration;
      const csr = b64(await csrPem(cfg.certificateSigningRequestInfo.subject, keys));
      const r = (await connector(cfg.token.token, 'mutation($csr: String!) { r: signCertificateSigningRequest(csr: $csr) { clientCertificate caCertificate } }', { csr })).r;
      return { cert: unb64(r.clientCertificate), ca: unb64(r.caCertificate) };
    };

    // ---- pairings
    const apps: string[] = [];
    for (let i = 0; i < pairers; i++) apps.push((await director(`mutation { r: registerApplication(in: { name: "pairing-${i}" }) { id } }`)).r.id);
    // `--ingress-only`: skip the pairing measure (A/B runs of the event path).
    const pairing = args.includes('--ingress-only') ? { accepted: 0, errors: 0, seconds: 1, p50: NaN, p99: NaN, clientCpuMs: 0, hubCpuMs: 0, mainCpuMs: 0 } : await (async () => {
      await runLoad({ kind: 'pair', base, authorization: admin.authorization, apps, durationMs: 2_000 });
      return runLoad({ kind: 'pair', base, authorization: admin.authorization, apps, durationMs: seconds * 1000 });
    })();
    const pairingRate = pairing.accepted / pairing.seconds;
    const pairingCpu = pairing.hubCpuMs / Math.max(1, pairing.accepted);
    const pairingMainCpu = pairing.mainCpuMs / Math.max(1, pairing.accepted);
    loads.push(os.loadavg()[0]!.toFixed(1));
    console.log(
      `pairings: ${pairingRate.toFixed(0)}/s (${pairing.accepted} in ${pairing.seconds.toFixed(1)} s, errors ${pairing.errors}), p50 ${pairing.p50.toFixed(1)} ms, hub CPU ${pairingCpu.toFixed(2)} ms per pairing (main thread ${pairingMainCpu.toFixed(2)} ms), client CPU ${(pairing.clientCpuMs / Math.max(1, pairing.accepted)).toFixed(2)} ms, load ${loads.at(-1)}`,
    );

    if (pairingsOnly) return;

    // ---- event ingress over mTLS, 50 paired applications
    const rt = (await director('mutation { r: registerRuntime(in: { name: "bench-runtime" }) { id } }')).r.id as string;
    const identities: TlsIdentity[] = [];
    for (let i = 0; i < clients; i++) {
      const id = (await director(`mutation { r: registerApplication(in: { name: "sender-${i}", eventDefinitions: [{ name: "order.created" }] }) { id } }`)).r.id as string;
      const keys = await generateKeys();
      const issued = await pair(id, keys);
      identities.push({ key: await keyPem(keys), cert: issued.cert, ca: issued.ca });
    }
    const eventsUrl = `${mtls}/events/${rt}`;
    await runLoad({ url: eventsUrl, clients, durationMs: 2_000, identities, kind: 'event' });
    const events = await runLoad({ url: eventsUrl, clients, durationMs: seconds * 1000, identities, kind: 'event' });
    const eventRate = events.accepted / events.seconds;
    loads.push(os.loadavg()[0]!.toFixed(1));
    const eventCpu = (events.hubCpuMs * 1000) / Math.max(1, events.accepted);
    console.log(`mTLS events: ${eventRate.toFixed(0)}/s accepted (other ${events.other}, errors ${events.errors}), p50 ${events.p50.toFixed(1)} ms, p99 ${events.p99.toFixed(1)} ms, hub CPU ${eventCpu.toFixed(0)} µs per event, client process ${clientShare(events)} % of a core, load ${loads.at(-1)}`);

    // ---- plain /hook ingress of the same hub
    const created = await fetch(`${base}/api/v1/flows`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'hook bench', graph: { nodes: [{ id: 'receive', componentId: 'log', function: 'write' }], edges: [] } }) });
    const flowId = ((await created.json()) as { data: { id: string } }).data.id;
    await fetch(`${base}/api/v1/flows/${flowId}/start`, { method: 'POST', headers: { authorization: admin.authorization } });
    for (let i = 0; (await fetch(`${base}/hook/${flowId}`, { method: 'HEAD' })).status !== 200; i++) {
      if (i > 500) throw new Error('the flow did not become active');
      await new Promise((r) => setTimeout(r, 10));
    }
    await runLoad({ url: `${base}/hook/${flowId}`, clients, durationMs: 2_000, kind: 'hook' });
    const hook = await runLoad({ url: `${base}/hook/${flowId}`, clients, durationMs: seconds * 1000, kind: 'hook' });
    const hookRate = hook.accepted / hook.seconds;
    loads.push(os.loadavg()[0]!.toFixed(1));
    const hookCpu = (hook.hubCpuMs * 1000) / Math.max(1, hook.accepted);
    console.log(`plain /hook: ${hookRate.toFixed(0)}/s accepted (other ${hook.other}, errors ${hook.errors}), p50 ${hook.p50.toFixed(1)} ms, p99 ${hook.p99.toFixed(1)} ms, hub CPU ${hookCpu.toFixed(0)} µs per request, client process ${clientShare(hook)} % of a core, load ${loads.at(-1)}`);
    const ratio = eventRate / hookRate;
    console.log(`events ÷ hook = ${ratio.toFixed(2)}`);

    if (!record) return;
    recordResults('connector', {
      tables: [
        {
          columns: ['measure', 'rate/s', 'hub CPU per op', 'p50 ms', 'p99 ms', 'count', 'not accepted', 'goal'],
          rows: [
            [`complete pairings (token → configuration → CSR signed), ${pairers} loops`, Math.round(pairingRate), `${pairingCpu.toFixed(2)} ms (main thread ${pairingMainCpu.toFixed(2)} ms)`, pairing.p50, pairing.p99, pairing.accepted, pairing.errors, `≥ ${PAIRING_GOAL}/s`],
            [`mTLS event ingress, ${clients} clients, one keep-alive TLS connection each`, Math.round(eventRate), `${eventCpu.toFixed(0)} µs`, events.p50, events.p99, events.accepted, events.other + events.errors, '≥ 0.5 × /hook'],
            [`plain /hook ingress, same hub, same client, ${clients} keep-alive connections`, Math.round(hookRate), `${hookCpu.toFixed(0)} µs`, hook.p50, hook.p99, hook.accepted, hook.other + hook.errors, '—'],
          ],
        },
      ],
      notes: [
        `Pairings: ${pairingRate >= PAIRING_GOAL ? 'goal met' : 'goal NOT met'}; hub CPU ${pairingCpu.toFixed(2)} ms per pairing (three HTTP calls, the CSR checked and one certificate signed with the P-256 CA, tokens, certificate row, audit records). The client (CSR built and signed with a P-256 key made before the run) runs in its own process: ${(pairing.clientCpuMs / Math.max(1, pairing.accepted)).toFixed(2)} ms of its CPU per pairing.`,
        `mTLS events ÷ plain /hook = ${ratio.toFixed(2)} (goal ≥ 0.5); the client process was ${clientShare(events)} % (events) and ${clientShare(hook)} % (/hook) of one core busy${Math.max(Number(clientShare(events)), Number(clientShare(hook))) < 80 ? ' (not saturated)' : ' (close to saturated: the rate may be the client’s)'}. An event: certificate → identity (cached 0.9 s), runtime and type against the application's event definitions (cached 2 s), (source, id) inserted and the event published in one transaction shared by the events arriving together (group commit); /hook: the flow's StepJob enqueued (group commit).`,
        `${database ? 'PostgreSQL (PLEXUS_TEST_DATABASE_URL, a fresh database), SQL bus on it' : 'Embedded PGlite on a data directory, SQL bus'}, NODE_ENV=production, roles without orchestrator (nothing consumes the queues). ${seconds} s per measure after a 2 s warm-up; the clients in a child process (bench/connector-load.mjs, Node's http / https with keep-alive agents): the bench process's CPU is the hub's alone, hub CPU per op = its process.cpuUsage over the measure ÷ operations.`,
        `Load average at start and after each measure: ${loads.join(', ')} (2-core machine shared with other engineers' work: figures under load).`,
      ],
    });
  } finally {
    await standIn.stop();
    await hub.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    await database?.drop();
  }
}
