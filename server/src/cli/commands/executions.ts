/** `plexus executions …`: list, get, retry, watch. */
import { Option, type Command } from '@commander-js/extra-typings';
import { ExecutionStatus, type Execution, type ExecutionWithSteps, type StepRun } from '../../contracts/executions.js';
import { setTimeout as delay } from 'node:timers/promises';
import type { LiveEvent, PlexusClient } from '../client.js';
import { CliError } from '../errors.js';
import { durationMs } from '../options.js';
import { cell, printData, printItem, printList, renderTable, type Column, type Out } from '../output.js';
import type { CliContext } from '../program.js';
import { addPagingOptions, listPaged, resolveFlow } from './shared.js';

const executionColumns: ReadonlyArray<Column<Execution>> = [
  { header: 'ID', value: (x) => x.id },
  { header: 'FLOW', value: (x) => x.flowId },
  { header: 'STATUS', value: (x) => x.status },
  { header: 'TRIGGER', value: (x) => x.trigger },
  { header: 'STARTED', value: (x) => x.startedAt },
  { header: 'DURATION', value: (x) => (x.durationMs === null ? undefined : `${x.durationMs} ms`) },
  { header: 'STEPS', value: (x) => x.stepRuns },
  { header: 'FAILED', value: (x) => x.failedSteps },
];

const stepColumns: ReadonlyArray<Column<StepRun>> = [
  { header: 'NODE', value: (s) => s.nodeId },
  { header: 'PATH', value: (s) => s.path },
  { header: 'STATUS', value: (s) => s.status },
  { header: 'ATTEMPT', value: (s) => s.attempt },
  { header: 'FINISHED', value: (s) => s.finishedAt },
  { header: 'DURATION', value: (s) => `${s.durationMs} ms` },
  { header: 'ERROR', value: (s) => s.error },
];

export function registerExecutionCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  const executions = program.command('executions').description('executions (runs of flows): list, get, retry, watch');

  addPagingOptions(executions.command('list').description('list executions, newest first'))
    .addOption(new Option('--flow <flow>', 'only runs of this flow (name or id)'))
    .addOption(new Option('--status <status>', 'only executions in this status').choices(ExecutionStatus.options))
    .addOption(new Option('--from <time>', 'started at or after this ISO 8601 date-time'))
    .addOption(new Option('--to <time>', 'started before this ISO 8601 date-time'))
    .action(async (opts) => {
      const client = ctx.client();
      const flowId = opts.flow ? (await resolveFlow(client, opts.flow)).id : undefined;
      const page = await listPaged(opts, (p) => client.listExecutions({ ...p, flowId, status: opts.status, from: opts.from, to: opts.to }));
      printList(ctx.out(), page.data, executionColumns, page.meta, 'executions');
    });

  executions
    .command('get')
    .description('show one execution and its step runs (-o json / yaml include every input and output body)')
    .argument('<id>', 'execution id')
    .action(async (id) => printExecution(ctx.out(), await ctx.client().getExecution(id)));

  executions
    .command('retry')
    .description('re-run the failed steps of a failed execution from their stored input')
    .argument('<id>', 'execution id')
    .option('--watch', 'then follow it until it ends')
    .addOption(new Option('--timeout <duration>', 'how long --watch follows').argParser(durationMs).default(600_000))
    .action(async (id, opts) => {
      const client = ctx.client();
      const out = ctx.out();
      const retried = await client.retryExecution(id);
      if (opts.watch) return watchExecution(client, out, id, opts.timeout);
      if (out.format !== 'table') return printData(out, retried);
      out.stdout(`retrying ${retried.retriedSteps} failed step(s) of execution ${retried.id}; follow it with: plexus executions watch ${retried.id}`);
    });

  executions
    .command('watch')
    .description('follow an execution live, one line per step run, until it ends (exit 0 succeeded, 1 failed)')
    .argument('<id>', 'execution id')
    .addOption(new Option('--timeout <duration>', 'give up after this long').argParser(durationMs).default(600_000))
    .action(async (id, opts) => watchExecution(ctx.client(), ctx.out(), id, opts.timeout));
}

