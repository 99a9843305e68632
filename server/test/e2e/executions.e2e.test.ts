/**
 * The execution engine end to end, through the public surface: flows created and started over
 * the API, messages sent to `/hook/:flowId`, steps calling a real HTTP server on loopback, and
 * executions read back from `/api/v1/executions`. On embedded PGlite and on PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepQueueName, type StepJob } from '../../src/contracts/flows.js';
import { dbTargets, dropSchema } from '../helpers/db.js';
import { createAndStart, createFlow, flowStatus, getExecution, startFlow, startSink, stepsOf, stopFlow, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, TEST_ALLOWED_HOSTS, type TestHub } from '../helpers/hub.js';
import { runPlexus, type PlexusProcess } from '../helpers/process.js';
import { TEST_DATABASE_URL } from '../helpers/services.js';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const FAST_RETRY = { retries: 2, retryDelayMs: 20, maxRetryDelayMs: 50 };

/** A trigger job for the start node `shape` of a fresh execution, as a webhook call enqueues it. */
function triggerJob(flowId: string, body: unknown, over: Partial<StepJob> = {}): StepJob {
  return {
    executionId: randomUUID(),
    flowId,
    tenant: 'default',
    nodeId: 'shape',
    message: { id: randomUUID(), attachments: {}, body, headers: {}, metadata: {} },
    trigger: 'webhook',
    sequence: 0,
    flowVersion: 1,
    ...over,
  };
}

