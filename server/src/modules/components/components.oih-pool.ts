/**
 * The processes OIH / elastic.io components run in: never the hub's own, never shared between
 * tenants.
 *
 * Glossary
 * - Runner: a child process (components.oih-runner.mjs) of one tenant for its whole life, started
 *   with plain `node`, an environment holding nothing of the hub, cwd/TMPDIR/HOME in a scratch
 *   folder of that tenant (wiped when the runner ends), Node's permission model (reads of the
 *   runner file and the component folders only, writes to its scratch folder only, no child
 *   processes, workers or native addons) and, when the hub runs as root, the uid/gid of `nobody`.
 * - Call: one function of a component (`process`, `init`, `startup`, `shutdown`,
 *   `verifyCredentials`, a select-model function) run in a runner, with the ELASTICIO_* values
 *   of that call in the runner's `process.env`. A runner runs one call at a time.
 * - Session: the hub's side of a call: the emits and log lines as they arrive, and `done` when
 *   the function returned (or its promise settled). The caller ends it (`release`) when the step
 *   is over; emits arriving after that are dropped with a warning.
 * - Limits: the call's time limit (a hub timer; the runner is killed), its RSS (a hub watchdog),
 *   runners per tenant and in all; calls wait in a queue per tenant, served round-robin.
 *
 * Every TCP connection a runner opens is asked of the hub first (`checkAddress`): the operator's
 * outbound policy applies to components as to http-request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Logger } from '../../platform/logger.js';
import { StepError } from './components.descriptor.js';
import { unprivilegedIds } from './components.sandbox.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const OIH_RUNNER_FILE = path.join(here, 'components.oih-runner.mjs');
const START_TIMEOUT_MS = 30_000;
const STDERR_TAIL_CHARS = 4_000;
const RSS_CHECK_MS = 500;

export type OihCallKind = 'process' | 'init' | 'startup' | 'shutdown' | 'verifyCredentials' | 'dynamic' | 'check';

export interface OihCall {
  tenant: string;
  fn: OihCallKind;
  /** The component file the function lives in (absolute). */
  file: string;
  /** The component's folder: the runner must be allowed to read it. */
  root: string;
  /** The export to call when it is not named like `fn` (select-model and metadata functions). */
  exportName?: string;
  args: { msg?: unknown; cfg: Record<string, unknown>; snapshot?: unknown; startupData?: unknown };
  /** The ELASTICIO_* variables of this call. */
  env: Record<string, string>;
  /** What `this` carries besides emit and logger. */
  self: { ids: Record<string, string>; flowVariables: Record<string, unknown> };
  timeoutMs: number;
}

export const OihErrorInfo = z.object({
  name: z.string(),
  message: z.string(),
  status: z.number().optional(),
  code: z.string().optional(),
  retryAfter: z.string().optional(),
});
export type OihErrorInfo = z.infer<typeof OihErrorInfo>;

export type OihDone = { ok: true; value: unknown; isAsync: boolean; missing: boolean } | { ok: false; error: OihErrorInfo };

export interface OihHandlers {
  onEmit(event: string, payload: unknown): void;
  onLog(level: string, msg: string, fields: Record<string, unknown>): void;
  /** The runner was killed (a limit) or died while the call was still open, even after `done`. */
  onGone?(err: StepError): void;
  /** The call is over and the component has no work left pending that could still emit. */
  onQuiet?(): void;
}

export interface OihSession {
  /** The function returned or its promise settled; rejects (StepError) on a limit or a dead runner. */
  readonly done: Promise<OihDone>;
  /** The step is over: later emits are dropped; the runner serves the next call once `done` arrived. */
  release(): void;
  /** The step's time limit: the runner is killed, so the call never runs beside its retry. */
  abort(): void;
}

const RunnerMessage = z.union([
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('emit'), callId: z.number(), event: z.string().max(100), payload: z.unknown() }),
  z.object({ type: z.literal('log'), callId: z.number(), level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']), msg: z.string(), fields: z.record(z.string(), z.unknown()) }),
  z.object({ type: z.literal('check'), checkId: z.number(), host: z.string().max(1_000), address: z.string().max(100), port: z.number() }),
  z.object({ type: z.literal('done'), callId: z.number(), ok: z.literal(true), value: z.unknown(), isAsync: z.boolean().optional(), missing: z.boolean().optional(), quiet: z.boolean().optional() }),
  z.object({ type: z.literal('done'), callId: z.number(), ok: z.literal(false), error: OihErrorInfo }),
  z.object({ type: z.literal('quiet'), callId: z.number() }),
]);

