/**
 * The flow repository through its public API, on a whole hub with the real orchestrator
 * answering the lifecycle: definitions, versions, validation, the start/stop state machine,
 * tenants and audit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { sampleFlow, startStandInOrchestrator, waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const PASSWORD = 'a-long-password-1';

async function createUser(hub: TestHub, username: string, permissions: string[], tenant?: string): Promise<string> {
  const res = await hub.api('POST', '/api/v1/users', { username, password: PASSWORD, permissions, ...(tenant ? { tenant } : {}) });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return hub.login(username, PASSWORD, tenant);
}

async function statusOf(hub: TestHub, id: string, token?: string): Promise<string> {
  return (await hub.api('GET', `/api/v1/flows/${id}`, undefined, token)).body.data.status as string;
}

describe.each(dbTargets)('flows e2e on %s', (target) => {
  let hub: TestHub;
  let editor: string;
  let reader: string;
  let otherTenant: string;

  beforeAll(async () => {
    hub = await createTestHub({ target });
    editor = await createUser(hub, 'flow-editor', ['flows.read', 'flows.write', 'flows.control', 'audit.read']);
    reader = await createUser(hub, 'flow-reader', ['flows.read']);
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'acme', name: 'Acme' })).status).toBe(201);
    otherTenant = await createUser(hub, 'acme-editor', ['flows.read', 'flows.write', 'flows.control'], 'acme');
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('creates, reads, lists, changes (new version) and deletes a flow', async () => {
    const created = await hub.api('POST', '/api/v1/flows', sampleFlow({ name: 'Invoices' }), editor);
    expect(created.status).toBe(201);
    const flow = created.body.data;
    expect(flow).toMatchObject({ name: 'Invoices', status: 'inactive', version: 1, tenant: 'default', flowSettings: {} });
    expect(flow.owners).toEqual([{ id: expect.any(String), type: 'user' }]);

    expect((await hub.api('GET', `/api/v1/flows/${flow.id}`, undefined, reader)).body.data).toEqual(flow);

    const patched = await hub.api('PATCH', `/api/v1/flows/${flow.id}`, { description: 'monthly', cron: '0 3 1 * *', timezone: 'Europe/Berlin' }, editor);
    expect(patched.status).toBe(200);
    expect(patched.body.data).toMatchObject({ version: 2, description: 'monthly', cron: '0 3 1 * *', timezone: 'Europe/Berlin', graph: flow.graph });

    const versions = await hub.api('GET', `/api/v1/flows/${flow.id}/versions`, undefined, reader);
    expect(versions.status).toBe(200);
    expect(versions.body.meta).toEqual({ total: 2, page: 1, perPage: 20, totalPages: 1 });
    expect(versions.body.data.map((v: { version: number; current: boolean; cron?: string }) => [v.version, v.current, v.cron])).toEqual([
      [2, true, '0 3 1 * *'],
      [1, false, undefined],
    ]);

    expect((await hub.api('DELETE', `/api/v1/flows/${flow.id}`, undefined, editor)).status).toBe(204);
    expect((await hub.api('GET', `/api/v1/flows/${flow.id}`, undefined, editor)).status).toBe(404);
    expect((await hub.api('GET', `/api/v1/flows/${flow.id}/versions`, undefined, editor)).status).toBe(404);
  });

  it('lists with paging, status filter, search and sort', async () => {
    const names = ['alpha sync', 'beta sync', 'gamma export'];
    for (const name of names) expect((await hub.api('POST', '/api/v1/flows', sampleFlow({ name }), editor)).status).toBe(201);

    const page = await hub.api('GET', '/api/v1/flows?search=sync&sort=-name&page[size]=1&page[number]=2', undefined, reader);
    expect(page.status).toBe(200);
    expect(page.body.meta).toEqual({ total: 2, page: 2, perPage: 1, totalPages: 2 });
    expect(page.body.data.map((f: { name: string }) => f.name)).toEqual(['alpha sync']);

    const inactive = await hub.api('GET', '/api/v1/flows?filter[status]=inactive&search=gamma', undefined, reader);
    expect(inactive.body.data.map((f: { name: string }) => f.name)).toEqual(['gamma export']);
    expect((await hub.api('GET', '/api/v1/flows?filter[status]=active&search=gamma', undefined, reader)).body.meta.total).toBe(0);
    expect((await hub.api('GET', '/api/v1/flows?filter[status]=running', undefined, reader)).status).toBe(400);
    expect((await hub.api('GET', '/api/v1/flows?sort=color', undefined, reader)).status).toBe(400);
  });

  it('answers 400 listing every problem of an invalid flow', async () => {
    const res = await hub.api(
      'POST',
      '/api/v1/flows',
      {
        name: 'bad',
        status: 'active',
        cron: '* * *',
        graph: {
          nodes: [
            { id: 'a', componentId: 'log', function: 'write' },
            { id: 'a', componentId: 'no-such-component', function: 'run' },
            { id: 'b', componentId: 'log', function: 'shout' },
            { id: 'c', function: 'write' },
          ],
          edges: [
            { source: 'a', target: 'b' },
            { source: 'b', target: 'a' },
            { source: 'b', target: 'ghost' },
          ],
        },
      },
      editor,
    );
    expect(res.status).toBe(400);
    expect(res.body.errors[0].code).toBe('INVALID_FLOW');
    const problems: string[] = res.body.errors[0].details.problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        'status: is set by the server; use POST /api/v1/flows/:id/start or /stop',
        'graph.nodes[3].componentId: is required',
        'graph.nodes[1].id: duplicate node id "a"',
        'graph.edges[2].target: "ghost" is not a node of this flow',
        expect.stringMatching(/^graph: the edges form a cycle/),
        'graph.nodes[1] ("a"): unknown component no-such-component',
        'graph.nodes[2] ("b"): component log has no function shout',
        expect.stringMatching(/^cron: "\* \* \*" must have 5 fields/),
      ]),
    );
    for (const p of problems) expect(res.body.errors[0].message).toContain(p);

    const noGraph = await hub.api('POST', '/api/v1/flows', { name: 'x' }, editor);
    expect(noGraph.status).toBe(400);
    expect(noGraph.body.errors[0].details.problems).toEqual(['graph: is required']);
    const noEdges = await hub.api(
      'POST',
      '/api/v1/flows',
      { name: 'x', graph: { nodes: [{ id: 'a', componentId: 'log', function: 'write' }, { id: 'b', componentId: 'log', function: 'write' }] } },
      editor,
    );
    expect(noEdges.body.errors[0].details.problems).toEqual(['graph.edges: the flow has 2 nodes but no edges; join them with edges']);
    expect((await hub.api('POST', '/api/v1/flows', [1, 2], editor)).status).toBe(400);
  });

  it('starts and stops through the orchestrator, and refuses changes while not inactive', async () => {
    const id = (await hub.api('POST', '/api/v1/flows', sampleFlow(), editor)).body.data.id as string;
    const start = await hub.api('POST', `/api/v1/flows/${id}/start`, undefined, editor);
    expect(start.status).toBe(200);
    expect(start.body).toEqual({ data: { id, status: 'starting' } });
    await waitFor('flow active', async () => (await statusOf(hub, id)) === 'active');

    expect((await hub.api('POST', `/api/v1/flows/${id}/start`, undefined, editor)).body.data.status).toBe('active');
    const patch = await hub.api('PATCH', `/api/v1/flows/${id}`, { name: 'renamed' }, editor);
    expect(patch.status).toBe(409);
    expect(patch.body.errors[0].code).toBe('INVALID_STATE');
    expect((await hub.api('DELETE', `/api/v1/flows/${id}`, undefined, editor)).status).toBe(409);

    const stop = await hub.api('POST', `/api/v1/flows/${id}/stop`, undefined, editor);
    expect(stop.body).toEqual({ data: { id, status: 'stopping' } });
    await waitFor('flow inactive', async () => (await statusOf(hub, id)) === 'inactive');
    expect((await hub.api('PATCH', `/api/v1/flows/${id}`, { name: 'renamed' }, editor)).body.data.name).toBe('renamed');
  });

  it('shows why a start failed and ends inactive (flow.failed)', async () => {
    // The orchestrator prepares every step on start; a field its component refuses fails it.
    const body = sampleFlow({ name: 'will fail' });
    (body.graph as { nodes: Array<{ fields: unknown }> }).nodes[1]!.fields = { level: 'shout' };
    const id = (await hub.api('POST', '/api/v1/flows', body, editor)).body.data.id as string;
    await hub.api('POST', `/api/v1/flows/${id}/start`, undefined, editor);
    const flow = await waitFor('flow failed and inactive', async () => {
      const f = (await hub.api('GET', `/api/v1/flows/${id}`, undefined, editor)).body.data;
      return f.status === 'inactive' && f.statusReason ? f : undefined;
    });
    expect(flow.statusReason).toMatch(/level/);
  });

  it("hides another tenant's flows exactly like missing ones", async () => {
    const id = (await hub.api('POST', '/api/v1/flows', sampleFlow({ name: 'acme only' }), otherTenant)).body.data.id as string;
    const missing = await hub.api('GET', '/api/v1/flows/00000000-0000-0000-0000-000000000000', undefined, editor);
    const foreign = await hub.api('GET', `/api/v1/flows/${id}`, undefined, editor);
    expect(foreign.status).toBe(404);
    expect(foreign.body.errors[0].code).toBe(missing.body.errors[0].code);
    for (const [method, url] of [
      ['PATCH', `/api/v1/flows/${id}`],
      ['DELETE', `/api/v1/flows/${id}`],
      ['POST', `/api/v1/flows/${id}/start`],
      ['POST', `/api/v1/flows/${id}/stop`],
      ['GET', `/api/v1/flows/${id}/versions`],
    ] as const) {
      expect((await hub.api(method, url, method === 'PATCH' ? { name: 'x' } : undefined, editor)).status, `${method} ${url}`).toBe(404);
    }
    expect((await hub.api('GET', '/api/v1/flows?search=acme', undefined, editor)).body.meta.total).toBe(0);
    expect((await hub.api('GET', '/api/v1/flows?search=acme', undefined, otherTenant)).body.meta.total).toBe(1);
  });

  it('checks permissions and audits changes and denials', async () => {
    const denied = await hub.api('POST', '/api/v1/flows', sampleFlow(), reader);
    expect(denied.status).toBe(403);
    expect((await hub.api('POST', '/api/v1/flows', sampleFlow(), null)).status).toBe(401);

    const id = (await hub.api('POST', '/api/v1/flows', sampleFlow({ name: 'audited' }), editor)).body.data.id as string;
    await hub.api('PATCH', `/api/v1/flows/${id}`, { description: 'changed' }, editor);
    const names = await waitFor('audit records', async () => {
      const res = await hub.api('GET', '/api/v1/audit?filter[module]=flows&page[size]=100', undefined, editor);
      const mine = res.body.data.filter((e: { target: { id: string } | null; name: string }) => e.target?.id === id).map((e: { name: string }) => e.name);
      return mine.length >= 2 ? mine : undefined;
    });
    expect(names).toEqual(expect.arrayContaining(['audit.flows.flow.created', 'audit.flows.flow.updated']));
    const deniedRecords = await waitFor('denied record', async () => {
      const res = await hub.api('GET', '/api/v1/audit?filter[result]=denied&filter[module]=flows', undefined, hub.adminToken);
      return res.body.data.length > 0 ? res.body.data : undefined;
    });
    expect(deniedRecords[0]).toMatchObject({ actor: { username: 'flow-reader' } });
  });

  it('masks the webhook secret and keeps it when the mask is sent back', async () => {
    const secret = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
    const created = await hub.api('POST', '/api/v1/flows', sampleFlow({ flowSettings: { webhooks: { auth: 'hmac', secret } } }), editor);
    expect(created.status).toBe(201);
    expect(created.body.data.flowSettings.webhooks).toEqual({ auth: 'hmac', secret: '********', secretId: expect.any(String), respond: 'async', timeoutMs: 30000 });
    expect(JSON.stringify(created.body)).not.toContain(secret);
    const id = created.body.data.id as string;
    const back = await hub.api('PATCH', `/api/v1/flows/${id}`, { name: 'renamed', flowSettings: created.body.data.flowSettings }, editor);
    expect(back.status).toBe(200);
    expect(JSON.stringify((await hub.api('GET', `/api/v1/flows/${id}/versions`, undefined, editor)).body)).not.toContain(secret);
  });
});

describe('flows lifecycle without an answering orchestrator', () => {
  it('stops a flow stuck in starting', async () => {
    const hub = await createTestHub({ roles: ['gateway', 'iam', 'audit', 'flows', 'webhooks', 'scheduler'] });
    const orchestrator = await startStandInOrchestrator(hub.bus);
    try {
      orchestrator.silent = true;
      const id = (await hub.api('POST', '/api/v1/flows', sampleFlow())).body.data.id as string;
      await hub.api('POST', `/api/v1/flows/${id}/start`);
      await new Promise((r) => setTimeout(r, 300));
      expect(await statusOf(hub, id)).toBe('starting');
      const stop = await hub.api('POST', `/api/v1/flows/${id}/stop`);
      expect(stop.body.data.status).toBe('stopping');
      // A start while stopping waits for the stop to finish.
      expect((await hub.api('POST', `/api/v1/flows/${id}/start`)).status).toBe(409);
      orchestrator.silent = false;
      // Stopping again republishes flow.stopping, which the orchestrator now answers.
      await hub.api('POST', `/api/v1/flows/${id}/stop`);
      await waitFor('flow inactive', async () => (await statusOf(hub, id)) === 'inactive');
    } finally {
      await orchestrator.stop();
      await hub.close();
    }
  });
});
