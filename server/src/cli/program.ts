/**
 * The `plexus` command line: commander parses it (every command gets `--help`), the commands
 * call the hub through the typed client, and every outcome ends in one exit code a script can
 * rely on (errors.ts). `start` runs the hub itself; the entrypoint hands it in, so admin
 * commands never load the server's code.
 */
import { Command, CommanderError, Option } from '@commander-js/extra-typings';
import { loadCliConfig, type CliConfig } from '../platform/config.js';
import { isAppError } from '../platform/errors.js';
import { PlexusClient } from './client.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerAuthCommands } from './commands/auth.js';
import { registerCompletionCommand } from './commands/completion.js';
import { registerDirectorCommands, registerScenarioCommands } from './commands/director.js';
import { registerExecutionCommands } from './commands/executions.js';
import { registerFlowCommands } from './commands/flows.js';
import { registerSecretCommands } from './commands/secrets.js';
import { ApiError, EXIT, isCliError, type ExitCode } from './errors.js';
import { splitList } from './options.js';
import { OUTPUT_FORMATS, processOut, type Out, type OutputFormat } from './output.js';
import { resolveTarget, type Target } from './session.js';

/** What every command gets: output, configuration and a client for the current target. */
export interface CliContext {
  out(): Out;
  config(): CliConfig;
  /** A client for the hub of the stored session (or PLEXUS_URL / PLEXUS_TOKEN). */
  client(): PlexusClient;
}

export interface CliHooks {
  /** `plexus start`: runs the hub in this process (it checks the role names). */
  start(opts: { roles?: string[] }): Promise<void>;
  /** `plexus worker`: runs a worker process serving components to the routers. */
  worker(opts: WorkerHookOptions): Promise<void>;
}

export interface WorkerHookOptions {
  routers: string[];
  components: string[];
  secret?: string | undefined;
  secretFile?: string | undefined;
  credentialFile?: string | undefined;
  id?: string | undefined;
  concurrency: number;
  tls?: boolean | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  configDir: string;
}

export function buildProgram(hooks: CliHooks): { program: Command; lastTarget: () => Target | undefined } {
  let config: CliConfig | undefined;
  let target: Target | undefined;
  const program = new Command('plexus')
    .description('Plexus integration hub: run it (start) or administer one (login, flows, executions, secrets, audit, apps, runtimes, scenarios).')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table' as OutputFormat))
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`plexus: ${text.replace(/^error: /, '')}`) });

  const ctx: CliContext = {
    out: () => processOut(program.opts().output),
    config: () => (config ??= loadCliConfig()),
    client: () => {
      target = resolveTarget(ctx.config());
      return new PlexusClient({ url: target.url, token: target.token });
    },
  };

  program
    .command('start')
    .description('run the hub: every role in one process, embedded storage unless configured otherwise')
    .addOption(new Option('--roles <roles>', 'comma-separated roles to run (default: all): gateway, iam, flows, orchestrator, …').argParser(splitList))
    .action(async (opts) => hooks.start({ roles: opts.roles }));

  program
    .command('worker')
    .description('run a worker: serve OIH-format components (a directory or npm package) or built-ins (builtin:<name>) to the hub routers over gRPC')
    .requiredOption('--router <addresses>', 'host:port of every aggregator instance, comma-separated', splitList)
    .requiredOption('--component <spec...>', 'component directory, npm package, or builtin:<name> (repeatable)')
    .addOption(new Option('--secret <secret>', 'enrolment secret (first start only; POST /api/v1/workers/enrolments)'))
    .addOption(new Option('--secret-file <file>', 'read the enrolment secret from this file'))
    .addOption(new Option('--credential-file <file>', 'where the per-worker credential is kept, 0600 (default: the config directory)'))
    .addOption(new Option('--id <workerId>', 'worker name (default: the host name)'))
    .addOption(new Option('--concurrency <n>', 'deliveries at once per router').argParser((v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new CommanderError(EXIT.usage, 'plexus.usage', '--concurrency must be a whole number from 1 to 10000');
      return n;
    }).default(16))
    .addOption(new Option('--tls', 'connect with TLS (system roots)'))
    .addOption(new Option('--ca <file>', 'connect with TLS, trusting this CA (PEM)'))
    .addOption(new Option('--cert <file>', "client certificate (PEM): a runtime's certificate from the hub's Connector, instead of an enrolment secret (TLS)"))
    .addOption(new Option('--key <file>', 'private key (PEM) of --cert'))
    .action(async (opts) =>
      hooks.worker({
        routers: opts.router,
        components: opts.component,
        secret: opts.secret,
        secretFile: opts.secretFile,
        credentialFile: opts.credentialFile,
        id: opts.id,
        concurrency: opts.concurrency,
        tls: opts.tls,
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        configDir: ctx.config().configDir,
      }),
    );

  registerAuthCommands(program, ctx);
  registerFlowCommands(program, ctx);
  registerExecutionCommands(program, ctx);
  registerSecretCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerDirectorCommands(program, ctx);
  registerScenarioCommands(program, ctx);
  registerCompletionCommand(program);
  return { program, lastTarget: () => target };
}

/** Runs one command line; resolves with the exit code instead of exiting. */
export async function runCli(argv: readonly string[], hooks: CliHooks): Promise<ExitCode> {
  const { program, lastTarget } = buildProgram(hooks);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    return report(err, lastTarget());
  }
}

/** One line naming the problem (plus its listed problems) on stderr, and the exit code for it. */
function report(err: unknown, target: Target | undefined): ExitCode {
  if (err instanceof CommanderError) {
    // Help and version asked for are not errors; commander has printed everything else already.
    return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  const write = (line: string): void => void process.stderr.write(`${line}\n`);
  if (err instanceof ApiError && err.isUnauthenticated && target) {
    write(
      target.fromLogin
        ? `plexus: your session at ${target.url} has expired or was revoked: run plexus login --url ${target.url}`
        : `plexus: ${target.url} refused PLEXUS_TOKEN: it is unknown, expired or revoked`,
    );
    return EXIT.error;
  }
  if (isCliError(err)) {
    // The hub's validation message is its problems joined: print them once, one a line.
    const repeated = err.problems.length > 0 && err.message === err.problems.join('; ');
    // A refusal of the hub is named by its code (ALREADY_EXISTS, INVALID_STATE…), as the cockpit shows it.
    const name = err instanceof ApiError && !err.code.startsWith('HTTP_') ? `${err.code}: ` : '';
    write(`plexus: ${name}${repeated ? (err.problems.length === 1 ? err.problems[0] : 'the hub refused the input:') : err.message}`);
    if (!repeated || err.problems.length > 1) for (const p of err.problems) write(`  ${p}`);
    return err.exitCode;
  }
  if (isAppError(err) && err.kind !== 'bug') {
    write(`plexus: ${err.message}`);
    return err.code === 'CONFIG_INVALID' ? EXIT.usage : EXIT.error;
  }
  write(`plexus: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return EXIT.error;
}
