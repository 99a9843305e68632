/**
 * The same hub on PostgreSQL + NATS JetStream: nothing changes for the user. A flow is started
 * through the API, called through its webhook, runs through the engine (every hop on JetStream),
 * reaches a real HTTP sink and answers a sync call; the lifecycle and audit events travel too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepQueueName, type StepJob } from '../../src/contracts/flows.js';
import { createAndStart, startSink, stopFlow, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { hasNats, hasPostgres } from '../helpers/services.js';

// Defined only where both services answer (under CI a missing one fails in test/helpers/services.ts).
if (hasPostgres && hasNats) {
  describe('hub on PostgreSQL + NATS JetStream', () => {
    let hub: TestHub;
    let sink: Sink;

    beforeAll(async () => {
      hub = await createTestHub({ target: 'postgres', nats: true });
      sink = await startSink();
    }, 60_000);

    afterAll(async () => {
      await hub?.close();
      await sink?.close();
    });

    it('uses JetStream for its bus and reports it ready', async () => {
      expect(hub.bus.kind).toBe('nats');
      const ready = await hub.api('GET', '/readyz', undefined, null);
      expect(ready.status).toBe(200);
    });

    it('runs webhook → transform → filter → http-request end to end', async () => {
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"order": id, "total": qty * price}' } },
          { id: 'big', componentId: 'filter', function: 'condition', fields: { expression: 'total >= 100' } },
          { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/orders` } },
        ],
        edges: [
          { source: 'shape', target: 'big' },
          { source: 'big', target: 'send' },
        ],
      });
      const executionId = await trigger(hub, flowId, { id: 'N-1', qty: 2, price: 60 });
      const execution = await waitForExecution(hub, executionId);
      expect(execution.status).toBe('succeeded');
      await waitFor('the sink call', async () => sink.requests.some((r) => r.url === '/orders' && (r.body as { order?: string }).order === 'N-1'));
      await stopFlow(hub, flowId);
      expect((await hub.api('GET', `/api/v1/flows/${flowId}`)).body.data.status).toBe('inactive');
    });

    it('carries a webhook body larger than NATS max_payload through the flow', async () => {
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/large` } },
          { id: 'done', componentId: 'log', function: 'write', fields: {} },
        ],
        edges: [{ source: 'send', target: 'done' }],
      });
      // 3 MiB: three times what one NATS message may carry here; the webhooks accept up to 10 MiB.
      const text = 'y'.repeat(3 * 1024 * 1024);
      const executionId = await trigger(hub, flowId, { id: 'L-1', text });
      const execution = await waitForExecution(hub, executionId);
      expect(execution.status).toBe('succeeded');
      const call = sink.requests.find((r) => r.url === '/large' && (r.body as { id?: string }).id === 'L-1');
      expect((call!.body as { text: string }).text).toBe(text);
      await stopFlow(hub, flowId);
    });

    it('fails a step for good on a 4xx and leaves its dead letter; other messages go on', async () => {
      const failing = await startSink();
      try {
        failing.respondWith((req) => ((req.body as { kind?: string }).kind === 'bad' ? { status: 422, body: { error: 'invalid' } } : { status: 200 }));
        const flowId = await createAndStart(hub, {
          nodes: [
            { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"kind": kind}' } },
            { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: failing.url }, nodeSettings: { retries: 1, retryDelayMs: 20 } },
          ],
          edges: [{ source: 'shape', target: 'send' }],
        });
        const bad = await waitForExecution(hub, await trigger(hub, flowId, { kind: 'bad' }));
        expect(bad).toMatchObject({ status: 'failed', failedSteps: 1, pendingSteps: 0 });
        const dead = await waitFor('the dead letter', async () => (await hub.bus.listDeadLetters<StepJob>(stepQueueName(flowId, 'send'))).find((d) => d.payload.executionId === bad.id));
        expect(dead.error).toMatch(/STEP_FAILED: .*422/);
        const good = await waitForExecution(hub, await trigger(hub, flowId, { kind: 'good' }));
        expect(good.status).toBe('succeeded');
      } finally {
        await failing.close();
      }
    });

    it('answers a sync webhook call through the engine', async () => {
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"order": id}' } },
          { id: 'answer', componentId: 'webhook-reply', function: 'reply', fields: { status: 201, body: '{"accepted": order}' } },
        ],
        edges: [{ source: 'shape', target: 'answer' }],
        flowSettings: { webhooks: { auth: 'none', respond: 'sync', timeoutMs: 10_000 } },
      });
      const res = await hub.api('POST', `/hook/${flowId}`, { id: 'SYNC-N' }, null);
      expect(res.status).toBe(201);
      expect(res.body).toEqual({ accepted: 'SYNC-N' });
    });

    it('stores audit events published over JetStream', async () => {
      const rows = await waitFor('the flow start in the audit log', async () => {
        const res = await hub.api('GET', '/api/v1/audit?page[size]=100');
        const names = (res.body.data as Array<{ name: string }>).map((r) => r.name);
        return names.some((n) => n.startsWith('audit.flows.')) && names.includes('audit.iam.login') ? names : undefined;
      });
      expect(rows.length).toBeGreaterThan(0);
    });
  });
}
