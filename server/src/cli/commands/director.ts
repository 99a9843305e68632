/**
 * `plexus apps …` and `plexus runtimes …`: the Director's applications and runtimes
 * (`/director/graphql`), by name or id: list (label and scenario filters), get, register,
 * unregister, label / unlabel, a credential standing for one (shown once), and a one-time
 * token pairing one with the Connector (shown once, with its connector URL and expiry).
 */
import fs from 'node:fs';
import { Argument, Option, type Command } from '@commander-js/extra-typings';
import YAML from 'yaml';
import { DirectorClient, type Application, type LabelFilter, type OneTimeToken, type Runtime } from '../director.js';
import { CliError, EXIT } from '../errors.js';
import { collect } from '../options.js';
import { printData, printItem, printList, type Column, type Out } from '../output.js';
import type { CliContext } from '../program.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const INTEGRATION_LEVELS = ['BASIC', 'APPLICATION', 'PROXY', 'SERVICE'] as const;
const RUNTIME_CONDITIONS = ['INITIAL', 'PROVISIONING', 'CONNECTED', 'READY', 'FAILED'] as const;

const scenariosOf = (labels: Record<string, unknown> | null): unknown => labels?.scenarios;

const appColumns: ReadonlyArray<Column<Application>> = [
  { header: 'NAME', value: (a) => a.name },
  { header: 'ID', value: (a) => a.id },
  { header: 'STATUS', value: (a) => a.status.condition },
  { header: 'LEVEL', value: (a) => a.integrationLevel },
  { header: 'SCENARIOS', value: (a) => scenariosOf(a.labels) },
  { header: 'APIS', value: (a) => a.apiDefinitions?.totalCount ?? 0 },
  { header: 'EVENTS', value: (a) => a.eventDefinitions?.totalCount ?? 0 },
];

const runtimeColumns: ReadonlyArray<Column<Runtime>> = [
  { header: 'NAME', value: (r) => r.name },
  { header: 'ID', value: (r) => r.id },
  { header: 'STATUS', value: (r) => r.status.condition },
  { header: 'SCENARIOS', value: (r) => scenariosOf(r.labels) },
  { header: 'EVENT URL', value: (r) => r.eventingConfiguration?.defaultURL },
  { header: 'CREATED', value: (r) => r.metadata.creationTimestamp },
];

