/**
 * Flow steps on gRPC workers, end to end with real processes: a hub (router + orchestrator +
 * webhooks), `plexus worker` child processes serving an OIH-format component, flows whose middle
 * step has `runtime: workers`, messages sent to `/hook/:flowId`, executions read back from the
 * API. A worker kill -9'd mid-step: another one completes the step. A flow with one step on a
 * `plexus worker` (OIH component) and the next on the Python example worker (grpcio).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, getExecution, trigger, waitForExecution } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { runPlexus, type PlexusProcess } from '../helpers/process.js';
import { enrol, OIH_WORKER_COMPONENT, startPythonWorker, startWorkerProcess, tempDir, workerName } from '../helpers/workers.js';

const flowSpec = (extra: Record<string, unknown> = {}) => ({
  nodes: [
    { id: 'receive', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
    { id: 'stamp', componentId: 'oih-worker', function: 'stamp', fields: { label: 'from-worker' }, nodeSettings: { runtime: 'workers', version: '1', timeoutMs: 20_000, retries: 5, retryDelayMs: 200, ...extra } },
    { id: 'after', componentId: 'transform', function: 'jsonata', fields: { expression: '{"order": order, "by": stampedBy, "label": label}' } },
  ],
  edges: [
    { source: 'receive', target: 'stamp' },
    { source: 'stamp', target: 'after' },
  ],
});

describe('flow steps on plexus worker processes', () => {
  let hub: TestHub;
  let port: number;
  const procs: PlexusProcess[] = [];
  const dir = tempDir();

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_WORKER_LEASE: '2s' } });
    port = hub.grpcPort();
    expect(port).toBeGreaterThan(0);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await hub?.close();
  });

  it('runs the middle step of a webhook flow on a plexus worker (OIH component) and records it in the hub', async () => {
    const secret = await enrol(hub, ['oih-worker@1']);
    const w1 = await startWorkerProcess([`127.0.0.1:${port}`], { secret, credentialFile: path.join(dir, 'w1.cred'), id: 'w1' });
    procs.push(w1);
    const listed = await hub.api('GET', '/api/v1/workers');
    expect(listed.status).toBe(200);
    expect(listed.body.data).toEqual([expect.objectContaining({ workerId: 'w1', components: [{ name: 'oih-worker', version: '1.0.0', functions: ['stamp'] }], inFlight: 0, draining: false })]);

    const flowId = await createAndStart(hub, flowSpec());
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => trigger(hub, flowId, { order: i })));
    for (const [i, id] of ids.entries()) {
      const x = await waitForExecution(hub, id);
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      const stamp = x.steps.find((s) => s.nodeId === 'stamp')!;
      expect(stamp).toMatchObject({ status: 'succeeded', attempt: 1 });
      expect((x.steps.find((s) => s.nodeId === 'after')!.output as Array<{ by: string }>).map((o) => ({ ...o, by: workerName(o.by) }))).toEqual([{ order: i, by: 'w1', label: 'from-worker' }]);
    }
  }, 120_000);

  it('a worker kill -9ed mid-step: its delivery goes to another worker, which completes it; nothing is lost', async () => {
    const secret = await enrol(hub, ['oih-worker']);
    const w2 = await startWorkerProcess([`127.0.0.1:${port}`], { secret, credentialFile: path.join(dir, 'w2.cred'), id: 'w2' });
    procs.push(w2);
    await waitFor('both workers attached', async () => ((await hub.api('GET', '/api/v1/workers')).body.data as unknown[]).length === 2, 20_000);
    const w1 = procs[0]!;

    const flowId = await createAndStart(hub, flowSpec());
    // Slow steps, so each worker holds some when w1 dies.
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => trigger(hub, flowId, { order: i, sleepMs: 1_500 })));
    await waitFor(
      'w1 to hold a delivery',
      async () => ((await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string; inFlight: number }>).some((w) => w.workerId === 'w1' && w.inFlight > 0),
      20_000,
    );
    w1.child.kill('SIGKILL');
    await w1.exited;
    for (const id of ids) {
      const x = await waitForExecution(hub, id, 60_000);
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
    }
    const results = await Promise.all(ids.map(async (id) => (await getExecution(hub, id))!.steps.find((s) => s.nodeId === 'after')!.output as Array<{ order: number; by: string }>));
    // Every message completed exactly once in the hub's records; some by w2 after the takeover.
    expect(results.map((r) => r[0]!.order).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(results.some((r) => workerName(r[0]!.by) === 'w2')).toBe(true);
    const workers = (await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>;
    expect(workers.map((w) => w.workerId)).toEqual(['w2']);
  }, 180_000);

  it('plexus worker with a wrong or reused secret is refused and exits, saying why', async () => {
    const secret = await enrol(hub, ['oih-worker']);
    const wrong = runPlexus(['worker', '--router', `127.0.0.1:${port}`, '--component', OIH_WORKER_COMPONENT, '--secret', `${secret}x`, '--id', 'wrong', '--credential-file', path.join(dir, 'wrong.cred')], {});
    expect(await wrong.exited).not.toBe(0);
    expect(wrong.stderr()).toContain('unknown enrolment secret');
    const once = await startWorkerProcess([`127.0.0.1:${port}`], { secret, credentialFile: path.join(dir, 'once.cred'), id: 'once' });
    once.child.kill('SIGKILL');
    const reused = runPlexus(['worker', '--router', `127.0.0.1:${port}`, '--component', OIH_WORKER_COMPONENT, '--secret', secret, '--id', 'again', '--credential-file', path.join(dir, 'again.cred')], {});
    expect(await reused.exited).not.toBe(0);
    expect(reused.stderr()).toContain('the enrolment secret was used already');
    const used = (await hub.api('GET', '/api/v1/workers/enrolments')).body.data.find((e: { workerId: string | null }) => e.workerId === 'once');
    expect(used.usedAt).not.toBeNull();
  }, 60_000);

  it('a worker restarted with its stored credential attaches again without a secret', async () => {
    const again = await startWorkerProcess([`127.0.0.1:${port}`], { credentialFile: path.join(dir, 'w1.cred'), id: 'w1', components: [OIH_WORKER_COMPONENT] });
    procs.push(again);
    await waitFor('w1 back', async () => ((await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>).some((w) => w.workerId === 'w1'), 20_000);
  }, 60_000);

  it('a webhook flow with one step on a plexus worker (OIH) and the next on the Python worker', async () => {
    const py = await startPythonWorker(`127.0.0.1:${port}`, { secret: await enrol(hub, ['py-text']), credentialFile: path.join(dir, 'py.cred'), id: 'py-1' });
    try {
      const listed = (await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string; components: unknown }>;
      expect(listed.find((w) => w.workerId === 'py-1')?.components).toEqual([{ name: 'py-text', version: '1.0.0', functions: ['shout'] }]);
      const admin = await hub.api('POST', '/api/v1/workers/py-1/admin', { command: 'admin.list' });
      expect(admin.body.data).toMatchObject({ event: 'SUCCEEDED', payload: { workerId: 'py-1' } });
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'receive', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'stamp', componentId: 'oih-worker', function: 'stamp', fields: { label: 'oih' }, nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
          { id: 'shout', componentId: 'py-text', function: 'shout', fields: { suffix: '!' }, nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
        ],
        edges: [
          { source: 'receive', target: 'stamp' },
          { source: 'stamp', target: 'shout' },
        ],
      });
      const ids = await Promise.all(Array.from({ length: 5 }, (_, i) => trigger(hub, flowId, { text: `hello ${i}` })));
      for (const [i, id] of ids.entries()) {
        const x = await waitForExecution(hub, id, 30_000);
        expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
        expect((x.steps.find((s) => s.nodeId === 'shout')!.output as Array<{ stampedBy: string }>).map((o) => ({ ...o, stampedBy: workerName(o.stampedBy) }))).toEqual([{ text: `HELLO ${i}`, stampedBy: expect.stringMatching(/^w\d$/), label: 'oih', shoutedBy: 'python', suffix: '!' }]);
      }
    } finally {
      py.child.kill('SIGTERM');
    }
  }, 120_000);
});
