/**
 * Admin commands across aggregator instances, and the workers of a dead instance leaving the list:
 * two hubs on one PostgreSQL database and one NATS (and, for kill -9, a real `plexus start`
 * process joining them). `POST /api/v1/workers/:workerId/admin` through the instance a worker is
 * not attached to reaches it on the instance holding it (admin.list answers, admin.drain makes
 * that instance stop delivering to it); a worker attached nowhere, or only in another tenant, is
 * a 404; a hub killed -9 takes its workers out of the other's list within FRESH_MS + REPORT_MS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../src/entrypoints/hub.js';
import { FRESH_MS, REPORT_MS } from '../../src/modules/router/router.registry.js';
import type { Worker, WorkerComponent } from '../../src/worker-sdk/index.js';
import { TestCluster } from '../helpers/cluster.js';
import { freePort } from '../helpers/crash.js';
import { openTestDb, type TestDb } from '../helpers/db.js';
import { createAndStart, trigger, waitForExecution } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { TEST_ADMIN_PASSWORD, type TestHub } from '../helpers/hub.js';
import { runPlexus, type PlexusProcess } from '../helpers/process.js';
import { hasNats, hasPostgres } from '../helpers/services.js';
import { startSdkWorker, tempDir } from '../helpers/workers.js';

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE' | 'HEAD';

async function call(hub: Hub, token: string | undefined, method: Method, url: string, body?: unknown): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const res = await hub.app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, headers: res.headers };
}

/** What the engine helpers use of a TestHub (`api`), for a hub of the cluster. */
const asTestHub = (hub: Hub, adminToken: () => string): TestHub => ({ api: (method: Method, url: string, body?: unknown, token?: string | null) => call(hub, token === null ? undefined : (token ?? adminToken()), method, url, body) }) as unknown as TestHub;

/** A flow step that records which worker ran each call. */
function echo(workerId: string, ranBy: string[]): WorkerComponent {
  return {
    name: 'echo',
    version: '1.0.0',
    functions: {
      async reply(input) {
        ranBy.push(workerId);
        return { emit: [{ body: { ...(input.message.body as object), by: workerId } }] };
      },
    },
  };
}

