/**
 * `GET /api/v1/workers` across aggregator instances: two hub processes on one PostgreSQL database
 * and one NATS. Each lists the workers of both, with the instance holding each; a command to a
 * target served on the other instance reaches it; a worker that detaches from one instance leaves
 * the other's list; an instance that stops takes its workers out of the list.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../src/entrypoints/hub.js';
import type { Worker, WorkerComponent } from '../../src/worker-sdk/index.js';
import { TestCluster } from '../helpers/cluster.js';
import { openTestDb, type TestDb } from '../helpers/db.js';
import { waitFor } from '../helpers/flows.js';
import { TEST_ADMIN_PASSWORD } from '../helpers/hub.js';
import { hasNats, hasPostgres } from '../helpers/services.js';
import { startSdkWorker, tempDir } from '../helpers/workers.js';

async function call(hub: Hub, token: string | undefined, method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await hub.app.inject({ method: method as 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

const component = (name: string): WorkerComponent => ({
  name,
  version: '1.0.0',
  functions: { run: async () => ({ emit: [] }) },
  commands: { ping: { schema: { type: 'object' }, handle: async (p) => ({ pong: p, by: name }) } },
});

if (hasPostgres && hasNats) {
  describe('workers of every instance (PostgreSQL + NATS)', () => {
    let testDb: TestDb;
    const cluster = new TestCluster(() => testDb, 'workers-registry');
    const hubs = cluster.hubs;
    const workers: Worker[] = [];
    const dir = tempDir();
    let token: string;
    const startHub = (): Promise<Hub> => cluster.start();

    const enrol = async (hub: Hub, components: string[]) => (await call(hub, token, 'POST', '/api/v1/workers/enrolments', { components })).body.data.secret as string;
    const listed = async (hub: Hub) => ((await call(hub, token, 'GET', '/api/v1/workers')).body.data as Array<{ workerId: string; instanceId: string; components: Array<{ name: string }> }>).map((w) => `${w.workerId}@${w.instanceId}`).sort();

    beforeAll(async () => {
      testDb = await openTestDb('postgres');
      await startHub();
      await startHub();
      token = (await call(hubs[0]!, undefined, 'POST', '/api/v1/login', { username: 'admin', password: TEST_ADMIN_PASSWORD })).body.token;
    }, 120_000);

    afterAll(async () => {
      for (const w of workers) await w.stop().catch(() => {});
      await cluster.close();
      await testDb?.drop();
    });

    it('each instance lists the workers of both, with the instance holding each; detached and stopped ones leave', async () => {
      const [a, b] = hubs as [Hub, Hub];
      const onA = await startSdkWorker([`127.0.0.1:${a.grpcPort()}`], [component('left')], { workerId: 'left', enrolmentSecret: await enrol(a, ['left']), credentialFile: path.join(dir, 'left.cred') });
      workers.push(onA);
      const onB = await startSdkWorker([`127.0.0.1:${b.grpcPort()}`], [component('right')], { workerId: 'right', enrolmentSecret: await enrol(b, ['right']), credentialFile: path.join(dir, 'right.cred') });
      workers.push(onB);
      // Both attach to both: one worker, two streams, two rows.
      const both = await startSdkWorker([`127.0.0.1:${a.grpcPort()}`, `127.0.0.1:${b.grpcPort()}`], [component('both')], { workerId: 'both', enrolmentSecret: await enrol(a, ['both']), credentialFile: path.join(dir, 'both.cred') });
      workers.push(both);
      await waitFor('four streams on both lists', async () => (await listed(a)).length === 4 && (await listed(b)).length === 4, 20_000);
      const fromA = (await call(a, token, 'GET', '/api/v1/workers')).body.data as Array<{ workerId: string; instanceId: string; reportedAt: string; components: Array<{ name: string }> }>;
      const instanceOf = (id: string) => fromA.find((w) => w.workerId === id)!.instanceId;
      const idA = instanceOf('left');
      const idB = instanceOf('right');
      expect(idA).not.toBe(idB);
      expect(await listed(a)).toEqual([`both@${idA}`, `both@${idB}`, `left@${idA}`, `right@${idB}`].sort());
      expect(await listed(b)).toEqual(await listed(a));
      expect(fromA.find((w) => w.workerId === 'right')!.components.map((c) => c.name)).toEqual(['right']);

      // Once an instance has read the others' reports, a command to a target served only
      // elsewhere takes that target's own queue, which only the serving instance consumes.
      await new Promise((r) => setTimeout(r, 2_500));
      for (let i = 0; i < 3; i++) {
        expect(await onA.sendCommand('right', 'ping', { i }, { timeoutMs: 20_000 })).toMatchObject({ event: 'SUCCEEDED', payload: { pong: { i }, by: 'right' } });
      }

      await onB.stop();
      await waitFor('right gone from the list on a', async () => !(await listed(a)).some((w) => w.startsWith('right@')), 10_000);

      await cluster.stop(b);
      await waitFor('the stopped instance gone from the list on a', async () => !(await listed(a)).some((w) => w.endsWith(`@${idB}`)), 10_000);
      expect(await listed(a)).toEqual([`both@${idA}`, `left@${idA}`]);
    }, 90_000);
  });
}