export function registerDirectorCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  const director = (): DirectorClient => {
    const client = ctx.client();
    return new DirectorClient({ url: client.url, token: client.token });
  };

  // ---------------------------------------------------------------- apps

  const apps = program.command('apps').description('applications registered in the Director: list, get, register, unregister, label, unlabel, credentials, pair');

  apps
    .command('list')
    .description("list the tenant's applications")
    .option('--label <key[=value]>', 'only those with this label (and value); repeatable', collect)
    .option('--scenario <name>', 'only those in this scenario')
    .action(async (opts) => {
      const page = await director().listApplications(labelFilters(opts.label, opts.scenario));
      printList(ctx.out(), page.data, appColumns, undefined, 'applications');
    });

  apps
    .command('get')
    .description('show one application')
    .argument('<app>', 'name or id')
    .action(async (ref) => {
      const app = await resolveApp(director(), ref);
      printItem(ctx.out(), app, [
        ...appColumns,
        { header: 'PROVIDER', value: (a) => a.providerName },
        { header: 'DESCRIPTION', value: (a) => a.description },
        { header: 'LABELS', value: (a) => a.labels },
        { header: 'WEBHOOKS', value: (a) => (a.webhooks ?? []).map((w) => `${w.type} ${w.url}`) },
        { header: 'API DEFINITIONS', value: (a) => (a.apiDefinitions?.data ?? []).map((d) => d.name) },
        { header: 'EVENT DEFINITIONS', value: (a) => (a.eventDefinitions?.data ?? []).map((d) => d.name) },
        { header: 'STATUS SINCE', value: (a) => a.status.timestamp },
      ]);
    });

  apps
    .command('register')
    .description('register an application (its whole input may come from a YAML / JSON file: APIs, events, webhooks, …)')
    .argument('[name]', 'name, unique in the tenant (default: the file\'s)')
    .option('-f, --file <path>', 'ApplicationRegisterInput as YAML / JSON')
    .option('--description <text>')
    .option('--provider <name>', 'providerName')
    .addOption(new Option('--level <level>', 'integration level').choices(INTEGRATION_LEVELS))
    .option('--label <key=value>', 'a label (value as JSON, else a string); repeatable', collect)
    .action(async (name, opts) => {
      const input: Record<string, unknown> = opts.file ? readObject(opts.file) : {};
      if (name) input.name = name;
      if (opts.description) input.description = opts.description;
      if (opts.provider) input.providerName = opts.provider;
      if (opts.level) input.integrationLevel = opts.level;
      if (opts.label) input.labels = { ...(input.labels as Record<string, unknown> | undefined), ...parseLabels(opts.label) };
      if (typeof input.name !== 'string') throw new CliError('an application needs a name: give it as an argument or in the file', EXIT.usage);
      const app = await director().registerApplication(input);
      done(ctx.out(), app, `registered application ${app.name} (${app.id})`);
    });

  apps
    .command('unregister')
    .description('unregister applications')
    .argument('<app...>', 'names or ids')
    .action(async (refs) => {
      const client = director();
      const gone: Application[] = [];
      for (const ref of refs) gone.push(await client.unregisterApplication((await resolveApp(client, ref)).id));
      doneMany(ctx.out(), gone, (a) => `unregistered application ${a.name} (${a.id})`);
    });

  apps
    .command('label')
    .description('set labels of an application (scenarios=\'["DEFAULT","shop"]\')')
    .argument('<app>', 'name or id')
    .argument('<key=value...>', 'labels; values as JSON, else strings')
    .action(async (ref, pairs) => {
      const client = director();
      const app = await resolveApp(client, ref);
      const set = [];
      for (const [key, value] of Object.entries(parseLabels(pairs))) set.push(await client.setApplicationLabel(app.id, key, value));
      doneMany(ctx.out(), set, (l) => `${app.name}: ${l.key}=${JSON.stringify(l.value)}`);
    });

  apps
    .command('unlabel')
    .description('remove labels of an application')
    .argument('<app>', 'name or id')
    .argument('<key...>', 'label keys')
    .action(async (ref, keys) => {
      const client = director();
      const app = await resolveApp(client, ref);
      const removed = [];
      for (const key of keys) removed.push(await client.deleteApplicationLabel(app.id, key));
      doneMany(ctx.out(), removed, (l) => `${app.name}: removed ${l.key}`);
    });

  apps
    .command('credentials')
    .description('issue a credential standing for the application: a bearer token, shown once')
    .argument('<app>', 'name or id')
    .action(async (ref) => {
      const client = director();
      const auth = await client.requestApplicationCredentials((await resolveApp(client, ref)).id);
      done(ctx.out(), auth, `credential ${auth.id}; token (shown once): ${auth.auth.credential.token}`);
    });

  apps
    .command('pair')
    .description("request a one-time token pairing the application's agent with the Connector (shown once; any earlier unused one stops working)")
    .argument('<app>', 'name or id')
    .action(async (ref) => {
      const client = director();
      const app = await resolveApp(client, ref);
      printPairing(ctx.out(), 'application', app.name, app.id, await client.requestOneTimeToken('application', app.id));
    });

  // ---------------------------------------------------------------- runtimes

  const runtimes = program.command('runtimes').description('runtimes registered in the Director: list, get, register, unregister, label, unlabel, credentials, pair');

  runtimes
    .command('list')
    .description("list the tenant's runtimes")
    .option('--label <key[=value]>', 'only those with this label (and value); repeatable', collect)
    .option('--scenario <name>', 'only those in this scenario')
    .action(async (opts) => {
      const page = await director().listRuntimes(labelFilters(opts.label, opts.scenario));
      printList(ctx.out(), page.data, runtimeColumns, undefined, 'runtimes');
    });

  runtimes
    .command('get')
    .description('show one runtime')
    .argument('<runtime>', 'name or id')
    .action(async (ref) => {
      const runtime = await resolveRuntime(director(), ref);
      printItem(ctx.out(), runtime, [
        ...runtimeColumns,
        { header: 'DESCRIPTION', value: (r) => r.description },
        { header: 'LABELS', value: (r) => r.labels },
        { header: 'WAITING FOR CREDENTIALS', value: (r) => r.applicationsWaitingForCredentials },
        { header: 'STATUS SINCE', value: (r) => r.status.timestamp },
      ]);
    });

  runtimes
    .command('register')
    .description('register a runtime')
    .argument('<name>', 'name, unique in the tenant')
    .option('--description <text>')
    .option('--label <key=value>', 'a label (value as JSON, else a string); repeatable', collect)
    .action(async (name, opts) => {
      const runtime = await director().registerRuntime({ name, ...(opts.description ? { description: opts.description } : {}), ...(opts.label ? { labels: parseLabels(opts.label) } : {}) });
      done(ctx.out(), runtime, `registered runtime ${runtime.name} (${runtime.id})`);
    });

  runtimes
    .command('unregister')
    .description('unregister runtimes')
    .argument('<runtime...>', 'names or ids')
    .action(async (refs) => {
      const client = director();
      const gone: Runtime[] = [];
      for (const ref of refs) gone.push(await client.unregisterRuntime((await resolveRuntime(client, ref)).id));
      doneMany(ctx.out(), gone, (r) => `unregistered runtime ${r.name} (${r.id})`);
    });

  runtimes
    .command('label')
    .description('set labels of a runtime (scenarios=\'["DEFAULT"]\', runtime/event_service_url=…)')
    .argument('<runtime>', 'name or id')
    .argument('<key=value...>', 'labels; values as JSON, else strings')
    .action(async (ref, pairs) => {
      const client = director();
      const runtime = await resolveRuntime(client, ref);
      const set = [];
      for (const [key, value] of Object.entries(parseLabels(pairs))) set.push(await client.setRuntimeLabel(runtime.id, key, value));
      doneMany(ctx.out(), set, (l) => `${runtime.name}: ${l.key}=${JSON.stringify(l.value)}`);
    });

  runtimes
    .command('unlabel')
    .description('remove labels of a runtime')
    .argument('<runtime>', 'name or id')
    .argument('<key...>', 'label keys')
    .action(async (ref, keys) => {
      const client = director();
      const runtime = await resolveRuntime(client, ref);
      const removed = [];
      for (const key of keys) removed.push(await client.deleteRuntimeLabel(runtime.id, key));
      doneMany(ctx.out(), removed, (l) => `${runtime.name}: removed ${l.key}`);
    });

  runtimes
    .command('status')
    .description("set a runtime's status (its agent reports READY itself; this corrects one that cannot)")
    .argument('<runtime>', 'name or id')
    .addArgument(new Argument('<condition>', 'the new status').choices(RUNTIME_CONDITIONS))
    .action(async (ref, condition) => {
      const client = director();
      const runtime = await client.setRuntimeStatus((await resolveRuntime(client, ref)).id, condition);
      done(ctx.out(), runtime, `${runtime.name}: ${runtime.status.condition}`);
    });

  runtimes
    .command('credentials')
    .description('issue a credential standing for the runtime (for its agent): a bearer token, shown once')
    .argument('<runtime>', 'name or id')
    .action(async (ref) => {
      const client = director();
      const auth = await client.requestRuntimeCredentials((await resolveRuntime(client, ref)).id);
      done(ctx.out(), auth, `credential ${auth.id}; token (shown once): ${auth.auth.credential.token}`);
    });

  runtimes
    .command('pair')
    .description("request a one-time token pairing the runtime's agent with the Connector (shown once; any earlier unused one stops working)")
    .argument('<runtime>', 'name or id')
    .action(async (ref) => {
      const client = director();
      const runtime = await resolveRuntime(client, ref);
      printPairing(ctx.out(), 'runtime', runtime.name, runtime.id, await client.requestOneTimeToken('runtime', runtime.id));
    });
}

