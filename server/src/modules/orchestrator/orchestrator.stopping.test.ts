/**
 * Stopping a flow waits until no other process still consumes it: woken by the placement that
 * goes (NOTIFY), not by polling; and several stops wait side by side, none behind another.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, flowStatus } from '../../../test/helpers/engine.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { createTestHub, type TestHub } from '../../../test/helpers/hub.js';
import * as repo from './orchestrator.repo.js';

describe('flow.stopping', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await createTestHub();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
  });

  it('ends each stop when the last other process lets go, with stops waiting side by side', async () => {
    const flow = { nodes: [{ id: 'a', componentId: 'log', function: 'write' }], edges: [] };
    const first = await createAndStart(hub, flow);
    const second = await createAndStart(hub, flow);
    // Another process (alive: fresh heartbeat) still consumes both flows.
    await repo.upsertPlacement(hub.db, 'other-process', first, 1, 'local');
    await repo.upsertPlacement(hub.db, 'other-process', second, 1, 'local');
    expect((await hub.api('POST', `/api/v1/flows/${first}/stop`)).status).toBe(200);
    expect((await hub.api('POST', `/api/v1/flows/${second}/stop`)).status).toBe(200);
    // Both stops are under way: the orchestrator stopped its own placements of both.
    await waitFor('both flows unplaced here', async () => !(await hub.db.query<{ n: number }>("SELECT count(*)::int AS n FROM orchestrator_placements WHERE instance_id <> 'other-process'")).rows[0]!.n);

    // The other process lets go of the second flow first: its stop ends though the first one's still waits.
    await repo.deletePlacement(hub.db, 'other-process', second);
    const letGoAt = Date.now();
    await waitFor('second flow inactive', async () => (await flowStatus(hub, second)).status === 'inactive', 10_000, 10);
    expect(Date.now() - letGoAt).toBeLessThan(3_000);
    expect((await flowStatus(hub, first)).status).toBe('stopping');

    await repo.deletePlacement(hub.db, 'other-process', first);
    await waitFor('first flow inactive', async () => (await flowStatus(hub, first)).status === 'inactive', 10_000, 10);
  }, 60_000);
});