describe.each(dbTargets)('executions on %s', (target) => {
  let hub: TestHub;
  let sink: Sink;

  beforeAll(async () => {
    hub = await createTestHub({ target });
    sink = await startSink();
  }, 60_000);

  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  const pipeline = (url: string, nodeSettings: Record<string, unknown> = {}) => ({
    nodes: [
      { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"order": id, "total": qty * price}' } },
      { id: 'big', componentId: 'filter', function: 'condition', fields: { expression: 'total >= 100' } },
      { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url }, nodeSettings },
    ],
    edges: [
      { source: 'shape', target: 'big' },
      { source: 'big', target: 'send' },
    ],
  });

  it('runs webhook → transform → filter → http-request and records every step run', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    const executionId = await trigger(hub, flowId, { id: 'A-1', qty: 3, price: 50 });
    const x = await waitForExecution(hub, executionId);
    expect(x).toMatchObject({ id: executionId, flowId, status: 'succeeded', trigger: 'webhook', pendingSteps: 0, failedSteps: 0, stepRuns: 3 });
    expect(x.finishedAt).not.toBeNull();

    const got = sink.requests.filter((r) => r.headers['idempotency-key']?.toString().startsWith(executionId));
    expect(got).toHaveLength(1);
    expect(got[0]!.body).toEqual({ order: 'A-1', total: 150 });
    expect(got[0]!.headers['idempotency-key']).toBe(`${executionId}:send:0.0.0`);

    const [shape] = stepsOf(x, 'shape');
    expect(shape).toMatchObject({ status: 'succeeded', attempt: 1, input: { id: 'A-1', qty: 3, price: 50 }, output: [{ order: 'A-1', total: 150 }], emitted: 1, error: null });
    const [send] = stepsOf(x, 'send');
    expect(send).toMatchObject({ status: 'succeeded', idempotencyKey: `${executionId}:send:0.0.0`, input: { order: 'A-1', total: 150 } });
    expect((send!.output as Array<{ status: number }>)[0]!.status).toBe(200);

    const list = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}&filter[status]=succeeded`);
    expect(list.status).toBe(200);
    expect(list.body.meta).toMatchObject({ total: 1, page: 1 });
    expect(list.body.data[0]).toMatchObject({ id: executionId, status: 'succeeded' });
  });

  it('ends the execution as succeeded when the filter drops the message, without calling the sink', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    const before = sink.requests.length;
    const x = await waitForExecution(hub, await trigger(hub, flowId, { id: 'small', qty: 1, price: 5 }));
    expect(x.status).toBe('succeeded');
    expect(x.steps.map((s) => s.nodeId).sort()).toEqual(['big', 'shape']);
    expect(stepsOf(x, 'big')[0]).toMatchObject({ emitted: 0, output: [] });
    expect(sink.requests.length).toBe(before);
  });

  it('fans out along edges: conditions choose, mappers reshape, split multiplies; it ends when every branch has', async () => {
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'orders', componentId: 'split', function: 'each', fields: { expression: 'orders' } },
        { id: 'big', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/big` } },
        { id: 'all', componentId: 'code', function: 'run', fields: { code: 'return { seen: body.id };' } },
        { id: 'audit', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/audit` } },
      ],
      edges: [
        { source: 'orders', target: 'big', config: { condition: 'amount > 100', mapper: '{"id": id, "vip": true}' } },
        { source: 'orders', target: 'all' },
        { source: 'all', target: 'audit', config: { mapper: '{"audited": seen}' } },
      ],
    });
    const executionId = await trigger(hub, flowId, { orders: [{ id: 1, amount: 50 }, { id: 2, amount: 500 }, { id: 3, amount: 150 }] });
    const x = await waitForExecution(hub, executionId);
    expect(x.status).toBe('succeeded');
    expect(stepsOf(x, 'orders')[0]!.emitted).toBe(3);
    expect(stepsOf(x, 'big').map((s) => s.input)).toEqual([{ id: 2, vip: true }, { id: 3, vip: true }]);
    expect(stepsOf(x, 'all').map((s) => s.path)).toEqual(['0.0', '0.1', '0.2']);
    expect(stepsOf(x, 'audit').map((s) => s.input)).toEqual([{ audited: 1 }, { audited: 2 }, { audited: 3 }]);
    const mine = sink.requests.filter((r) => String(r.headers['idempotency-key']).startsWith(executionId));
    expect(mine.filter((r) => r.url === '/big').map((r) => r.body)).toEqual(expect.arrayContaining([{ id: 2, vip: true }, { id: 3, vip: true }]));
    expect(mine.filter((r) => r.url === '/audit')).toHaveLength(3);
    expect(x.stepRuns).toBe(1 + 2 + 3 + 3);
  });

  it('retries a transient failure with backoff, then fails and dead-letters; a retry re-runs it from its stored input', async () => {
    const failing = await startSink();
    try {
      failing.respond(503, { error: 'maintenance' });
      const flowId = await createAndStart(hub, pipeline(failing.url, FAST_RETRY));
      const executionId = await trigger(hub, flowId, { id: 'R-1', qty: 2, price: 60 });
      const failed = await waitForExecution(hub, executionId);
      expect(failed).toMatchObject({ status: 'failed', failedSteps: 1, pendingSteps: 0 });
      const [send] = stepsOf(failed, 'send');
      expect(send).toMatchObject({ status: 'failed', attempt: 3, input: { order: 'R-1', total: 120 } });
      expect(send!.error).toMatch(/503/);
      expect(failing.requests).toHaveLength(3);
      // Backoff: the tries are spread out, not back to back.
      expect(failing.requests[2]!.at - failing.requests[0]!.at).toBeGreaterThanOrEqual(25);
      const keys = new Set(failing.requests.map((r) => r.headers['idempotency-key']));
      expect([...keys]).toEqual([`${executionId}:send:0.0.0`]);
      // The job is dead-lettered right after the failure is recorded.
      const dead = await waitFor('the dead letter', async () => (await hub.bus.listDeadLetters<StepJob>(stepQueueName(flowId, 'send'))).find((d) => d.payload.executionId === executionId));
      expect(dead.error).toMatch(/STEP_FAILED: .*503/);

      failing.respond(200, { stored: true });
      const retried = await hub.api('POST', `/api/v1/executions/${executionId}/retry`);
      expect(retried.status).toBe(202);
      expect(retried.body.data).toMatchObject({ id: executionId, status: 'running', retriedSteps: 1 });
      const again = await waitForExecution(hub, executionId);
      expect(again).toMatchObject({ status: 'succeeded', failedSteps: 0 });
      expect(stepsOf(again, 'send')[0]).toMatchObject({ status: 'succeeded', error: null });
      expect(failing.requests).toHaveLength(4);
      expect(failing.requests[3]!.headers['idempotency-key']).toBe(`${executionId}:send:0.0.0`);
      expect(failing.requests[3]!.body).toEqual({ order: 'R-1', total: 120 });

      const twice = await hub.api('POST', `/api/v1/executions/${executionId}/retry`);
      expect(twice.status).toBe(409);
      expect(twice.body.errors[0].code).toBe('INVALID_STATE');
    } finally {
      await failing.close();
    }
  });

  it('shows an execution as running while a slow call made inline by its first job goes on', async () => {
    const slow = await startSink();
    try {
      slow.delay(2_000);
      const flowId = await createAndStart(hub, pipeline(slow.url));
      const executionId = await trigger(hub, flowId, { id: 'S-1', qty: 1, price: 100 });
      const running = await waitFor('the execution to show', async () => getExecution(hub, executionId), 1_800, 50);
      expect(running).toMatchObject({ id: executionId, status: 'running', pendingSteps: 1 });
      expect(slow.requests).toHaveLength(1);
      const done = await waitForExecution(hub, executionId);
      expect(done).toMatchObject({ status: 'succeeded', pendingSteps: 0, failedSteps: 0 });
      expect(done.steps.map((s) => s.nodeId).sort()).toEqual(['big', 'send', 'shape']);
    } finally {
      await slow.close();
    }
  });

  it('keeps a step’s own concurrency limit: at most that many calls at once', async () => {
    const slow = await startSink();
    try {
      slow.delay(80);
      const flowId = await createAndStart(hub, pipeline(slow.url, { concurrency: 1 }));
      const ids = await Promise.all(Array.from({ length: 4 }, (_, i) => trigger(hub, flowId, { id: `C-${i}`, qty: 1, price: 100 })));
      for (const id of ids) expect((await waitForExecution(hub, id)).status).toBe('succeeded');
      const at = slow.requests.map((r) => r.at).sort((a, b) => a - b);
      expect(at).toHaveLength(4);
      // One at a time: each call arrives only after the previous one was answered.
      for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(70);
    } finally {
      await slow.close();
    }
  });

  it('does not retry a user error (4xx)', async () => {
    const rejecting = await startSink();
    try {
      rejecting.respond(422, { error: 'invalid order' });
      const flowId = await createAndStart(hub, pipeline(rejecting.url, FAST_RETRY));
      const x = await waitForExecution(hub, await trigger(hub, flowId, { id: 'U-1', qty: 5, price: 50 }));
      expect(x.status).toBe('failed');
      expect(stepsOf(x, 'send')[0]).toMatchObject({ status: 'failed', attempt: 1 });
      expect(stepsOf(x, 'send')[0]!.error).toMatch(/422.*invalid order/);
      expect(rejecting.requests).toHaveLength(1);
      // Run inline by the job that reached it, the failed step still leaves its dead letter.
      const dead = await waitFor('the dead letter', async () => (await hub.bus.listDeadLetters<StepJob>(stepQueueName(flowId, 'send'))).find((d) => d.payload.executionId === x.id));
      expect(dead.error).toMatch(/STEP_FAILED: .*422/);
      expect(dead.payload.message.body).toEqual({ order: 'U-1', total: 250 });
    } finally {
      await rejecting.close();
    }
  });

  it('waits as long as a 429 answer’s Retry-After says', async () => {
    const limited = await startSink();
    try {
      limited.respond(429, { error: 'slow down' }, { 'retry-after': '1' });
      const flowId = await createAndStart(hub, pipeline(limited.url, FAST_RETRY));
      const executionId = await trigger(hub, flowId, { id: 'L-1', qty: 5, price: 50 });
      await waitFor('the first try', async () => limited.requests.length >= 1);
      limited.respond(200);
      const x = await waitForExecution(hub, executionId);
      expect(x.status).toBe('succeeded');
      expect(limited.requests).toHaveLength(2);
      expect(limited.requests[1]!.at - limited.requests[0]!.at).toBeGreaterThanOrEqual(950);
      expect(stepsOf(x, 'send')[0]!.attempt).toBe(2);
    } finally {
      await limited.close();
    }
  });

  it('refuses to start a flow whose step cannot be prepared, and says why', async () => {
    // A broken expression is refused already when the flow is saved (first-contact.e2e.test.ts).
    const refused = await hub.api('POST', '/api/v1/flows', {
      name: 'broken expression',
      graph: { nodes: [{ id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"a": ' } }], edges: [] },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.errors[0].message).toMatch(/"shape"\): fields\.expression: invalid JSONata/);
    const flowId = await createFlow(hub, {
      nodes: [
        { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"a": a}' } },
        { id: 'run', componentId: 'code', function: 'run', fields: { code: 'return (' } },
      ],
      edges: [{ source: 'shape', target: 'run' }],
    });
    await hub.api('POST', `/api/v1/flows/${flowId}/start`);
    const status = await waitFor('flow.failed', async () => {
      const s = await flowStatus(hub, flowId);
      return s.statusReason ? s : undefined;
    });
    expect(status.status).not.toBe('active');
    expect(status.statusReason).toMatch(/node run \(code\/run\): fields\.code: SyntaxError/);
  });

  it('stops a flow: nothing runs while it is stopped, queued messages run after the next start', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    await stopFlow(hub, flowId);
    const job = triggerJob(flowId, { id: 'S-1', qty: 10, price: 10 });
    const executionId = job.executionId;
    await hub.bus.enqueue(stepQueueName(flowId, 'shape'), job);
    await new Promise((r) => setTimeout(r, 500));
    expect(await getExecution(hub, executionId)).toBeUndefined();
    expect((await hub.bus.stats(stepQueueName(flowId, 'shape'))).depth).toBe(1);
    await startFlow(hub, flowId);
    expect((await waitForExecution(hub, executionId)).status).toBe('succeeded');
  });

  it('keeps a polling cursor between executions as the step snapshot, shown by the API and resettable', async () => {
    const api = await startSink();
    try {
      // The application pages by `since` and tells the next value.
      api.respondWith((req) => ({ status: 200, body: { next: Number(new URL(req.url, 'http://x').searchParams.get('since')) + 10 } }));
      const flowId = await createAndStart(hub, {
        nodes: [
          {
            id: 'poll',
            componentId: 'http-request',
            function: 'request',
            fields: { url: `${api.base}/changes`, query: { since: '{{ $snapshot.cursor ? $snapshot.cursor : 0 }}' }, snapshot: '{"cursor": body.next}' },
          },
        ],
        edges: [],
      });
      for (let i = 0; i < 2; i++) expect((await waitForExecution(hub, await trigger(hub, flowId, {}))).status).toBe('succeeded');
      expect(api.requests.map((r) => r.url)).toEqual(['/changes?since=0', '/changes?since=10']);
      const snaps = await hub.api('GET', `/api/v1/snapshots?filter[flowId]=${flowId}`);
      expect(snaps.status).toBe(200);
      expect(snaps.body).toMatchObject({ meta: { total: 1 }, data: [{ flowId, nodeId: 'poll', snapshot: { cursor: 20 } }] });
      expect((await hub.api('DELETE', `/api/v1/snapshots/${flowId}/poll`)).status).toBe(204);
      expect((await hub.api('DELETE', `/api/v1/snapshots/${flowId}/poll`)).status).toBe(404);
      await waitForExecution(hub, await trigger(hub, flowId, {}));
      expect(api.requests.at(-1)!.url).toBe('/changes?since=0');
    } finally {
      await api.close();
    }
  });

  it('runs a scheduled polling flow (seed 002): the scheduler fires, http-request GETs the API with its cursor', async () => {
    const api = await startSink();
    try {
      api.respondWith((req) => ({ status: 200, body: { items: [req.url], next: Number(new URL(req.url, 'http://x').searchParams.get('since')) + 1 } }));
      const created = await hub.api('POST', '/api/v1/flows', {
        name: 'poll every second',
        cron: '* * * * * *',
        graph: {
          nodes: [
            { id: 'poll', componentId: 'http-request', function: 'request', fields: { url: `${api.base}/items`, query: { since: '{{ $snapshot.next ? $snapshot.next : 0 }}' }, snapshot: '{"next": body.next}' } },
            { id: 'each', componentId: 'split', function: 'each', fields: { expression: 'body.items' } },
            { id: 'store', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/polled` } },
          ],
          edges: [
            { source: 'poll', target: 'each' },
            { source: 'each', target: 'store' },
          ],
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const flowId = created.body.data.id as string;
      await startFlow(hub, flowId);
      await waitFor('two polls', async () => api.requests.length >= 2, 10_000, 50);
      await stopFlow(hub, flowId);
      expect(api.requests.slice(0, 2).map((r) => r.url)).toEqual(['/items?since=0', '/items?since=1']);
      const list = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}&sort=startedAt`);
      expect(list.body.data[0]).toMatchObject({ trigger: 'schedule' });
      const first = await waitForExecution(hub, list.body.data[0].id);
      expect(first.status).toBe('succeeded');
      expect(stepsOf(first, 'store')[0]!.input).toBe('/items?since=0');
    } finally {
      await api.close();
    }
  });

  it('answers a sync webhook call with the webhook-reply step, and goes on after it', async () => {
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"order": id}' } },
        { id: 'answer', componentId: 'webhook-reply', function: 'reply', fields: { status: 201, headers: { 'X-Order': 'accepted' }, body: '{"accepted": order}' } },
        { id: 'after', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/after` } },
      ],
      edges: [
        { source: 'shape', target: 'answer' },
        { source: 'answer', target: 'after' },
      ],
      flowSettings: { webhooks: { auth: 'none', respond: 'sync', timeoutMs: 10_000 } },
    });
    const res = await hub.api('POST', `/hook/${flowId}`, { id: 'SYNC-1' }, null);
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ accepted: 'SYNC-1' });
    expect(res.headers['x-order']).toBe('accepted');
    await waitFor('the step after the reply', async () => sink.requests.some((r) => r.url === '/after' && (r.body as { order?: string }).order === 'SYNC-1'));
  });

  it('authenticates http-request with a credential from the secrets module', async () => {
    const secret = await hub.api('POST', '/api/v1/secrets', { name: 'shop api', type: 'basic', value: { username: 'shop', password: 'pa55word' } });
    expect(secret.status, JSON.stringify(secret.body)).toBe(201);
    const flowId = await createAndStart(hub, {
      nodes: [{ id: 'call', componentId: 'http-request', function: 'request', credentialsId: secret.body.data.id, fields: { method: 'POST', url: `${sink.base}/secured` } }],
      edges: [],
    });
    const x = await waitForExecution(hub, await trigger(hub, flowId, { n: 1 }));
    expect(x.status).toBe('succeeded');
    const req = sink.requests.find((r) => r.url === '/secured' && String(r.headers['idempotency-key']).startsWith(x.id))!;
    expect(req.headers.authorization).toBe(`Basic ${Buffer.from('shop:pa55word').toString('base64')}`);
    expect(JSON.stringify(x)).not.toContain('pa55word');
  });

  it('runs a redelivered trigger once: the step run is recorded once and emits once', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    const queue = stepQueueName(flowId, 'shape');
    const job = triggerJob(flowId, { id: 'D-1', qty: 1, price: 500 });
    const executionId = job.executionId;
    await hub.bus.enqueue(queue, job);
    const x = await waitForExecution(hub, executionId);
    // The same job once more, as the copy of a hand-off whose process died between its commit and
    // its ack: a consumer claims it at attempt 1, and it must still count as a redelivery.
    await hub.bus.enqueue(queue, { ...job, handoff: true });
    await waitFor('the copy to be handled', async () => (await hub.bus.stats(queue)).depth === 0);
    const after = (await getExecution(hub, executionId))!;
    expect(after.status).toBe('succeeded');
    expect(after.steps.map((s) => s.nodeId).sort()).toEqual(['big', 'send', 'shape']);
    expect(x.pendingSteps).toBe(0);
    expect(sink.requests.filter((r) => String(r.headers['idempotency-key']).startsWith(executionId))).toHaveLength(1);
  });

  it('records every step once when two copies of a trigger run at once; the effect carries one idempotency key', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    const job = triggerJob(flowId, { id: 'D-2', qty: 1, price: 500 });
    const executionId = job.executionId;
    await Promise.all([hub.bus.enqueue(stepQueueName(flowId, 'shape'), job), hub.bus.enqueue(stepQueueName(flowId, 'shape'), job)]);
    const x = await waitForExecution(hub, executionId);
    await new Promise((r) => setTimeout(r, 300));
    const after = (await getExecution(hub, executionId))!;
    expect(after).toMatchObject({ status: 'succeeded', pendingSteps: 0, failedSteps: 0 });
    expect(after.steps.map((s) => s.nodeId).sort()).toEqual(['big', 'send', 'shape']);
    expect(x.pendingSteps).toBe(0);
    // At least once: both copies may have called the application, always under the same key.
    const calls = sink.requests.filter((r) => String(r.headers['idempotency-key']).startsWith(executionId));
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(new Set(calls.map((r) => r.headers['idempotency-key']))).toEqual(new Set([`${executionId}:send:0.0.0`]));
  });

  it('records nothing twice when a copy of a trigger job comes after its execution ended in one job', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    const job = triggerJob(flowId, { id: 'D-3', qty: 1, price: 500 });
    const executionId = job.executionId;
    const calls = () => sink.requests.filter((r) => String(r.headers['idempotency-key']).startsWith(executionId)).length;
    await hub.bus.enqueue(stepQueueName(flowId, 'shape'), job);
    const first = await waitForExecution(hub, executionId);
    expect(first).toMatchObject({ status: 'succeeded', stepRuns: 3 });
    // Ended within its trigger job: its runs are stored with it, not as rows of their own (migration 0032).
    const rows = await hub.testDb.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orchestrator_step_runs WHERE execution_id = $1', [executionId]);
    expect(rows.rows[0]!.n).toBe(0);
    expect(calls()).toBe(1);
    const ended = (await getExecution(hub, executionId))!;
    // A redelivery (a crash between commit and ack) finds the runs done and runs nothing.
    await hub.bus.enqueue(stepQueueName(flowId, 'shape'), { ...job, handoff: true });
    // A copy that is not marked as one runs again (at least once), but records nothing.
    await hub.bus.enqueue(stepQueueName(flowId, 'shape'), job);
    await waitFor('both copies to be handled', async () => calls() === 2 && (await hub.bus.stats(stepQueueName(flowId, 'shape'))).depth === 0);
    const after = (await getExecution(hub, executionId))!;
    expect(after).toMatchObject({ status: 'succeeded', pendingSteps: 0, failedSteps: 0, stepRuns: 3, finishedAt: ended.finishedAt });
    expect(after.steps).toEqual(ended.steps);
    expect(after.steps.map((s) => `${s.nodeId} ${s.status}`).sort()).toEqual(['big succeeded', 'send succeeded', 'shape succeeded']);
    expect(after.steps.find((s) => s.nodeId === 'send')!.output).toMatchObject([{ status: 200, body: { ok: true } }]);
  });

  it('fails an execution whose job the engine cannot run, instead of leaving it running', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    // A trigger job naming a version of the flow that does not exist: nothing can run it.
    const job = triggerJob(flowId, { id: 'G-1', qty: 1, price: 500 }, { flowVersion: 99 });
    const executionId = job.executionId;
    await hub.bus.enqueue(stepQueueName(flowId, 'shape'), job);
    const x = await waitForExecution(hub, executionId);
    expect(x).toMatchObject({ status: 'failed', pendingSteps: 0, failedSteps: 1 });
    const [shape] = stepsOf(x, 'shape');
    expect(shape).toMatchObject({ status: 'failed', input: { id: 'G-1', qty: 1, price: 500 } });
    expect(shape!.error).toMatch(/version 99 of flow .* is not known/);
    const dead = await waitFor('the dead letter', async () => (await hub.bus.listDeadLetters<StepJob>(stepQueueName(flowId, 'shape'))).find((d) => d.payload.executionId === executionId));
    expect(dead.error).toMatch(/version 99/);
  });

  it('delays a message durably with the delay step', async () => {
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'wait', componentId: 'delay', function: 'wait', fields: { delayMs: 400 } },
        { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/later` } },
      ],
      edges: [{ source: 'wait', target: 'send' }],
    });
    const sent = Date.now();
    const x = await waitForExecution(hub, await trigger(hub, flowId, { late: true }));
    expect(x.status).toBe('succeeded');
    const req = sink.requests.find((r) => r.url === '/later' && String(r.headers['idempotency-key']).startsWith(x.id))!;
    expect(req.at - sent).toBeGreaterThanOrEqual(380);
  });

  it('pages executions and shows a tenant only its own; permissions are enforced', async () => {
    const flowId = await createAndStart(hub, pipeline(sink.url));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await trigger(hub, flowId, { id: `P-${i}`, qty: 1, price: 100 }));
    for (const id of ids) await waitForExecution(hub, id);
    const page1 = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}&page[size]=2&page[number]=1`);
    expect(page1.body.meta).toEqual({ total: 3, page: 1, perPage: 2, totalPages: 2 });
    expect(page1.body.data).toHaveLength(2);
    const page2 = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}&page[size]=2&page[number]=2&sort=startedAt`);
    expect(page2.body.data).toHaveLength(1);
    expect((await hub.api('GET', '/api/v1/executions?filter[status]=done')).status).toBe(400);
    expect((await hub.api('GET', '/api/v1/executions?unknown=1')).status).toBe(400);

    expect((await hub.api('POST', '/api/v1/tenants', { id: 'acme', name: 'Acme' })).status).toBe(201);
    const user = await hub.api('POST', '/api/v1/users', { username: `acme-${target}`, password: 'acme-password-1', tenant: 'acme', permissions: ['executions.read', 'executions.retry', 'flows.read'] });
    expect(user.status, JSON.stringify(user.body)).toBe(201);
    const acme = await hub.login(`acme-${target}`, 'acme-password-1', 'acme');
    expect((await hub.api('GET', `/api/v1/executions/${ids[0]}`, undefined, acme)).status).toBe(404);
    expect((await hub.api('POST', `/api/v1/executions/${ids[0]}/retry`, undefined, acme)).status).toBe(404);
    expect((await hub.api('GET', '/api/v1/executions', undefined, acme)).body.meta.total).toBe(0);
    expect((await hub.api('GET', `/api/v1/executions/${randomUUID()}`)).status).toBe(404);

    const reader = await hub.api('POST', '/api/v1/users', { username: `reader-${target}`, password: 'reader-password-1', permissions: ['flows.read'] });
    expect(reader.status).toBe(201);
    const readerToken = await hub.login(`reader-${target}`, 'reader-password-1');
    expect((await hub.api('GET', '/api/v1/executions', undefined, readerToken)).status).toBe(403);
    expect((await hub.api('POST', `/api/v1/executions/${ids[0]}/retry`, undefined, readerToken)).status).toBe(403);
    expect((await hub.api('GET', '/api/v1/snapshots', undefined, readerToken)).status).toBe(403);
    expect((await hub.api('GET', '/api/v1/executions', undefined, null)).status).toBe(401);
  });
});

describe('execution retention', () => {
  it('prunes finished executions older than PLEXUS_EXECUTION_RETENTION in the background', async () => {
    const hub = await createTestHub({ env: { PLEXUS_EXECUTION_RETENTION: '1s' } });
    const sink = await startSink();
    try {
      const flowId = await createAndStart(hub, {
        nodes: [{ id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } }],
        edges: [],
      });
      const id = await trigger(hub, flowId, { n: 1 });
      expect((await waitForExecution(hub, id)).status).toBe('succeeded');
      await waitFor('the execution to be pruned', async () => (await hub.api('GET', `/api/v1/executions/${id}`)).status === 404, 10_000, 200);
    } finally {
      await hub.close();
      await sink.close();
    }
  });
});

/**
 * At-least-once under a crash: `plexus start` as a child process on real storage, a stream of
 * webhook calls, kill -9 in the middle of it, restart on the same data — every message that was
 * accepted (202) reaches the flow's last step, and every execution ends.
 */
describe.each(dbTargets)('durability across kill -9 on %s', (target) => {
  it('completes every accepted message after a crash and a restart', async () => {
    const sink = await startSink();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-crash-'));
    const schema = `crash_${randomUUID().replace(/-/g, '').slice(0, 10)}`;
    let proc: PlexusProcess | undefined;
    try {
      const env: Record<string, string> = {
        PLEXUS_DATA_DIR: dataDir,
        PLEXUS_ADMIN_PASSWORD: 'crash-admin-password',
        PLEXUS_BUS_LEASE: '2s',
        PLEXUS_LOG_LEVEL: 'error',
        PLEXUS_STEPS_ALLOWED_HOSTS: TEST_ALLOWED_HOSTS,
      };
      if (target === 'postgres') {
        const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
        await admin.connect();
        await admin.query(`CREATE SCHEMA ${schema}`);
        await admin.end();
        env.PLEXUS_DATABASE_URL = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      }
      const start = async (): Promise<string> => {
        const port = await freePort();
        proc = runPlexus(['start'], { ...env, PLEXUS_HTTP_PORT: String(port), PLEXUS_MTLS_PORT: String(await freePort()), PLEXUS_GRPC_PORT: String(await freePort()) });
        return (await proc.waitFor(/listening on (http:\/\/\S+)/, 60_000))[1]!;
      };
      let base = await start();
      const call = async (method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> => {
        const res = await fetch(base + url, {
          method,
          headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        return { status: res.status, body: text ? JSON.parse(text) : undefined };
      };
      const token = (await call('POST', '/api/v1/login', { username: 'admin', password: 'crash-admin-password' })).body.token as string;
      const created = await call(
        'POST',
        '/api/v1/flows',
        {
          name: 'crash test',
          flowSettings: { webhooks: { auth: 'none' } },
          graph: {
            nodes: [
              // Few at a time against a slow application: a backlog is queued when the hub dies.
              { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"n": n, "double": n * 2}' }, nodeSettings: { timeoutMs: 2_000, concurrency: 4 } },
              { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url, timeoutMs: 1_000 }, nodeSettings: { timeoutMs: 2_000, retryDelayMs: 100 } },
            ],
            edges: [{ source: 'shape', target: 'send' }],
          },
        },
        token,
      );
      expect(created.status).toBe(201);
      const flowId = created.body.data.id as string;
      await call('POST', `/api/v1/flows/${flowId}/start`, undefined, token);
      await waitFor('flow active', async () => (await call('GET', `/api/v1/flows/${flowId}`, undefined, token)).body.data.status === 'active').catch(async (err: unknown) => {
        throw new Error(`${String(err)}: ${JSON.stringify((await call('GET', `/api/v1/flows/${flowId}`, undefined, token)).body)} ${proc!.stderr().slice(-3000)}`);
      });

      // 8 concurrent senders; kill -9 once 150 messages are accepted, while more are in flight.
      const accepted = new Map<number, string>();
      let next = 0;
      let killed = false;
      const sender = async (): Promise<void> => {
        while (!killed && next < 1_000) {
          const n = next++;
          try {
            const res = await fetch(`${base}/hook/${flowId}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n }) });
            if (res.status === 202) accepted.set(n, ((await res.json()) as { data: { executionId: string } }).data.executionId);
          } catch {
            /* the hub died under this request: not accepted */
          }
          if (accepted.size >= 150 && !killed) {
            killed = true;
            proc!.child.kill('SIGKILL');
          }
        }
      };
      // A slow application: a backlog of accepted messages is in the queues when the hub dies.
      sink.delay(200);
      await Promise.all(Array.from({ length: 8 }, () => sender()));
      await proc!.exited;
      const atCrash = new Set(sink.requests.map((r) => (r.body as { n: number }).n));
      expect(accepted.size).toBeGreaterThanOrEqual(150);
      expect([...accepted.keys()].filter((n) => !atCrash.has(n)).length).toBeGreaterThan(0);
      sink.delay(0);

      base = await start();
      const received = (): Set<number> => new Set(sink.requests.map((r) => (r.body as { n: number }).n));
      await waitFor('every accepted message at the sink', async () => [...accepted.keys()].every((n) => received().has(n)), 60_000, 200);
      for (const n of accepted.keys()) expect(sink.requests.find((r) => (r.body as { n: number }).n === n)!.body).toEqual({ n, double: n * 2 });
      const token2 = (await call('POST', '/api/v1/login', { username: 'admin', password: 'crash-admin-password' })).body.token as string;
      await waitFor('every execution ended', async () => {
        const running = await call('GET', `/api/v1/executions?filter[flowId]=${flowId}&filter[status]=running`, undefined, token2);
        return running.body.meta.total === 0;
      }, 30_000, 200);
      const done = await call('GET', `/api/v1/executions?filter[flowId]=${flowId}&filter[status]=succeeded&page[size]=1`, undefined, token2);
      expect(done.body.meta.total).toBeGreaterThanOrEqual(accepted.size);
      for (const id of [...accepted.values()].slice(0, 20)) expect((await call('GET', `/api/v1/executions/${id}`, undefined, token2)).body.data.status).toBe('succeeded');
    } finally {
      if (proc && proc.child.exitCode === null) {
        proc.child.kill('SIGTERM');
        await proc.exited;
      }
      await sink.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (target === 'postgres') await dropSchema(schema);
    }
  }, 180_000);
});
