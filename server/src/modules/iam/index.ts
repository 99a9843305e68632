/** IAM: tenants, accounts, roles, tokens; the Authenticator every other route relies on. */
import type { Bus } from '../../platform/bus/index.js';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Authenticator, DeniedAccess } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { iamRoutes } from './iam.routes.js';
import { IamService, type BootstrapCredentials } from './iam.service.js';

export { IamService, DEFAULT_TENANT, ADMIN_USERNAME } from './iam.service.js';
export type { BootstrapCredentials } from './iam.service.js';

export interface IamModule extends PlexusModule {
  service: IamService;
  authenticator: Authenticator;
  /** Set on the process that created the bootstrap admin, for printing once. */
  bootstrapCredentials: BootstrapCredentials | undefined;
  auditDenied(denied: DeniedAccess): void;
}

export async function createIamModule(deps: { config: Config; db: Db; bus: Bus; logger: Logger }): Promise<IamModule> {
  const service = new IamService(deps.db, deps.config, deps.logger);
  const audit = createAuditPublisher(deps.bus, 'iam', deps.logger);
  const bootstrapCredentials = await service.bootstrap();
  return {
    name: 'iam',
    role: 'iam',
    service,
    authenticator: service.authenticate,
    bootstrapCredentials,
    routes: iamRoutes(service, audit),
    auditDenied(denied) {
      void createAuditPublisher(deps.bus, denied.module, deps.logger).record({
        action: 'denied',
        actor: denied.principal,
        target: { type: 'route', name: `${denied.method} ${denied.url}` },
        result: 'denied',
        sourceIp: denied.ip,
        details: { permission: denied.permission },
      });
    },
  };
}
