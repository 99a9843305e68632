/**
 * Limits: what each tenant may use of a shared hub — webhook calls and bytes per second, webhook
 * bodies in flight, executions running at once, messages per execution, code-step slots — with
 * defaults from configuration and per-tenant overrides by a platform admin (see README.md).
 */
import { TenantLimits } from '../../contracts/limits.js';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus, Consumer } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import { subscribeToTenantDeletions } from './limits.events.js';
import { WebhookIngress } from './limits.ingress.js';
import { limitsRoutes } from './limits.routes.js';
import { LimitsService } from './limits.service.js';

export { LimitsService } from './limits.service.js';
export { WebhookIngress, TokenBucket, type WebhookAdmission, type Admission } from './limits.ingress.js';
export { LIMITS_EVENTS, LIMITS_GROUP, type LimitsChangedEvent, type LimitsAuditAction } from './limits.events.js';

export interface LimitsModule extends PlexusModule {
  service: LimitsService;
  /** Webhook admission of this process (the webhooks module's `admission`). */
  ingress: WebhookIngress;
  /**
   * Keeps this process's limits current (every process calls it, whatever its roles). Returns
   * the way to stop.
   */
  watch(): Promise<() => Promise<void>>;
}

export interface LimitsModuleDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  /** Throws 404 TENANT_NOT_FOUND for an unknown tenant (the IAM module's). */
  requireTenant: (tenant: string) => Promise<void>;
}

export async function createLimitsModule(deps: LimitsModuleDeps): Promise<LimitsModule> {
  const defaults = TenantLimits.safeParse(deps.config.limits.defaults);
  if (!defaults.success) {
    const problems = defaults.error.issues.map((i) => `${String(i.path[0])} ${i.message}`);
    throw new AppError('CONFIG_INVALID', `invalid configuration: PLEXUS_LIMITS_* defaults: ${problems.join('; ')}`, 'user');
  }
  const audit = createAuditPublisher(deps.bus, 'limits', deps.logger);
  const service = new LimitsService(deps.db, deps.bus, audit, deps.logger, Object.freeze(defaults.data), deps.requireTenant);
  const ingress = new WebhookIngress((tenant) => service.forTenant(tenant), deps.config.limits.webhookInFlightBytesTotal);
  let consumer: Consumer | undefined;
  return {
    name: 'limits',
    // Tenant administration lives with IAM: its routes and its reaction to deleted tenants.
    role: 'iam',
    service,
    ingress,
    routes: limitsRoutes(service),
    watch: () => service.watch(),
    async start() {
      consumer = await subscribeToTenantDeletions(deps.bus, (tenant) => service.forgetTenant(tenant), deps.logger);
    },
    async stop() {
      await consumer?.stop();
    },
  };
}
