/**
 * Two aggregator instances of one deployment (two hub processes on one PostgreSQL database, one
 * logical name): a command sent through one instance reaches a worker attached only to the other
 * (the durable queue `router.commands`, the answer relayed back by live events), and flow steps
 * on the `workers` runtime are taken by whichever instance has a compatible worker.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../src/entrypoints/hub.js';
import type { Worker, WorkerComponent } from '../../src/worker-sdk/index.js';
import { waitFor } from '../helpers/flows.js';
import { createHubsOnOneDatabase, type HubGroup } from '../helpers/hub.js';
import { startSdkWorker, tempDir } from '../helpers/workers.js';

const PASSWORD = 'instances-admin-password';

async function call(hub: Hub, token: string | undefined, method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await hub.app.inject({ method: method as 'GET', url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

describe('two aggregator instances', () => {
  let group: HubGroup;
  let a: Hub;
  let b: Hub;
  let token: string;
  const dir = tempDir();
  const workers: Worker[] = [];
  const enrol = async (components: string[]) => (await call(a, token, 'POST', '/api/v1/workers/enrolments', { components })).body.data.secret as string;

  beforeAll(async () => {
    group = await createHubsOnOneDatabase(2, { adminPassword: PASSWORD, serviceName: 'instances' });
    [a, b] = group.hubs as [Hub, Hub];
    token = (await call(a, undefined, 'POST', '/api/v1/login', { username: 'admin', password: PASSWORD })).body.token;
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => {});
    await group?.close();
  });

  it('a command sent through one instance reaches a worker attached only to the other, and its answer comes back', async () => {
    const target: WorkerComponent = {
      name: 'billing',
      version: '2.0.0',
      functions: {},
      commands: { invoice: { schema: { type: 'object', required: ['amount'] }, handle: async (p) => ({ invoiced: (p as { amount: number }).amount }) } },
    };
    workers.push(await startSdkWorker([`127.0.0.1:${b.grpcPort()}`], [target], { workerId: 'billing', enrolmentSecret: await enrol(['billing']), credentialFile: path.join(dir, 'billing.cred') }));
    const sender = await startSdkWorker([`127.0.0.1:${a.grpcPort()}`], [{ name: 'shop', version: '1.0.0', functions: {} }], { workerId: 'shop', enrolmentSecret: await enrol(['shop']), credentialFile: path.join(dir, 'shop.cred') });
    workers.push(sender);
    const answer = await sender.sendCommand('billing', 'invoice', { amount: 42 }, { timeoutMs: 20_000, major: 2 });
    expect(answer).toEqual({ event: 'SUCCEEDED', payload: { invoiced: 42 }, router: `127.0.0.1:${a.grpcPort()}` });
    // Either instance lists both workers, each with the instance that holds it (its own first).
    const listed = async (hub: Hub) => ((await call(hub, token, 'GET', '/api/v1/workers')).body.data as Array<{ workerId: string; instanceId: string }>).map((w) => [w.workerId, w.instanceId]);
    await waitFor('both workers listed on both instances', async () => (await listed(a)).length === 2 && (await listed(b)).length === 2, 20_000);
    const fromA = await listed(a);
    expect(fromA.map(([w]) => w)).toEqual(['shop', 'billing']);
    const onA = fromA[0]![1];
    const onB = fromA[1]![1];
    expect(onA).not.toBe(onB);
    expect(await listed(b)).toEqual([
      ['billing', onB],
      ['shop', onA],
    ]);
  }, 60_000);

  it('an event from a worker on one instance reaches a subscribed worker on the other, once', async () => {
    const heard: Array<{ topic: string; event: string; payload: unknown }> = [];
    workers.push(
      await startSdkWorker([`127.0.0.1:${b.grpcPort()}`], [{ name: 'listener', version: '1.0.0', functions: {} }], {
        workerId: 'listener',
        enrolmentSecret: await enrol(['listener']),
        credentialFile: path.join(dir, 'listener.cred'),
        subscriptions: ['stock'],
        onEvent: (e) => heard.push(e),
      }),
    );
    const sender = workers.find((w) => w.attachedTo().includes(`127.0.0.1:${a.grpcPort()}`))!;
    sender.publishEvent('stock', 'LOW', { sku: 'A-1' });
    await waitFor('the event on the other instance', async () => heard.length > 0, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(heard).toEqual([expect.objectContaining({ topic: 'stock', event: 'LOW', payload: { sku: 'A-1' } })]);
  }, 60_000);

  it('flow steps on the workers runtime are run by the instance that has the worker', async () => {
    const seen: string[] = [];
    const tagger: WorkerComponent = { name: 'tagger', version: '1.0.0', functions: { tag: async (input) => (seen.push(input.executionId), { emit: [{ body: { ...(input.message.body as object), tagged: true } }] }) } };
    workers.push(await startSdkWorker([`127.0.0.1:${b.grpcPort()}`], [tagger], { workerId: 'tagger', enrolmentSecret: await enrol(['tagger']), credentialFile: path.join(dir, 'tagger.cred') }));
    const created = await call(a, token, 'POST', '/api/v1/flows', {
      name: 'tagging',
      flowSettings: { webhooks: { auth: 'none' } },
      graph: {
        nodes: [
          { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'tag', componentId: 'tagger', function: 'tag', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
        ],
        edges: [{ source: 'in', target: 'tag' }],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const flowId = created.body.data.id as string;
    expect((await call(a, token, 'POST', `/api/v1/flows/${flowId}/start`)).status).toBeLessThan(300);
    await waitFor('flow active', async () => (await call(a, token, 'GET', `/api/v1/flows/${flowId}`)).body.data.status === 'active', 20_000);
    // Webhooks through the instance without the worker.
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await call(a, undefined, 'POST', `/hook/${flowId}`, { n: i });
      expect(res.status).toBe(202);
      ids.push(res.body.data.executionId);
    }
    for (const id of ids) {
      const x = await waitFor(`execution ${id}`, async () => {
        const r = await call(a, token, 'GET', `/api/v1/executions/${id}`);
        return r.status === 200 && r.body.data.status !== 'running' ? r.body.data : undefined;
      }, 30_000);
      expect(x.status).toBe('succeeded');
    }
    expect(seen.sort()).toEqual([...ids].sort());
  }, 90_000);

  it('a worker attached to both instances and drained through one is drained on both (its heartbeat says so)', async () => {
    const both = await startSdkWorker([`127.0.0.1:${a.grpcPort()}`, `127.0.0.1:${b.grpcPort()}`], [{ name: 'ledger', version: '1.0.0', functions: { post: async (i) => ({ emit: [{ body: i.message.body }] }) } }], {
      workerId: 'ledger',
      enrolmentSecret: await enrol(['ledger']),
      credentialFile: path.join(dir, 'ledger.cred'),
    });
    workers.push(both);
    const sessions = async (hub: Hub) => ((await call(hub, token, 'GET', '/api/v1/workers')).body.data as Array<{ workerId: string; instanceId: string; draining: boolean }>).filter((w) => w.workerId === 'ledger');
    await waitFor('the worker attached to both', async () => (await sessions(a)).length === 2, 20_000);
    expect((await sessions(a)).every((w) => !w.draining)).toBe(true);
    const drained = await call(a, token, 'POST', '/api/v1/workers/ledger/admin', { command: 'admin.drain' });
    expect(drained.status, JSON.stringify(drained.body)).toBe(200);
    // Each instance marks its own session draining: A from the command, B from the heartbeat.
    await waitFor('both sessions draining, seen from B', async () => {
      const seen = await sessions(b);
      return seen.length === 2 && seen.every((w) => w.draining);
    }, 10_000);
  }, 60_000);
});
