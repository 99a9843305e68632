/** `plexus flows …`: list, inspect, apply / diff files (GitOps), start, stop, delete. */
import { Option, type Command } from '@commander-js/extra-typings';
import { SingleBar } from 'cli-progress';
import { FlowStatus, type Flow } from '../../contracts/flows.js';
import type { PlexusClient } from '../client.js';
import { CliError, EXIT } from '../errors.js';
import { applyItem, diffOf, planApply, waitForFlowStatus, type ApplyResult } from '../flow-apply.js';
import { loadFlowDocuments } from '../flow-files.js';
import { collect, durationMs } from '../options.js';
import { printData, printItem, printList, renderTable, type Column } from '../output.js';
import type { CliContext } from '../program.js';
import { addPagingOptions, listPaged, resolveFlow } from './shared.js';

const flowColumns: ReadonlyArray<Column<Flow>> = [
  { header: 'NAME', value: (f) => f.name },
  { header: 'ID', value: (f) => f.id },
  { header: 'STATUS', value: (f) => f.status },
  { header: 'VERSION', value: (f) => f.version },
  { header: 'TRIGGER', value: (f) => triggerOf(f) },
  { header: 'NODES', value: (f) => f.graph.nodes.length },
  { header: 'UPDATED', value: (f) => f.updatedAt },
];

export function registerFlowCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  const flows = program.command('flows').description('flows: list, get, apply -f, diff -f, start, stop, delete');

  addPagingOptions(flows.command('list').description("list the tenant's flows"))
    .addOption(new Option('--status <status>', 'only flows in this status').choices(FlowStatus.options))
    .addOption(new Option('--search <text>', 'name or description contains'))
    .action(async (opts) => {
      const client = ctx.client();
      const page = await listPaged(opts, (p) => client.listFlows({ ...p, status: opts.status, search: opts.search, sort: 'name' }));
      printList(ctx.out(), page.data, flowColumns, page.meta, 'flows');
    });

  flows
    .command('get')
    .description('show one flow (-o yaml gives a file that flows apply takes back)')
    .argument('<flow>', 'name or id')
    .action(async (ref) => {
      const client = ctx.client();
      const flow = await resolveFlow(client, ref);
      printItem(ctx.out(), flow, [
        { header: 'NAME', value: (f) => f.name },
        { header: 'ID', value: (f) => f.id },
        { header: 'STATUS', value: (f) => (f.statusReason ? `${f.status} (${f.statusReason})` : f.status) },
        { header: 'VERSION', value: (f) => f.version },
        { header: 'DESCRIPTION', value: (f) => f.description },
        { header: 'TRIGGER', value: (f) => triggerOf(f) },
        { header: 'WEBHOOK', value: (f) => (f.cron ? undefined : `${client.url}/hook/${f.id}`) },
        { header: 'NODES', value: (f) => f.graph.nodes.map((n) => `${n.id} (${n.componentId}.${n.function})`) },
        { header: 'EDGES', value: (f) => f.graph.edges.map((e) => `${e.source} → ${e.target}`) },
        { header: 'CREATED', value: (f) => f.createdAt },
        { header: 'UPDATED', value: (f) => f.updatedAt },
      ]);
    });

  flows
    .command('apply')
    .description('create or update flows from YAML / JSON files, matched by name; unchanged ones are left alone')
    .requiredOption('-f, --file <path>', 'a flow file or a directory of them (repeatable)', collect)
    .option('-R, --recursive', 'also read the sub-directories of a directory')
    .option('--prune', "delete the tenant's flows that no file names (the files are the whole truth)")
    .option('--restart', 'change an active flow by stopping it, updating it and starting it again')
    .addOption(new Option('--timeout <duration>', 'how long to wait for a flow to stop').argParser(durationMs).default(60_000))
    .action(async (opts) => {
      const docs = loadFlowDocuments(opts.file, { recursive: opts.recursive });
      if (opts.prune && docs.length === 0) throw new CliError('no flow files found; refusing to --prune every flow of the tenant', EXIT.usage);
      const client = ctx.client();
      const out = ctx.out();
      const plan = await planApply(client, docs, { prune: opts.prune ?? false });
      const showBar = out.format === 'table' && plan.length > 1 && process.stderr.isTTY === true;
      const bar = showBar ? new SingleBar({ format: 'applying [{bar}] {value}/{total} {name}', stream: process.stderr, hideCursor: true, clearOnComplete: true }) : undefined;
      bar?.start(plan.length, 0, { name: '' });
      const results: ApplyResult[] = [];
      try {
        for (const item of plan) {
          bar?.update(results.length, { name: item.kind === 'delete' ? item.current.name : item.doc.name });
          results.push(await applyItem(client, item, { restart: opts.restart ?? false, timeoutMs: opts.timeout }));
        }
      } finally {
        bar?.update(results.length);
        bar?.stop();
      }
      reportApply(ctx, results);
    });

  flows
    .command('diff')
    .description('show what flows apply would change, as a unified diff of the hub against the files')
    .requiredOption('-f, --file <path>', 'a flow file or a directory of them (repeatable)', collect)
    .option('-R, --recursive', 'also read the sub-directories of a directory')
    .option('--prune', 'also show the flows apply --prune would delete')
    .action(async (opts) => {
      const docs = loadFlowDocuments(opts.file, { recursive: opts.recursive });
      const plan = await planApply(ctx.client(), docs, { prune: opts.prune ?? false });
      const entries = plan.map(diffOf);
      const out = ctx.out();
      if (out.format !== 'table') return printData(out, entries);
      for (const e of entries) if (e.diff) out.stdout(e.diff);
      const count = (c: string): number => entries.filter((e) => e.change === c).length;
      out.stderr(`${count('create')} to create, ${count('update')} to update, ${count('unchanged')} unchanged${opts.prune ? `, ${count('delete')} to delete` : ''}`);
      const ambiguous = entries.filter((e) => e.change === 'ambiguous');
      if (ambiguous.length > 0) throw new CliError(`several flows on the hub share the name of ${ambiguous.map((e) => e.source).join(', ')}; rename or delete all but one`, EXIT.conflict);
    });

  flows
    .command('start')
    .description('start flows (status starting, then active)')
    .argument('<flow...>', 'names or ids')
    .option('--wait', 'wait until each flow is active (or its start failed)')
    .addOption(new Option('--timeout <duration>', 'how long --wait waits').argParser(durationMs).default(60_000))
    .action(async (refs, opts) => controlFlows(ctx, refs, 'start', opts));

  flows
    .command('stop')
    .description('stop flows (status stopping, then inactive)')
    .argument('<flow...>', 'names or ids')
    .option('--wait', 'wait until each flow is inactive')
    .addOption(new Option('--timeout <duration>', 'how long --wait waits').argParser(durationMs).default(60_000))
    .action(async (refs, opts) => controlFlows(ctx, refs, 'stop', opts));

  flows
    .command('delete')
    .description('delete inactive flows')
    .argument('<flow...>', 'names or ids')
    .action(async (refs) => {
      const client = ctx.client();
      const out = ctx.out();
      const deleted: Array<{ id: string; name: string }> = [];
      for (const ref of refs) {
        const flow = await resolveFlow(client, ref);
        await client.deleteFlow(flow.id);
        deleted.push({ id: flow.id, name: flow.name });
        if (out.format === 'table') out.stdout(`deleted flow ${flow.name} (${flow.id})`);
      }
      if (out.format !== 'table') printData(out, deleted);
    });
}

