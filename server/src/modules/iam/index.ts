/** IAM: tenants, accounts, roles, tokens; the Authenticator every other route relies on. */
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/bus.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Authenticator, DeniedAccess } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { createAuthenticator, remoteTokenResolver, type TokenResolver } from './iam.authenticator.js';
import * as repo from './iam.repo.js';
import { iamRoutes } from './iam.routes.js';
import { actorOf, IamService, type BootstrapCredentials } from './iam.service.js';

export { IamService, DEFAULT_TENANT, ADMIN_USERNAME, actorOf } from './iam.service.js';
export type { BootstrapCredentials, CallContext, ResolvedToken } from './iam.service.js';
export { createAuthenticator, remoteTokenResolver, DEFAULT_CACHE_TTL_MS, type TokenResolver, type CachingAuthenticator } from './iam.authenticator.js';
export { IAM_EVENTS, type UserDeletedEvent, type TenantDeletedEvent } from './iam.events.js';
export { canGrant, canManage } from './iam.grants.js';
export { TenantId } from './iam.schemas.js';

/** How often expired login failures and dead tokens are purged. */
const PURGE_INTERVAL_MS = 10 * 60_000;

export interface IamModule extends PlexusModule {
  service: IamService;
  authenticator: Authenticator;
  /** Set on the process that created the bootstrap admin, for printing once. */
  bootstrapCredentials: BootstrapCredentials | undefined;
  auditDenied(denied: DeniedAccess): void;
  /**
   * Clears this process's token cache when another process on the database revokes a token.
   * start() does it; a process without the `iam` role calls it itself. Returns the way to stop.
   */
  watchRevocations(): Promise<() => Promise<void>>;
}

export async function createIamModule(deps: { config: Config; db: Db; bus: Bus; logger: Logger }): Promise<IamModule> {
  const audit = createAuditPublisher(deps.bus, 'iam', deps.logger);
  const service = new IamService(deps.db, deps.bus, deps.config, deps.logger, audit);
  const bootstrapCredentials = await service.bootstrap();
  const remote = deps.config.iam.remote;
  // In the all-in-one process the middleware asks the service directly; elsewhere IAM over HTTP.
  const resolve: TokenResolver = remote
    ? remoteTokenResolver({ url: remote.url, serviceToken: remote.token })
    : (token, tenant) => service.resolveToken(token, tenant);
  const auth = createAuthenticator({ resolve, audit });
  service.onInvalidate(auth.invalidate);
  let purgeTimer: NodeJS.Timeout | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  // Revocations in other processes on this database reach this cache at once (iam.service.ts).
  const watchRevocations = async (): Promise<() => Promise<void>> =>
    deps.db.listen(await repo.invalidationChannel(deps.db), (payload) => auth.invalidate(payload === 'all' ? 'all' : payload.split(',')));

  return {
    name: 'iam',
    role: 'iam',
    service,
    authenticator: auth.authenticate,
    bootstrapCredentials,
    routes: iamRoutes(service),
    watchRevocations,
    async start() {
      unlisten = await watchRevocations();
      purgeTimer = setInterval(() => {
        service.purgeExpired().catch((err: unknown) => deps.logger.warn({ err }, 'could not purge expired login failures and tokens'));
      }, PURGE_INTERVAL_MS);
      purgeTimer.unref();
    },
    async stop() {
      clearInterval(purgeTimer);
      await unlisten?.();
    },
    auditDenied(denied) {
      void createAuditPublisher(deps.bus, denied.module, deps.logger).record({
        action: 'denied',
        actor: actorOf(denied.principal),
        target: { type: 'route', name: `${denied.method} ${denied.url}` },
        result: 'denied',
        sourceIp: denied.ip,
        details: { permission: denied.permission },
      });
    },
  };
}
