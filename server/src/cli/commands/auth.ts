/** `plexus login`, `logout`, `whoami`: the session the other commands act with. */
import { Option, type Command } from '@commander-js/extra-typings';
import { PlexusClient } from '../client.js';
import { ApiError, CliError, EXIT } from '../errors.js';
import { printItem } from '../output.js';
import type { CliContext } from '../program.js';
import { readPassword } from '../prompt.js';
import { readSession, removeSession, sessionFile, writeSession } from '../session.js';

export function registerAuthCommands(program: Command<[], Record<string, unknown>>, ctx: CliContext): void {
  program
    .command('login')
    .description('log in to a hub and store the session (the password is read from the terminal without echo, or from standard input)')
    .addOption(new Option('--url <url>', 'base URL of the hub, e.g. http://127.0.0.1:8080 (default: PLEXUS_URL, else the stored session)'))
    .addOption(new Option('-u, --username <name>', 'account to log in as').default('admin'))
    .addOption(new Option('--tenant <id>', "the account's tenant, where usernames are unique per tenant"))
    .action(async (opts) => {
      const config = ctx.config();
      const previous = readSession(config);
      const url = normaliseUrl(opts.url ?? config.url ?? previous?.url);
      const client = new PlexusClient({ url });
      const password = await readPassword(`Password for ${opts.username} at ${url}`);
      let login;
      try {
        login = await client.login({ username: opts.username, password, ...(opts.tenant ? { tenant: opts.tenant } : {}) });
      } catch (err) {
        if (err instanceof ApiError && err.status === 400 && opts.tenant && /tenant/.test(err.message)) {
          throw new CliError(`${url} does not take a tenant at login (usernames are unique across its tenants): leave out --tenant`, EXIT.usage);
        }
        if (err instanceof ApiError && err.status === 401) throw new CliError(`login to ${url} failed: wrong username or password${opts.tenant ? ` (or tenant ${opts.tenant})` : ''}`);
        if (err instanceof ApiError && err.status === 429) {
          throw new CliError(`login to ${url} refused: too many failed logins${err.retryAfterSeconds ? `; try again in ${err.retryAfterSeconds} s` : ''}`);
        }
        throw err;
      }
      const me = await new PlexusClient({ url, token: login.token }).me();
      // The session this one replaces is ended, not left valid on the hub until it expires.
      if (previous && previous.token !== login.token) {
        await new PlexusClient({ url: previous.url, token: previous.token, timeoutMs: 5_000 }).logout().catch(() => undefined);
      }
      const file = writeSession(config, { url, token: login.token, username: me.username, tenant: me.tenant, expiresAt: login.expiresAt });
      const out = ctx.out();
      if (out.format !== 'table') return printItem(out, { url, username: me.username, tenant: me.tenant, expiresAt: login.expiresAt, sessionFile: file }, []);
      out.stdout(`Logged in to ${url} as ${me.username} (tenant ${me.tenant}); session stored in ${file}`);
    });

  program
    .command('logout')
    .description('end the stored session: the hub revokes its token and the local copy is removed')
    .action(async () => {
      const config = ctx.config();
      const session = readSession(config);
      const out = ctx.out();
      if (!session) {
        out.stderr('not logged in');
        return;
      }
      let ended = 'was revoked';
      try {
        await new PlexusClient({ url: session.url, token: session.token }).logout();
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 401)) {
          // Keep the session file: the token is still valid, so the user can try again.
          throw new CliError(`could not end the session at ${session.url} (${(err as Error).message}); the session is kept, try again`);
        }
        ended = 'had already ended';
      }
      removeSession(config);
      out.stdout(`Logged out of ${session.url} (the session ${ended}; removed ${sessionFile(config)})`);
    });

  program
    .command('whoami')
    .description('show the account, tenant and permissions the commands act with')
    .action(async () => {
      const client = ctx.client();
      const me = await client.me();
      const session = readSession(ctx.config());
      const info = { url: client.url, ...me, sessionExpiresAt: session && session.url === client.url ? session.expiresAt : null };
      printItem(ctx.out(), info, [
        { header: 'URL', value: (i) => i.url },
        { header: 'USERNAME', value: (i) => i.username },
        { header: 'KIND', value: (i) => i.kind },
        { header: 'TENANT', value: (i) => (i.tenant === i.homeTenant ? i.tenant : `${i.tenant} (home ${i.homeTenant})`) },
        { header: 'ROLES', value: (i) => i.roles },
        { header: 'PERMISSIONS', value: (i) => i.permissions },
        { header: 'SESSION EXPIRES', value: (i) => i.sessionExpiresAt },
      ]);
    });
}

function normaliseUrl(raw: string | undefined): string {
  if (!raw) throw new CliError('which hub? give --url, e.g. plexus login --url http://127.0.0.1:8080', EXIT.usage);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`--url ${JSON.stringify(raw)} is not a URL (e.g. http://127.0.0.1:8080)`, EXIT.usage);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`--url must be http:// or https://, not ${url.protocol}`, EXIT.usage);
  if (url.search || url.hash || url.username || url.password) throw new CliError('--url takes the hub base URL only (no query, fragment or credentials)', EXIT.usage);
  return url.toString().replace(/\/+$/, '');
}