export interface OihPoolOptions {
  /** Runners in all. */
  size: number;
  /** Runners one tenant may hold at once. */
  perTenant: number;
  /** Folders every runner may read besides the components' own (e.g. PLEXUS_COMPONENT_PATHS). */
  readRoots: () => readonly string[];
  /** Why the policy refuses this connection, or undefined when it may be made. */
  checkAddress(tenant: string, host: string, address: string, port: number): string | undefined;
  logger: Logger;
  /** RSS above which a runner is killed. */
  rssLimitMb?: number;
  idleMs?: number;
}

interface Pending {
  call: OihCall;
  handlers: OihHandlers;
  resolve(session: OihSession): void;
}

class OihRunner {
  readonly child: ChildProcess;
  state: 'starting' | 'idle' | 'busy' | 'dead' = 'starting';
  lastUsedAt = Date.now();
  private callId = 0;
  private active: { id: number; handlers: OihHandlers; released: boolean; doneArrived: boolean; resolve(d: OihDone): void; reject(e: unknown): void; timer: NodeJS.Timeout } | undefined;
  private stderrTail = '';
  private readonly scratch: string;
  private rssTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private waitingStart: (() => void) | undefined;

  constructor(
    readonly tenant: string,
    private readonly pool: OihPool,
    private readonly options: OihPoolOptions,
    /** What this runner may read, fixed at its start. */
    readonly roots: readonly string[],
  ) {
    // `nobody` only where it can read the components (every folder up to them open to others);
    // otherwise the hub's own user, with the permission model as the fence (logged once).
    const ids = roots.every(isOpenToOthers) ? unprivilegedIds() : undefined;
    if (!ids && unprivilegedIds()) warnOnce(options.logger, roots);
    this.scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-'));
    if (ids) fs.chownSync(this.scratch, ids.uid, ids.gid);
    const reads = [OIH_RUNNER_FILE, ...roots].filter((p) => fs.existsSync(p));
    this.child = spawn(
      process.execPath,
      ['--experimental-permission', ...reads.map((r) => `--allow-fs-read=${r}`), `--allow-fs-read=${this.scratch}`, `--allow-fs-write=${this.scratch}`, '--no-warnings', OIH_RUNNER_FILE],
      {
        env: { TMPDIR: this.scratch, HOME: this.scratch, NODE_ENV: 'production' },
        cwd: this.scratch,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        serialization: 'json',
        ...(ids ?? {}),
      },
    );
    // Components print to stdout (console.log) as they do under sailor: it goes nowhere here;
    // their logger is the way to the hub log. The end of stderr is kept for when it dies.
    this.child.stdout?.resume();
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    this.child.on('message', (raw: unknown) => this.onMessage(raw));
    this.child.on('error', (err) => this.onExit(`could not start: ${err.message}`));
    this.child.on('close', (code, signal) => this.onExit(signal ? `signal ${signal}` : `exit code ${code}`));
    const startTimer = setTimeout(() => {
      if (this.state === 'starting') this.kill(`did not start within ${START_TIMEOUT_MS} ms`);
    }, START_TIMEOUT_MS);
    startTimer.unref();
  }

  /** Runs a call: now when ready, else once the runner says it is. */
  start(call: OihCall, handlers: OihHandlers): OihSession {
    this.state = 'busy';
    clearTimeout(this.idleTimer);
    this.child.ref();
    this.child.channel?.ref();
    const id = ++this.callId;
    let resolveDone!: (d: OihDone) => void;
    let rejectDone!: (e: unknown) => void;
    const done = new Promise<OihDone>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    // Nobody may be waiting on `done` when the runner dies after release: no unhandled rejection.
    done.catch(() => undefined);
    const timer = setTimeout(() => this.kill(`time limit exceeded (${call.timeoutMs} ms)`, 'user'), call.timeoutMs);
    this.active = { id, handlers, released: false, doneArrived: false, resolve: resolveDone, reject: rejectDone, timer };
    const send = (): void => {
      this.child.send({ type: 'call', callId: id, fn: call.fn, file: call.file, exportName: call.exportName, args: call.args, env: call.env, self: call.self });
      this.watchMemory();
    };
    if (this.state === 'busy' && this.waitingStart === undefined && this.ready) send();
    else this.waitingStart = send;
    return {
      done,
      release: () => {
        const a = this.active;
        if (!a || a.id !== id) return;
        a.released = true;
        if (a.doneArrived) this.finishCall();
      },
      abort: () => {
        if (this.active?.id === id) this.kill('stopped at the step time limit');
      },
    };
  }

