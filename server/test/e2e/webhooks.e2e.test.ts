/**
 * `/hook/:flowId` through HTTP. The first suite runs the hub without the orchestrator role (a
 * stand-in answers the lifecycle) so the queued StepJob of the start node can be read back
 * exactly; the second runs the whole hub and follows messages through real executions,
 * including synchronous replies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepQueueName, type StepJob } from '../../src/contracts/flows.js';
import { signWebhook } from '../../src/modules/webhooks/index.js';
import { dbTargets } from '../helpers/db.js';
import { sampleFlow, startStandInOrchestrator, waitFor, type StandInOrchestrator } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const SECRET = 'whsec_' + Buffer.from('a-very-secret-signing-key-of-32b').toString('base64');
const MAX_BYTES = 4096;

async function createFlow(hub: TestHub, overrides: Record<string, unknown> = {}): Promise<string> {
  const res = await hub.api('POST', '/api/v1/flows', sampleFlow(overrides));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.data.id as string;
}

/** Starts a flow and waits until its hook answers HEAD 200. */
async function startFlow(hub: TestHub, id: string): Promise<void> {
  expect((await hub.api('POST', `/api/v1/flows/${id}/start`)).status).toBe(200);
  await waitFor('hook accepting', async () => (await hub.app.inject({ method: 'HEAD', url: `/hook/${id}` })).statusCode === 200);
}

/** What /hook answers: 202 `{data}` or an error `{errors}`. */
interface HookAnswer {
  data: { requestId: string; executionId: string };
  errors: Array<{ code: string; message: string }>;
}

async function post(hub: TestHub, url: string, payload: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: HookAnswer }> {
  const res = await hub.app.inject({ method: 'POST', url, payload, headers });
  return { status: res.statusCode, body: (res.body ? JSON.parse(res.body) : {}) as HookAnswer };
}

async function takeJobs(hub: TestHub, flowId: string, nodeId = 'receive'): Promise<StepJob[]> {
  const jobs = await hub.bus.claim<StepJob>(stepQueueName(flowId, nodeId), { max: 100 });
  await Promise.all(jobs.map((j) => hub.bus.ack(j)));
  return jobs.map((j) => j.payload);
}

