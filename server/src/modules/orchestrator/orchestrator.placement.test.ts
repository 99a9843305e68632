/**
 * Two orchestrator processes on one PostgreSQL database: both place an active flow's steps,
 * share its messages, and a stop is answered only once neither takes the flow's messages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../entrypoints/hub.js';
import { startSink, type Sink } from '../../../test/helpers/engine.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { createHubsOnOneDatabase, type HubGroup } from '../../../test/helpers/hub.js';
import { hasPostgres } from '../../../test/helpers/services.js';

const PASSWORD = 'placement-admin-password';

describe.skipIf(!hasPostgres)('two orchestrator processes on PostgreSQL', () => {
  let group: HubGroup;
  let hubs: Hub[] = [];
  let sink: Sink;
  let token = '';

  const api = async (hub: Hub, method: 'GET' | 'POST', url: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await hub.app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  };

  beforeAll(async () => {
    group = await createHubsOnOneDatabase(2, { adminPassword: PASSWORD, serviceName: 'placement-test' });
    hubs = group.hubs;
    sink = await startSink();
    const login = await api(hubs[0]!, 'POST', '/api/v1/login', { username: 'admin', password: PASSWORD });
    token = login.body.token as string;
  }, 60_000);

  afterAll(async () => {
    await group?.close();
    await sink?.close();
  });

  it('places the flow in both processes, serves its webhooks on both, and stops in both before flow.stopped', async () => {
    const created = await api(hubs[0]!, 'POST', '/api/v1/flows', {
      name: 'shared',
      flowSettings: { webhooks: { auth: 'none' } },
      graph: {
        nodes: [
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"n": n}' } },
          { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } },
        ],
        edges: [{ source: 'shape', target: 'send' }],
      },
    });
    expect(created.status).toBe(201);
    const flowId = created.body.data.id as string;
    expect((await api(hubs[0]!, 'POST', `/api/v1/flows/${flowId}/start`)).status).toBeLessThan(300);
    await waitFor('flow active', async () => (await api(hubs[0]!, 'GET', `/api/v1/flows/${flowId}`)).body.data.status === 'active');
    const placements = async (): Promise<number> => (await group.db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM orchestrator_placements WHERE flow_id = $1', [flowId])).rows[0]!.n;
    await waitFor('both processes to place the flow', async () => (await placements()) === 2);

    // Webhooks on both processes; each process's consumers take a share.
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await hubs[i % 2]!.app.inject({ method: 'POST', url: `/hook/${flowId}`, payload: { n: i } });
      expect(res.statusCode).toBe(202);
      ids.push((JSON.parse(res.body) as { data: { executionId: string } }).data.executionId);
    }
    await waitFor('all messages at the sink', async () => new Set(sink.requests.map((r) => (r.body as { n: number }).n)).size === 60, 20_000);

    const stopped: string[] = [];
    const watcher = await hubs[0]!.bus.subscribe<{ id: string }>('flow.stopped', 'placement-test-watch', async (e) => {
      stopped.push(e.payload.id);
    });
    expect((await api(hubs[1]!, 'POST', `/api/v1/flows/${flowId}/stop`)).status).toBeLessThan(300);
    await waitFor('flow.stopped', async () => stopped.includes(flowId), 20_000);
    // By the time flow.stopped is out, no process consumes the flow any more.
    expect(await placements()).toBe(0);
    await watcher.stop();
    const x = await api(hubs[1]!, 'GET', `/api/v1/executions/${ids[0]}`);
    expect(x.body.data.status).toBe('succeeded');
  });
});