  private ready = false;

  private onMessage(raw: unknown): void {
    const parsed = RunnerMessage.safeParse(raw);
    if (!parsed.success) {
      this.kill('sent a message it should not have');
      return;
    }
    const msg = parsed.data;
    if (msg.type === 'ready') {
      this.ready = true;
      if (this.state === 'starting') this.becomeIdle();
      const send = this.waitingStart;
      this.waitingStart = undefined;
      send?.();
      return;
    }
    if (msg.type === 'check') {
      let refusal: string | undefined;
      try {
        refusal = this.options.checkAddress(this.tenant, msg.host, msg.address, msg.port);
      } catch (err) {
        refusal = `the check failed: ${(err as Error).message}`;
      }
      if (this.child.connected) this.child.send({ type: 'checked', checkId: msg.checkId, ...(refusal ? { refusal } : {}) });
      return;
    }
    const a = this.active;
    if (!a || msg.callId !== a.id) return;
    if (msg.type === 'log') {
      a.handlers.onLog(msg.level, msg.msg, msg.fields);
      return;
    }
    if (msg.type === 'emit') {
      if (a.released) {
        this.options.logger.warn({ event: msg.event, tenant: this.tenant }, 'an OIH component emitted after its step ended; dropped');
        return;
      }
      a.handlers.onEmit(msg.event, msg.payload);
      return;
    }
    if (msg.type === 'quiet') {
      if (!a.released) a.handlers.onQuiet?.();
      return;
    }
    a.doneArrived = true;
    if (msg.ok && msg.quiet && !a.released) a.handlers.onQuiet?.();
    a.resolve(msg.ok ? { ok: true, value: msg.value, isAsync: msg.isAsync === true, missing: msg.missing === true } : { ok: false, error: msg.error });
    if (a.released) this.finishCall();
  }

  private finishCall(): void {
    const a = this.active;
    if (a) clearTimeout(a.timer);
    this.active = undefined;
    clearInterval(this.rssTimer);
    if (this.state === 'dead') return;
    this.becomeIdle();
  }

  private becomeIdle(): void {
    this.state = 'idle';
    this.lastUsedAt = Date.now();
    // An idle runner keeps no process alive: neither the child handle nor its IPC channel.
    this.child.unref();
    this.child.channel?.unref();
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stop(), this.options.idleMs ?? 60_000);
    this.idleTimer.unref();
    this.pool.dispatch();
  }

  private watchMemory(): void {
    const limit = this.options.rssLimitMb ?? 1_024;
    clearInterval(this.rssTimer);
    this.rssTimer = setInterval(() => {
      const mb = residentMb(this.child.pid);
      if (mb !== undefined && mb > limit) this.kill(`memory limit exceeded (${limit} MB resident)`, 'user');
    }, RSS_CHECK_MS);
    this.rssTimer.unref();
  }

  /** Kills the runner; the call running fails with `why`. */
  kill(why: string, kind: 'user' | 'transient' = 'transient'): void {
    const a = this.active;
    const err = new StepError(`component: ${why}`, kind);
    if (a && !a.doneArrived) a.reject(err);
    if (a && !a.released) a.handlers.onGone?.(err);
    this.stop();
  }

  stop(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.child.kill('SIGKILL');
  }

  private onExit(reason: string): void {
    const wasDead = this.state === 'dead';
    this.state = 'dead';
    clearInterval(this.rssTimer);
    clearTimeout(this.idleTimer);
    const a = this.active;
    this.active = undefined;
    if (a) {
      clearTimeout(a.timer);
      const err = new StepError(`component: its process ended (${reason})`, 'transient');
      if (!a.doneArrived) a.reject(err);
      if (!a.released) a.handlers.onGone?.(err);
    }
    if (!wasDead && a) this.options.logger.warn({ tenant: this.tenant, reason, stderr: this.stderrTail.slice(-1_000) }, 'OIH component process ended during a call');
    fs.rm(this.scratch, { recursive: true, force: true }, () => undefined);
    this.pool.forget(this);
  }
}