describe.each(dbTargets)('webhooks e2e on %s (queued messages)', (target) => {
  let hub: TestHub;
  let orchestrator: StandInOrchestrator;
  let flowId: string;

  beforeAll(async () => {
    hub = await createTestHub({ target, roles: ['gateway', 'iam', 'audit', 'flows', 'webhooks', 'scheduler'], env: { PLEXUS_WEBHOOK_MAX_BYTES: String(MAX_BYTES) } });
    orchestrator = await startStandInOrchestrator(hub.bus);
    flowId = await createFlow(hub);
    await startFlow(hub, flowId);
  });
  afterAll(async () => {
    await orchestrator?.stop();
    await hub?.close();
  });

  it('queues a POST for the first step in the seed format and answers 202', async () => {
    const res = await post(hub, `/hook/${flowId}/orders/eu?source=shop&tag=a&tag=b`, JSON.stringify({ order: 42 }), {
      'content-type': 'application/json',
      'x-custom': 'yes',
      authorization: 'Bearer do-not-store',
    });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ data: { requestId: expect.any(String), executionId: expect.any(String) } });
    const [job, ...rest] = await takeJobs(hub, flowId);
    expect(rest).toEqual([]);
    expect(job).toMatchObject({
      executionId: res.body.data.executionId,
      flowId,
      tenant: 'default',
      nodeId: 'receive',
      sequence: 0,
      trigger: 'webhook',
      flowVersion: 1,
      message: {
        id: expect.any(String),
        attachments: {},
        body: { order: 42 },
        query: { source: 'shop', tag: ['a', 'b'] },
        metadata: { source: 'webhook', method: 'POST', path: 'orders/eu', requestId: res.body.data.requestId },
      },
    });
    expect(job!.message.headers['x-custom']).toBe('yes');
    expect(job!.message.headers.authorization).toBeUndefined();
  });

  it('puts the query string of a GET into the body, and answers HEAD', async () => {
    const res = await hub.app.inject({ method: 'GET', url: `/hook/${flowId}?param1=value&param2=2`, headers: { 'x-from': 'get' } });
    expect(res.statusCode).toBe(202);
    const [job] = await takeJobs(hub, flowId);
    expect(job!.message.body).toEqual({ param1: 'value', param2: '2' });
    expect(job!.message.headers['x-from']).toBe('get');
    expect(job!.message.metadata.method).toBe('GET');
    expect((await hub.app.inject({ method: 'HEAD', url: `/hook/${flowId}` })).statusCode).toBe(200);
    expect(await takeJobs(hub, flowId)).toEqual([]);
  });

  it('reads form, text, XML and binary bodies', async () => {
    const url = `/hook/${flowId}`;
    expect((await post(hub, url, 'a=1&b=two&a=3', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(202);
    expect((await post(hub, url, 'hello there', { 'content-type': 'text/plain; charset=utf-8' })).status).toBe(202);
    const xml = '<order id="7"><item>book</item><item>pen</item></order>';
    expect((await post(hub, url, xml, { 'content-type': 'application/xml' })).status).toBe(202);
    const pdf = Buffer.from([0x25, 0x50, 0x44, 0x46, 0x00, 0xff]);
    expect((await post(hub, url, pdf, { 'content-type': 'application/pdf' })).status).toBe(202);

    const bodies = (await takeJobs(hub, flowId)).map((j) => j.message);
    expect(bodies[0]!.body).toEqual({ a: ['1', '3'], b: 'two' });
    expect(bodies[1]!.body).toBe('hello there');
    expect(bodies[2]!.body).toEqual({ order: { '@id': '7', item: ['book', 'pen'] } });
    expect(bodies[2]!.attachments.body).toEqual({ contentType: 'application/xml', size: xml.length, encoding: 'utf8', content: xml });
    expect(bodies[3]!.body).toEqual({});
    expect(bodies[3]!.attachments.body).toEqual({ contentType: 'application/pdf', size: 6, encoding: 'base64', content: pdf.toString('base64') });
  });

  it('refuses a body without Content-Type (415), too large (413), malformed JSON or XML (400)', async () => {
    const url = `/hook/${flowId}`;
    const noType = await post(hub, url, 'abc');
    expect(noType.status).toBe(415);
    expect(noType.body.errors[0]!.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const large = await post(hub, url, JSON.stringify({ pad: 'x'.repeat(MAX_BYTES) }), { 'content-type': 'application/json' });
    expect(large.status).toBe(413);
    expect(large.body.errors[0]!.code).toBe('PAYLOAD_TOO_LARGE');
    const badJson = await post(hub, url, '{"order": ', { 'content-type': 'application/json' });
    expect(badJson.status).toBe(400);
    expect(badJson.body.errors[0]!.code).toBe('INVALID_JSON');
    expect((await post(hub, url, '<a><b></a>', { 'content-type': 'text/xml' })).status).toBe(400);
    expect(await takeJobs(hub, flowId)).toEqual([]);
  });

  it('answers 413 from Content-Length without reading the body', async () => {
    const address = await hub.listen();
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      // Announce 100 MB, send nothing: the answer must come anyway.
      const req = request(`${address}/hook/${flowId}`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(100 * 1024 * 1024) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(413);
  });

  it('makes a call idempotent with x-request-id or idempotency-key', async () => {
    const url = `/hook/${flowId}`;
    const headers = { 'content-type': 'application/json', 'x-request-id': 'order-1001' };
    const first = await post(hub, url, '{"n":1}', headers);
    const again = await post(hub, url, '{"n":2}', headers);
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.data).toEqual({ requestId: 'order-1001', executionId: first.body.data.executionId });
    const other = await post(hub, url, '{"n":3}', { 'content-type': 'application/json', 'idempotency-key': 'order-1002' });
    expect(other.body.data.executionId).not.toBe(first.body.data.executionId);
    const jobs = await takeJobs(hub, flowId);
    expect(jobs.map((j) => j.message.body)).toEqual([{ n: 1 }, { n: 3 }]);

    // Concurrent repeats enqueue once too.
    const same = await Promise.all(Array.from({ length: 5 }, () => post(hub, url, '{"n":4}', { 'content-type': 'application/json', 'x-request-id': 'burst' })));
    expect(new Set(same.map((r) => r.body.data.executionId)).size).toBe(1);
    expect((await takeJobs(hub, flowId)).length).toBe(1);
  });

  it('answers the same 404 for unknown, not yet started, inactive and scheduled flows', async () => {
    const stopped = await createFlow(hub);
    const scheduled = await createFlow(hub, { cron: '0 0 1 1 *' });
    await hub.api('POST', `/api/v1/flows/${scheduled}/start`);
    await waitFor('scheduled flow active', async () => (await hub.api('GET', `/api/v1/flows/${scheduled}`)).body.data.status === 'active');
    orchestrator.silent = true;
    const starting = await createFlow(hub);
    await hub.api('POST', `/api/v1/flows/${starting}/start`);
    try {
      for (const id of ['00000000-0000-0000-0000-000000000000', stopped, scheduled, starting]) {
        const res = await post(hub, `/hook/${id}`, '{}', { 'content-type': 'application/json' });
        expect(res.status, id).toBe(404);
        expect(res.body).toEqual({ errors: [{ code: 'NOT_FOUND', message: `no active flow ${id} takes calls here: check the id, and that the flow is started (status active)` }] });
        expect((await hub.app.inject({ method: 'HEAD', url: `/hook/${id}` })).statusCode).toBe(404);
        expect((await hub.app.inject({ method: 'GET', url: `/hook/${id}` })).statusCode).toBe(404);
      }
    } finally {
      orchestrator.silent = false;
      await hub.api('POST', `/api/v1/flows/${starting}/stop`);
    }
  });

  it('refuses calls as soon as the flow is stopping', async () => {
    const id = await createFlow(hub);
    await startFlow(hub, id);
    expect((await post(hub, `/hook/${id}`, '{}', { 'content-type': 'application/json' })).status).toBe(202);
    orchestrator.silent = true; // the flow stays in `stopping`
    try {
      await hub.api('POST', `/api/v1/flows/${id}/stop`);
      await waitFor('hook closed', async () => (await hub.app.inject({ method: 'HEAD', url: `/hook/${id}` })).statusCode === 404, 2_000);
      expect((await hub.api('GET', `/api/v1/flows/${id}`)).body.data.status).toBe('stopping');
      expect((await post(hub, `/hook/${id}`, '{}', { 'content-type': 'application/json' })).status).toBe(404);
    } finally {
      orchestrator.silent = false;
      await hub.api('POST', `/api/v1/flows/${id}/stop`);
    }
  });

  it('checks Standard Webhooks signatures, runs a replayed webhook-id once, and audits refusals', async () => {
    const id = await createFlow(hub, { flowSettings: { webhooks: { auth: 'hmac', secret: SECRET } } });
    await startFlow(hub, id);
    const body = JSON.stringify({ signed: true });
    const now = Math.floor(Date.now() / 1000);
    const signed = (msgId: string, ts: number, payload = body) => ({
      'content-type': 'application/json',
      'webhook-id': msgId,
      'webhook-timestamp': String(ts),
      'webhook-signature': `v1,AAAA ${signWebhook(SECRET, msgId, ts, payload)}`,
    });

    const first = await post(hub, `/hook/${id}`, body, signed('msg_1', now));
    expect(first.status).toBe(202);
    // A repeated webhook-id (the sender's retry, or a replay) runs nothing new: same execution.
    const replay = await post(hub, `/hook/${id}`, body, signed('msg_1', now));
    expect(replay.status).toBe(202);
    expect(replay.body.data.executionId).toBe(first.body.data.executionId);
    const tampered = await post(hub, `/hook/${id}`, JSON.stringify({ signed: false }), signed('msg_2', now));
    expect(tampered.status).toBe(401);
    expect(tampered.body.errors[0]!.code).toBe('INVALID_SIGNATURE');
    expect((await post(hub, `/hook/${id}`, body, signed('msg_3', now - 6 * 60))).status).toBe(401);
    expect((await post(hub, `/hook/${id}`, body, { 'content-type': 'application/json' })).status).toBe(401);
    expect((await takeJobs(hub, id)).map((j) => j.message.body)).toEqual([{ signed: true }]);

    const denied = await waitFor('audited refusals', async () => {
      const res = await hub.api('GET', '/api/v1/audit?filter[name]=audit.webhooks.hook.denied&page[size]=100');
      const mine = res.body.data.filter((e: { target: { id: string } | null }) => e.target?.id === id);
      return mine.length >= 3 ? mine : undefined;
    });
    expect(denied[0]).toMatchObject({ result: 'denied', tenant: 'default' });
    expect(JSON.stringify(denied)).not.toContain(SECRET);
  });

  it("takes Bearer tokens holding webhooks.execute in the flow's tenant", async () => {
    const id = await createFlow(hub, { flowSettings: { webhooks: { auth: 'bearer' } } });
    await startFlow(hub, id);
    const mk = async (username: string, permissions: string[], tenant?: string) => {
      const res = await hub.api('POST', '/api/v1/users', { username, password: 'a-long-password-1', permissions, ...(tenant ? { tenant } : {}) });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      return hub.login(username, 'a-long-password-1', tenant);
    };
    const sender = await mk('hook-sender', ['webhooks.execute']);
    const reader = await mk('hook-reader', ['flows.read']);
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'other', name: 'Other' })).status).toBe(201);
    const foreign = await mk('other-sender', ['webhooks.execute'], 'other');

    const call = (token?: string) =>
      post(hub, `/hook/${id}`, '{"ok":1}', { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) });
    expect((await call()).status).toBe(401);
    expect((await call('not-a-token')).status).toBe(401);
    expect((await call(reader)).status).toBe(403);
    expect((await call(foreign)).status).toBe(403);
    expect((await call(sender)).status).toBe(202);
    const [job, ...more] = await takeJobs(hub, id);
    expect(more).toEqual([]);
    expect(job!.message.headers.authorization).toBeUndefined();
  });
});

