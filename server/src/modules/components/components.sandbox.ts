/**
 * The sandbox of the `code` component: tenant JavaScript in a fresh `node:vm` context per run,
 * inside a pool of worker threads with a memory limit; a run over its time limit has its worker
 * terminated and replaced. The context has no `require`, no `process`, no timers; its only way
 * out is a provided `fetch` (guarded against private addresses unless the node allows them).
 *
 * Only primitives cross between the context and the worker (JSON strings in, JSON strings out,
 * strings through the bridge), so no object of the worker's realm leaks into user code. This
 * keeps honest code honest and contains mistakes (loops, leaks, crashes); it is not a boundary
 * against a determined attacker — `node:vm` is not one. Remote workers (a later issue) are.
 */
import { Worker } from 'node:worker_threads';
import { StepError } from './components.descriptor.js';

export interface SandboxRun {
  code: string;
  /** JSON of `{body, headers, metadata, attachments, id, snapshot}`. */
  inputJson: string;
  timeoutMs: number;
  allowPrivateNetwork: boolean;
}

export interface SandboxOutcome {
  /** JSON of the emitted bodies, in order. */
  emittedJson: string;
  logs: Array<{ level: string; text: string }>;
}

export interface SandboxOptions {
  /** Workers in the pool; each runs one step at a time. */
  size: number;
  /** Heap limit of each worker. */
  memoryMb: number;
}

/**
 * Evaluated in each fresh context: builds `console`, `fetch` and the run's arguments from primitives
 * only, so user code never holds an object of the worker's realm.
 */
const BOOTSTRAP_SOURCE = String.raw`(function (bridgeFetch, bridgeLog, inputJson) {
  'use strict';
  const fmt = (v) => typeof v === 'string' ? v : (() => { try { return JSON.stringify(v); } catch { return String(v); } })();
  const log = (level) => (...args) => bridgeLog(level, args.map(fmt).join(' '));
  globalThis.console = { log: log('info'), info: log('info'), debug: log('debug'), warn: log('warn'), error: log('error') };
  globalThis.fetch = async function fetch(url, init) {
    init = init || {};
    const request = JSON.stringify({ url: String(url), method: init.method ? String(init.method) : 'GET', headers: init.headers && typeof init.headers === 'object' ? init.headers : {}, body: init.body === undefined || init.body === null ? undefined : String(init.body) });
    let raw;
    try { raw = await bridgeFetch(request); } catch (e) { const err = new Error('fetch failed: ' + String(e && e.message)); err.transient = true; throw err; }
    const r = JSON.parse(raw);
    if (r.error) { const err = new Error('fetch failed: ' + r.error); err.transient = !r.refused; throw err; }
    const headers = r.headers;
    return { status: r.status, statusText: r.statusText, ok: r.status >= 200 && r.status < 300, url: r.url,
      headers: { get: (n) => { const v = headers[String(n).toLowerCase()]; return v === undefined ? null : v; }, has: (n) => String(n).toLowerCase() in headers, entries: () => Object.entries(headers)[Symbol.iterator]() },
      text: async () => r.body, json: async () => JSON.parse(r.body) };
  };
  const input = JSON.parse(inputJson);
  const emitted = [];
  const emit = (value) => { emitted.push(value === undefined ? null : value); };
  const message = { id: input.id, body: input.body, headers: input.headers, metadata: input.metadata, attachments: input.attachments };
  return {
    args: [input.body, input.headers, input.metadata, message, input.snapshot, emit],
    finish: (result) => JSON.stringify(emitted.length > 0 ? emitted : result === undefined ? [] : [result]),
  };
})`;