let warned = false;
function warnOnce(logger: Logger, roots: readonly string[]): void {
  if (warned) return;
  warned = true;
  logger.warn({ roots }, 'OIH component processes run as the hub user: a component folder is not readable by others (chmod o+rx it and its parents to run them as nobody)');
}

/** Whether `nobody` could read `dir`: every folder on the way searchable by others, and it readable. */
function isOpenToOthers(dir: string): boolean {
  try {
    if ((fs.statSync(dir).mode & 0o005) !== 0o005) return false;
    for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) if ((fs.statSync(d).mode & 0o001) === 0) return false;
    return true;
  } catch {
    // A root that does not exist (yet) is not read by anyone.
    return true;
  }
}

function residentMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const pages = Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(pages) ? (pages * 4096) / (1024 * 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** The runners of all tenants. */
export class OihPool {
  private readonly runners = new Set<OihRunner>();
  private readonly queues = new Map<string, Pending[]>();
  private readonly lastServed = new Map<string, number>();
  private closed = false;
  /** Component folders calls have named: a runner started later may read them all. */
  private readonly knownRoots = new Set<string>();

  constructor(private readonly options: OihPoolOptions) {}

  /** Starts a call in a runner of its tenant once one is free. */
  open(call: OihCall, handlers: OihHandlers): Promise<OihSession> {
    if (this.closed) return Promise.reject(new StepError('component: the hub is shutting down', 'transient'));
    this.knownRoots.add(call.root);
    return new Promise((resolve) => {
      const queue = this.queues.get(call.tenant) ?? [];
      queue.push({ call, handlers, resolve });
      this.queues.set(call.tenant, queue);
      this.dispatch();
    });
  }

  /** Runners alive, by tenant (tests and metrics). */
  runnersOf(tenant: string): number[] {
    return [...this.runners].filter((r) => r.tenant === tenant && r.state !== 'dead').map((r) => r.child.pid ?? 0);
  }

  dispatch(): void {
    if (this.closed) return;
    const tenants = [...this.queues.keys()].sort((a, b) => (this.lastServed.get(a) ?? 0) - (this.lastServed.get(b) ?? 0));
    for (const tenant of tenants) {
      const queue = this.queues.get(tenant);
      while (queue && queue.length > 0) {
        const runner = this.runnerFor(tenant, queue[0]!.call.root);
        if (!runner) break;
        const next = queue.shift()!;
        this.lastServed.set(tenant, Date.now());
        next.resolve(runner.start(next.call, next.handlers));
      }
      if (queue && queue.length === 0) this.queues.delete(tenant);
    }
  }

  /** An idle runner of the tenant, a new one, or one taken from an idle tenant; undefined: wait. */
  private runnerFor(tenant: string, root: string): OihRunner | undefined {
    let live = [...this.runners].filter((r) => r.state !== 'dead');
    let own = live.filter((r) => r.tenant === tenant);
    const idle = own.find((r) => r.state === 'idle' && r.roots.includes(root));
    if (idle) return idle;
    // A runner started before this component was known cannot read it: replace an idle one.
    const blind = own.find((r) => r.state === 'idle');
    if (blind && own.length >= Math.max(1, this.options.perTenant)) {
      blind.stop();
      live = live.filter((r) => r !== blind);
      own = own.filter((r) => r !== blind);
    }
    if (own.length >= Math.max(1, this.options.perTenant)) return undefined;
    if (live.length >= this.options.size) {
      const spare = live.filter((r) => r.state === 'idle' && r.tenant !== tenant).sort((a, b) => a.lastUsedAt - b.lastUsedAt)[0];
      if (!spare) return undefined;
      spare.stop();
    }
    const runner = new OihRunner(tenant, this, this.options, [...new Set([...this.options.readRoots(), ...this.knownRoots])]);
    this.runners.add(runner);
    return runner;
  }

  forget(runner: OihRunner): void {
    this.runners.delete(runner);
    this.dispatch();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.runners) r.stop();
    this.runners.clear();
  }
}
