/** The code component's sandbox: real worker threads, real limits. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { createOutbound } from '../../platform/outbound/index.js';
import { createCodeComponent } from './builtins/code.js';
import { StepError } from './components.descriptor.js';
import { SandboxPool } from './components.sandbox.js';
import { bodies, context, message, runOnce } from './components.testing.js';

const pool = new SandboxPool({ size: 2, memoryMb: 32 });
const run = createCodeComponent({ pool, outbound: createOutbound({ allowPrivateNetwork: true, allowedHosts: [] }) }).fn('run');
const guarded = createCodeComponent({ pool, outbound: createOutbound({ allowPrivateNetwork: false, allowedHosts: [] }) }).fn('run');
let server: http.Server;
let base = '';

beforeAll(async () => {
  server = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json', 'x-seen': req.method! }).end(JSON.stringify({ path: req.url })));
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
    const step = await run!.prepare({ code: 'return { total: body.items.reduce((a, b) => a + b, 0), from: headers.source, n: metadata.n, id: message.id };' }, { logger: createLogger('silent') });
    const input = message({ items: [1, 2, 3] }, { headers: { source: 'crm' }, metadata: { n: 7 } });
    const out = await step.run(context(input));
    expect(bodies(out)).toEqual([{ total: 6, from: 'crm', n: 7, id: input.id }]);
  });

  it('emits once per emit() call, and nothing when the code returns nothing', async () => {
    expect(bodies(await runOnce(run, { code: 'for (const o of body.orders) emit({ id: o });' }, { orders: ['a', 'b'] }))).toEqual([{ id: 'a' }, { id: 'b' }]);
    expect((await runOnce(run, { code: 'if (body.skip) return; return body;' }, { skip: true })).messages).toEqual([]);
  });

  it('runs async code and can call HTTP through the provided fetch', async () => {
    const out = await runOnce(run, { code: `const r = await fetch('${base}/orders/1', { method: 'POST', body: '{}' }); return { status: r.status, seen: r.headers.get('x-seen'), json: await r.json() };` }, {});
    expect(bodies(out)).toEqual([{ status: 200, seen: 'POST', json: { path: '/orders/1' } }]);
  });

  it('has no require, process, timers or eval', async () => {
    expect((await failure('return require("fs")')).message).toMatch(/ReferenceError: require is not defined at line 1/);
    expect((await failure('return process.env')).message).toMatch(/ReferenceError: process is not defined/);
    expect((await failure('setTimeout(() => {}, 1)')).message).toMatch(/setTimeout is not defined/);
    expect((await failure('return eval("1 + 1")')).message).toMatch(/EvalError|Code generation from strings disallowed/);
    expect((await failure('return (function(){}).constructor("return process")()')).message).toMatch(/EvalError|Code generation/);
  });

  it('cannot reach the worker through the objects it is given', async () => {
    const err = await failure('return fetch.constructor("return process")().pid');
    expect(err.message).toMatch(/Code generation from strings disallowed|EvalError/);
    const viaEmit = await failure('return emit.constructor("return process")().pid');
    expect(viaEmit.message).toMatch(/Code generation from strings disallowed|EvalError/);
  });

  it('reports errors with the line of the user code', async () => {
    const thrown = await failure('const a = 1;\nconst b = 2;\nthrow new Error("bad order " + (a + b));');
    expect(thrown.message).toBe('code: Error: bad order 3 at line 3:7');
    expect(thrown.kind).toBe('user');
    const typeErr = await failure('\n\nreturn body.missing.deep;');
    expect(typeErr.message).toMatch(/TypeError: .* at line 3/);
  });

  it('refuses code with a syntax error when the flow starts, naming the line', async () => {
    await expect(run!.prepare({ code: 'const a = 1;\nreturn a +;' }, { logger: createLogger('silent') })).rejects.toThrow(/fields\.code: SyntaxError: .* at line 2/);
  });

  it('stops code over its time limit, sync or async, and the pool keeps working', async () => {
    const loop = await failure('while (true) {}', {}, { timeoutMs: 200 });
    expect(loop.message).toMatch(/time limit exceeded \(200 ms\)/);
    const hang = await failure('await new Promise(() => {});', {}, { timeoutMs: 200 });
    expect(hang.message).toMatch(/time limit exceeded/);
    expect(bodies(await runOnce(run, { code: 'return 1 + 1' }, {}))).toEqual([2]);
  });

  it('stops code over its memory limit', async () => {
    const oom = await failure('const a = []; for (;;) a.push(new Array(1e5).fill(Math.random()));', {}, { timeoutMs: 20_000 });
    expect(oom.message).toMatch(/memory limit exceeded \(32 MB\)/);
    expect(bodies(await runOnce(run, { code: 'return "still alive"' }, {}))).toEqual(['still alive']);
  });

  it('keeps runs apart: globals set by one run are gone in the next', async () => {
    await runOnce(run, { code: 'globalThis.leak = 42; return 1' }, {});
    expect(bodies(await runOnce(run, { code: 'return typeof globalThis.leak' }, {}))).toEqual(['undefined']);
  });

  it('refuses private addresses through fetch when the network guard is on', async () => {
    const err = (await runOnce(guarded, { code: `return (await fetch('${base}/x')).status` }, {}).catch((e: unknown) => e)) as StepError;
    expect(err.message).toMatch(/non-public address/);
  });

  it('marks an uncaught fetch failure as transient, so the step is retried', async () => {
    const err = (await runOnce(run, { code: "return await fetch('http://127.0.0.1:9/')" }, {}).catch((e: unknown) => e)) as StepError;
    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/fetch failed/);
  });
});
