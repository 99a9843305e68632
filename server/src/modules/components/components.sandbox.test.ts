/** The code component's sandbox: real child processes, real isolates, real limits. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_DIR } from '../../../test/helpers/process.js';
import { createLogger } from '../../platform/logger.js';
import { createOutbound } from '../../platform/outbound/index.js';
import { createCodeComponent } from './builtins/code.js';
import { StepError } from './components.descriptor.js';
import { SandboxPool, type SandboxOptions } from './components.sandbox.js';
import { bodies, context, message, runOnce } from './components.testing.js';

const silent = createLogger('silent');
const newPool = (options: Partial<SandboxOptions> = {}): SandboxPool => new SandboxPool({ size: 2, memoryMb: 32, cpuTimeMs: 10_000, slotsFor: () => 1, logger: silent, ...options });
const pool = newPool();
/** Loopback test servers are private addresses: one policy lets steps reach them, one does not. */
const open = createOutbound({ allowPrivateNetwork: true, allowedHosts: [] });
const closed = createOutbound({ allowPrivateNetwork: false, allowedHosts: [] });
const run = createCodeComponent({ sandbox: pool, outbound: open }).fn('run');
const guarded = createCodeComponent({ sandbox: pool, outbound: closed }).fn('run');
let server: http.Server;
let base = '';

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/redirect-to-loopback') return res.writeHead(302, { location: `${base}/orders/2` }).end();
    res.writeHead(200, { 'content-type': 'application/json', 'x-seen': req.method! }).end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await pool.close();
  await new Promise((r) => server.close(r));
});

async function failure(code: string, body: unknown = {}, fields: Record<string, unknown> = {}): Promise<StepError> {
  const err = await runOnce(run, { code, ...fields }, body).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(StepError);
  return err as StepError;
}

