// @ts-check
/**
 * The code-step runner: one child process of the hub's sandbox pool (components.sandbox.ts).
 *
 * The hub starts it with plain `node` (no loaders), an empty environment, a neutral working
 * directory, Node's permission model allowing reads of this file, the context file and the
 * isolated-vm package only (no writes, child processes or workers), and as `nobody` when the hub
 * runs as root. Tenant code never runs in this realm: each run gets a fresh context in an
 * isolated-vm Isolate (its own V8 heap with a memory limit), where nothing of Node.js exists.
 * Only strings cross between the isolate and this process, and between this process and the hub.
 *
 * The process belongs to one tenant for its whole life (the hub never sends it another tenant's
 * run; it refuses one if it did). It runs one run at a time.
 *
 * Protocol (IPC, JSON), hub → runner:
 *   {type:'run', runId, tenant, code, inputJson, cpuMs}
 *   {type:'fetched', runId, callId, resultJson}   resultJson: {ok:true, response} | {ok:false, error, transient}
 *   {type:'drop', runIds}   runs sent but not started yet are skipped (each answered 'dropped')
 * runner → hub:
 *   {type:'ready'}
 *   {type:'dropped', runId}   a run skipped after 'drop': it never ran
 *   {type:'fetch', runId, callId, requestJson}
 *   {type:'done', runId, ok:true, emittedJson, logs} | {type:'done', runId, ok:false, error, logs}
 *   {type:'limit', runId, limit:'cpu'|'memory', logs}   the hub then kills this process
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

/**
 * @typedef {{ memoryMb: number; maxOutputChars: number; maxLogLines: number; maxLogChars: number; maxFetchCalls: number; contextFile: string; isolatedVm: string }} RunnerConfig
 * @typedef {{ level: string; text: string }} LogLine
 * @typedef {{ type: 'run'; runId: number; tenant: string; code: string; inputJson: string; cpuMs: number }} RunMessage
 * @typedef {{ type: 'fetched'; runId: number; callId: number; resultJson: string }} FetchedMessage
 * @typedef {{ type: 'drop'; runIds: number[] }} DropMessage
 * @typedef {{ runId: number; logs: LogLine[]; fetchCalls: number; pending: Map<number, (resultJson: string) => void>; closed: boolean; cpuExceeded: boolean }} RunState
 * @typedef {{ context: import('isolated-vm').Context; setup: import('isolated-vm').Reference }} Prepared
 */

/** @type {RunnerConfig} */
const config = JSON.parse(process.argv[2] ?? '{}');
/** @type {typeof import('isolated-vm')} */
const ivm = createRequire(import.meta.url)(config.isolatedVm);
const contextSource = fs.readFileSync(config.contextFile, 'utf8');
const limits = { maxOutputChars: config.maxOutputChars, maxLogLines: config.maxLogLines, maxLogChars: config.maxLogChars, maxFetchCalls: config.maxFetchCalls };
/** Compiled scripts of the tenant's code, kept per isolate: most flows run the same code again and again. */
const MAX_CACHED_SCRIPTS = 100;
/** Where the tenant's compiled function waits for the context function (components.sandbox-context.js). */
const USER_FUNCTION = '__plexusCode';
/** The watchdog never sleeps less than this, so a run near its budget is not checked in a tight loop. */
const MIN_CPU_CHECK_MS = 5;

/** @param {object} message */
function send(message) {
  if (process.connected) process.send?.(message);
}

/**
 * One isolate and what was compiled in it. A new one replaces it only after a memory or CPU
 * violation, and then the hub kills this process anyway.
 */
class Sandbox {
  constructor() {
    this.isolate = new ivm.Isolate({ memoryLimit: config.memoryMb });
    this.contextScript = this.isolate.compileScriptSync(contextSource, { filename: 'plexus-context.js' });
    /** @type {Map<string, import('isolated-vm').Script>} */
    this.scripts = new Map();
    /**
     * The next run's context with the context function already in it, made as soon as the
     * previous run ended: it takes two steps off each run's latency, and it proves the isolate
     * went quiet (a leftover promise chain still spinning would block it).
     * @type {Promise<Prepared> | undefined}
     */
    this.next = undefined;
  }

