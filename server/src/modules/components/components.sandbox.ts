/**
 * The sandbox of the `code` component: tenant JavaScript runs in child processes of the hub,
 * never in the hub itself, each run in a fresh context of an isolated-vm Isolate.
 *
 * Glossary
 * - Runner: one child process (components.sandbox-runner.mjs), started with plain `node`, an
 *   empty environment, cwd `/`, Node's permission model (reads of the runner files and the
 *   isolated-vm package only; no writes, no child processes, no workers) and, when the hub runs
 *   as root, the uid/gid of `nobody`. It holds nothing of the hub: no data directory, no database
 *   or bus connection, no secrets. It talks to the hub over IPC only.
 * - Binding: a runner belongs to the tenant it was started for, for its whole life. Another
 *   tenant's run never goes to it; when no runner is free, an idle runner of another tenant is
 *   stopped and a new one started (docs/adr/0009-code-steps-out-of-process.md says why a new
 *   process rather than a new isolate) — right away if that tenant has nothing waiting, else once
 *   the runner has served it for `switchAfterMs` (1 s), so tenants do not trade processes per run.
 * - Run: one code step on one message. A runner runs one at a time, in a fresh context, but
 *   holds up to PIPELINE_DEPTH of its tenant's runs: the next ones are sent while one runs, so
 *   the process never waits for the hub's event loop between runs (in a busy hub that wait, not
 *   the run, was what limited code steps: 334/s through a whole hub against 1,445/s alone). A
 *   run's wall time starts when it becomes the first of its runner; runs behind one that breaks a
 *   limit never started, and go back to the front of their tenant's queue.
 * - Slot: a runner busy with (or starting for) a run. `size` runners exist in all; a tenant
 *   holds at most `slotsFor(tenant)` of them. Queued runs are served round-robin across tenants.
 * - Limits: wall time (`timeoutMs`, a hub timer), CPU time (the runner's watchdog on the
 *   isolate's cpuTime), memory (the isolate's memoryLimit, and a hub watchdog on the runner's
 *   RSS). A violation kills the runner; the step fails with a user error naming the limit.
 *   A runner that dies otherwise fails only its own run, as transient, and is replaced.
 *
 * Only strings cross: the run's input as JSON, the emitted bodies as JSON, log lines, and fetch
 * requests and answers as JSON — the hub performs every fetch (platform/outbound's codeFetch),
 * under the operator's network policy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Logger } from '../../platform/logger.js';
import type { CodeFetch } from '../../platform/outbound/index.js';
import { StepError, classifyStepError } from './components.descriptor.js';

/** A fetch made by tenant code, as it reaches the hub; platform/outbound's codeFetch performs it. */
export type CodeFetchRequest = Parameters<CodeFetch>[0];
export type CodeFetchResponse = Awaited<ReturnType<CodeFetch>>;

export interface SandboxRun {
  tenant: string;
  code: string;
  /** JSON of `{id, body, headers, metadata, attachments, snapshot}`. */
  inputJson: string;
  timeoutMs: number;
  /** Performs one fetch of this run; `deadlineMs` is when the run's time is up (Date.now() clock). */
  fetch(request: CodeFetchRequest, deadlineMs: number): Promise<CodeFetchResponse>;
  /** Aborted: the run is dropped if still queued, or its runner killed (the step's time limit). */
  signal?: AbortSignal | undefined;
}

export interface LogLine {
  level: string;
  text: string;
}

export interface SandboxOutcome {
  /** JSON of the emitted bodies, in order. */
  emittedJson: string;
  logs: LogLine[];
}

/** What the code component needs of a sandbox. */
export interface CodeSandbox {
  run(run: SandboxRun): Promise<SandboxOutcome>;
}

