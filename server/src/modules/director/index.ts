/** Director: applications and runtimes, scenarios, specs, webhooks, API credentials (see README.md). */
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { FastifyRequest } from 'fastify';
import type { Authenticator, HttpApp } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import type { Outbound } from '../../platform/outbound/index.js';
import { QueryCache } from './director.cache.js';
import { DirectorJobs } from './director.jobs.js';
import type { IamService } from '../iam/index.js';
import type { SecretsService } from '../secrets/index.js';
import { iamIdentityIssuer, iamTenantLister, secretsCredentialStore } from './director.adapters.js';
import type { Caller, CredentialStore, IdentityIssuer, Pairing, TenantLister } from './director.ports.js';
import { createResolvers } from './director.resolvers.js';
import { directorRoutes } from './director.routes.js';
import { DirectorService } from './director.service.js';
import { SpecValidator } from './director.specs.js';

export { DirectorService } from './director.service.js';
export { SCHEMA_FILE, MAX_DEPTH, MAX_FIELDS } from './director.routes.js';
export { CERTIFICATE_AUTH_KIND } from './director.service.js';
export type { Caller, CredentialStore, IdentityIssuer, IssuedIdentity, TenantLister, Pairing, PairingTarget, IssuedOneTimeToken, OneTimeTokenStatus } from './director.ports.js';

export interface DirectorModule extends PlexusModule {
  service: DirectorService;
  /** The same `POST /director/graphql` with callers resolved another way (the Connector's mTLS listener). */
  routesWith(resolveCaller: (req: FastifyRequest) => Promise<Caller>): (app: HttpApp) => Promise<void>;
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
  /** One-time tokens and client certificates (the Connector); without it the pairing mutations answer 27. */
  pairing?: Pairing;
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
    pairing: deps.pairing,
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
  const resolvers = createResolvers(service, deps.listTenants ?? iamTenantLister(deps.iam));
  const cache = deps.config.director.queryCacheBytes > 0 ? new QueryCache(deps.config.director.queryCacheBytes) : undefined;
  return {
    name: 'director',
    role: 'director',
    service,
    routes: directorRoutes({ service, resolvers, authenticate: deps.authenticate, logger: deps.logger, graphiql: !deps.config.isProduction, cache }),
    routesWith: (resolveCaller) => directorRoutes({ service, resolvers, authenticate: deps.authenticate, logger: deps.logger, graphiql: false, cache, resolveCaller }),
    async start() {
      await jobs.start();
    },
    async stop() {
      await jobs.stop();
      await specs.close();
    },
  };
}
