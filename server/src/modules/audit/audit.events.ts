/**
 * What the audit module consumes: every `audit.<module>.<action>` event (platform/audit.ts
 * builds them). Validated loosely at this edge: a record with an unexpected shape is still
 * stored, with what could not be understood kept under `details`.
 */
import { z } from 'zod';

/** The subscription: every audit event, whichever module publishes it. */
export const AUDIT_PATTERN = 'audit.>';
/** One durable group: each event is stored once however many audit processes run. */
export const AUDIT_GROUP = 'audit';
/** The event that erases an account's name from the log. */
export const USER_DELETED_AUDIT_EVENT = 'audit.iam.user.deleted';

const short = z.string().max(1_000);

export const AuditEventPayload = z.looseObject({
  action: short.optional(),
  module: short.optional(),
  at: z.iso.datetime({ offset: true }).optional(),
  result: short.optional(),
  tenantId: short.optional(),
  sourceIp: short.optional(),
  actor: z
    .looseObject({ accountId: short.optional(), username: short.optional(), tenantId: short.optional() })
    .optional(),
  target: z.looseObject({ type: short, id: short.optional(), name: short.optional() }).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type AuditEventPayload = z.infer<typeof AuditEventPayload>;

export const AuditEnvelope = z.object({
  headers: z.looseObject({ name: z.string().min(1).max(300), createdAt: z.string().optional(), serviceName: z.string().max(200).optional() }),
  payload: z.unknown(),
});
export type AuditEnvelope = z.infer<typeof AuditEnvelope>;