export interface SandboxOptions {
  /** Runners (child processes) in all; each runs one step at a time. */
  size: number;
  /** Heap limit of each runner's isolate, in MB (isolated-vm's minimum is 8). */
  memoryMb: number;
  /** How many runners one tenant may hold at once (at least 1). */
  slotsFor(tenant: string): number;
  /** CPU time one run may use; a run's budget is the smaller of this and its timeoutMs. */
  cpuTimeMs: number;
  logger: Logger;
  /** RSS above which the hub kills a runner; default 128 MB + 4 × memoryMb (isolated-vm lets a determined script use 2-3 × its limit). */
  rssLimitMb?: number;
  /** An idle runner exits after this long, so an idle hub holds none. */
  idleMs?: number;
  /** A runner whose tenant still has work waiting is given to another tenant only after serving it this long. */
  switchAfterMs?: number;
  /** Caps per run. */
  maxOutputChars?: number;
  maxLogLines?: number;
  maxLogChars?: number;
  maxFetchCalls?: number;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const RUNNER_FILE = path.join(here, 'components.sandbox-runner.mjs');
const CONTEXT_FILE = path.join(here, 'components.sandbox-context.js');
/** Runs one runner holds at once (one running, the rest sent and waiting in the process). */
const PIPELINE_DEPTH = 16;
/** How long a runner may take to start before it counts as failed. */
const START_TIMEOUT_MS = 30_000;
/** How often a busy runner's RSS is read: there is no event for "memory grew", so this one timer polls. */
const RSS_CHECK_MS = 250;
/** The end of a runner's stderr kept for the hub log when it dies. */
const STDERR_TAIL_CHARS = 4_000;
const NOBODY_ID = 65_534;
/** What V8 prints when it gives up on a heap (it then aborts the process). */
const V8_OUT_OF_MEMORY = /is_heap_oom = 1|heap out of memory|Fatal JavaScript invalid size error|Fatal process out of memory/;

/** The folder of the isolated-vm package, and whether its addon has been built. */
export function findIsolatedVm(): { dir: string; isBuilt: boolean } {
  const dir = path.dirname(createRequire(import.meta.url).resolve('isolated-vm/package.json'));
  return { dir, isBuilt: fs.existsSync(path.join(dir, 'out', 'isolated_vm.node')) };
}

let nobody: { uid: number; gid: number } | undefined;

/** uid/gid of `nobody` when the hub runs as root (a runner must not); undefined otherwise. */
export function unprivilegedIds(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  nobody ??= lookUpNobody();
  return nobody;
}

function lookUpNobody(): { uid: number; gid: number } {
  try {
    const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'));
    const [, , uid, gid] = line?.split(':') ?? [];
    if (uid && gid && Number(uid) > 0) return { uid: Number(uid), gid: Number(gid) };
  } catch {
    // No /etc/passwd to read: fall back to the conventional id below.
  }
  return { uid: NOBODY_ID, gid: NOBODY_ID };
}

/** Resident memory of a process in MB, from /proc (Linux); undefined where that cannot be read. */
function residentMb(pid: number): number | undefined {
  try {
    const pages = Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return Number.isFinite(pages) ? (pages * 4096) / (1024 * 1024) : undefined;
  } catch {
    return undefined;
  }
}

const LogLines = z.array(z.object({ level: z.string().max(10), text: z.string() })).max(10_000);
const RunId = z.number().int().nonnegative();
/** What a runner may send. A runner is not trusted: anything else stops it. */
const RunnerMessage = z.union([
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('dropped'), runId: RunId }),
  z.object({ type: z.literal('fetch'), runId: RunId, callId: z.number().int().positive(), requestJson: z.string() }),
  z.object({ type: z.literal('done'), runId: RunId, ok: z.literal(true), emittedJson: z.string(), logs: LogLines }),
  z.object({
    type: z.literal('done'),
    runId: RunId,
    ok: z.literal(false),
    error: z.object({ name: z.string(), message: z.string(), line: z.number().int().optional(), column: z.number().int().optional(), transient: z.boolean() }),
    logs: LogLines,
  }),
  z.object({ type: z.literal('limit'), runId: RunId, limit: z.enum(['cpu', 'memory']), logs: LogLines }),
]);
type RunnerMessage = z.infer<typeof RunnerMessage>;

const FetchRequest = z.object({
  url: z.string().max(8_192),
  method: z.string().regex(/^[A-Za-z]{1,16}$/, 'must be an HTTP method'),
  headers: z.record(z.string().max(256), z.string().max(8_192)),
  body: z.string().optional(),
});

interface Task {
  run: SandboxRun;
  id: number;
  resolve(outcome: SandboxOutcome): void;
  reject(err: unknown): void;
}

