/** A manual retry adds an attempt to the step's history instead of overwriting the failed one. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, getExecution, startSink, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

describe('manual retry', () => {
  let hub: TestHub;
  let sink: Sink;
  beforeAll(async () => {
    hub = await createTestHub();
    sink = await startSink();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  it('keeps the failed attempt and records the retry as the next one', async () => {
    sink.respond(422, { error: 'unknown customer' });
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"n": n}' } },
        { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } },
      ],
      edges: [{ source: 'shape', target: 'send' }],
    });
    const id = await trigger(hub, flowId, { n: 7 });
    const failed = await waitForExecution(hub, id);
    expect(failed.status).toBe('failed');
    const failedRun = failed.steps.find((s) => s.nodeId === 'send')!;
    expect(failedRun).toMatchObject({ status: 'failed', attempt: 1 });

    sink.respond(200, { ok: true });
    const retry = await hub.api('POST', `/api/v1/executions/${id}/retry`);
    expect(retry.status, JSON.stringify(retry.body)).toBeLessThan(300);
    const done = await waitFor('the retried execution to succeed', async () => {
      const x = await getExecution(hub, id);
      return x?.status === 'succeeded' ? x : undefined;
    }, 20_000);
    const run = done.steps.find((s) => s.nodeId === 'send') as (typeof done.steps)[number] & { earlierAttempts?: unknown[] };
    expect(run).toMatchObject({ status: 'succeeded', attempt: 2 });
    expect(run.earlierAttempts).toEqual([
      expect.objectContaining({ attempt: 1, status: 'failed', error: failedRun.error, durationMs: failedRun.durationMs }),
    ]);
  }, 60_000);
});