/** Runs inside each worker; plain JavaScript, because workers do not go through the TS loader. */
const WORKER_SOURCE = String.raw`
'use strict';
const { parentPort } = require('node:worker_threads');
const vm = require('node:vm');
const dns = require('node:dns');
const net = require('node:net');

const blocked = new net.BlockList();
for (const [a, p] of [['0.0.0.0',8],['10.0.0.0',8],['100.64.0.0',10],['127.0.0.0',8],['169.254.0.0',16],['172.16.0.0',12],['192.0.0.0',24],['192.168.0.0',16],['198.18.0.0',15],['224.0.0.0',4],['240.0.0.0',4]]) blocked.addSubnet(a, p, 'ipv4');
for (const [a, p] of [['::',128],['::1',128],['fc00::',7],['fe80::',10],['ff00::',8]]) blocked.addSubnet(a, p, 'ipv6');
function isNonPublic(address) {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m) return blocked.check(m[1], 'ipv4');
  return blocked.check(address, net.isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

const MAX_FETCH_BYTES = 10 * 1024 * 1024;
const MAX_LOG_LINES = 100;
const scripts = new Map();

function compile(code) {
  let script = scripts.get(code);
  if (!script) {
    script = new vm.Script('(async function (body, headers, metadata, message, snapshot, emit) {\n' + code + '\n})', { filename: 'code.js', lineOffset: -1 });
    if (scripts.size > 200) scripts.clear();
    scripts.set(code, script);
  }
  return script;
}

// Defined inside each context: wraps the bridge so user code only ever sees objects of its own realm.
const BOOTSTRAP = new vm.Script(${JSON.stringify(BOOTSTRAP_SOURCE)}, { filename: 'plexus-bootstrap.js' });

async function guardedHost(url) {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = net.isIP(host) ? [{ address: host }] : await dns.promises.lookup(host, { all: true });
  const bad = addresses.find((a) => isNonPublic(a.address));
  if (bad || addresses.length === 0) return host + ' resolves to non-public address ' + (bad ? bad.address : '(none)');
  return undefined;
}

function makeBridge(allowPrivate, deadline) {
  return async (requestJson) => {
    const req = JSON.parse(requestJson);
    let url;
    try { url = new URL(req.url); } catch { return JSON.stringify({ error: 'invalid URL ' + req.url, refused: true }); }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return JSON.stringify({ error: url.protocol + ' is not http(s)', refused: true });
    if (!allowPrivate) {
      const why = await guardedHost(url).catch((e) => 'cannot resolve ' + url.hostname + ': ' + e.code);
      if (why) return JSON.stringify({ error: why, refused: true });
    }
    try {
      const res = await fetch(url, { method: req.method, headers: req.headers, body: req.body, redirect: allowPrivate ? 'follow' : 'manual', signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) });
      const buf = Buffer.from(await res.arrayBuffer());
      if (buf.length > MAX_FETCH_BYTES) return JSON.stringify({ error: 'response larger than ' + MAX_FETCH_BYTES + ' bytes', refused: true });
      const headers = {};
      res.headers.forEach((v, k) => { headers[k] = v; });
      return JSON.stringify({ status: res.status, statusText: res.statusText, url: res.url, headers, body: buf.toString('utf8') });
    } catch (e) {
      return JSON.stringify({ error: (e && (e.cause && e.cause.code || e.message)) || String(e) });
    }
  };
}

function locate(err) {
  const stack = err && typeof err.stack === 'string' ? err.stack : '';
  const m = /code\.js:(\d+)(?::(\d+))?/.exec(stack);
  return m ? { line: Number(m[1]), column: m[2] ? Number(m[2]) : undefined } : {};
}

parentPort.on('message', async (task) => {
  const logs = [];
  const bridgeLog = (level, text) => { if (logs.length < MAX_LOG_LINES) logs.push({ level: String(level), text: String(text).slice(0, 2000) }); };
  let script;
  try {
    script = compile(task.code);
  } catch (err) {
    parentPort.postMessage({ ok: false, error: { name: 'SyntaxError', message: String(err && err.message), ...locate(err) }, logs });
    return;
  }
  try {
    const context = vm.createContext(Object.create(null), { codeGeneration: { strings: false, wasm: false }, name: 'plexus-code' });
    const setup = BOOTSTRAP.runInContext(context)(makeBridge(task.allowPrivateNetwork, Date.now() + task.timeoutMs), bridgeLog, task.inputJson);
    const fn = script.runInContext(context, { timeout: task.timeoutMs });
    const result = await fn(...setup.args);
    parentPort.postMessage({ ok: true, emittedJson: setup.finish(result), logs });
  } catch (err) {
    const name = err && typeof err.name === 'string' ? err.name : 'Error';
    const message = err && typeof err.message === 'string' ? err.message : String(err);
    parentPort.postMessage({ ok: false, error: { name, message, transient: Boolean(err && err.transient === true), ...locate(err) }, logs });
  }
});
`;

