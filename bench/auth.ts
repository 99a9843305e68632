/**
 * Authorised request overhead: the same route served without auth and with a bearer token
 * checked through the IAM middleware (cached introspection, permission check), in one run.
 *
 * - inject: Fastify's in-process `inject`, requests one at a time, the two routes interleaved in
 *   rounds so that drift (GC, JIT, the other core) hits both alike; per-request wall time from
 *   hrtime; overhead = median(authorised) − median(open).
 * - socket: the same over a real loopback connection (keep-alive, one request at a time, rounds
 *   interleaved the same way), so parsing and the socket path are included.
 * - for scale, the same authorised route with the cache switched off (every request
 *   introspects in the database).
 *
 * `npm run bench -- auth [--rounds=30] [--per-round=500]`
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { createIamModule, createAuthenticator } from '../server/src/modules/iam/index.js';
import { createAuditPublisher } from '../server/src/platform/audit.js';
import { createBus } from '../server/src/platform/bus/index.js';
import { loadConfig } from '../server/src/platform/config.js';
import { openDb } from '../server/src/platform/db/index.js';
import { createHttpServer, createMetrics, type Authenticator, type HttpApp } from '../server/src/platform/http/index.js';
import { createLogger } from '../server/src/platform/logger.js';
import { recordResults } from './results.js';

const GOAL_MS = 0.2;

function arg(args: string[], name: string, fallback: number): number {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  const n = hit ? Number(hit.split('=')[1]) : fallback;
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

/** Milliseconds to a precision that shows microseconds (results.ts would round to 0.01). */
function ms(v: number): string {
  return v.toFixed(4);
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function buildApp(authenticate: Authenticator): Promise<HttpApp> {
  const app = await createHttpServer({ logger: createLogger('silent'), metrics: createMetrics(), authenticate: () => authenticate });
  const handler = async () => ({ data: { ok: true } });
  app.get('/bench/open', { config: { permission: 'public' } }, handler);
  app.get('/bench/authed', { config: { permission: 'flows.read' } }, handler);
  await app.ready();
  return app;
}

/** Per-request ms of each url, interleaved in rounds. */
async function injectTimings(app: HttpApp, urls: string[], token: string, rounds: number, perRound: number): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(urls.map((u) => [u, []]));
  const headers = { authorization: `Bearer ${token}` };
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? urls : [...urls].reverse();
    for (const url of order) {
      const samples = out.get(url)!;
      for (let i = 0; i < perRound; i++) {
        const t0 = process.hrtime.bigint();
        const res = await app.inject({ method: 'GET', url, headers });
        const t1 = process.hrtime.bigint();
        if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}: ${res.body}`);
        samples.push(Number(t1 - t0) / 1e6);
      }
    }
  }
  for (const s of out.values()) s.sort((a, b) => a - b);
  return out;
}

/** Per-request ms of each url over one keep-alive loopback connection, interleaved in rounds. */
async function socketTimings(baseUrl: string, urls: string[], token: string, rounds: number, perRound: number): Promise<Map<string, number[]>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (url: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = http.get(`${baseUrl}${url}`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(res.statusCode) : reject(new Error(`${url} answered ${res.statusCode}`))));
      });
      req.on('error', reject);
    });
  const out = new Map<string, number[]>(urls.map((u) => [u, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? urls : [...urls].reverse();
      for (const url of order) {
        const samples = out.get(url)!;
        for (let i = 0; i < perRound; i++) {
          const t0 = process.hrtime.bigint();
          await get(url);
          samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }
    }
  } finally {
    agent.destroy();
  }
  for (const s of out.values()) s.sort((a, b) => a - b);
  return out;
}

export async function run(args: string[]): Promise<void> {
  const rounds = arg(args, 'rounds', 30);
  const perRound = arg(args, 'per-round', 500);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bench-auth-'));
  const config = loadConfig({ PLEXUS_DATA_DIR: dataDir, PLEXUS_ADMIN_PASSWORD: 'bench-admin-password', PLEXUS_LOG_LEVEL: 'silent' });
  const logger = createLogger('silent');
  const db = await openDb({});
  const bus = await createBus({ db, serviceName: 'bench', logger, maxAttempts: 3, leaseMs: 30_000 });
  const apps: HttpApp[] = [];
  try {
    const iam = await createIamModule({ config, db, bus, logger });
    const { token } = await iam.service.login({ tenant: 'default', username: 'admin', password: 'bench-admin-password', ip: '127.0.0.1' });

    const cached = await buildApp(iam.authenticator);
    apps.push(cached);
    // Warm-up: JIT, the first introspection, Fastify's route caches.
    await injectTimings(cached, ['/bench/open', '/bench/authed'], token, 2, 500);
    const t = await injectTimings(cached, ['/bench/open', '/bench/authed'], token, rounds, perRound);
    const open = t.get('/bench/open')!;
    const authed = t.get('/bench/authed')!;

    const uncachedAuth = createAuthenticator({ resolve: (tok, tenant) => iam.service.resolveToken(tok, tenant), audit: createAuditPublisher(bus, 'iam', logger), cacheTtlMs: 0 });
    const uncached = await buildApp(uncachedAuth.authenticate);
    apps.push(uncached);
    await injectTimings(uncached, ['/bench/authed'], token, 1, 200);
    const u = (await injectTimings(uncached, ['/bench/authed'], token, 5, 400)).get('/bench/authed')!;

    const base = await cached.listen({ host: '127.0.0.1', port: 0 });
    await socketTimings(base, ['/bench/open', '/bench/authed'], token, 2, 300);
    const st = await socketTimings(base, ['/bench/open', '/bench/authed'], token, Math.max(2, Math.round(rounds / 3)), perRound);
    const sOpen = st.get('/bench/open')!;
    const sAuthed = st.get('/bench/authed')!;

    const p50Overhead = percentile(authed, 50) - percentile(open, 50);
    const socketOverhead = percentile(sAuthed, 50) - percentile(sOpen, 50);
    const met = p50Overhead <= GOAL_MS ? 'yes' : 'NO';
    const socketMet = socketOverhead <= GOAL_MS ? 'yes' : 'NO';
    const rows: (string | number)[][] = [
      ['inject · open route (no auth)', open.length, ms(percentile(open, 50)), ms(percentile(open, 99)), '—'],
      ['inject · authorised, cached introspection', authed.length, ms(percentile(authed, 50)), ms(percentile(authed, 99)), `${p50Overhead.toFixed(4)} (goal ≤ ${GOAL_MS}: ${met})`],
      ['inject · authorised, no cache (DB introspection)', u.length, ms(percentile(u, 50)), ms(percentile(u, 99)), (percentile(u, 50) - percentile(open, 50)).toFixed(4)],
      ['socket · open route (no auth)', sOpen.length, ms(percentile(sOpen, 50)), ms(percentile(sOpen, 99)), '—'],
      ['socket · authorised, cached introspection', sAuthed.length, ms(percentile(sAuthed, 50)), ms(percentile(sAuthed, 99)), `${socketOverhead.toFixed(4)} (goal ≤ ${GOAL_MS}: ${socketMet})`],
    ];
    console.log(`inject: open p50 ${percentile(open, 50).toFixed(4)} ms, authorised p50 ${percentile(authed, 50).toFixed(4)} ms → overhead ${p50Overhead.toFixed(4)} ms (goal ≤ ${GOAL_MS} ms: ${met})`);
    console.log(`socket: open p50 ${percentile(sOpen, 50).toFixed(4)} ms, authorised p50 ${percentile(sAuthed, 50).toFixed(4)} ms → overhead ${socketOverhead.toFixed(4)} ms`);
    console.log(`uncached (DB introspection every request): p50 ${percentile(u, 50).toFixed(4)} ms`);
    recordResults('auth', {
      tables: [{ columns: ['path', 'requests', 'p50 ms', 'p99 ms', 'p50 overhead ms'], rows }],
      notes: [
        'Same handler on both routes; the authorised one has `permission: flows.read` and is called with the bootstrap admin’s session token, so each request runs the IAM middleware: Bearer parsing, sha256 of the token, cache lookup, permission check.',
        `Interleaved rounds (inject ${rounds} × ${perRound} per route) after a warm-up; the overhead is the difference of medians measured in the same run.`,
        'Socket rows: one keep-alive loopback connection from the same process, one request at a time, so HTTP parsing and the socket path are included; client time is in both routes alike.',
        'The uncached row switches the cache off (every request introspects in the database, PGlite in memory) to show what the 5 s cache saves.',
      ],
    });
  } finally {
    for (const app of apps) await app.close();
    await bus.close();
    await db.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
