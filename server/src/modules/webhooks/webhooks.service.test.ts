/**
 * The hand-off of accepted calls to the flow's first step in this process: the job is stored
 * invisible for the ticket's lease and delivered only after it is committed; a call that stores
 * nothing (a repeat) or fails gives its slot back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { stepQueueName, WebhookSettings, type Flow, type StepHandoff, type StepJob } from '../../contracts/flows.js';
import { createAuditPublisher } from '../../platform/audit.js';
import { createBus, type Bus } from '../../platform/bus/index.js';
import { createLogger } from '../../platform/logger.js';
import { WebhooksService, type HookTarget } from './webhooks.service.js';

interface Recorded {
  reserved: string[];
  delivered: Array<{ jobId: string; job: StepJob }>;
  cancelled: number;
}

function recordingHandoff(leaseMs: number): StepHandoff & { seen: Recorded } {
  const seen: Recorded = { reserved: [], delivered: [], cancelled: 0 };
  return {
    seen,
    reserve(queue) {
      seen.reserved.push(queue);
      return { leaseMs, deliver: (jobId, job) => seen.delivered.push({ jobId, job }), cancel: () => void seen.cancelled++ };
    },
  };
}

describe.each(dbTargets)('webhooks hand-off on %s', (target) => {
  let t: TestDb;
  let bus: Bus;
  const logger = createLogger('silent');
  const hook: HookTarget = { flowId: 'f-handoff', tenant: 'default', startNode: 'first', flowVersion: 1, settings: WebhookSettings.parse({ auth: 'none' }), accepting: true };
  const queue = stepQueueName(hook.flowId, hook.startNode);

  beforeAll(async () => {
    t = await openTestDb(target);
    bus = await createBus({ db: t.db, serviceName: 'webhooks-test', logger, maxAttempts: 3, leaseMs: 5_000 });
  });
  afterAll(async () => {
    await bus.close();
    await t.drop();
  });

  it('stores the job invisible for the lease, then delivers it with its id', async () => {
    const handoff = recordingHandoff(60_000);
    const service = new WebhooksService(t.db, bus, createAuditPublisher(bus, 'webhooks', logger), logger, handoff);
    const accepted = await service.accept({ target: hook, job: { message: { body: { n: 1 }, headers: {}, metadata: {} } } as AcceptJob });
    expect(handoff.seen.reserved).toEqual([queue]);
    expect(handoff.seen.delivered).toHaveLength(1);
    expect(handoff.seen.delivered[0]!.job).toMatchObject({ executionId: accepted.executionId, flowId: hook.flowId, nodeId: 'first', trigger: 'webhook' });
    const stats = await bus.stats(queue);
    // Durable, but no consumer can claim it while this process runs it: held (in flight), so a
    // restart on an embedded database releases it at once.
    expect(stats).toMatchObject({ depth: 1, ready: 0, delayed: 0, inFlight: 1 });
    expect(await bus.claim(queue, { max: 10 })).toEqual([]);
  });

  it('marks the stored copy as a hand-off, so a copy claimed after the lease counts as a redelivery', async () => {
    const handoff = recordingHandoff(50);
    const service = new WebhooksService(t.db, bus, createAuditPublisher(bus, 'webhooks', logger), logger, handoff);
    const accepted = await service.accept({ target: hook, job: { message: { body: { n: 2 }, headers: {}, metadata: {} } } as AcceptJob });
    expect(handoff.seen.delivered[0]!.job.handoff).toBeUndefined();
    await new Promise((r) => setTimeout(r, 80));
    const claimed = (await bus.claim<StepJob>(queue, { max: 10 })).find((j) => j.payload.executionId === accepted.executionId);
    expect(claimed?.payload.handoff).toBe(true);
  });

  it('gives the slot back for a repeated webhook-id, which stores nothing', async () => {
    const handoff = recordingHandoff(60_000);
    const service = new WebhooksService(t.db, bus, createAuditPublisher(bus, 'webhooks', logger), logger, handoff);
    const call = { target: hook, job: { message: { body: {}, headers: {}, metadata: {} } } as AcceptJob, webhookId: 'msg_repeat_1' };
    const first = await service.accept(call);
    const again = await service.accept(call);
    expect(again).toEqual({ executionId: first.executionId, duplicate: true });
    expect(handoff.seen.delivered).toHaveLength(1);
    expect(handoff.seen.cancelled).toBe(1);
  });

  it('gives the slot back when storing fails, and the caller gets the error', async () => {
    const handoff = recordingHandoff(60_000);
    const closed = await createBus({ db: t.db, serviceName: 'webhooks-test-closed', logger, maxAttempts: 3, leaseMs: 5_000 });
    await closed.close();
    const service = new WebhooksService(t.db, closed, createAuditPublisher(bus, 'webhooks', logger), logger, handoff);
    await expect(service.accept({ target: hook, job: { message: { body: {}, headers: {}, metadata: {} } } as AcceptJob })).rejects.toThrow();
    expect(handoff.seen.delivered).toHaveLength(0);
    expect(handoff.seen.cancelled).toBe(1);
  });

  describe('a call to a flow that is starting', () => {
    const flow = (id: string): Flow => ({
      id,
      tenant: 'default',
      name: 'starting',
      graph: { nodes: [{ id: 'first', componentId: 'log', function: 'write' }], edges: [] },
      status: 'starting',
      owners: [],
      flowSettings: { webhooks: { auth: 'none' } },
      version: 1,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    }) as Flow;

    it('waits for it to accept calls, since the flows API may show it active a moment before', async () => {
      const service = new WebhooksService(t.db, bus, createAuditPublisher(bus, 'webhooks', logger), logger);
      await service.recordFlow(flow('f-starting'));
      const pending = service.resolve('f-starting');
      await new Promise((r) => setTimeout(r, 150));
      await service.acceptFlow('f-starting');
      expect(await pending).toMatchObject({ flowId: 'f-starting', accepting: true });
    });

    it('answers at once when the start failed', async () => {
      const service = new WebhooksService(t.db, bus, createAuditPublisher(bus, 'webhooks', logger), logger);
      await service.recordFlow(flow('f-failing'));
      const startedAt = Date.now();
      const pending = service.resolve('f-failing');
      await new Promise((r) => setTimeout(r, 100));
      await service.forgetFlow('f-failing');
      expect(await pending).toBeUndefined();
      expect(Date.now() - startedAt).toBeLessThan(1_500);
      expect(await service.resolve('unknown-flow')).toBeUndefined();
    });
  });
});

type AcceptJob = Parameters<WebhooksService['accept']>[0]['job'];
