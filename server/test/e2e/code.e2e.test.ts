/**
 * Code steps through the public surface: hostile code in one tenant's flows fails alone while
 * the hub keeps answering and another tenant's code step runs; an operator can switch code steps off.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, getExecution, stepsOf, trigger, waitForExecution } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const codeFlow = (code: string, timeoutMs = 5_000) => ({ nodes: [{ id: 'run', componentId: 'code', function: 'run', fields: { code, timeoutMs } }], edges: [] });

describe('code steps', () => {
  let hub: TestHub;
  let globex: string;

  beforeAll(async () => {
    hub = await createTestHub();
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'globex', name: 'Globex' })).status).toBe(201);
    const made = await hub.api('POST', '/api/v1/users', {
      username: 'globex-dev',
      password: 'globex-password-1',
      tenant: 'globex',
      permissions: ['flows.read', 'flows.write', 'flows.control', 'executions.read'],
    });
    expect(made.status).toBe(201);
    globex = await hub.login('globex-dev', 'globex-password-1', 'globex');
  });

  afterAll(async () => {
    await hub?.close();
  });

  it('fail a hostile step alone: the hub answers and another tenant’s code step runs meanwhile', async () => {
    const loop = await createAndStart(hub, codeFlow('for (;;) {}', 6_000));
    const escape = await createAndStart(
      hub,
      codeFlow(`
        Error.prepareStackTrace = (err, frames) => frames[0].constructor.constructor('return process')().env.PLEXUS_ADMIN_PASSWORD;
        throw new Error('boom');`),
    );
    const trivial = await createAndStart(hub, codeFlow('return { doubled: body.n * 2 };'), globex);

    const escaped = await trigger(hub, escape, {});
    const loops = [await trigger(hub, loop, {})];
    expect((await hub.api('GET', '/healthz', undefined, null)).status).toBe(200);

    const servedId = await trigger(hub, trivial, { n: 21 });
    const served = await waitFor('globex execution to end', async () => {
      const x = await getExecution(hub, servedId, globex);
      return x && x.status !== 'running' ? x : undefined;
    }, 30_000);
    expect(served.status).toBe('succeeded');
    expect(stepsOf(served, 'run')[0]!.output).toEqual([{ doubled: 42 }]);
    // Finished while the other tenant's loop was still within its 6 s.
    expect((await getExecution(hub, loops[0]!))!.status).toBe('running');

    const stopped = await waitForExecution(hub, loops[0]!, 30_000);
    // Wall time and CPU time are both 6 s here: whichever the busy machine lets fire first.
    expect(stepsOf(stopped, 'run')[0]!.error).toMatch(/^code: (CPU )?time limit exceeded \(6000 ms\)$/);
    const escapedRun = await waitForExecution(hub, escaped, 60_000);
    expect(escapedRun.status).toBe('failed');
    expect(stepsOf(escapedRun, 'run')[0]!.error).toMatch(/^code: Error: boom/);
    expect(JSON.stringify(escapedRun)).not.toContain('test-admin-password');
    expect((await hub.api('GET', '/healthz', undefined, null)).status).toBe(200);
  }, 120_000);
});

describe('code steps switched off', () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_CODE_STEPS: 'off' } });
  });

  afterAll(async () => {
    await hub?.close();
  });

  it('refuse a flow with a code node when it is saved, naming the node, and say so in the catalogue', async () => {
    const res = await hub.api('POST', '/api/v1/flows', {
      name: 'with code',
      graph: {
        nodes: [
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'script', componentId: 'code', function: 'run', fields: { code: 'return body' } },
        ],
        edges: [{ source: 'shape', target: 'script' }],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toMatch(/graph\.nodes\[1\] \("script"\): component code is switched off on this hub: code steps are disabled \(PLEXUS_CODE_STEPS=off\)/);
    const code = await hub.api('GET', '/api/v1/components/code');
    expect(code.body.data.disabled).toBe('code steps are disabled (PLEXUS_CODE_STEPS=off)');
    expect(code.body.data.description).toMatch(/^Switched off on this hub/);
    // Other components are unaffected.
    expect((await hub.api('GET', '/api/v1/components/transform')).body.data.disabled).toBeUndefined();
  });
});

describe('code steps and per-tenant limits', () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await createTestHub();
  });

  afterAll(async () => {
    await hub?.close();
  });

  /** Sandbox processes this test process started (the hub runs in it). */
  function runnerProcesses(): number[] {
    return fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        try {
          const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          return ppid === process.pid && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('components.sandbox-runner.mjs');
        } catch {
          return false;
        }
      })
      .map(Number);
  }

  it('give a tenant as many sandbox processes at once as its codeSlots limit says', async () => {
    const set = await hub.api('PUT', '/api/v1/tenants/default/limits', { codeSlots: 2 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    // Code that waits rather than spins: it holds its process without taking a core from other tests.
    const loop = await createAndStart(hub, codeFlow('await new Promise(() => {});', 15_000));
    await trigger(hub, loop, {});
    await trigger(hub, loop, {});
    // With the default of 1 the second run would wait for the first, in the one process it has.
    await waitFor('two sandbox processes', async () => runnerProcesses().length === 2, 20_000, 100);
  }, 60_000);
});