async function controlFlows(ctx: CliContext, refs: string[], verb: 'start' | 'stop', opts: { wait?: true; timeout: number }): Promise<void> {
  const client: PlexusClient = ctx.client();
  const out = ctx.out();
  const rows: Array<{ id: string; name: string; status: FlowStatus }> = [];
  for (const ref of refs) {
    const flow = await resolveFlow(client, ref);
    let { status } = verb === 'start' ? await client.startFlow(flow.id) : await client.stopFlow(flow.id);
    if (opts.wait) status = (await waitForFlowStatus(client, flow.id, verb === 'start' ? 'active' : 'inactive', opts.timeout)).status;
    rows.push({ id: flow.id, name: flow.name, status });
  }
  printList(out, rows, [
    { header: 'NAME', value: (r) => r.name },
    { header: 'ID', value: (r) => r.id },
    { header: 'STATUS', value: (r) => r.status },
  ]);
}

function reportApply(ctx: CliContext, results: readonly ApplyResult[]): void {
  const out = ctx.out();
  const failed = results.filter((r) => r.action === 'failed');
  if (out.format !== 'table') {
    printData(out, results);
  } else {
    for (const r of failed) {
      out.stderr(`${r.source === '-' ? r.name : r.source}: ${r.detail ?? 'failed'}`);
      for (const p of r.problems ?? []) out.stderr(`  ${p}`);
    }
    if (results.length > 0) {
      out.stdout(renderTable(['FILE', 'FLOW', 'RESULT', 'ID'], results.map((r) => [r.source, r.name, r.detail && r.action !== 'failed' ? `${r.action} (${r.detail})` : r.action, r.id ?? '-'])));
    }
    const count = (a: ApplyResult['action']): number => results.filter((r) => r.action === a).length;
    out.stderr(`${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged, ${count('deleted')} deleted, ${failed.length} failed`);
  }
  if (failed.length > 0) {
    const allConflicts = failed.every((r) => r.exitCode === EXIT.conflict);
    throw new CliError(`${failed.length} of ${results.length} flows could not be applied`, allConflicts ? EXIT.conflict : EXIT.error);
  }
}

function triggerOf(f: Flow): string {
  return f.cron ? `cron ${f.cron}${f.timezone ? ` (${f.timezone})` : ''}` : 'webhook';
}
