/**
 * The `workers` runtime on the NATS JetStream bus (the scale-out adapter): remote steps are
 * consumed from JetStream step queues only while a worker is attached, and a worker that
 * reattaches after the queue filled up drains it.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerComponent } from '../../src/worker-sdk/index.js';
import { createAndStart, getExecution, trigger, waitForExecution } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { enrol, startSdkWorker, tempDir } from '../helpers/workers.js';

const doubler: WorkerComponent = { name: 'doubler', version: '1.0.0', functions: { run: async (input) => ({ emit: [{ body: { n: (input.message.body as { n: number }).n * 2 } }] }) } };

describe('workers runtime on NATS', () => {
  let hub: TestHub;
  const dir = tempDir();

  beforeAll(async () => {
    hub = await createTestHub({ target: 'postgres', nats: true });
  }, 60_000);

  afterAll(async () => {
    await hub?.close();
  });

  it('messages wait in the step queue while no worker is attached, and run once one attaches', async () => {
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
        { id: 'double', componentId: 'doubler', function: 'run', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
      ],
      edges: [{ source: 'in', target: 'double' }],
    });
    const ids = await Promise.all(Array.from({ length: 5 }, (_, i) => trigger(hub, flowId, { n: i })));
    // Nobody serves `doubler` yet: the executions wait, nothing fails.
    await new Promise((r) => setTimeout(r, 1_000));
    for (const id of ids) expect((await getExecution(hub, id))?.status ?? 'running').toBe('running');
    const worker = await startSdkWorker([`127.0.0.1:${hub.grpcPort()}`], [doubler], { workerId: 'doubler', enrolmentSecret: await enrol(hub, ['doubler']), credentialFile: path.join(dir, 'd.cred') });
    try {
      for (const [i, id] of ids.entries()) {
        const x = await waitForExecution(hub, id, 30_000);
        expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
        expect(x.steps.find((s) => s.nodeId === 'double')!).toMatchObject({ attempt: 1, output: [{ n: i * 2 }] });
      }
    } finally {
      await worker.stop();
    }
  }, 90_000);
});
