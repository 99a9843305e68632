/**
 * The `plexus` command: `plexus start [--roles a,b]` runs the hub; `plexus <resource> <verb>`
 * administers one (server/src/cli). The hub's code is loaded only by `start`, so admin
 * commands start quickly.
 */
import { CliError, EXIT } from '../cli/errors.js';
import { runCli } from '../cli/program.js';
import { loadConfig } from '../platform/config.js';
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
  hub.lifecycle.handleSignals(config.shutdownTimeoutMs);
  const url = await hub.listen();
  const storage = config.db.url ? 'PostgreSQL' : `embedded PGlite in ${config.dataDir}`;
  const bus = config.bus.natsUrl ? 'NATS JetStream' : 'database-backed bus';
  logger.info({ url, mtls: hub.mtlsUrl(), storage, bus }, 'Plexus is ready');
  const bootstrap = hub.iam.bootstrapCredentials;
  // One write, so whoever reads up to the URL line (a script, a test) has the password too.
  process.stdout.write(
    `\nPlexus is listening on ${url}  (${storage}, ${bus})\n` +
      (bootstrap
        ? `First start: created user "${bootstrap.username}" in tenant "default" with password: ${bootstrap.password}\n` +
          (bootstrap.passwordFile ? `(also written to ${bootstrap.passwordFile}; it is shown only this once)\n` : '')
        : ''),
  );
}

// The exit code is set, not forced: a started hub keeps running, and an admin command's output
// is flushed before the process ends by itself.
process.exitCode = await runCli(process.argv.slice(2), { start });
