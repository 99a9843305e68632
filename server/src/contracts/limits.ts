/**
 * Per-tenant limits (modules/limits): what one tenant may use of a shared hub, so that a tenant at
 * its limit slows down alone. Defaults come from configuration (`PLEXUS_LIMITS_*`); a platform
 * admin overrides any of them per tenant (`PUT /api/v1/tenants/:id/limits`).
 *
 * Glossary
 * - Limit: one number below; `TenantLimits` is the whole set in force for a tenant.
 * - Override: a limit set for one tenant; a limit without one takes the default.
 * - In flight (webhook bodies): bytes of request bodies that have started to arrive and are not
 *   yet durably enqueued.
 */
import { z } from 'zod';

const count = (max: number) => z.number().int('must be a whole number').min(1, 'must be at least 1').max(max, `must be at most ${max}`);
const bytes = z.number().int('must be a whole number').min(1_024, 'must be at least 1024 bytes').max(2 ** 40, 'must be at most 1 TiB');

export const TenantLimits = z.strictObject({
  /** Webhook calls per second (token bucket holding one second's worth). */
  webhookRequestsPerSecond: count(1_000_000),
  /** Webhook body bytes per second (token bucket holding one second's worth; one body may overdraw it). */
  webhookBytesPerSecond: bytes,
  /** Webhook body bytes in flight at once (arriving, not yet enqueued), per process. */
  webhookInFlightBytes: bytes,
  /** Executions running at once per orchestrator process; more wait in their queues. */
  concurrentExecutions: count(100_000),
  /** Messages one execution may produce (every message routed to a next step counts). */
  messagesPerExecution: count(100_000_000),
  /** Code-step sandbox slots the tenant may hold at once. */
  codeSlots: count(1_000),
});
export type TenantLimits = z.infer<typeof TenantLimits>;

export const LIMIT_NAMES = Object.keys(TenantLimits.shape) as ReadonlyArray<keyof TenantLimits>;

/** Overrides as stored and as `PUT` takes them: any subset; a limit left out takes the default. */
export const LimitOverrides = TenantLimits.partial();
export type LimitOverrides = z.infer<typeof LimitOverrides>;

/** What `GET|PUT /api/v1/tenants/:id/limits` answer. */
export const TenantLimitsView = z.object({
  tenant: z.string(),
  /** In force: each override, else the default. */
  limits: TenantLimits,
  overrides: LimitOverrides,
  defaults: TenantLimits,
  updatedAt: z.string().nullable(),
});
export type TenantLimitsView = z.infer<typeof TenantLimitsView>;
