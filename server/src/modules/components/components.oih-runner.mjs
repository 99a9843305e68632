/**
 * The OIH component runner: one child process of the hub's OIH pool (components.oih-pool.ts),
 * running components in the Open Integration Hub / elastic.io format the way their runner
 * (sailor / ferryman) does — full Node.js, since components bring their own node_modules and
 * talk to their APIs — but out of the hub.
 *
 * The hub starts it with plain `node`, an environment holding nothing of the hub, cwd and TMPDIR
 * in a scratch folder of its tenant, Node's permission model (reads of this file and the
 * component folders only, writes to the scratch folder only, no child processes, workers or
 * addons) and, when the hub runs as root, the uid/gid of `nobody`. It belongs to one tenant for
 * its whole life and runs one call at a time; `process.env` holds the ELASTICIO_* values of the
 * call running, and nothing else of any other call.
 *
 * Every TCP connection it opens is checked by the hub first (the operator's outbound policy),
 * by hooking net.Socket#connect: the address a name resolves to is what is checked.
 *
 * Protocol (IPC, JSON), hub → runner:
 *   {type:'call', callId, fn, file, exportName?, args:{msg?, cfg, snapshot?, startupData?}, env, self:{ids, flowVariables}}
 *   {type:'checked', checkId, refusal?}
 * runner → hub:
 *   {type:'ready'}
 *   {type:'emit', callId, event, payload}
 *   {type:'log', callId, level, msg, fields}
 *   {type:'check', checkId, host, address, port}
 *   {type:'done', callId, ok:true, value, isAsync, missing?, quiet?} | {type:'done', callId, ok:false, error:{name, message, status, code, retryAfter}}
 *   {type:'quiet', callId}: the call is over (its promise settled, or it emitted end, error or
 *     rebound) and the component has no work left pending that could still emit (see pendingWork);
 *     `quiet: true` on done says the same in the same message (the common case: one message a call)
 */
import dns from 'node:dns';
import { createRequire } from 'node:module';
import net from 'node:net';
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { setImmediate, setTimeout } from 'node:timers';
import { pathToFileURL } from 'node:url';
import util from 'node:util';