if (hasPostgres && hasNats) {
  describe('admin commands to a worker on any instance (PostgreSQL + NATS)', () => {
    let testDb: TestDb;
    const cluster = new TestCluster(() => testDb, 'workers-admin');
    const workers: Worker[] = [];
    const dir = tempDir();
    const ranBy: string[] = [];
    let token = '';
    let a: Hub;
    let b: Hub;

    const enrol = async (hub: Hub, components: string[], as = token) => {
      const res = await call(hub, as, 'POST', '/api/v1/workers/enrolments', { components });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return res.body.data.secret as string;
    };
    const attach = async (hub: Hub, workerId: string, components: WorkerComponent[], secret?: string) => {
      const w = await startSdkWorker([`127.0.0.1:${hub.grpcPort()}`], components, {
        workerId,
        enrolmentSecret: secret ?? (await enrol(hub, components.map((c) => c.name))),
        // One file per worker started (two tenants may each have a worker of one name).
        credentialFile: path.join(dir, `${workers.length}-${workerId}.cred`),
      });
      workers.push(w);
      return w;
    };
    const listed = async (hub: Hub, as = token) =>
      (await call(hub, as, 'GET', '/api/v1/workers')).body.data as Array<{ workerId: string; instanceId: string; draining: boolean; components: Array<{ name: string }> }>;
    const admin = (hub: Hub, workerId: string, body: Record<string, unknown>, as = token) => call(hub, as, 'POST', `/api/v1/workers/${workerId}/admin`, { timeoutMs: 20_000, ...body });

    beforeAll(async () => {
      testDb = await openTestDb('postgres');
      a = await cluster.start();
      b = await cluster.start();
      token = (await call(a, undefined, 'POST', '/api/v1/login', { username: 'admin', password: TEST_ADMIN_PASSWORD })).body.token;
      await attach(a, 'w-a', [echo('w-a', ranBy)]);
      await waitFor('w-a listed on b', async () => (await listed(b)).some((w) => w.workerId === 'w-a'), 20_000);
    }, 120_000);

    afterAll(async () => {
      for (const w of workers) await w.stop().catch(() => {});
      await cluster.close();
      await testDb?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('admin.list through the other instance returns the worker’s answer; a worker attached nowhere is a 404 naming it', async () => {
      const viaB = await admin(b, 'w-a', { command: 'admin.list' });
      expect(viaB.status, JSON.stringify(viaB.body)).toBe(200);
      expect(viaB.body.data).toEqual({ event: 'SUCCEEDED', payload: { workerId: 'w-a', draining: false, inFlight: 0, components: [{ name: 'echo', version: '1.0.0', functions: ['reply'], state: 'running' }] } });
      // The same answer through the instance holding it.
      expect((await admin(a, 'w-a', { command: 'admin.list' })).body.data).toEqual(viaB.body.data);
      for (const hub of [a, b]) {
        const missing = await admin(hub, 'nobody', { command: 'admin.list' });
        expect([missing.status, missing.body.errors[0].code]).toEqual([404, 'NOT_FOUND']);
        expect(missing.body.errors[0].message).toBe('worker nobody is not attached to any aggregator instance');
      }
      // Bad input is still refused before anything is forwarded.
      expect((await admin(b, 'w-a', { command: 'admin.explode' })).status).toBe(400);
      // What does not fit one live event is refused, naming why, instead of timing out.
      const big = await admin(b, 'w-a', { command: 'admin.update', payload: { configuration: { blob: 'x'.repeat(9_000) } } });
      expect([big.status, big.body.errors[0].code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect(big.body.errors[0].message).toMatch(/payload of admin.update is too large to forward to the aggregator instance holding worker w-a/);
    }, 60_000);

    it('another tenant cannot reach the worker, not even through a worker of its own with the same name', async () => {
      expect((await call(a, token, 'POST', '/api/v1/tenants', { id: 'globex', name: 'Globex' })).status).toBe(201);
      expect((await call(a, token, 'POST', '/api/v1/users', { username: 'globex-ops', password: 'globex-password-1', tenant: 'globex', permissions: ['workers.read', 'workers.write'] })).status).toBe(201);
      const globex = (await call(b, undefined, 'POST', '/api/v1/login', { username: 'globex-ops', password: 'globex-password-1', tenant: 'globex' })).body.token as string;
      for (const hub of [a, b]) {
        const res = await admin(hub, 'w-a', { command: 'admin.list' }, globex);
        expect([res.status, res.body.errors[0].message]).toEqual([404, 'worker w-a is not attached to any aggregator instance']);
        expect(await listed(hub, globex)).toEqual([]);
      }
      // globex's own `shared` on b, default's `shared` on a: each tenant reaches its own, from either instance.
      const gx: WorkerComponent = { name: 'gx', version: '1.0.0', functions: {} };
      const df: WorkerComponent = { name: 'df', version: '1.0.0', functions: {} };
      await attach(b, 'shared', [gx], await enrol(b, ['gx'], globex));
      await attach(a, 'shared', [df]);
      await waitFor('both `shared` workers reported', async () => (await listed(b)).some((w) => w.workerId === 'shared') && (await listed(a, globex)).some((w) => w.workerId === 'shared'), 20_000);
      const components = async (hub: Hub, as: string) => ((await admin(hub, 'shared', { command: 'admin.list' }, as)).body.data.payload.components as Array<{ name: string }>).map((c) => c.name);
      for (const hub of [a, b]) {
        expect(await components(hub, token)).toEqual(['df']);
        expect(await components(hub, globex)).toEqual(['gx']);
      }
    }, 60_000);

    it('admin.drain through the other instance: the holding instance stops delivering to the worker, and the list shows it draining', async () => {
      const flowId = await createAndStart(asTestHub(a, () => token), {
        nodes: [
          { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'echo', componentId: 'echo', function: 'reply', nodeSettings: { runtime: 'workers', timeoutMs: 30_000 } },
        ],
        edges: [{ source: 'in', target: 'echo' }],
      });
      await attach(a, 'spare', [echo('spare', ranBy)]);
      const drained = await admin(b, 'w-a', { command: 'admin.drain' });
      expect(drained.status, JSON.stringify(drained.body)).toBe(200);
      expect(drained.body.data).toEqual({ event: 'SUCCEEDED', payload: { drained: true, workerId: 'w-a' } });
      // a marked the session draining itself (its own view, not a report); b sees it in a's next report.
      expect((await listed(a)).find((w) => w.workerId === 'w-a')?.draining).toBe(true);
      await waitFor('w-a draining in b’s list', async () => (await listed(b)).find((w) => w.workerId === 'w-a')?.draining === true, 10_000);

      ranBy.length = 0;
      const hub = asTestHub(a, () => token);
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await trigger(hub, flowId, { n: i }));
      for (const id of ids) expect((await waitForExecution(hub, id, 30_000)).status).toBe('succeeded');
      expect(ranBy).toEqual(Array(8).fill('spare'));
    }, 90_000);

    it('a hub killed -9: its workers leave the other hub’s list within FRESH_MS + REPORT_MS; meanwhile an admin command to them times out', async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-workers-admin-'));
      const grpcPort = await freePort();
      let victim: PlexusProcess | undefined;
      try {
        victim = runPlexus(['start'], { ...cluster.processEnv(), PLEXUS_DATA_DIR: dataDir, PLEXUS_HTTP_PORT: String(await freePort()), PLEXUS_MTLS_PORT: String(await freePort()), PLEXUS_GRPC_PORT: String(grpcPort), PLEXUS_LOG_LEVEL: 'error' });
        await victim.waitFor(/listening on (http:\/\/\S+)/, 90_000);
        const doomed = await startSdkWorker([`127.0.0.1:${grpcPort}`], [{ name: 'doomed', version: '1.0.0', functions: {} }], {
          workerId: 'doomed',
          enrolmentSecret: await enrol(a, ['doomed']),
          credentialFile: path.join(dir, 'doomed.cred'),
        });
        workers.push(doomed);
        const listedOnA = async () => (await listed(a)).filter((w) => w.workerId === 'doomed');
        await waitFor('doomed listed on a', async () => (await listedOnA()).length === 1, 20_000);
        const idA = (await listed(a)).find((w) => w.workerId === 'w-a')!.instanceId;
        expect((await listedOnA())[0]!.instanceId).not.toBe(idA);
        // The process forwards like the in-process hubs: a real second process on NATS.
        expect((await admin(a, 'doomed', { command: 'admin.list' })).body.data.payload.workerId).toBe('doomed');

        victim.child.kill('SIGKILL');
        const killedAt = Date.now();
        await victim.exited;
        // Its report is still fresh for a few seconds: the command goes there and nobody answers.
        const unanswered = await admin(a, 'doomed', { command: 'admin.list', timeoutMs: 1_000 });
        expect([unanswered.status, unanswered.body.errors[0].code]).toEqual([504, 'TIMEOUT']);
        expect(unanswered.body.errors[0].message).toMatch(/^worker doomed \(attached to aggregator instance \S+\) did not answer admin.list within 1000 ms$/);

        await waitFor('doomed gone from a’s list', async () => (await listedOnA()).length === 0, FRESH_MS + REPORT_MS + 2_000, 100);
        const goneAfter = Date.now() - killedAt;
        expect(goneAfter).toBeLessThanOrEqual(FRESH_MS + REPORT_MS + 1_000);
        expect((await admin(a, 'doomed', { command: 'admin.list' })).status).toBe(404);
        // The other workers stay.
        expect((await listed(b)).map((w) => w.workerId).sort()).toEqual(['shared', 'spare', 'w-a']);
      } finally {
        if (victim && victim.child.exitCode === null && victim.child.signalCode === null) {
          victim.child.kill('SIGKILL');
          await victim.exited;
        }
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    }, 150_000);
  });
}
