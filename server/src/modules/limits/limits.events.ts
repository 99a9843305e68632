/**
 * Events of the limits module. It publishes `limits.changed {tenant}` (for other modules) and
 * `audit.limits.*`; it listens (durable group `limits`) for `iam.tenant.deleted` and drops what
 * it kept for that tenant.
 */
import { z } from 'zod';
import type { Bus, Consumer } from '../../platform/bus/index.js';
import type { Logger } from '../../platform/logger.js';

export const LIMITS_GROUP = 'limits';

export const LIMITS_EVENTS = {
  /** A tenant's limits changed (set or reset by a platform admin, or the tenant was deleted). */
  changed: 'limits.changed',
} as const;

export interface LimitsChangedEvent {
  tenant: string;
}

/** Audit actions of the limits module (`audit.limits.<action>`); `denied` comes from the HTTP layer. */
export type LimitsAuditAction = 'updated' | 'reset';

const TenantDeleted = z.object({ id: z.string().min(1) });

export async function subscribeToTenantDeletions(bus: Bus, onDeleted: (tenant: string) => Promise<void>, logger: Logger): Promise<Consumer> {
  return bus.subscribe<unknown>('iam.tenant.deleted', LIMITS_GROUP, async (event) => {
    const p = TenantDeleted.safeParse(event.payload);
    if (!p.success) return void logger.warn('limits: ignoring iam.tenant.deleted without a tenant id');
    await onDeleted(p.data.id);
  });
}