  /**
   * The tenant's code as a script that leaves its function on the context's global object, under
   * the name the context function takes it from (and deletes) before anything else runs; so
   * running it needs no answer from the isolate, and the run costs one round trip instead of two.
   * @param {string} code
   */
  compile(code) {
    let script = this.scripts.get(code);
    if (!script) {
      script = this.isolate.compileScriptSync(`globalThis.${USER_FUNCTION} = async function (body, headers, metadata, message, snapshot, emit) {\n${code}\n};`, { filename: 'code.js', lineOffset: -1 });
      if (this.scripts.size >= MAX_CACHED_SCRIPTS) {
        for (const s of this.scripts.values()) s.release();
        this.scripts.clear();
      }
      this.scripts.set(code, script);
    }
    return script;
  }

  /** @returns {Promise<Prepared>} */
  async prepare() {
    const context = await this.isolate.createContext();
    const setup = await this.contextScript.run(context, { reference: true });
    return { context, setup };
  }

  take() {
    const ready = this.next ?? this.prepare();
    this.next = undefined;
    return ready;
  }
}

/** @type {Sandbox | undefined} */
let sandbox;
/** @type {string | undefined} */
let boundTenant;
/** @type {RunState | undefined} */
let current;
/** Runs queue here behind each other (the hub sends the next ones while one runs). */
let idle = Promise.resolve();
/** Settles once the isolate is quiet again after the last run: the next run waits for it too. */
/** @type {Promise<void>} */
let quiet = Promise.resolve();
/** Runs the hub took back before they started. @type {Set<number>} */
const dropped = new Set();

/**
 * Stops the isolate when the run (or what it left running) has used `cpuMs` of CPU time. A
 * timer at the soonest moment the budget could be spent, not a polling loop: while the code
 * waits on fetch the isolate uses no CPU and the timer just sleeps longer.
 * @param {Sandbox} box @param {RunState} state @param {number} cpuMs
 */
function armCpuWatchdog(box, state, cpuMs) {
  const startNs = box.isolate.cpuTime;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const check = () => {
    if (box.isolate.isDisposed) return;
    const usedMs = Number(box.isolate.cpuTime - startNs) / 1e6;
    if (usedMs >= cpuMs) {
      state.cpuExceeded = true;
      box.isolate.dispose();
      if (state.closed) send({ type: 'limit', runId: state.runId, limit: 'cpu', logs: [] });
      return;
    }
    timer = setTimeout(check, Math.max(MIN_CPU_CHECK_MS, cpuMs - usedMs));
  };
  timer = setTimeout(check, cpuMs);
  return () => clearTimeout(timer);
}

/** @param {unknown} err */
function isMemoryLimit(err) {
  return err instanceof Error && /memory limit/i.test(err.message);
}