describe('code/run', () => {
  it('emits the returned value as the next body, with headers and metadata in scope', async () => {
    const step = await run!.prepare({ code: 'return { total: body.items.reduce((a, b) => a + b, 0), from: headers.source, n: metadata.n, id: message.id };' }, { logger: silent });
    const input = message({ items: [1, 2, 3] }, { headers: { source: 'crm' }, metadata: { n: 7 } });
    const out = await step.run(context(input));
    expect(bodies(out)).toEqual([{ total: 6, from: 'crm', n: 7, id: input.id }]);
  });

  it('emits once per emit() call, and nothing when the code returns nothing', async () => {
    expect(bodies(await runOnce(run, { code: 'for (const o of body.orders) emit({ id: o });' }, { orders: ['a', 'b'] }))).toEqual([{ id: 'a' }, { id: 'b' }]);
    expect((await runOnce(run, { code: 'if (body.skip) return; return body;' }, { skip: true })).messages).toEqual([]);
  });

  it('runs async code and can call HTTP through the provided fetch', async () => {
    const out = await runOnce(run, { code: `const r = await fetch('${base}/orders/1', { method: 'POST', body: '{}' }); return { status: r.status, ok: r.ok, seen: r.headers.get('X-Seen'), json: await r.json() };` }, {});
    expect(bodies(out)).toEqual([{ status: 200, ok: true, seen: 'POST', json: { path: '/orders/1' } }]);
  });

  it('keeps console lines for the hub log', async () => {
    const lines: string[] = [];
    const logger = createLogger('info', { write: (l: string) => lines.push(l) } as unknown as NodeJS.WritableStream);
    await runOnce(run, { code: 'console.log("hello", { n: 1 }); console.warn("careful"); return 1' }, {}, { logger });
    expect(lines.map((l) => [JSON.parse(l).console, JSON.parse(l).msg])).toEqual([
      ['info', 'hello {"n":1}'],
      ['warn', 'careful'],
    ]);
  });

  it('has no require, process, timers or Node API; eval only reaches the same empty context', async () => {
    expect((await failure('return require("fs")')).message).toMatch(/ReferenceError: require is not defined at line 1/);
    expect((await failure('return process.env')).message).toMatch(/ReferenceError: process is not defined/);
    expect((await failure('setTimeout(() => {}, 1)')).message).toMatch(/setTimeout is not defined/);
    expect(bodies(await runOnce(run, { code: 'return [eval("typeof process"), typeof Buffer, typeof globalThis.require, typeof module]' }, {}))).toEqual([['undefined', 'undefined', 'undefined', 'undefined']]);
  });

  it('reports errors with the line of the user code', async () => {
    const thrown = await failure('const a = 1;\nconst b = 2;\nthrow new Error("bad order " + (a + b));');
    expect(thrown.message).toBe('code: Error: bad order 3 at line 3:7');
    expect(thrown.kind).toBe('user');
    const typeErr = await failure('\n\nreturn body.missing.deep;');
    expect(typeErr.message).toMatch(/TypeError: .* at line 3/);
  });

  it('refuses code with a syntax error when the flow starts, naming the line', async () => {
    await expect(run!.prepare({ code: 'const a = 1;\nreturn a +;' }, { logger: silent })).rejects.toThrow(/fields\.code: SyntaxError: .* at line 2/);
  });

  it('stops code over its time limit, sync or async, and the pool keeps working', async () => {
    const loop = await failure('while (true) {}', {}, { timeoutMs: 300 });
    expect(loop.message).toBe('code: time limit exceeded (300 ms)');
    expect(loop.kind).toBe('user');
    const hang = await failure('await new Promise(() => {});', {}, { timeoutMs: 300 });
    expect(hang.message).toBe('code: time limit exceeded (300 ms)');
    expect(bodies(await runOnce(run, { code: 'return 1 + 1' }, {}))).toEqual([2]);
  });

  it('stops code over its memory limit', async () => {
    const oom = await failure('const a = []; for (;;) a.push(new Array(1e5).fill(Math.random()));', {}, { timeoutMs: 30_000 });
    expect(oom.message).toBe('code: memory limit exceeded (32 MB)');
    expect(oom.kind).toBe('user');
    expect(bodies(await runOnce(run, { code: 'return "still alive"' }, {}))).toEqual(['still alive']);
  });

  it('keeps runs apart: globals set by one run are gone in the next', async () => {
    await runOnce(run, { code: 'globalThis.leak = 42; Object.prototype.leak = 1; return 1' }, {});
    expect(bodies(await runOnce(run, { code: 'return [typeof globalThis.leak, ({}).leak]' }, {}))).toEqual([['undefined', null]]);
  });

  it('refuses private addresses through fetch under the operator policy, as a user error', async () => {
    const err = (await runOnce(guarded, { code: `return (await fetch('${base}/x')).status` }, {}).catch((e: unknown) => e)) as StepError;
    expect(err.message).toMatch(/non-public address/);
    expect(err.kind).toBe('user');
    const named = (await runOnce(guarded, { code: `return (await fetch('http://localhost:${new URL(base).port}/x')).status` }, {}).catch((e: unknown) => e)) as StepError;
    expect(named.message).toMatch(/localhost resolves to a non-public address/);
    expect(named.kind).toBe('user');
  });

  it('follows redirects for code that may reach private addresses', async () => {
    expect(bodies(await runOnce(run, { code: `const r = await fetch('${base}/redirect-to-loopback'); return [r.status, await r.json()]` }, {}))).toEqual([[200, { path: '/orders/2' }]]);
  });

  it('marks an uncaught fetch failure as transient, so the step is retried', async () => {
    const err = (await runOnce(run, { code: "return await fetch('http://127.0.0.1:9/')" }, {}).catch((e: unknown) => e)) as StepError;
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/fetch failed/);
  });

  it('caps fetch calls, log lines and output per run', async () => {
    const calls = await failure(`for (let i = 0; i < 60; i++) await fetch('${base}/n/' + i);`);
    expect(calls.message).toMatch(/more than 50 fetch calls in one run/);
    const lines: string[] = [];
    const logger = createLogger('info', { write: (l: string) => lines.push(l) } as unknown as NodeJS.WritableStream);
    await runOnce(run, { code: 'for (let i = 0; i < 500; i++) console.log("x".repeat(5000)); return 1' }, {}, { logger });
    expect(lines).toHaveLength(100);
    expect(JSON.parse(lines[0]!).msg).toHaveLength(2000);
    const small = createCodeComponent({ sandbox: newPool({ size: 1, maxOutputChars: 1_000 }), outbound: open }).fn('run');
    const big = (await runOnce(small, { code: 'return "y".repeat(5000)' }, {}).catch((e: unknown) => e)) as StepError;
    expect(big.message).toMatch(/output larger than 1000 characters of JSON/);
    expect(big.kind).toBe('user');
  });
});

