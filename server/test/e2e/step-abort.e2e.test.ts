/**
 * A step's time limit cancels its work: the code sandbox run is killed when the node's
 * `timeoutMs` is up (not when the code's own, longer limit is), so it never runs on beside the
 * retry; the failure names the node's limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, startSink, stepsOf, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

describe('step time limits', () => {
  let hub: TestHub;
  let slow: Sink;
  let after: Sink;

  beforeAll(async () => {
    hub = await createTestHub();
    slow = await startSink();
    after = await startSink();
    slow.delay(6_000);
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await slow?.close();
    await after?.close();
  });

  it('stops a timed-out code step before its retry starts', async () => {
    // The code may run 30 s; the node allows 1 s. Each run waits on a slow application, then
    // calls another one: a run left running past the node's limit would make that second call.
    const code = `const r = await fetch(${JSON.stringify(slow.url)}); await fetch(${JSON.stringify(after.url)}, { method: 'POST', body: 'late' }); return body`;
    const flowId = await createAndStart(hub, {
      nodes: [{ id: 'run', componentId: 'code', function: 'run', fields: { code, timeoutMs: 30_000 }, nodeSettings: { timeoutMs: 1_000, retries: 1, retryDelayMs: 10 } }],
      edges: [],
    });
    const x = await waitForExecution(hub, await trigger(hub, flowId, { n: 1 }), 30_000);
    expect(x.status).toBe('failed');
    expect(stepsOf(x, 'run').at(-1)!.error).toMatch(/did not finish within 1000 ms \(nodeSettings\.timeoutMs\)/);
    // Long enough for an abandoned run to get past the slow application (6 s) and call on.
    await new Promise((r) => setTimeout(r, 8_000));
    // At least the first run reached the slow application (under load the retry may time out before it does).
    expect(slow.requests.length).toBeGreaterThanOrEqual(1);
    expect(after.requests).toHaveLength(0);
  }, 60_000);
});
