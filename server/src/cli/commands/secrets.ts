/**
 * `plexus secrets …`: credentials for flow steps. Values come from a YAML / JSON file or from
 * standard input (`-f -`), never from arguments, where `ps` and shell history would show them;
 * they are shown masked unless `--reveal` asks the hub for the raw value (audited there).
 */
import fs from 'node:fs';
import { Option, type Command } from '@commander-js/extra-typings';
import YAML from 'yaml';
import type { z } from 'zod';
import { CreateSecretBody, SECRET_TYPES, UpdateSecretBody, type Secret } from '../../contracts/secrets.js';
import { CliError, EXIT } from '../errors.js';
import { printData, printItem, printList, type Column } from '../output.js';
import type { CliContext } from '../program.js';
import { addPagingOptions, listPaged, resolveSecretId } from './shared.js';

const secretColumns: ReadonlyArray<Column<Secret>> = [
  { header: 'NAME', value: (s) => s.name },
  { header: 'ID', value: (s) => s.id },
  { header: 'TYPE', value: (s) => s.type },
  { header: 'UPDATED', value: (s) => s.updatedAt },
  { header: 'TOKEN EXPIRES', value: (s) => s.tokenExpiresAt },
  { header: 'LAST ERROR', value: (s) => s.lastError },
];

export function registerSecretCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  const secrets = program.command('secrets').description('credentials for flow steps: list, get, create, update, refresh, delete');

  addPagingOptions(secrets.command('list').description("list the tenant's secrets (values masked)"))
    .addOption(new Option('--type <type>', 'only secrets of this type').choices(SECRET_TYPES))
    .addOption(new Option('--search <text>', 'name contains'))
    .action(async (opts) => {
      const client = ctx.client();
      const page = await listPaged(opts, (p) => client.listSecrets({ ...p, 'filter[type]': opts.type, search: opts.search, sort: 'name' }));
      printList(ctx.out(), page.data, secretColumns, page.meta, 'secrets');
    });

  secrets
    .command('get')
    .description('show one secret, sensitive fields masked')
    .argument('<secret>', 'name or id')
    .option('--reveal', 'show the value unmasked (needs secrets.readRaw; every read is audited)')
    .action(async (ref, opts) => {
      const client = ctx.client();
      const secret = await client.getSecret(await resolveSecretId(client, ref), { raw: opts.reveal ?? false });
      printItem(ctx.out(), secret, [
        ...secretColumns,
        { header: 'CREATED BY', value: (s) => s.createdBy },
        { header: 'VALUE', value: (s) => s.value },
      ]);
    });

  secrets
    .command('create')
    .description('store a credential, encrypted at rest')
    .argument('<name>', 'unique in the tenant; flow nodes name it as credentialsId')
    .addOption(new Option('--type <type>', 'kind of credential').choices(SECRET_TYPES).makeOptionMandatory())
    .requiredOption('-f, --file <path>', 'YAML / JSON file holding the value, or - for standard input')
    .action(async (name, opts) => {
      const value = readValue(opts.file);
      const body = parseInput(CreateSecretBody, { name, type: opts.type, value }, opts.file);
      const created = await ctx.client().createSecret(body);
      const out = ctx.out();
      if (out.format !== 'table') return printData(out, created);
      out.stdout(`created secret ${created.name} (${created.id})`);
    });

  secrets
    .command('update')
    .description('rename a secret or change fields of its value (fields left out, or given as ***, stay as they are)')
    .argument('<secret>', 'name or id')
    .option('--rename <name>', 'new name')
    .option('-f, --file <path>', 'YAML / JSON file holding the fields to change, or - for standard input')
    .action(async (ref, opts) => {
      if (!opts.rename && !opts.file) throw new CliError('nothing to change: give --rename and/or -f <file>', EXIT.usage);
      const client = ctx.client();
      const body = parseInput(UpdateSecretBody, { ...(opts.rename ? { name: opts.rename } : {}), ...(opts.file ? { value: readValue(opts.file) } : {}) }, opts.file ?? '--rename');
      const updated = await client.updateSecret(await resolveSecretId(client, ref), body);
      const out = ctx.out();
      if (out.format !== 'table') return printData(out, updated);
      out.stdout(`updated secret ${updated.name} (${updated.id})`);
    });

  secrets
    .command('refresh')
    .description('refresh an oauth2 secret now (tests its grant)')
    .argument('<secret>', 'name or id')
    .action(async (ref) => {
      const client = ctx.client();
      const secret = await client.refreshSecret(await resolveSecretId(client, ref));
      printItem(ctx.out(), secret, secretColumns);
    });

  secrets
    .command('delete')
    .description('delete secrets')
    .argument('<secret...>', 'names or ids')
    .action(async (refs) => {
      const client = ctx.client();
      const out = ctx.out();
      const deleted: string[] = [];
      for (const ref of refs) {
        const id = await resolveSecretId(client, ref);
        await client.deleteSecret(id);
        deleted.push(id);
        if (out.format === 'table') out.stdout(`deleted secret ${ref}${ref === id ? '' : ` (${id})`}`);
      }
      if (out.format !== 'table') printData(out, deleted.map((id) => ({ id })));
    });
}

function readValue(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return YAML.parse(text) as unknown;
  } catch (err) {
    throw new CliError(`${file}: not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Checked with the hub's own schema first, so a mistake names the file and the field. */
function parseInput<S extends z.ZodType>(schema: S, input: unknown, source: string): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${source}: ${i.path.join('.') || 'value'}: ${i.message}`);
  throw new CliError('the secret is invalid', EXIT.error, problems);
}