/** @param {RunMessage} msg */
async function run(msg) {
  /** @type {RunState} */
  const state = { runId: msg.runId, logs: [], fetchCalls: 0, pending: new Map(), closed: false, cpuExceeded: false };
  if (boundTenant !== undefined && boundTenant !== msg.tenant) {
    // The hub never does this; if it ever did, refusing is the only safe answer.
    send({ type: 'done', runId: msg.runId, ok: false, error: { name: 'Error', message: 'the sandbox process belongs to another tenant', transient: true }, logs: [] });
    return;
  }
  boundTenant = msg.tenant;
  sandbox ??= new Sandbox();
  const box = sandbox;
  current = state;
  const disarm = armCpuWatchdog(box, state, msg.cpuMs);
  /** @type {Prepared | undefined} */
  let prepared;
  /** Handles into this run's context: released at its end, or they would keep the context alive. */
  /** @type {Array<{ release(): void }>} */
  const references = [];
  try {
    let script;
    try {
      script = box.compile(msg.code);
    } catch (err) {
      const e = /** @type {Error} */ (err);
      const line = /code\.js:(\d+)/.exec(String(e.stack))?.[1];
      send({ type: 'done', runId: msg.runId, ok: false, error: { name: 'SyntaxError', message: String(e.message), ...(line ? { line: Number(line) } : {}), transient: false }, logs: [] });
      return;
    }
    prepared = await box.take();
    const { context, setup } = prepared;
    script.runIgnored(context);
    const hostLog = new ivm.Callback((/** @type {unknown} */ level, /** @type {unknown} */ text) => {
      if (state.closed || state.logs.length >= limits.maxLogLines) return;
      state.logs.push({ level: String(level).slice(0, 10), text: String(text).slice(0, limits.maxLogChars) });
    });
    // A Reference, not an async Callback: the context awaits the promise this returns.
    const hostFetch = new ivm.Reference(
      (/** @type {unknown} */ requestJson) =>
        new Promise((resolve) => {
          // A run that has ended gets no answers: nothing of it may run again in the isolate.
          if (state.closed) return;
          if (++state.fetchCalls > limits.maxFetchCalls) {
            resolve(JSON.stringify({ ok: false, error: `more than ${limits.maxFetchCalls} fetch calls in one run`, transient: false }));
            return;
          }
          state.pending.set(state.fetchCalls, resolve);
          send({ type: 'fetch', runId: state.runId, callId: state.fetchCalls, requestJson: String(requestJson) });
        }),
    );
    references.push(hostFetch);
    /** @type {unknown} */
    let outcome;
    try {
      outcome = await setup.apply(undefined, [hostLog, hostFetch, msg.inputJson, limits], {
        arguments: { copy: true },
        result: { promise: true, copy: true },
      });
    } catch (err) {
      // The context function catches all the code throws; what still ends up here came from the
      // code all the same (a promise it rejected and never handled), unless a limit stopped it.
      if (state.cpuExceeded || box.isolate.isDisposed || isMemoryLimit(err)) throw err;
      const e = /** @type {{ name?: unknown; message?: unknown }} */ (err);
      outcome = '0' + JSON.stringify({ name: typeof e?.name === 'string' ? e.name : 'Error', message: `${typeof e?.message === 'string' ? e.message : String(err)} (in a promise the code did not handle)`, transient: false });
    }
    send(describeOutcome(msg.runId, outcome, state.logs));
  } catch (err) {
    if (state.cpuExceeded) send({ type: 'limit', runId: msg.runId, limit: 'cpu', logs: state.logs });
    else if (box.isolate.isDisposed || isMemoryLimit(err)) send({ type: 'limit', runId: msg.runId, limit: 'memory', logs: state.logs });
    else send({ type: 'done', runId: msg.runId, ok: false, error: { name: 'Error', message: `the sandbox failed: ${err instanceof Error ? err.message : String(err)}`, transient: true }, logs: state.logs });
  } finally {
    state.closed = true;
    state.pending.clear();
    current = undefined;
    for (const r of references) r.release();
    prepared?.setup.release();
    prepared?.context.release();
    if (!box.isolate.isDisposed) {
      // Keep the watchdog on until the isolate answers again: what the run left behind (a promise
      // chain that never ends) still counts against its CPU budget.
      const next = box.prepare();
      box.next = next;
      quiet = next.then(disarm, disarm);
    } else {
      disarm();
    }
  }
}

/**
 * @param {number} runId @param {unknown} outcome what the context function resolved with
 * @param {LogLine[]} logs
 */
function describeOutcome(runId, outcome, logs) {
  if (typeof outcome === 'string' && outcome[0] === '1') {
    const emittedJson = outcome.slice(1);
    if (emittedJson.length > limits.maxOutputChars) {
      return { type: 'done', runId, ok: false, error: { name: 'Error', message: `output larger than ${limits.maxOutputChars} characters of JSON`, transient: false }, logs };
    }
    return { type: 'done', runId, ok: true, emittedJson, logs };
  }
  /** @type {{ name: string; message: string; line?: number; column?: number; transient: boolean }} */
  const error = { name: 'Error', message: 'the code ended in a way that cannot be read', transient: false };
  if (typeof outcome === 'string' && outcome[0] === '0') {
    try {
      const e = JSON.parse(outcome.slice(1));
      if (typeof e.name === 'string') error.name = e.name.slice(0, 200);
      if (typeof e.message === 'string') error.message = e.message.slice(0, 2000);
      if (Number.isInteger(e.line)) error.line = e.line;
      if (Number.isInteger(e.column)) error.column = e.column;
      error.transient = e.transient === true;
    } catch {
      // Keep the generic message: user code may have replaced what builds the error.
    }
  }
  return { type: 'done', runId, ok: false, error, logs };
}

process.on('message', (/** @type {RunMessage | FetchedMessage | DropMessage} */ msg) => {
  if (msg.type === 'run') {
    idle = idle
      .then(() => quiet)
      .then(() => {
        if (dropped.delete(msg.runId)) send({ type: 'dropped', runId: msg.runId });
        else return run(msg);
      });
  } else if (msg.type === 'drop') {
    for (const id of msg.runIds) if (current?.runId !== id) dropped.add(id);
  } else if (msg.type === 'fetched') {
    if (current && current.runId === msg.runId) {
      const resolve = current.pending.get(msg.callId);
      current.pending.delete(msg.callId);
      resolve?.(msg.resultJson);
    }
  }
});
// The hub went away: nothing here is worth keeping. Not process.exit(): its clean-up waits for
// the isolate's thread, which code still running (an endless loop) never gives back.
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
send({ type: 'ready' });
