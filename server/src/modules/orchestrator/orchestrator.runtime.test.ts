/**
 * The local runtime's in-process hand-off, on a real SQL bus (PGlite): a held job runs here only
 * while its stored copy stays hidden for long enough; otherwise the queue runs it, once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepJob } from '../../contracts/flows.js';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { createBus, type Bus, type Job } from '../../platform/bus/index.js';
import { createLogger } from '../../platform/logger.js';
import { createLocalRuntime } from './orchestrator.runtime.js';

const logger = createLogger('silent');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('local runtime hand-off', () => {
  let t: TestDb;
  let bus: Bus;

  beforeAll(async () => {
    t = await openTestDb('pglite');
    bus = await createBus({ db: t.db, serviceName: 'runtime-test', logger, maxAttempts: 5, leaseMs: 2_000 });
  });

  afterAll(async () => {
    await bus?.close();
    await t?.drop();
  });

  it('runs a handed-off job at once, and leaves one that waited past its start window to the queue', async () => {
    const queue = 'runtime.handoff';
    const runtime = createLocalRuntime(bus, logger);
    const seen: Array<{ n: number; handedOver: boolean }> = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const placement = await runtime.place(
      // A job must start within 3,000 - 500 - 1,000 = 1,500 ms of its hand-off to run here.
      { flowId: 'f', nodeId: 'n', queue, concurrency: 1, maxDeliveries: 5, handoffLeaseMs: 3_000, timeoutMs: 500 },
      async (job: Job<StepJob>) => {
        const n = (job.payload as unknown as { n: number }).n;
        seen.push({ n, handedOver: job.leaseEndsAt !== undefined });
        if (n === 1) await gate;
      },
    );
    try {
      const handOver = async (n: number): Promise<void> => {
        const ticket = runtime.handoff!.reserve(queue)!;
        const payload = { n, handoff: true } as unknown as StepJob;
        const [id] = await bus.enqueueMany(queue, [payload], { delayMs: ticket.leaseMs });
        ticket.deliver(id!, payload);
      };
      await handOver(1);
      await handOver(2);
      // Job 1 holds the only slot well past job 2's start window.
      await sleep(2_000);
      open();
      await waitFor('both jobs to run', async () => seen.length === 2);
      await waitFor('the queue to empty', async () => (await bus.stats(queue)).depth === 0);
      await sleep(200);
      expect(seen).toEqual([
        { n: 1, handedOver: true },
        { n: 2, handedOver: false },
      ]);
    } finally {
      await placement.stop();
    }
  });
});
