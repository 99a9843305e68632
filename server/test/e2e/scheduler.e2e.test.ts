/**
 * Scheduled flows through the public API on a whole hub: a flow with a cron runs with an
 * empty message at its due times once started, never gets a webhook, and stops firing when
 * stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { sampleFlow, waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

interface Execution {
  id: string;
  trigger: string;
  status: string;
  startedAt: string;
}

describe.each(dbTargets)('scheduler e2e on %s', (target) => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await createTestHub({ target });
  });
  afterAll(async () => {
    await hub?.close();
  });

  const executions = async (flowId: string): Promise<Execution[]> => {
    const res = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}&page[size]=100`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.data as Execution[];
  };

  it('runs a started flow with cron every second with an empty message, and stops firing when stopped', async () => {
    const created = await hub.api('POST', '/api/v1/flows', sampleFlow({ name: 'every second', cron: '* * * * * *', timezone: 'Europe/Berlin' }));
    expect(created.status).toBe(201);
    const id = created.body.data.id as string;
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await executions(id)).toEqual([]); // inactive flows never fire

    await hub.api('POST', `/api/v1/flows/${id}/start`);
    const runs = await waitFor('two scheduled executions', async () => {
      const list = await executions(id);
      return list.filter((e) => e.status === 'succeeded').length >= 2 ? list : undefined;
    }, 15_000);
    expect(runs.every((e) => e.trigger === 'schedule')).toBe(true);
    const one = (await hub.api('GET', `/api/v1/executions/${runs[0]!.id}`)).body.data;
    expect(one.steps[0]).toMatchObject({ nodeId: 'receive', input: {} });
    const starts = runs.map((e) => new Date(e.startedAt).getTime()).sort((a, b) => a - b);
    expect(starts[starts.length - 1]! - starts[0]!).toBeGreaterThanOrEqual(800);

    // A scheduled flow has no webhook.
    expect((await hub.app.inject({ method: 'POST', url: `/hook/${id}`, payload: {} })).statusCode).toBe(404);

    await hub.api('POST', `/api/v1/flows/${id}/stop`);
    await waitFor('flow inactive', async () => (await hub.api('GET', `/api/v1/flows/${id}`)).body.data.status === 'inactive');
    const count = (await executions(id)).length;
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await executions(id)).length).toBe(count);
  });
});