/**
 * The token on a line of its own (easy to cut out in a script; `-o json` gives every field),
 * then where to redeem it and until when.
 */
function printPairing(out: Out, what: string, name: string, id: string, token: OneTimeToken): void {
  if (out.format !== 'table') return printData(out, token);
  const minutes = Math.max(0, Math.round((Date.parse(token.expiresAt) - Date.now()) / 60_000));
  out.stdout(`one-time token for ${what} ${name} (${id}), shown once:`);
  out.stdout(token.token);
  out.stdout(`connector URL: ${token.connectorURL} (send the token in the Connector-Token header)`);
  out.stdout(`expires: ${token.expiresAt} (in about ${minutes} min)`);
  out.stdout(`any earlier unused token for ${name} no longer works`);
}

/** Registers `plexus scenarios …`: the enum of the tenant's `scenarios` label definition. */
export function registerScenarioCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  const director = (): DirectorClient => {
    const client = ctx.client();
    return new DirectorClient({ url: client.url, token: client.token });
  };
  const read = async (client: DirectorClient): Promise<{ schema: Record<string, unknown>; items: Record<string, unknown>; names: string[] }> => {
    const def = await client.getLabelDefinition('scenarios');
    const schema = def?.schema ?? { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } };
    const items = (schema.items && typeof schema.items === 'object' ? schema.items : { type: 'string' }) as Record<string, unknown>;
    const names = Array.isArray(items.enum) ? items.enum.filter((x): x is string => typeof x === 'string') : ['DEFAULT'];
    return { schema, items, names };
  };
  const write = async (client: DirectorClient, current: Awaited<ReturnType<typeof read>>, names: string[]): Promise<string[]> => {
    const def = await client.updateLabelDefinition('scenarios', { ...current.schema, items: { ...current.items, enum: names } });
    const items = def.schema?.items as { enum?: unknown } | undefined;
    return Array.isArray(items?.enum) ? items.enum.filter((x): x is string => typeof x === 'string') : names;
  };
  const print = (names: string[]): void => printList(ctx.out(), names.map((name) => ({ name })), [{ header: 'SCENARIO', value: (s: { name: string }) => s.name }], undefined, 'scenarios');

  const scenarios = program.command('scenarios').description("the tenant's scenarios (applications and runtimes in one see each other): list, add, remove");
  scenarios
    .command('list')
    .description("list the tenant's scenarios")
    .action(async () => print((await read(director())).names));
  scenarios
    .command('add')
    .description('add scenarios')
    .argument('<name...>', 'scenario names')
    .action(async (names) => {
      const client = director();
      const current = await read(client);
      print(await write(client, current, [...current.names, ...names.filter((n) => !current.names.includes(n))]));
    });
  scenarios
    .command('remove')
    .description('remove scenarios (the Director refuses DEFAULT and any still in use)')
    .argument('<name...>', 'scenario names')
    .action(async (names) => {
      const client = director();
      const current = await read(client);
      const unknown = names.filter((n) => !current.names.includes(n));
      if (unknown.length > 0) throw new CliError(`no scenario ${unknown.map((n) => JSON.stringify(n)).join(', ')} in this tenant`, EXIT.notFound);
      print(await write(client, current, current.names.filter((n) => !names.includes(n))));
    });
}

