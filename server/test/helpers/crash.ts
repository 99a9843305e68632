/**
 * Crash recovery, as an operator meets it: real `plexus start` processes, a webhook flow
 * (transform → http-request) feeding a slow application, kill -9 while messages are in flight,
 * and the time until every accepted message reached the application. Used by
 * test/e2e/recovery.e2e.test.ts and `npm run bench -- recovery`; no vitest here.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runPlexus, type PlexusProcess } from './process.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The application the flow calls: records each `n` it receives (with the time) after `delayMs`. */
export interface SlowApp {
  url: string;
  /** n → first arrival (ms since the epoch). */
  received: Map<number, number>;
  delayMs: number;
  close(): Promise<void>;
}

export async function startSlowApp(delayMs: number): Promise<SlowApp> {
  const app: SlowApp = { url: '', received: new Map(), delayMs, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      setTimeout(() => {
        try {
          const n = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { n: number }).n;
          if (!app.received.has(n)) app.received.set(n, Date.now());
        } catch {
          /* not ours */
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }, app.delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  app.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/orders`;
  app.close = () => new Promise<void>((r) => server.close(() => r()));
  server.keepAliveTimeout = 1_000;
  return app;
}

export interface HubProcess {
  proc: PlexusProcess;
  base: string;
}

export async function startHubProcess(env: Record<string, string>): Promise<HubProcess> {
  const proc = runPlexus(['start'], {
    ...env,
    PLEXUS_HTTP_PORT: String(await freePort()),
    PLEXUS_MTLS_PORT: String(await freePort()),
    PLEXUS_GRPC_PORT: String(await freePort()),
  });
  const base = (await proc.waitFor(/listening on (http:\/\/\S+)/, 90_000))[1]!;
  return { proc, base };
}

export async function call(base: string, method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(base + url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

export async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const CRASH_ADMIN_PASSWORD = 'crash-admin-password';

/** Creates and starts webhook → transform → http-request with default step settings. */
export async function startCrashFlow(base: string, appUrl: string): Promise<{ token: string; flowId: string }> {
  const login = await call(base, 'POST', '/api/v1/login', { username: 'admin', password: CRASH_ADMIN_PASSWORD });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
  const token = login.body.token as string;
  const created = await call(
    base,
    'POST',
    '/api/v1/flows',
    {
      name: 'recovery',
      flowSettings: { webhooks: { auth: 'none' } },
      graph: {
        nodes: [
          // Default step settings (time limit 60 s, so a hand-off is held 65 s): an operator's flow.
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"n": n}' } },
          { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: appUrl } },
        ],
        edges: [{ source: 'shape', target: 'send' }],
      },
    },
    token,
  );
  if (created.status !== 201) throw new Error(`create flow: ${created.status} ${JSON.stringify(created.body)}`);
  const flowId = created.body.data.id as string;
  await call(base, 'POST', `/api/v1/flows/${flowId}/start`, undefined, token);
  await until('flow active', async () => (await call(base, 'GET', `/api/v1/flows/${flowId}`, undefined, token)).body.data.status === 'active', 60_000);
  return { token, flowId };
}

/**
 * Calls the hook from `senders` loops until `acceptedBefore` messages were accepted, then
 * kill -9s `victim` and stops. Returns n → executionId of every accepted (202) call.
 */
export async function sendThenKill(bases: string[], flowId: string, victim: PlexusProcess, acceptedBefore: number, senders = 8, alsoWhen: () => boolean = () => true, paceMs = 0): Promise<Map<number, string>> {
  const accepted = new Map<number, string>();
  let next = 0;
  let killed = false;
  const sender = async (i: number): Promise<void> => {
    const base = bases[i % bases.length]!;
    while (!killed && next < 10_000) {
      const n = next++;
      try {
        const res = await fetch(`${base}/hook/${flowId}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) });
        const text = await res.text();
        if (res.status === 202) accepted.set(n, (JSON.parse(text) as { data: { executionId: string } }).data.executionId);
      } catch {
        /* the hub died under this request: not accepted */
      }
      if (accepted.size >= acceptedBefore && !killed && alsoWhen()) {
        killed = true;
        victim.child.kill('SIGKILL');
      }
      if (paceMs > 0) await new Promise((r) => setTimeout(r, paceMs));
    }
  };
  await Promise.all(Array.from({ length: senders }, (_, i) => sender(i)));
  await victim.exited;
  return accepted;
}

export interface EmbeddedRecovery {
  accepted: number;
  /** Accepted but not yet at the application when the hub died. */
  missingAtCrash: number;
  /** Restart: spawn → "listening". */
  readyMs: number;
  /** "listening" → the last accepted message at the application. */
  catchUpMs: number;
}

