/** Director: applications and runtimes, scenarios, specs, webhooks, API credentials (see README.md). */
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Authenticator } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import type { Outbound } from '../../platform/outbound/index.js';
import { QueryCache } from './director.cache.js';
import { DirectorJobs } from './director.jobs.js';
import type { IamService } from '../iam/index.js';
import type { SecretsService } from '../secrets/index.js';
import { iamIdentityIssuer, iamTenantLister, secretsCredentialStore } from './director.adapters.js';
import type { CredentialStore, IdentityIssuer, TenantLister } from './director.ports.js';
import { createResolvers } from './director.resolvers.js';
import { directorRoutes } from './director.routes.js';
import { DirectorService } from './director.service.js';
import { SpecValidator } from './director.specs.js';

export { DirectorService } from './director.service.js';
export { SCHEMA_FILE, MAX_DEPTH, MAX_FIELDS } from './director.routes.js';
export type { Caller, CredentialStore, IdentityIssuer, IssuedIdentity, TenantLister } from './director.ports.js';

export interface DirectorModule extends PlexusModule {
  service: DirectorService;
}

export interface DirectorModuleDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  authenticate: Authenticator;
  iam: IamService;
  secrets: SecretsService;
  /** Defaults: the secrets module, IAM service accounts, IAM tenants. */
  credentials?: CredentialStore;
  identities?: IdentityIssuer;
  listTenants?: TenantLister;
  /** Every outbound call (spec fetches, their OAuth tokens, webhook deliveries): the operator's network policy. */
  outbound: Outbound;
}

export async function createDirectorModule(deps: DirectorModuleDeps): Promise<DirectorModule> {
  const specs = new SpecValidator(deps.logger);
  const credentials = deps.credentials ?? secretsCredentialStore(deps.secrets);
  const service = new DirectorService({
    db: deps.db,
    bus: deps.bus,
    audit: createAuditPublisher(deps.bus, 'director', deps.logger),
    logger: deps.logger,
    credentials,
    identities: deps.identities ?? iamIdentityIssuer(deps.iam),
    specs,
    config: { specValidation: deps.config.director.specValidation, publicUrl: '' },
  });
  const jobs = new DirectorJobs({
    db: deps.db,
    bus: deps.bus,
    logger: deps.logger,
    credentials,
    outbound: deps.outbound,
    specs,
    webhookFirstRetryMs: deps.config.director.webhookFirstRetryMs,
    webhookRetryWindowMs: deps.config.director.webhookRetryWindowMs,
  });
  return {
    name: 'director',
    role: 'director',
    service,
    routes: directorRoutes({
      service,
      resolvers: createResolvers(service, deps.listTenants ?? iamTenantLister(deps.iam)),
      authenticate: deps.authenticate,
      logger: deps.logger,
      graphiql: !deps.config.isProduction,
      cache: deps.config.director.queryCacheBytes > 0 ? new QueryCache(deps.config.director.queryCacheBytes) : undefined,
    }),
    async start() {
      await jobs.start();
    },
    async stop() {
      await jobs.stop();
      await specs.close();
    },
  };
}
