/**
 * The `plexus` command: `plexus start [--roles a,b]` runs the hub; `plexus <resource> <verb>`
 * administers one (server/src/cli). The hub's code is loaded only by `start`, so admin
 * commands start quickly.
 */
import { CliError, EXIT } from '../cli/errors.js';
import fs from 'node:fs';
import { runCli, type WorkerHookOptions } from '../cli/program.js';
import { loadConfig } from '../platform/config.js';
import { pino } from 'pino';
import { createLogger } from '../platform/logger.js';

async function start(opts: { roles?: string[] }): Promise<void> {
  const { ALL_ROLES, createHub } = await import('./hub.js');
  const known: readonly string[] = ALL_ROLES;
  const unknown = opts.roles?.filter((r) => !known.includes(r)) ?? [];
  if (unknown.length) throw new CliError(`--roles: unknown role ${unknown.join(', ')} (known: ${ALL_ROLES.join(', ')})`, EXIT.usage);
  const roles = opts.roles?.filter((r): r is (typeof ALL_ROLES)[number] => known.includes(r));
  const config = loadConfig();
  const logger = createLogger(config.log.level);
  const hub = await createHub(config, { logger, roles });
  hub.lifecycle.handleSignals(config.shutdownTimeoutMs, { stopWhenOrphaned: config.launchedByNpm });
  const url = await hub.listen();
  const storage = config.db.url ? 'PostgreSQL' : `embedded PGlite in ${config.dataDir}`;
  const bus = config.bus.natsUrl ? 'NATS JetStream' : 'database-backed bus';
  logger.info({ url, mtls: hub.mtlsUrl(), storage, bus, grpcPort: hub.grpcPort() || undefined }, 'Plexus is ready');
  const bootstrap = hub.iam.bootstrapCredentials;
  // One write, so whoever reads up to the URL line (a script, a test) has the password too. It
  // goes through the logger's own stdout stream (pino writes asynchronously), behind the start's
  // log lines — the listener's among them — so "listening" comes after them, once it is up.
  const logStream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { write(text: string): unknown } | undefined;
  const print = (text: string): void => void (logStream && typeof logStream.write === 'function' ? logStream.write(text) : process.stdout.write(text));
  print(
    (url ? `\nPlexus is listening on ${url}  (${storage}, ${bus})\n` : `\nPlexus is running without an HTTP listener  (${storage}, ${bus})\n`) +
      (bootstrap
        ? `First start: created user "${bootstrap.username}" in tenant "default" with password: ${bootstrap.password}\n` +
          (bootstrap.passwordFile ? `(also written to ${bootstrap.passwordFile}; it is shown only this once)\n` : '')
        : ''),
  );
}

async function worker(opts: WorkerHookOptions): Promise<void> {
  const { runWorker } = await import('../worker-sdk/run.js');
  const read = (file: string, what: string) => {
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new CliError(`${what} ${file}: ${(err as Error).message}`, EXIT.usage);
    }
  };
  const secret = opts.secret ?? (opts.secretFile ? read(opts.secretFile, '--secret-file').toString('utf8').trim() : undefined);
  const logger = createLogger('info');
  const { WorkerRefusedError } = await import('../worker-sdk/index.js');
  if (Boolean(opts.cert) !== Boolean(opts.key)) throw new CliError('--cert and --key go together', EXIT.usage);
  const client = opts.cert && opts.key ? { cert: read(opts.cert, '--cert'), key: read(opts.key, '--key') } : undefined;
  const { worker: w } = await runWorker({ ...opts, secret, ca: opts.ca ? read(opts.ca, '--ca') : undefined, cert: client?.cert, key: client?.key }, logger).catch((err: unknown) => {
    if (err instanceof WorkerRefusedError) throw new CliError(`the router refused the worker (${err.code}): ${err.message}`, EXIT.error);
    throw new CliError(`the worker could not start: ${err instanceof Error ? err.message : String(err)}`, EXIT.error);
  });
  process.stdout.write(`Plexus worker attached to ${w.attachedTo().join(', ')}\n`);
}

// The exit code is set, not forced: a started hub keeps running, and an admin command's output
// is flushed before the process ends by itself.
process.exitCode = await runCli(process.argv.slice(2), { start, worker });