/** The embedded hub (PGlite, SQL bus): kill -9 under load, restart on the same data directory. */
export async function measureEmbeddedRecovery(opts: { acceptedBefore?: number; appDelayMs?: number; env?: Record<string, string> } = {}): Promise<EmbeddedRecovery> {
  const app = await startSlowApp(opts.appDelayMs ?? 300);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-recovery-'));
  const env = { PLEXUS_DATA_DIR: dataDir, PLEXUS_ADMIN_PASSWORD: CRASH_ADMIN_PASSWORD, PLEXUS_LOG_LEVEL: 'error', PLEXUS_STEPS_ALLOWED_HOSTS: '127.0.0.1', ...opts.env };
  let hub: HubProcess | undefined;
  try {
    hub = await startHubProcess(env);
    const { flowId } = await startCrashFlow(hub.base, app.url);
    const accepted = await sendThenKill([hub.base], flowId, hub.proc, opts.acceptedBefore ?? 100);
    const missingAtCrash = [...accepted.keys()].filter((n) => !app.received.has(n)).length;
    app.delayMs = 0;
    const spawnedAt = Date.now();
    hub = await startHubProcess(env);
    const listeningAt = Date.now();
    await until('every accepted message at the application', () => [...accepted.keys()].every((n) => app.received.has(n)), 120_000);
    const last = Math.max(...[...accepted.keys()].map((n) => app.received.get(n)!));
    return { accepted: accepted.size, missingAtCrash, readyMs: listeningAt - spawnedAt, catchUpMs: Math.max(0, last - listeningAt) };
  } finally {
    if (hub && hub.proc.child.exitCode === null) {
      hub.proc.child.kill('SIGTERM');
      await hub.proc.exited;
    }
    await app.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export interface Takeover {
  accepted: number;
  /** Accepted executions not yet succeeded just after the victim died. */
  missingAtKill: number;
  appDelayMs: number;
  /** kill -9 → the last accepted message at the application. */
  takeoverMs: number;
}

/**
 * Two hub processes on one PostgreSQL schema and one NATS prefix; webhook calls go to both, the
 * application is slow, one process is killed -9 while it holds jobs. The survivor must finish
 * all of them. `databaseUrl`/`natsUrl` are the test services.
 */
export async function measureTakeover(opts: { databaseUrl: string; natsUrl: string; appDelayMs?: number; acceptedBefore?: number; env?: Record<string, string> }): Promise<Takeover> {
  const pg = (await import('pg')).default;
  const appDelayMs = opts.appDelayMs ?? 500;
  const app = await startSlowApp(appDelayMs);
  const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const schema = `takeover_${tag}`;
  const admin = new pg.Client({ connectionString: opts.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const dirs: string[] = [];
  const hubs: HubProcess[] = [];
  try {
    const envFor = (): Record<string, string> => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-takeover-'));
      dirs.push(dir);
      return {
        PLEXUS_DATA_DIR: dir,
        PLEXUS_DATABASE_URL: `${opts.databaseUrl}?options=${encodeURIComponent(`-c search_path=${schema}`)}`,
        PLEXUS_NATS_URL: opts.natsUrl,
        PLEXUS_NATS_PREFIX: `T${tag}`,
        // One installation: one key for the secrets both processes read.
        PLEXUS_SECRET_KEY: 'a'.repeat(64),
        PLEXUS_ADMIN_PASSWORD: CRASH_ADMIN_PASSWORD,
        PLEXUS_LOG_LEVEL: 'error',
        PLEXUS_STEPS_ALLOWED_HOSTS: '127.0.0.1',
        ...opts.env,
      };
    };
    // The victim runs the flow alone at first, so it surely holds jobs (running against the
    // slow application, or fetched and waiting) when it dies; the survivor joins meanwhile.
    hubs.push(await startHubProcess(envFor()));
    const victim = hubs[0]!;
    const { flowId } = await startCrashFlow(victim.base, app.url);
    let survivorUpAt = Infinity;
    const survivorStarting = startHubProcess(envFor()).then((h) => {
      hubs.push(h);
      survivorUpAt = Date.now();
      return h;
    });
    const sending = sendThenKill([victim.base], flowId, victim.proc, opts.acceptedBefore ?? 40, 4, () => Date.now() > survivorUpAt + 1_000, 200);
    await survivorStarting;
    const accepted = await sending;
    const killedAt = Date.now();
    const survivor = hubs[1]!.base;
    const token = (await call(survivor, 'POST', '/api/v1/login', { username: 'admin', password: CRASH_ADMIN_PASSWORD })).body.token as string;
    const count = async (status: string): Promise<number> =>
      (await call(survivor, 'GET', `/api/v1/executions?filter[flowId]=${flowId}&filter[status]=${status}&page[size]=1`, undefined, token)).body.meta.total as number;
    // An execution the victim was running when it died ends only once its job is taken over
    // (the application may have had the call already: the victim died before recording it).
    const unfinishedAtKill = accepted.size - (await count('succeeded'));
    await until('every accepted execution ended', async () => (await count('running')) === 0 && (await count('succeeded')) >= accepted.size, 120_000, 100);
    return { accepted: accepted.size, missingAtKill: unfinishedAtKill, appDelayMs, takeoverMs: Date.now() - killedAt };
  } finally {
    for (const h of hubs) {
      if (h.proc.child.exitCode === null) {
        h.proc.child.kill('SIGTERM');
        await h.proc.exited;
      }
    }
    await app.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}