async function resolveApp(client: DirectorClient, ref: string): Promise<Application> {
  if (UUID.test(ref)) {
    const app = await client.getApplication(ref);
    if (app) return app;
  }
  // Every application carries its name as the `name` label; names are unique per tenant.
  const page = await client.listApplications([{ key: 'name', query: JSON.stringify(ref) }]);
  const match = page.data.find((a) => a.name === ref);
  if (!match) throw new CliError(`application ${JSON.stringify(ref)} not found (by id or name)`, EXIT.notFound);
  return match;
}

async function resolveRuntime(client: DirectorClient, ref: string): Promise<Runtime> {
  if (UUID.test(ref)) {
    const runtime = await client.getRuntime(ref);
    if (runtime) return runtime;
  }
  const match = (await client.listRuntimes([])).data.find((r) => r.name === ref);
  if (!match) throw new CliError(`runtime ${JSON.stringify(ref)} not found (by id or name)`, EXIT.notFound);
  return match;
}

/** `key=value` pairs; a value that reads as JSON is taken as JSON (lists, numbers), else as text. */
export function parseLabels(pairs: readonly string[]): Record<string, unknown> {
  const labels: Record<string, unknown> = {};
  for (const pair of pairs) {
    const i = pair.indexOf('=');
    if (i <= 0) throw new CliError(`label ${JSON.stringify(pair)}: must be key=value`, EXIT.usage);
    const raw = pair.slice(i + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    labels[pair.slice(0, i)] = value;
  }
  return labels;
}

function labelFilters(labels: readonly string[] | undefined, scenario: string | undefined): LabelFilter[] {
  const filters: LabelFilter[] = (labels ?? []).map((l) => {
    const i = l.indexOf('=');
    return i < 0 ? { key: l } : { key: l.slice(0, i), query: JSON.stringify(l.slice(i + 1)) };
  });
  if (scenario) filters.push({ key: 'scenarios', query: `$[*] ? (@ == ${JSON.stringify(scenario)})` });
  return filters;
}

function readObject(file: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = YAML.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (err) {
    throw new CliError(`${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CliError(`${file}: must hold a mapping (name, description, …)`);
  return value as Record<string, unknown>;
}

function done<T>(out: Out, data: T, line: string): void {
  if (out.format !== 'table') printData(out, data);
  else out.stdout(line);
}

function doneMany<T>(out: Out, data: readonly T[], line: (item: T) => string): void {
  if (out.format !== 'table') printData(out, data);
  else for (const item of data) out.stdout(line(item));
}