type RunnerState = 'starting' | 'idle' | 'busy' | 'dead';

/** The hub's handle on one runner process. */
class Runner {
  readonly child: ChildProcess;
  state: RunnerState = 'starting';
  /** Its runs, in the order sent: the first is the one running. */
  readonly tasks: Task[] = [];
  readonly startedAt = Date.now();
  lastUsedAt = Date.now();
  private stderrTail = '';
  private fetchCalls = 0;
  private deadlineMs = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private rssTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly tenant: string,
    private readonly pool: SandboxPool,
    private readonly settings: Required<Omit<SandboxOptions, 'slotsFor' | 'logger'>> & { isolatedVm: string },
    private readonly logger: Logger,
  ) {
    const { isolatedVm } = settings;
    const ids = unprivilegedIds();
    this.child = spawn(
      process.execPath,
      [
        // isolated-vm needs it on Node >= 20 (the startup snapshot breaks its isolates).
        '--no-node-snapshot',
        '--experimental-permission',
        '--allow-addons',
        `--allow-fs-read=${RUNNER_FILE}`,
        `--allow-fs-read=${CONTEXT_FILE}`,
        `--allow-fs-read=${isolatedVm}`,
        '--disallow-code-generation-from-strings',
        '--no-warnings',
        RUNNER_FILE,
        JSON.stringify({
          memoryMb: settings.memoryMb,
          maxOutputChars: settings.maxOutputChars,
          maxLogLines: settings.maxLogLines,
          maxLogChars: settings.maxLogChars,
          maxFetchCalls: settings.maxFetchCalls,
          contextFile: CONTEXT_FILE,
          isolatedVm,
        }),
      ],
      { env: {}, cwd: '/', stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'json', ...(ids ?? {}) },
    );
    // Nothing should print here (console is a host function of the isolate); keep the end of
    // stderr for the log if the runner dies, and drop stdout, so neither pipe can fill up.
    this.child.stdout?.resume();
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    this.child.on('message', (raw: unknown) => this.onMessage(raw));
    this.child.on('error', (err) => this.onExit(`could not start: ${err.message}`));
    // 'close', not 'exit': by then stderr has been read to its end, and it may say why.
    this.child.on('close', (code, signal) => this.onExit(signal ? `signal ${signal}` : `exit code ${code}`));
    this.after(START_TIMEOUT_MS, () => {
      if (this.state === 'starting') this.fail(new StepError(`code: the sandbox process did not start within ${START_TIMEOUT_MS} ms`, 'transient'));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The run in progress (the first of its runs). */
  get task(): Task | undefined {
    return this.tasks[0];
  }

  /** Whether it can take another run of its tenant now. */
  get hasRoom(): boolean {
    return this.state !== 'dead' && !this.reclaiming && this.tasks.length < PIPELINE_DEPTH;
  }

  /** Set while runs it was sent are being taken back; it takes no new ones until it is idle. */
  private reclaiming = false;

  /**
   * Takes back the runs behind the one running, for another tenant waiting for a process: those
   * not yet sent at once, the others once the process confirms it had not started them.
   */
  reclaim(): void {
    if (this.tasks.length < 2 || this.reclaiming) return;
    if (this.state === 'starting') {
      this.pool.requeue(this.tenant, this.tasks.splice(1));
      return;
    }
    this.reclaiming = true;
    this.send({ type: 'drop', runIds: this.tasks.slice(1).map((t) => t.id) });
  }

  /** Takes a run: sent now if the runner is up, else once it says it is. */
  assign(task: Task): void {
    this.tasks.push(task);
    if (this.state === 'starting') return;
    if (this.state === 'idle') {
      this.clearTimers();
      this.state = 'busy';
      this.child.ref();
      this.watchMemory();
      this.startFirst();
    }
    this.sendRun(task);
  }

  private sendRun(task: Task): void {
    const { run } = task;
    this.send({ type: 'run', runId: task.id, tenant: this.tenant, code: run.code, inputJson: run.inputJson, cpuMs: Math.min(run.timeoutMs, this.settings.cpuTimeMs) });
  }

  /** The first run's clock starts: the runner starts it as soon as the one before it ended. */
  private startFirst(): void {
    this.clearTimers();
    const task = this.task;
    if (!task) return;
    this.fetchCalls = 0;
    const { run } = task;
    this.deadlineMs = Date.now() + run.timeoutMs;
    this.after(run.timeoutMs, () => this.fail(new StepError(`code: time limit exceeded (${run.timeoutMs} ms)`, 'user')));
  }

  private onMessage(raw: unknown): void {
    const parsed = RunnerMessage.safeParse(raw);
    if (!parsed.success) {
      this.fail(new StepError('code: the sandbox process sent a message it should not have', 'transient'));
      return;
    }
    const msg: RunnerMessage = parsed.data;
    if (msg.type === 'dropped') {
      const i = this.tasks.findIndex((t) => t.id === msg.runId);
      if (i < 0) return;
      const [task] = this.tasks.splice(i, 1);
      this.pool.requeue(this.tenant, [task!]);
      if (i === 0) this.settle();
      return;
    }
    if (msg.type === 'ready') {
      if (this.state !== 'starting') return;
      if (this.tasks.length === 0) {
        this.becomeIdle();
        return;
      }
      this.state = 'busy';
      this.child.ref();
      this.watchMemory();
      this.startFirst();
      for (const task of this.tasks) this.sendRun(task);
      return;
    }
    const task = this.task;
    if (!task || msg.runId !== task.id) {
      // A leftover of an earlier run of this tenant kept the isolate busy past its CPU budget.
      if (msg.type === 'limit') this.fail(new StepError('code: the sandbox was reset because an earlier run kept running after it ended', 'transient'));
      return;
    }
    if (msg.type === 'fetch') {
      this.performFetch(task, msg.callId, msg.requestJson);
      return;
    }
    if (msg.type === 'limit') {
      const what = msg.limit === 'cpu' ? `CPU time limit exceeded (${Math.min(task.run.timeoutMs, this.settings.cpuTimeMs)} ms)` : `memory limit exceeded (${this.settings.memoryMb} MB)`;
      this.fail(Object.assign(new StepError(`code: ${what}`, 'user'), { logs: msg.logs }));
      return;
    }
    this.tasks.shift();
    // The runner applies these caps already; the hub does not rely on it.
    const logs = msg.logs.slice(0, this.settings.maxLogLines).map((l) => ({ level: l.level, text: l.text.slice(0, this.settings.maxLogChars) }));
    if (msg.ok && msg.emittedJson.length > this.settings.maxOutputChars) {
      task.reject(Object.assign(new StepError(`code: output larger than ${this.settings.maxOutputChars} characters of JSON`, 'user'), { logs }));
    } else if (msg.ok) {
      task.resolve({ emittedJson: msg.emittedJson, logs });
    } else {
      const e = msg.error;
      const where = e.line !== undefined ? ` at line ${e.line}${e.column !== undefined ? `:${e.column}` : ''}` : '';
      task.reject(Object.assign(new StepError(`code: ${e.name}: ${e.message}${where}`, e.transient ? 'transient' : 'user'), { logs }));
    }
    this.settle();
  }

  /** After its first run ended or was taken back: the next one's clock starts, or it is idle. */
  private settle(): void {
    if (this.tasks.length > 0) {
      this.startFirst();
      // Room for one more of its tenant's runs.
      this.pool.onRunnerFree(this);
    } else {
      this.reclaiming = false;
      this.stopWatching();
      this.becomeIdle();
    }
  }

  private performFetch(task: Task, callId: number, requestJson: string): void {
    const answer = (result: { ok: true; response: CodeFetchResponse } | { ok: false; error: string; transient: boolean }): void => {
      if (this.task === task) this.send({ type: 'fetched', runId: task.id, callId, resultJson: JSON.stringify(result) });
    };
    // The runner counts too; this count is the one that holds if the runner does not.
    if (++this.fetchCalls > this.settings.maxFetchCalls) {
      answer({ ok: false, error: `more than ${this.settings.maxFetchCalls} fetch calls in one run`, transient: false });
      return;
    }
    let request: CodeFetchRequest;
    try {
      const parsed = FetchRequest.safeParse(JSON.parse(requestJson));
      if (!parsed.success) {
        answer({ ok: false, error: `invalid request: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'request'} ${i.message}`).join('; ')}`, transient: false });
        return;
      }
      request = { url: parsed.data.url, method: parsed.data.method.toUpperCase(), headers: parsed.data.headers, ...(parsed.data.body !== undefined ? { body: parsed.data.body } : {}) };
    } catch {
      answer({ ok: false, error: 'invalid request', transient: false });
      return;
    }
    task.run.fetch(request, this.deadlineMs).then(
      (response) => answer({ ok: true, response }),
      (err: unknown) => {
        // Refusals (a destination the policy forbids, a bad request, an answer too large) are the
        // code's to handle; a network that failed for now is transient, as for http-request.
        const e = classifyStepError(err);
        answer({ ok: false, error: e.message, transient: e.kind === 'transient' });
      },
    );
  }

  /** The hub's own memory check, independent of the isolate's limit and of the runner's cooperation. */
  private watchMemory(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    this.rssTimer = setInterval(() => {
      const mb = residentMb(pid);
      if (mb !== undefined && mb > this.settings.rssLimitMb) {
        this.fail(new StepError(`code: memory limit exceeded (the sandbox process used more than ${this.settings.rssLimitMb} MB)`, 'user'));
      }
    }, RSS_CHECK_MS);
    this.rssTimer.unref();
  }

  private stopWatching(): void {
    this.clearTimers();
    clearInterval(this.rssTimer);
    this.rssTimer = undefined;
  }

  private becomeIdle(): void {
    this.state = 'idle';
    this.lastUsedAt = Date.now();
    this.child.unref();
    this.after(this.settings.idleMs, () => {
      if (this.state === 'idle') this.stop();
    });
    this.pool.onRunnerFree(this);
  }

  /** Fails the current run (if any) with `err` and kills the runner; the runs behind it never started and wait for another. */
  fail(err: unknown): void {
    const [task, ...waiting] = this.tasks.splice(0);
    this.pool.requeue(this.tenant, waiting);
    this.stop();
    task?.reject(err);
  }

  /** Kills the runner at once: it is never reused after a limit, a crash or a tenant change. */
  stop(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.stopWatching();
    this.child.kill('SIGKILL');
    this.pool.onRunnerGone(this);
  }

  private onExit(why: string): void {
    if (this.state === 'dead') return;
    // A single allocation too large for the isolate can make V8 abort the whole process rather
    // than throw: that is the code's memory limit, not a crash to retry.
    if (this.task && V8_OUT_OF_MEMORY.test(this.stderrTail)) {
      this.fail(new StepError(`code: memory limit exceeded (${this.settings.memoryMb} MB)`, 'user'));
      return;
    }
    if (this.task || this.state === 'starting') {
      this.logger.warn({ tenant: this.tenant, pid: this.child.pid, why, stderr: this.stderrTail.trim() || undefined }, 'code sandbox process exited unexpectedly');
    }
    this.fail(new StepError(`code: the sandbox process exited unexpectedly (${why})`, 'transient'));
  }

  private send(message: object): void {
    try {
      this.child.send(message);
    } catch {
      this.fail(new StepError('code: the sandbox process cannot be reached', 'transient'));
    }
  }

  private after(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason instanceof Error ? signal.reason : new StepError('code: the step was cancelled', 'transient');
}

/** The runners, their bindings, and the queue of runs waiting for one. */
export class SandboxPool implements CodeSandbox {
  private readonly runners = new Set<Runner>();
  /** Waiting runs per tenant. */
  private readonly queues = new Map<string, Task[]>();
  /**
   * When each tenant was last served (a counter, not a clock): among tenants that can start a
   * run, the one served longest ago goes first. Forgotten once a tenant has nothing queued or running.
   */
  private readonly lastServed = new Map<string, number>();
  private serveCount = 0;
  private isDispatching = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private readonly settings: Required<Omit<SandboxOptions, 'slotsFor' | 'logger'>> & { isolatedVm: string };
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: SandboxOptions) {
    this.settings = {
      size: options.size,
      memoryMb: options.memoryMb,
      cpuTimeMs: options.cpuTimeMs,
      rssLimitMb: options.rssLimitMb ?? 128 + 4 * options.memoryMb,
      idleMs: options.idleMs ?? 60_000,
      switchAfterMs: options.switchAfterMs ?? 1_000,
      maxOutputChars: options.maxOutputChars ?? 10 * 1024 * 1024,
      maxLogLines: options.maxLogLines ?? 100,
      maxLogChars: options.maxLogChars ?? 2_000,
      maxFetchCalls: options.maxFetchCalls ?? 50,
      isolatedVm: findIsolatedVm().dir,
    };
  }

  run(run: SandboxRun): Promise<SandboxOutcome> {
    if (this.closed) return Promise.reject(new StepError('code: the sandbox is shut down', 'transient'));
    if (run.signal?.aborted) return Promise.reject(abortReason(run.signal));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => this.cancel(task, abortReason(run.signal!));
      const task: Task = {
        run,
        id: this.nextId++,
        resolve: (outcome) => {
          run.signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
        reject: (err) => {
          run.signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      run.signal?.addEventListener('abort', onAbort, { once: true });
      const queue = this.queues.get(run.tenant);
      if (queue) queue.push(task);
      else this.queues.set(run.tenant, [task]);
      this.dispatch();
    });
  }

  /** Ends a run its step gave up on: out of the queue, or its runner killed (never reused). */
  private cancel(task: Task, err: unknown): void {
    const queue = this.queues.get(task.run.tenant);
    const i = queue?.indexOf(task) ?? -1;
    if (queue && i >= 0) {
      queue.splice(i, 1);
      if (queue.length === 0) this.queues.delete(task.run.tenant);
      task.reject(err);
      return;
    }
    for (const r of this.runners) {
      if (r.task === task) {
        r.fail(err);
        return;
      }
    }
  }

  /** The runners alive now and whom they belong to (tests, diagnostics). */
  describe(): Array<{ pid: number | undefined; tenant: string; state: RunnerState; runs: number }> {
    return [...this.runners].map((r) => ({ pid: r.pid, tenant: r.tenant, state: r.state, runs: r.tasks.length }));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.wakeTimer);
    for (const queue of this.queues.values()) for (const t of queue) t.reject(new StepError('code: the sandbox is shut down', 'transient'));
    this.queues.clear();
    const exits = [...this.runners].map((r) => {
      // An idle runner is unref'd; waiting for its exit must keep the process alive until it comes.
      r.child.ref();
      return new Promise<void>((resolve) => (r.child.exitCode !== null || r.child.signalCode !== null ? resolve() : r.child.once('exit', () => resolve())));
    });
    for (const r of [...this.runners]) r.fail(new StepError('code: the sandbox is shut down', 'transient'));
    await Promise.all(exits);
  }

  onRunnerFree(_runner: Runner): void {
    this.dispatch();
  }

  onRunnerGone(runner: Runner): void {
    this.runners.delete(runner);
    if (!this.closed) this.dispatch();
  }

  /** Starts what can start now: per tenant in round-robin order, within its slots and the pool's size. */
  private dispatch(): void {
    // Stopping a runner to make room reports back here; the loop below picks that up itself.
    if (this.isDispatching) return;
    this.isDispatching = true;
    try {
      for (let pick = this.nextPick(); pick; pick = this.nextPick()) {
        const runner = pick.runner ?? this.startRunner(pick.tenant, pick.replacing);
        const queue = this.queues.get(pick.tenant)!;
        const task = queue.shift()!;
        if (queue.length === 0) this.queues.delete(pick.tenant);
        this.lastServed.set(pick.tenant, ++this.serveCount);
        runner.assign(task);
      }
    } finally {
      this.isDispatching = false;
    }
    for (const tenant of this.lastServed.keys()) if (!this.queues.has(tenant) && this.slotsHeld(tenant) === 0) this.lastServed.delete(tenant);
  }

  /**
   * Whose turn it is, and on which runner. Among tenants with a run waiting and a slot to spare,
   * the one served longest ago goes first, on (in order of cost) an idle runner of its own, a
   * free place in the pool, an idle runner of a tenant with nothing waiting, or an idle runner
   * of a tenant that has work waiting too — the last only once that runner has served its tenant
   * for `switchAfterMs`: replacing a process costs a spawn, and tenants taking runners from each
   * other on every run would spend all the time spawning (bench/code.ts measured 4.5 runs/s).
   */
  private nextPick(): { tenant: string; runner?: Runner; replacing?: Runner } | undefined {
    if (this.closed) return undefined;
    const now = Date.now();
    const idle = [...this.runners].filter((r) => r.state === 'idle' && !r.task).sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    const candidates = [...this.queues.keys()].sort((a, b) => (this.lastServed.get(a) ?? 0) - (this.lastServed.get(b) ?? 0));
    let wakeAt = Infinity;
    for (const tenant of candidates) {
      const own = idle.find((r) => r.tenant === tenant);
      if (own) return { tenant, runner: own };
      // Its own busy runner with room, the least loaded: where its runs queue when it is at its
      // slots, or when the pool has nothing better for it right now.
      // Not once it has served its tenant for `switchAfterMs` while another tenant waits for a
      // process: then it drains, and the process goes to the one waiting.
      let ownBusy: Runner | undefined;
      for (const r of this.runners) {
        if (r.tenant !== tenant || !r.task || !r.hasRoom || (ownBusy && r.tasks.length >= ownBusy.tasks.length)) continue;
        if (now - r.startedAt >= this.settings.switchAfterMs && this.isWaitingForAProcess(tenant)) continue;
        ownBusy = r;
      }
      if (this.slotsHeld(tenant) >= Math.max(1, this.options.slotsFor(tenant))) {
        if (ownBusy) return { tenant, runner: ownBusy };
        continue;
      }
      if (this.runners.size < this.settings.size) return { tenant };
      const unwanted = idle.find((r) => !this.queues.has(r.tenant));
      if (unwanted) return { tenant, replacing: unwanted };
      const served = idle.find((r) => now - r.startedAt >= this.settings.switchAfterMs);
      if (served) return { tenant, replacing: served };
      if (ownBusy) return { tenant, runner: ownBusy };
      for (const r of idle) wakeAt = Math.min(wakeAt, r.startedAt + this.settings.switchAfterMs);
    }
    // A tenant waiting for a process: runs queued in the processes of others that have served
    // theirs long enough go back to their queues, so those processes come free after one run.
    for (const tenant of candidates) {
      if (!this.isWaitingForAProcess(tenant, true)) continue;
      for (const r of this.runners) if (r.tenant !== tenant && now - r.startedAt >= this.settings.switchAfterMs) r.reclaim();
      break;
    }
    // An idle runner whose tenant is at its slots cannot be given away yet: look again when it can.
    if (wakeAt < Infinity) this.wakeAt(wakeAt - now);
    return undefined;
  }

  /** Whether a tenant other than `tenant` (or `tenant` itself, with `self`) has runs queued and no process at all while the pool is full. */
  private isWaitingForAProcess(tenant: string, self = false): boolean {
    if (this.runners.size < this.settings.size) return false;
    for (const other of this.queues.keys()) {
      if ((other === tenant) !== self) continue;
      let has = false;
      for (const r of this.runners) if (r.tenant === other) has = true;
      if (!has) return true;
    }
    return false;
  }

  /** Runs taken back from a runner that was stopped before it started them: first in line again. */
  requeue(tenant: string, tasks: Task[]): void {
    if (tasks.length === 0) return;
    if (this.closed) {
      for (const t of tasks) t.reject(new StepError('code: the sandbox is shut down', 'transient'));
      return;
    }
    // Ids follow arrival: sorting puts them back where they were, ahead of later arrivals.
    const queue = [...(this.queues.get(tenant) ?? []), ...tasks].sort((a, b) => a.id - b.id);
    this.queues.set(tenant, queue);
  }

  private wakeAt(delayMs: number): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.dispatch(), Math.max(1, delayMs));
  }

  private slotsHeld(tenant: string): number {
    let held = 0;
    for (const r of this.runners) if (r.tenant === tenant && r.task) held++;
    return held;
  }

  /** A new runner for `tenant`, in place of `replacing` when the pool is full. */
  private startRunner(tenant: string, replacing: Runner | undefined): Runner {
    replacing?.stop();
    const runner = new Runner(tenant, this, this.settings, this.options.logger);
    this.runners.add(runner);
    return runner;
  }
}