/** A value that cannot cross IPC as JSON is sent as what JSON.stringify makes of it. */
function toJson(value) {
  if (value === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? String(v) : Buffer.isBuffer(v) ? v.toString('base64') : v)) ?? 'null');
  } catch (err) {
    return { error: `not serialisable: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function send(message) {
  if (process.connected) process.send?.(message);
}

// ------------------------------------------------------------------ network policy

let nextCheckId = 1;
const pendingChecks = new Map();

/** Asks the hub whether `address` (reached as `host`) may be connected to. */
function askHub(host, address, port) {
  return new Promise((resolve) => {
    const checkId = nextCheckId++;
    pendingChecks.set(checkId, resolve);
    send({ type: 'check', checkId, host: String(host), address: String(address), port: Number(port) || 0 });
  });
}

function refusedError(host, reason) {
  const err = new Error(`connection to ${host} refused by the hub's network policy: ${reason}`);
  Object.assign(err, { code: 'EPLEXUSPOLICY' });
  return err;
}

/** The TCP sockets components opened and that are not closed yet (see busySockets). */
const openSockets = new Set();

const originalConnect = net.Socket.prototype.connect;
/** @this {net.Socket} */
function checkedConnect(...args) {
  // net.createConnection hands connect its already normalised arguments, marked as such.
  const normalized = args.length === 1 && Array.isArray(args[0]) ? args[0] : net._normalizeArgs(args);
  const options = normalized[0];
  // eslint-disable-next-line @typescript-eslint/no-this-alias -- the socket is what the deferred connect acts on
  const socket = this;
  if (!openSockets.has(socket)) {
    openSockets.add(socket);
    socket.once('close', () => openSockets.delete(socket));
  }
  if (options.path) {
    process.nextTick(() => socket.destroy(refusedError(options.path, 'unix sockets are not reachable from components')));
    return socket;
  }
  const host = options.host ?? 'localhost';
  const port = options.port;
  const family = net.isIP(host);
  // Node resolves only names through `lookup`; an address literal goes through it too, under a
  // stand-in name, so every connection is checked while the socket is already connecting
  // (writes made before the connection are queued as usual).
  const lookup = family ? (_name, lookupOptions, callback) => (lookupOptions?.all ? callback(null, [{ address: host, family }]) : callback(null, host, family)) : (options.lookup ?? dns.lookup);
  const checkedLookup = (hostname, lookupOptions, callback) => {
    lookup(hostname, lookupOptions, (err, address, addressFamily) => {
      if (err) return callback(err, address, addressFamily);
      const list = Array.isArray(address) ? address : [{ address, family: addressFamily }];
      Promise.all(list.map((a) => askHub(family ? host : hostname, a.address, port))).then((refusals) => {
        const refusal = refusals.find(Boolean);
        if (refusal) callback(refusedError(family ? host : hostname, refusal));
        else callback(null, address, addressFamily);
      });
    });
  };
  if (family) return originalConnect.call(socket, { ...options, host: 'address.plexus.invalid', lookup: checkedLookup }, normalized[1]);
  return originalConnect.call(socket, { ...options, lookup: checkedLookup }, normalized[1]);
}
net.Socket.prototype.connect = checkedConnect;

// ------------------------------------------------------------------ calls

const modules = new Map();

/** A component's file, CommonJS or ES module, loaded once per process. */
async function load(file) {
  let mod = modules.get(file);
  if (!mod) {
    try {
      mod = createRequire(file)(file);
    } catch (err) {
      if (err?.code !== 'ERR_REQUIRE_ESM') throw err;
      mod = await import(pathToFileURL(file).href);
    }
    modules.set(file, mod);
  }
  return mod;
}

function exported(mod, name) {
  if (typeof mod?.[name] === 'function') return mod[name];
  if (typeof mod?.default?.[name] === 'function') return mod.default[name];
  // `module.exports = function …`: the file is the function (verifyCredentials.js, old actions).
  if ((name === 'process' || name === 'verifyCredentials') && typeof mod === 'function') return mod;
  return undefined;
}

/** The HTTP status an error carries, the ways components' HTTP clients attach it. */
function statusOf(err) {
  const candidates = [err?.response?.status, err?.response?.statusCode, err?.statusCode, err?.status];
  return candidates.find((s) => typeof s === 'number' && s >= 100 && s < 600);
}

function describeError(err) {
  if (err === undefined || err === null) return { name: 'Error', message: 'error emitted without a reason' };
  if (typeof err !== 'object') return { name: 'Error', message: String(err) };
  const retryAfter = err?.response?.headers?.['retry-after'];
  return {
    name: typeof err.name === 'string' ? err.name : 'Error',
    message: typeof err.message === 'string' && err.message ? err.message : util.inspect(err, { depth: 3, breakLength: Infinity }).slice(0, 2000),
    ...(statusOf(err) !== undefined ? { status: statusOf(err) } : {}),
    ...(typeof err.code === 'string' ? { code: err.code } : {}),
    ...(typeof retryAfter === 'string' || typeof retryAfter === 'number' ? { retryAfter: String(retryAfter) } : {}),
  };
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** A bunyan-style logger: `log.info('text %s', x, {obj})`, `log.info({obj}, 'text')`, `log.child({...})`. */
function makeLogger(callId, bound) {
  const logger = {};
  for (const level of LEVELS) {
    logger[level] = (...args) => {
      let fields = { ...bound };
      if (args.length && args[0] instanceof Error) fields.err = describeError(args.shift());
      else if (args.length && args[0] && typeof args[0] === 'object') Object.assign(fields, toJson(args.shift()));
      const texts = [];
      for (const a of args) {
        if (a && typeof a === 'object' && !(a instanceof Error)) Object.assign(fields, toJson(a));
        else texts.push(a instanceof Error ? a.stack ?? a.message : a);
      }
      send({ type: 'log', callId, level, msg: util.format(...texts).slice(0, 10_000), fields });
    };
  }
  logger.child = (more) => makeLogger(callId, { ...bound, ...(more && typeof more === 'object' ? toJson(more) : {}) });
  logger.level = () => 'info';
  return logger;
}

/** Replaces the process's ELASTICIO_* variables with the call's. */
function setEnv(env) {
  for (const key of Object.keys(process.env)) if (key.startsWith('ELASTICIO_')) delete process.env[key];
  for (const [key, value] of Object.entries(env ?? {})) process.env[key] = String(value);
}

// ------------------------------------------------------------------ pending work

/**
 * Resources not counted by type: the runner's own (the IPC channel and stdio, the requests
 * writing to or closing them), and open TCP connections, which busySockets looks at one by one.
 */
const UNCOUNTED_RESOURCES = new Set(['PipeWrap', 'TTYWrap', 'WriteWrap', 'ShutdownWrap', 'CloseReq', 'SignalWrap', 'TCPSocketWrap', 'TCPWRAP', 'TLSWrap', 'TCPServerWrap']);

/** undici (the global fetch) marks its sockets with a parser. */
function isUndiciSocket(socket) {
  return Object.getOwnPropertySymbols(socket).some((sym) => sym.description === 'parser');
}

/**
 * Connections with work under way: connecting, writing, or carrying an HTTP request (Node's
 * http client, so axios, got, request…, or undici) — both keep a socket ref'd only while it
 * carries one, and unref it when it goes back to their pool. An open connection that only
 * waits (a database pool's idle client, an AMQP channel) is not work: counting it would hold
 * every step of such a component to its time limit.
 */
function busySockets() {
  let n = 0;
  for (const s of openSockets) {
    if (s.destroyed) continue;
    if (s.connecting || s.writableLength > 0) n++;
    else if ((s._httpMessage || isUndiciSocket(s)) && s._handle?.hasRef?.() !== false) n++;
  }
  return n;
}

/** What keeps this process's event loop busy, by type, leaving out the runner's own. */
function resourceCounts() {
  const counts = new Map();
  for (const type of process.getActiveResourcesInfo()) if (!UNCOUNTED_RESOURCES.has(type)) counts.set(type, (counts.get(type) ?? 0) + 1);
  const busy = busySockets();
  if (busy > 0) counts.set('busy socket', busy);
  return counts;
}

/**
 * Whether the component still has work under way that could emit: more ref'd timers,
 * immediates, DNS or file requests, connections being made or carrying an HTTP request (see
 * busySockets) than before its call began, or a connection waiting for the hub's policy check.
 * A REST call that finished leaves nothing pending (its keep-alive socket went back to the
 * pool); neither do unref'd timers nor idle database connections.
 */
function pendingWork(baseline) {
  if (pendingChecks.size > 0) return true;
  for (const [type, n] of resourceCounts()) if (n > (baseline.get(type) ?? 0)) return true;
  return false;
}

/** How often a call that is over but still has work pending is looked at again. */
const QUIET_POLL_MS = 10;

/**
 * Whether work is pending, looked at after the promise callbacks and I/O of this turn of the
 * event loop: from inside an immediate, which is not counted while it runs (an unref'd one would
 * not wake a loop blocked waiting for IPC).
 */
function pendingAfterThisTurn(baseline) {
  return new Promise((resolve) => setImmediate(() => resolve(pendingWork(baseline))));
}

/**
 * Once a call is over, tells the hub when nothing of it is pending any more, so the hub may end
 * the step then (sailor keeps delivering emits that come after end; the hub holds the step for
 * them only while they can still come). Resolves whether nothing was pending at the first look;
 * with `tellFirst` false the caller tells the hub that itself (in its done message). Stops when a
 * newer call began.
 */
async function watchQuiet(state, tellFirst = true) {
  if (state.watching) return false;
  state.watching = true;
  const pending = await pendingAfterThisTurn(state.baseline);
  if (latestCallId !== state.callId) return false;
  if (!pending) {
    if (tellFirst) send({ type: 'quiet', callId: state.callId });
    return true;
  }
  const poll = () => {
    if (latestCallId !== state.callId) return;
    if (!pendingWork(state.baseline)) send({ type: 'quiet', callId: state.callId });
    // Unref'd, so this timer is not itself counted as pending work.
    else setTimeout(poll, QUIET_POLL_MS).unref();
  };
  setTimeout(poll, QUIET_POLL_MS).unref();
  return false;
}

let current;
let latestCallId = 0;

async function call(msg) {
  const { callId, fn } = msg;
  const state = { callId, ended: false, doneSent: false, watching: false, baseline: new Map() };
  current = state;
  latestCallId = callId;
  setEnv(msg.env);
  const emit = async (event, payload) => {
    // An Error does not survive JSON: send what the hub needs of it.
    const data = event === 'error' || event === 'rebound' ? describeError(payload) : toJson(payload);
    send({ type: 'emit', callId, event: String(event), payload: data });
    if (event === 'end' || event === 'error' || event === 'rebound') {
      state.ended = true;
      if (state.doneSent) void watchQuiet(state);
    }
  };
  const self = {
    emit,
    logger: makeLogger(callId, {}),
    getFlowVariables: () => msg.self.flowVariables ?? {},
    ...msg.self.ids,
    startupData: msg.args.startupData,
  };
  try {
    const mod = await load(msg.file);
    if (fn === 'check') {
      // Registration: the file loads; which of sailor's functions it exports.
      const names = ['process', 'init', 'startup', 'shutdown', 'getMetaModel', 'verifyCredentials', ...(msg.exportName ? [msg.exportName] : [])];
      send({ type: 'done', callId, ok: true, value: { exports: names.filter((n) => exported(mod, n)) }, isAsync: false });
      return;
    }
    const name = msg.exportName ?? fn;
    const f = exported(mod, name);
    if (!f) {
      if (fn === 'process') throw Object.assign(new Error(`${msg.file.split('/').pop()} exports no process(msg, cfg, snapshot) function`), { plexusKind: 'user' });
      send({ type: 'done', callId, ok: true, value: null, missing: true });
      return;
    }
    if (fn === 'process') await initOnce(mod, msg.file, msg.args.cfg, self);
    // What was under way before the call (init's connections, an earlier call's leftovers) is not its work.
    state.baseline = resourceCounts();
    let out;
    if (fn === 'process') {
      const m = msg.args.msg;
      // Older elastic.io code reads msg.body; both name the same object, as under sailor.
      m.body = m.data;
      out = f.call(self, m, msg.args.cfg, msg.args.snapshot ?? {});
    }
    else if (fn === 'shutdown') out = f.call(self, msg.args.cfg, msg.args.startupData);
    else if (fn === 'verifyCredentials') out = callVerifier(f, self, msg.args.cfg);
    else out = f.call(self, msg.args.cfg);
    // A process that returns a promise is over when it settles; one that does not, when it emits end.
    const isAsync = Boolean(out && typeof out.then === 'function');
    const value = await out;
    // A run that is already over says in the same message whether anything of it is left.
    const quiet = fn === 'process' && (isAsync || state.ended) ? await watchQuiet(state, false) : undefined;
    send({ type: 'done', callId, ok: true, value: toJson(value), isAsync, ...(quiet ? { quiet } : {}) });
    state.doneSent = true;
  } catch (err) {
    send({ type: 'done', callId, ok: false, error: describeError(err) });
  } finally {
    if (current === state) current = undefined;
  }
}

const initialised = new Map();

/** sailor's init(cfg): once per process and configuration, before the first call of the file. */
async function initOnce(mod, file, cfg, self) {
  const init = exported(mod, 'init');
  if (!init) return;
  const key = JSON.stringify(cfg);
  if (initialised.get(file) === key) return;
  await init.call(self, cfg);
  initialised.set(file, key);
}

/** verifyCredentials(cfg[, cb]): a promise, a value, or a node-style callback. */
function callVerifier(f, self, cfg) {
  if (f.length < 2) return f.call(self, cfg);
  return new Promise((resolve, reject) => {
    const out = f.call(self, cfg, (err, result) => (err ? reject(err) : resolve(result)));
    if (out && typeof out.then === 'function') out.then(resolve, reject);
  });
}

process.on('message', (msg) => {
  if (msg?.type === 'call') {
    void call(msg);
  } else if (msg?.type === 'checked') {
    const resolve = pendingChecks.get(msg.checkId);
    pendingChecks.delete(msg.checkId);
    resolve?.(msg.refusal);
  }
});
// A component's stray rejection or exception must not take the tenant's other calls down silently:
// report it against the call running, as sailor fails the message.
process.on('unhandledRejection', (reason) => {
  if (current) send({ type: 'emit', callId: current.callId, event: 'error', payload: describeError(reason) });
});
process.on('uncaughtException', (err) => {
  if (current) send({ type: 'emit', callId: current.callId, event: 'error', payload: describeError(err) });
});
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
send({ type: 'ready' });