function printExecution(out: Out, x: ExecutionWithSteps): void {
  if (out.format !== 'table') return printData(out, x);
  printItem(out, x, [
    { header: 'ID', value: (e) => e.id },
    { header: 'FLOW', value: (e) => `${e.flowId}${e.flowVersion === null ? '' : ` (version ${e.flowVersion})`}` },
    { header: 'STATUS', value: (e) => e.status },
    { header: 'TRIGGER', value: (e) => e.trigger },
    { header: 'STARTED', value: (e) => e.startedAt },
    { header: 'FINISHED', value: (e) => e.finishedAt },
    { header: 'DURATION', value: (e) => (e.durationMs === null ? undefined : `${e.durationMs} ms`) },
    { header: 'PENDING', value: (e) => e.pendingSteps },
  ]);
  if (x.steps.length > 0) {
    out.stdout('');
    out.stdout(renderTable(stepColumns.map((c) => c.header), x.steps.map((s) => stepColumns.map((c) => cell(c.value(s))))));
  }
}

/**
 * Follows an execution until it ends, printing each step run once per state it reaches. It
 * reads the execution again whenever the hub's event stream says it changed; the stream's
 * events are not stored (at most once), so it also reads it every few seconds while nothing
 * comes. A hub without the stream, or a stream that ends, is followed by reading again with a
 * growing interval (0.25 s to 2 s). Everything is bounded by `timeoutMs`.
 */
async function watchExecution(client: PlexusClient, out: Out, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const show = executionPrinter(out);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const events = await client.executionEvents({ executionId: id }, abort.signal);
    if (events && (await followEvents(client, id, events, show))) return;
    let delayMs = 250;
    for (;;) {
      if (show(await client.getExecution(id))) return;
      if (Date.now() + delayMs > deadline) break;
      await sleep(delayMs, abort.signal);
      delayMs = Math.min(2_000, Math.round(delayMs * 1.5));
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  throw new CliError(`execution ${id} is still running after ${Math.round(timeoutMs / 1000)} s`);
}

/** Quiet stream: read the execution again this often anyway. */
const STREAM_SAFETY_READ_MS = 5_000;

/** True once the execution ended; false when the stream ended first. */
async function followEvents(client: PlexusClient, id: string, events: AsyncIterable<LiveEvent>, show: (x: ExecutionWithSteps) => boolean): Promise<boolean> {
  const it = events[Symbol.asyncIterator]();
  // A read still waiting when the watch ends fails with the aborted stream; nobody needs that.
  const nextEvent = (): Promise<IteratorResult<LiveEvent>> => {
    const p = it.next();
    p.catch(() => undefined);
    return p;
  };
  let pending = nextEvent();
  let ready = false;
  for (;;) {
    const next = await Promise.race([pending, delay(STREAM_SAFETY_READ_MS, undefined, { ref: false })]);
    if (next !== undefined) {
      if (next.done) return false;
      pending = nextEvent();
      if (next.value.event === 'ready') ready = true;
      else if (next.value.event !== 'execution') continue;
    }
    // Read only once subscribed (`ready`), so no change can fall between the read and the stream.
    if (!ready) continue;
    if (show(await client.getExecution(id))) return true;
  }
}

/** Prints what is new in each reading of the execution; true once it ended (throws when it failed). */
function executionPrinter(out: Out): (x: ExecutionWithSteps) => boolean {
  const printed = new Set<string>();
  return (x) => {
    if (out.format === 'table') {
      for (const s of x.steps) {
        const key = `${s.idempotencyKey}|${s.status}|${s.attempt}`;
        if (printed.has(key)) continue;
        printed.add(key);
        out.stdout(`${cell(s.finishedAt)}  ${s.nodeId}  ${s.path}  ${s.status}  attempt ${s.attempt}  ${s.durationMs} ms${s.error ? `  ${s.error}` : ''}`);
      }
    }
    if (x.status === 'running') return false;
    if (out.format === 'table') out.stdout(`execution ${x.id} ${x.status}${x.durationMs === null ? '' : ` in ${x.durationMs} ms`}`);
    else printData(out, x);
    if (x.status === 'failed') throw new CliError(`execution ${x.id} failed: ${x.failedSteps} step run(s) failed`);
    return true;
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal });
}