describe.each(dbTargets)('webhooks e2e on %s (through the execution engine)', (target) => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await createTestHub({ target });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it("delivers a POST to the flow's first step", async () => {
    const id = await createFlow(hub);
    await startFlow(hub, id);
    const res = await post(hub, `/hook/${id}`, JSON.stringify({ order: 7 }), { 'content-type': 'application/json' });
    expect(res.status).toBe(202);
    const execution = await waitFor('execution succeeded', async () => {
      const e = await hub.api('GET', `/api/v1/executions/${res.body.data.executionId}`);
      return e.status === 200 && e.body.data.status === 'succeeded' ? e.body.data : undefined;
    }, 20_000);
    expect(execution).toMatchObject({ flowId: id, trigger: 'webhook', flowVersion: 1 });
    expect(execution.steps.map((s: { nodeId: string; input: unknown }) => [s.nodeId, s.input])).toEqual([
      ['receive', { order: 7 }],
      ['write', { order: 7 }],
    ]);
  });

  it('answers a sync call with the webhook-reply step, or 504 when there is none', async () => {
    const graph = {
      nodes: [
        { id: 'receive', componentId: 'log', function: 'write', fields: { level: 'debug' } },
        { id: 'gate', componentId: 'filter', function: 'condition', fields: { expression: 'pass = true' } },
        { id: 'answer', componentId: 'webhook-reply', function: 'reply', fields: { status: 201, headers: { 'x-answer': 'yes' }, body: '{"total": amount * 2}' } },
      ],
      edges: [
        { source: 'receive', target: 'gate' },
        { source: 'gate', target: 'answer' },
      ],
    };
    const id = await createFlow(hub, { graph, flowSettings: { webhooks: { respond: 'sync', timeoutMs: 5000 } } });
    await startFlow(hub, id);

    const res = await hub.app.inject({ method: 'POST', url: `/hook/${id}`, payload: { pass: true, amount: 21 } });
    expect(res.statusCode).toBe(201);
    expect(res.headers['x-answer']).toBe('yes');
    expect(res.headers['x-execution-id']).toEqual(expect.any(String));
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ total: 42 });

    // The filter drops the message: the execution ends without a reply, so no need to wait.
    const sentAt = Date.now();
    const dropped = await hub.app.inject({ method: 'POST', url: `/hook/${id}`, payload: { pass: false, amount: 1 } });
    expect(dropped.statusCode).toBe(504);
    expect(Date.now() - sentAt).toBeLessThan(2_500);
    expect(JSON.parse(dropped.body).errors[0].code).toBe('TIMEOUT');
  });

  it('gives up on a sync reply after timeoutMs with 504', async () => {
    const graph = {
      nodes: [
        { id: 'receive', componentId: 'delay', function: 'wait', fields: { delayMs: 10_000 } },
        { id: 'answer', componentId: 'webhook-reply', function: 'reply', fields: {} },
      ],
      edges: [{ source: 'receive', target: 'answer' }],
    };
    const id = await createFlow(hub, { graph, flowSettings: { webhooks: { respond: 'sync', timeoutMs: 700 } } });
    await startFlow(hub, id);
    const started = Date.now();
    const late = await hub.app.inject({ method: 'POST', url: `/hook/${id}`, payload: { slow: true } });
    const tookMs = Date.now() - started;
    expect(late.statusCode).toBe(504);
    expect(JSON.parse(late.body).errors[0]).toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/700 ms/) });
    expect(tookMs).toBeGreaterThanOrEqual(650);
    expect(tookMs).toBeLessThan(5_000);
    await hub.api('POST', `/api/v1/flows/${id}/stop`);
  });
});