describe('the sandbox processes', () => {
  it('run as nobody, with an empty environment, and with no grant to write, spawn or start workers', async () => {
    const own = newPool({ size: 1 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      await runOnce(step, { code: 'return 1' }, {});
      const [runner] = own.describe();
      expect(runner?.tenant).toBe('default');
      const pid = runner!.pid!;
      // Only what Node itself sets for the IPC channel.
      expect(fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)).toEqual(['NODE_CHANNEL_FD=3', 'NODE_CHANNEL_SERIALIZATION_MODE=json']);
      expect(fs.readlinkSync(`/proc/${pid}/cwd`)).toBe('/');
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(args).toContain('--experimental-permission');
      expect(args.filter((a) => /^--allow-(fs-write|child-process|worker|wasi)/.test(a))).toEqual([]);
      expect(args.filter((a) => a.startsWith('--allow-fs-read=')).map((a) => a.slice('--allow-fs-read='.length).split('/').pop())).toEqual([
        'components.sandbox-runner.mjs',
        'components.sandbox-context.js',
        'isolated-vm',
      ]);
      if (process.getuid?.() === 0) {
        const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
        expect(uid).toBe('65534');
      }
    } finally {
      await own.close();
    }
  });

  it('are started when needed and exit when idle, so an idle hub holds none', async () => {
    const own = newPool({ size: 1, idleMs: 200 });
    try {
      expect(own.describe()).toEqual([]);
      await runOnce(createCodeComponent({ sandbox: own, outbound: open }).fn('run'), { code: 'return 1' }, {});
      const pid = own.describe()[0]!.pid!;
      await expect.poll(() => own.describe(), { timeout: 10_000 }).toEqual([]);
      await expect.poll(() => fs.existsSync(`/proc/${pid}`), { timeout: 10_000 }).toBe(false);
    } finally {
      await own.close();
    }
  });

  it('stop code over its CPU time even while its wall time lasts, and replace the process', async () => {
    const own = newPool({ size: 1, cpuTimeMs: 300 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      await runOnce(step, { code: 'return 1' }, {});
      const before = own.describe()[0]!.pid;
      const err = (await runOnce(step, { code: 'for (;;) {}', timeoutMs: 60_000 }, {}).catch((e: unknown) => e)) as StepError;
      expect(err.message).toBe('code: CPU time limit exceeded (300 ms)');
      expect(err.kind).toBe('user');
      expect(bodies(await runOnce(step, { code: 'return 2' }, {}))).toEqual([2]);
      expect(own.describe()[0]!.pid).not.toBe(before);
    } finally {
      await own.close();
    }
  });

  it('count a promise chain that never ends against the run that started it', async () => {
    const own = newPool({ size: 1, cpuTimeMs: 300 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      const err = (await runOnce(step, { code: '(async () => { for (;;) await null; })(); return "returned"', timeoutMs: 60_000 }, {}).catch((e: unknown) => e)) as StepError;
      expect(err.message).toBe('code: CPU time limit exceeded (300 ms)');
      expect(bodies(await runOnce(step, { code: 'return "next"' }, {}))).toEqual(['next']);
    } finally {
      await own.close();
    }
  });

  it('kill a process whose memory grows past the hub’s own limit', async () => {
    const own = newPool({ size: 1, rssLimitMb: 20 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      const err = (await runOnce(step, { code: 'await new Promise(() => {})', timeoutMs: 60_000 }, {}).catch((e: unknown) => e)) as StepError;
      expect(err.message).toBe('code: memory limit exceeded (the sandbox process used more than 20 MB)');
    } finally {
      await own.close();
    }
  });

  it('fail only the run of a process that died, as transient, and start a new one', async () => {
    const own = newPool({ size: 1 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      await runOnce(step, { code: 'return 1' }, {});
      const pending = runOnce(step, { code: 'await new Promise(() => {})', timeoutMs: 60_000 }, {}).catch((e: unknown) => e);
      await expect.poll(() => own.describe()[0]?.state, { timeout: 10_000 }).toBe('busy');
      process.kill(own.describe()[0]!.pid!, 'SIGKILL');
      const err = (await pending) as StepError;
      expect(err.kind).toBe('transient');
      expect(err.message).toMatch(/the sandbox process exited unexpectedly \(signal SIGKILL\)/);
      expect(bodies(await runOnce(step, { code: 'return "replaced"' }, {}))).toEqual(['replaced']);
    } finally {
      await own.close();
    }
  });
});

describe('a hub that dies', () => {
  it('takes its sandbox processes with it, even one running an endless loop', async () => {
    const hub = spawn(process.execPath, ['--import', 'tsx', path.join(SERVER_DIR, 'test/helpers/sandbox-parent.ts')], { cwd: SERVER_DIR, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    hub.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await expect.poll(() => /runner (\d+)/.exec(out)?.[1], { timeout: 30_000 }).toBeDefined();
      const runner = Number(/runner (\d+)/.exec(out)![1]);
      expect(fs.existsSync(`/proc/${runner}`)).toBe(true);
      hub.kill('SIGKILL');
      await expect.poll(() => fs.existsSync(`/proc/${runner}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${runner}/status`, 'utf8')), { timeout: 20_000 }).toBe(false);
    } finally {
      hub.kill('SIGKILL');
    }
  });
});

describe('tenants', () => {
  it('never share a process: a tenant’s run goes to a process of its own', async () => {
    const own = newPool({ size: 2 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      await runOnce(step, { code: 'return 1' }, {}, { tenant: 'acme' });
      const acme = own.describe().find((r) => r.tenant === 'acme')!.pid;
      await runOnce(step, { code: 'return 1' }, {}, { tenant: 'globex' });
      const globex = own.describe().find((r) => r.tenant === 'globex')!.pid;
      expect(globex).not.toBe(acme);
      await runOnce(step, { code: 'return 1' }, {}, { tenant: 'acme' });
      expect(own.describe().find((r) => r.tenant === 'acme')!.pid).toBe(acme);
      // A third tenant takes the place of the least recently used one: a new process, not a reused one.
      await runOnce(step, { code: 'return 1' }, {}, { tenant: 'initech' });
      const now = own.describe();
      expect(now.map((r) => r.tenant).sort()).toEqual(['acme', 'initech']);
      expect(now.map((r) => r.pid)).not.toContain(globex);
    } finally {
      await own.close();
    }
  });

  it('get their share: four infinite loops of one tenant do not hold up another tenant’s step', async () => {
    const own = newPool({ size: 2, slotsFor: () => 1 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      let loopsEnded = 0;
      const loops = Array.from({ length: 4 }, () =>
        runOnce(step, { code: 'for (;;) {}', timeoutMs: 30_000 }, {}, { tenant: 'abuser' })
          .catch((e: unknown) => e)
          .finally(() => loopsEnded++),
      );
      const started = Date.now();
      expect(bodies(await runOnce(step, { code: 'return "served"' }, {}, { tenant: 'neighbour' }))).toEqual(['served']);
      // Served while every loop of the other tenant was still within its 30 s limit.
      expect(loopsEnded).toBe(0);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(own.describe().filter((r) => r.tenant === 'abuser' && r.state !== 'idle')).toHaveLength(1);
      await own.close();
      expect((await Promise.all(loops)).every((e) => e instanceof StepError)).toBe(true);
    } finally {
      await own.close();
    }
  });

  it('are served round-robin when they queue', async () => {
    const own = newPool({ size: 1, slotsFor: () => 1, switchAfterMs: 0 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      const order: string[] = [];
      const go = (tenant: string, i: number) => runOnce(step, { code: 'return 1' }, {}, { tenant }).then(() => order.push(`${tenant}${i}`));
      await Promise.all([go('a', 1), go('a', 2), go('a', 3), go('b', 1), go('b', 2)]);
      expect(order).toEqual(['a1', 'b1', 'a2', 'b2', 'a3']);
    } finally {
      await own.close();
    }
  });

  it('send a tenant’s next runs to its process while one runs, so it never waits for the hub between runs', async () => {
    const own = newPool({ size: 1, slotsFor: () => 1 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      const runs = Array.from({ length: 10 }, (_, i) => runOnce(step, { code: 'return body.i * 2' }, { i }, { tenant: 'a' }));
      let most = 0;
      const watch = setInterval(() => (most = Math.max(most, own.describe()[0]?.runs ?? 0)), 1);
      await Promise.all(runs).finally(() => clearInterval(watch));
      // All ten went to the one process (starting, then running them back to back), none waited in the pool.
      expect(most).toBe(10);
      expect(own.describe()).toEqual([expect.objectContaining({ tenant: 'a', runs: 0 })]);
      expect((await Promise.all(runs)).map((r) => bodies(r)[0])).toEqual(Array.from({ length: 10 }, (_, i) => i * 2));
    } finally {
      await own.close();
    }
  });

  it('take back the runs queued in a process when another tenant waits for one: it gets it after one run', async () => {
    const own = newPool({ size: 1, slotsFor: () => 1, switchAfterMs: 0 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      const order: string[] = [];
      const busy = 'const until = Date.now() + 150; while (Date.now() < until) {} return 1';
      const go = (tenant: string, i: number, code: string) => runOnce(step, { code }, {}, { tenant }).then(() => order.push(`${tenant}${i}`));
      const first = [1, 2, 3, 4].map((i) => go('a', i, busy));
      // The process is up and running a1 with a2-a4 sent to it before b asks.
      for (const until = Date.now() + 30_000; own.describe()[0]?.state !== 'busy'; ) {
        if (Date.now() > until) throw new Error('the runner never started');
        await new Promise((r) => setTimeout(r, 5));
      }
      await Promise.all([...first, go('b', 1, 'return 1')]);
      expect(order.indexOf('b1')).toBeLessThanOrEqual(2);
      expect(order.filter((o) => o.startsWith('a'))).toEqual(['a1', 'a2', 'a3', 'a4']);
    } finally {
      await own.close();
    }
  });

  it('keep a runner for a while before another tenant with work waiting takes it (no spawn per run)', async () => {
    const own = newPool({ size: 1, slotsFor: () => 1, switchAfterMs: 60_000 });
    try {
      const step = createCodeComponent({ sandbox: own, outbound: open }).fn('run');
      const order: string[] = [];
      const go = (tenant: string, i: number) => runOnce(step, { code: 'return 1' }, {}, { tenant }).then(() => order.push(`${tenant}${i}`));
      await Promise.all([go('a', 1), go('a', 2), go('a', 3), go('b', 1), go('b', 2)]);
      // b waits until a has nothing left rather than taking a's process between a's runs.
      expect(order).toEqual(['a1', 'a2', 'a3', 'b1', 'b2']);
    } finally {
      await own.close();
    }
  });
});
