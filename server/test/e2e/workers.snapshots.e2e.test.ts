/**
 * Snapshots of steps on workers: the hub reads each remote step's node snapshot (steps running at
 * once share one statement) and stores what the worker returns. Two flows run side by side, so
 * their reads share statements: each must get its own node's snapshot, never the other's.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from '../../src/worker-sdk/index.js';
import { createAndStart, startSink, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { enrol, startSdkWorker, tempDir } from '../helpers/workers.js';

describe('snapshots of steps on workers', () => {
  let hub: TestHub;
  let worker: Worker;
  let sink: Sink;

  beforeAll(async () => {
    hub = await createTestHub({});
    sink = await startSink();
    worker = await startSdkWorker(
      [`127.0.0.1:${hub.grpcPort()}`],
      [
        {
          name: 'counter',
          version: '1.0.0',
          functions: {
            // Adds the node's `step` to the count kept in its snapshot.
            count: async (input) => {
              const count = ((input.snapshot as { count?: number } | null)?.count ?? 0) + Number(input.fields.step);
              return { emit: [{ body: { flow: input.flowId, count } }], snapshot: { count } };
            },
          },
        },
      ],
      { workerId: 'counter', enrolmentSecret: await enrol(hub, ['counter']), credentialFile: path.join(tempDir(), 'c'), concurrency: 16 },
    );
  }, 60_000);

  afterAll(async () => {
    await worker?.stop();
    await sink?.close();
    await hub?.close();
  });

  it('each remote step reads its own node snapshot, also when reads of two flows share a statement', async () => {
    const flow = (step: number) =>
      createAndStart(hub, {
        name: `counter ${step}`,
        flowSettings: { webhooks: { auth: 'none', respond: 'async' } },
        nodes: [
          { id: 'count', componentId: 'counter', function: 'count', fields: { step }, nodeSettings: { runtime: 'workers' } },
          { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } },
        ],
        edges: [{ source: 'count', target: 'send' }],
      } as never);
    const [ones, tens] = [await flow(1), await flow(10)];
    for (let round = 1; round <= 3; round++) {
      await Promise.all([ones, tens].map((id) => hub.api('POST', `/hook/${id}`, { round }, null)));
      await waitFor(`round ${round}`, async () => sink.requests.length >= 2 * round, 15_000);
    }
    const last = (id: string) => (sink.requests.map((r) => r.body as { flow: string; count: number }).filter((b) => b.flow === id).at(-1) ?? { count: -1 }).count;
    expect(last(ones)).toBe(3);
    expect(last(tens)).toBe(30);
  }, 60_000);
});
