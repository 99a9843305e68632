/**
 * The `plexus` command. `plexus start [--roles a,b]` runs the hub; more verbs come with their
 * issues (worker, agent, admin CLI).
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../platform/config.js';
import { isAppError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';
import { ALL_ROLES, createHub, type Role } from './hub.js';

const USAGE = `usage: plexus start [--roles ${ALL_ROLES.join(',')}]`;

async function start(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { roles: { type: 'string' } }, strict: true });
  const roles = values.roles?.split(',').map((r) => r.trim()).filter(Boolean);
  const unknown = roles?.filter((r) => !(ALL_ROLES as readonly string[]).includes(r)) ?? [];
  if (unknown.length) fail(`--roles: unknown role ${unknown.join(', ')} (known: ${ALL_ROLES.join(', ')})`);
  const config = loadConfig();
  const logger = createLogger(config.log.level);
  const hub = await createHub(config, { logger, roles: roles as Role[] | undefined });
  hub.lifecycle.handleSignals(config.shutdownTimeoutMs);
  const url = await hub.listen();
  const storage = config.db.url ? 'PostgreSQL' : `embedded PGlite in ${config.dataDir}`;
  const bus = config.bus.natsUrl ? 'NATS JetStream' : 'database-backed bus';
  logger.info({ url, storage, bus }, 'Plexus is ready');
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

function fail(message: string): never {
  process.stderr.write(`plexus: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case 'start':
      return start(rest);
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      fail(`unknown command "${command}"\n${USAGE}`);
  }
}

main().catch((err: unknown) => {
  // One line naming the problem; the stack only for our own bugs.
  if (isAppError(err) && err.kind !== 'bug') {
    process.stderr.write(`plexus: ${err.message}\n`);
  } else {
    process.stderr.write(`plexus: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
