/**
 * An execution's times as a user reads them: `startedAt` no later than its first step's start,
 * `durationMs` at least the span of its steps — also when many executions commit together.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, getExecution, startSink, waitForExecution, type Sink } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

describe('execution times', () => {
  let hub: TestHub;
  let sink: Sink;
  beforeAll(async () => {
    hub = await createTestHub();
    sink = await startSink();
    sink.delay(30);
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  it('starts no later than the first step and lasts at least as long as its steps', async () => {
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"n": n}' } },
        { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } },
      ],
      edges: [{ source: 'shape', target: 'send' }],
    });
    const ids = await Promise.all(
      Array.from({ length: 60 }, async (_, n) => (await hub.api('POST', `/hook/${flowId}`, { n }, null)).body.data.executionId as string),
    );
    const bad: string[] = [];
    for (const id of ids) {
      await waitForExecution(hub, id, 60_000);
      const x = (await getExecution(hub, id))!;
      const steps = x.steps as unknown as Array<{ startedAt: string; finishedAt: string }>;
      const firstStart = Math.min(...steps.map((s) => Date.parse(s.startedAt)));
      const lastEnd = Math.max(...steps.map((s) => Date.parse(s.finishedAt)));
      const started = Date.parse((x as unknown as { startedAt: string }).startedAt);
      const durationMs = (x as unknown as { durationMs: number }).durationMs;
      if (started > firstStart || durationMs < lastEnd - firstStart) bad.push(`${id}: startedAt ${started - firstStart} ms after the first step, duration ${durationMs} ms for a span of ${lastEnd - firstStart} ms`);
    }
    expect(bad).toEqual([]);
  }, 120_000);
});
