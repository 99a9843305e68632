/** Secrets: encrypted credentials for flow steps, and the resolver the execution engine uses. */
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/bus.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { Outbound } from '../../platform/outbound/index.js';
import type { PlexusModule } from '../../platform/module.js';
import { loadKeyring } from './secrets.crypto.js';
import { secretsRoutes } from './secrets.routes.js';
import { SecretsService } from './secrets.service.js';

export { SecretsService, maskValue } from './secrets.service.js';
export { createKeyring, parseKey, keyIdOf, loadKeyring, KEY_FILE, type Keyring } from './secrets.crypto.js';
export type { SecretResolver, SecretValue, SecretUse } from '../../contracts/secrets.js';

export interface SecretsModule extends PlexusModule {
  /** `service.resolveForStep(tenantId, secretId)` is what the execution engine calls. */
  service: SecretsService;
}

export async function createSecretsModule(deps: { config: Config; db: Db; bus: Bus; logger: Logger; outbound: Outbound }): Promise<SecretsModule> {
  const keyring = loadKeyring({
    key: deps.config.secrets.key,
    previousKeys: deps.config.secrets.previousKeys,
    dataDir: deps.config.dataDir,
    isProduction: deps.config.isProduction,
    sharedDatabase: Boolean(deps.config.db.url),
    logger: deps.logger,
  });
  const service = new SecretsService(deps.db, keyring, createAuditPublisher(deps.bus, 'secrets', deps.logger), deps.logger, deps.outbound);
  let rotation: Promise<unknown> = Promise.resolve();
  return {
    name: 'secrets',
    role: 'secrets',
    service,
    routes: secretsRoutes(service),
    async start() {
      // Secrets sealed under a previous key move to the current one, in the background.
      rotation = service
        .rotateKeys()
        .then((n) => n && deps.logger.info({ resealed: n }, 'secrets re-sealed under the current key'))
        .catch((err: unknown) => deps.logger.error({ err }, 'could not re-seal secrets under the current key'));
    },
    async stop() {
      await rotation;
    },
  };
}