interface WorkerReply {
  ok: boolean;
  emittedJson?: string;
  logs: Array<{ level: string; text: string }>;
  error?: { name: string; message: string; line?: number; column?: number; transient?: boolean };
}

interface Task {
  run: SandboxRun;
  resolve: (o: SandboxOutcome) => void;
  reject: (e: unknown) => void;
}

class PooledWorker {
  readonly worker: Worker;
  busy: Task | undefined;
  private timer: NodeJS.Timeout | undefined;
  dead = false;

  constructor(
    memoryMb: number,
    private readonly onFree: (w: PooledWorker) => void,
    private readonly onDead: (w: PooledWorker) => void,
  ) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // No inherited environment (it may hold secrets) and no inherited loaders or flags.
      env: {},
      execArgv: [],
      stdout: true,
      stderr: true,
      resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: Math.max(4, Math.floor(memoryMb / 4)), stackSizeMb: 4 },
    });
    this.worker.unref();
    this.worker.on('message', (reply: WorkerReply) => this.settle(reply));
    this.worker.on('error', (err: Error & { code?: string }) => {
      const task = this.busy;
      this.kill();
      if (task) {
        task.reject(
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? new StepError(`code: memory limit exceeded (${memoryMb} MB)`, 'user')
            : new StepError(`code: the sandbox failed: ${err.message}`, 'transient'),
        );
      }
    });
    this.worker.on('exit', () => {
      const task = this.busy;
      this.kill();
      task?.reject(new StepError('code: the sandbox exited unexpectedly', 'transient'));
    });
  }

  start(task: Task): void {
    this.busy = task;
    this.timer = setTimeout(() => {
      this.busy = undefined;
      this.kill();
      task.reject(new StepError(`code: time limit exceeded (${task.run.timeoutMs} ms)`, 'user'));
    }, task.run.timeoutMs + 50);
    this.worker.postMessage(task.run);
  }

  private settle(reply: WorkerReply): void {
    const task = this.busy;
    if (!task) return;
    clearTimeout(this.timer);
    this.busy = undefined;
    if (reply.ok) task.resolve({ emittedJson: reply.emittedJson ?? '[]', logs: reply.logs });
    else {
      const e = reply.error ?? { name: 'Error', message: 'unknown error' };
      const where = e.line !== undefined ? ` at line ${e.line}${e.column !== undefined ? `:${e.column}` : ''}` : '';
      const err = new StepError(`code: ${e.name}: ${e.message}${where}`, e.transient ? 'transient' : 'user');
      task.reject(Object.assign(err, { logs: reply.logs }));
    }
    this.onFree(this);
  }

  kill(): void {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.timer);
    void this.worker.terminate().catch(() => {});
    this.onDead(this);
  }
}

/** A small pool so a step does not pay a thread start per message. */
export class SandboxPool {
  private readonly idle: PooledWorker[] = [];
  private readonly all = new Set<PooledWorker>();
  private readonly queue: Task[] = [];
  private closed = false;

  constructor(private readonly options: SandboxOptions) {}

  run(run: SandboxRun): Promise<SandboxOutcome> {
    if (this.closed) return Promise.reject(new StepError('code: the sandbox is shut down', 'transient'));
    return new Promise((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let w = this.idle.pop();
      if (!w && this.all.size < this.options.size) w = this.spawn();
      if (!w) return;
      w.start(this.queue.shift()!);
    }
  }

  private spawn(): PooledWorker {
    const w = new PooledWorker(
      this.options.memoryMb,
      (free) => {
        if (this.closed || free.dead) return;
        this.idle.push(free);
        this.dispatch();
      },
      (dead) => {
        this.all.delete(dead);
        const i = this.idle.indexOf(dead);
        if (i >= 0) this.idle.splice(i, 1);
        if (!this.closed) this.dispatch();
      },
    );
    this.all.add(w);
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new StepError('code: the sandbox is shut down', 'transient'));
    await Promise.all([...this.all].map((w) => w.worker.terminate().catch(() => 0)));
    this.all.clear();
    this.idle.length = 0;
  }
}
