/** Webhooks ingress: `/hook/:flowId` delivers to a started flow's first step (see README.md). */
import type { ReplyWaiter, StepHandoff } from '../../contracts/flows.js';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus, Consumer } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Authenticator } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import type { WebhookAdmission } from '../limits/index.js';
import { subscribeToLifecycle } from './webhooks.events.js';
import { webhooksRoutes } from './webhooks.routes.js';
import { WebhooksService, type WebhookSecrets } from './webhooks.service.js';

export { WebhooksService, REQUEST_KEY_TTL_MS, type HookTarget, type WebhookSecrets } from './webhooks.service.js';
export { WEBHOOKS_GROUP, type WebhooksAuditAction } from './webhooks.events.js';
export { sign as signWebhook, SIGNATURE_TOLERANCE_MS } from './webhooks.signature.js';

export interface WebhooksModule extends PlexusModule {
  service: WebhooksService;
}

export interface WebhooksModuleDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  /** Bearer auth for flows that ask for it (the IAM module's authenticator). */
  authenticate?: Authenticator | undefined;
  /** Sync replies (`respond: "sync"`), from the execution engine. */
  replyWaiter?: ReplyWaiter | undefined;
  /** In-process delivery of accepted calls to the flow's first step, from the execution engine. */
  handoff?: StepHandoff | undefined;
  /** Per-tenant webhook limits (the limits module's ingress). */
  admission?: WebhookAdmission | undefined;
  /** Signing secrets of `auth: hmac` flows (the secrets module's service). */
  secrets?: WebhookSecrets | undefined;
}

export async function createWebhooksModule(deps: WebhooksModuleDeps): Promise<WebhooksModule> {
  const audit = createAuditPublisher(deps.bus, 'webhooks', deps.logger);
  const service = new WebhooksService(deps.db, deps.bus, audit, deps.logger, deps.handoff, deps.secrets);
  let consumer: Consumer | undefined;
  return {
    name: 'webhooks',
    role: 'webhooks',
    service,
    routes: webhooksRoutes({
      service,
      maxBytes: deps.config.webhooks.maxBytes,
      maxFields: deps.config.webhooks.maxFields,
      maxXmlElements: deps.config.webhooks.maxXmlElements,
      authenticate: deps.authenticate,
      replyWaiter: deps.replyWaiter,
      logger: deps.logger,
      admission: deps.admission,
    }),
    async start() {
      await service.start();
      consumer = await subscribeToLifecycle(deps.bus, service, deps.logger);
    },
    async stop() {
      await consumer?.stop();
      await service.stop();
    },
  };
}
