/** `plexus audit …`: the append-only audit log, read-only. */
import { Option, type Command } from '@commander-js/extra-typings';
import type { AuditEntry } from '../../contracts/audit.js';
import { printItem, printList, type Column } from '../output.js';
import type { CliContext } from '../program.js';
import { addPagingOptions, listPaged } from './shared.js';

const auditColumns: ReadonlyArray<Column<AuditEntry>> = [
  { header: 'ID', value: (a) => a.id },
  { header: 'AT', value: (a) => a.at },
  { header: 'NAME', value: (a) => a.name },
  { header: 'RESULT', value: (a) => a.result },
  { header: 'USER', value: (a) => a.actor?.username ?? a.actor?.id },
  { header: 'TARGET', value: (a) => (a.target ? `${a.target.type}:${a.target.name ?? a.target.id ?? ''}` : undefined) },
  { header: 'TENANT', value: (a) => a.tenant },
  { header: 'SOURCE IP', value: (a) => a.sourceIp },
];

export function registerAuditCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  const audit = program.command('audit').description('the audit log: list, get');

  addPagingOptions(audit.command('list').description('audit records, newest first'))
    .addOption(new Option('--name <name>', 'event name, or a prefix ending in * (audit.iam.*)'))
    .addOption(new Option('--module <module>', 'module that recorded it (iam, flows, …)'))
    .addOption(new Option('--result <result>', 'outcome').choices(['success', 'failure', 'denied'] as const))
    .addOption(new Option('--user <user>', 'account id or username'))
    .addOption(new Option('--from <time>', 'from this ISO 8601 date or time (inclusive)'))
    .addOption(new Option('--to <time>', 'until this ISO 8601 date or time (exclusive)'))
    .addOption(new Option('--tenant <id>', 'platform admins: one tenant only'))
    .addOption(new Option('--search <text>', 'free text'))
    .addOption(new Option('--oldest-first', 'oldest records first'))
    .action(async (opts) => {
      const client = ctx.client();
      const page = await listPaged(opts, (p) =>
        client.listAudit({
          ...p,
          'filter[name]': opts.name,
          'filter[module]': opts.module,
          'filter[result]': opts.result,
          'filter[user]': opts.user,
          'filter[from]': opts.from,
          'filter[to]': opts.to,
          'filter[tenant]': opts.tenant,
          search: opts.search,
          sort: opts.oldestFirst ? 'at' : '-at',
        }),
      );
      printList(ctx.out(), page.data, auditColumns, page.meta, 'records');
    });

  audit
    .command('get')
    .description('one audit record with its details')
    .argument('<id>', 'record id')
    .action(async (id) => {
      const entry = await ctx.client().getAudit(id);
      printItem(ctx.out(), entry, [...auditColumns, { header: 'SERVICE', value: (a) => a.serviceName }, { header: 'DETAILS', value: (a) => a.details }]);
    });
}
