/** The audit API's shapes (`/api/v1/audit`), shared by the audit module, the CLI and the web UI. */
import { z } from 'zod';
import { pageQuery, searchQuery } from './list.js';

const Instant = z.union([z.iso.datetime({ offset: true }), z.iso.date()], { error: 'must be an ISO 8601 date or date-time' });

export const AuditListQuery = z.strictObject({
  ...pageQuery,
  /** An exact event name (`audit.iam.login`) or a prefix ending in `*` (`audit.iam.*`). */
  'filter[name]': z.string().min(1).max(300).optional(),
  'filter[module]': z.string().min(1).max(100).optional(),
  'filter[result]': z.enum(['success', 'failure', 'denied']).optional(),
  /** An account id or a username. */
  'filter[user]': z.string().min(1).max(200).optional(),
  /** Inclusive. */
  'filter[from]': Instant.optional(),
  /** Exclusive. */
  'filter[to]': Instant.optional(),
  /** Platform admins: one tenant only. */
  'filter[tenant]': z.string().min(1).max(63).optional(),
  search: searchQuery,
  sort: z.enum(['at', '-at']).optional(),
});
export type AuditListQuery = z.infer<typeof AuditListQuery>;

export const AuditEntry = z.object({
  id: z.string(),
  name: z.string(),
  module: z.string(),
  action: z.string(),
  result: z.string().nullable(),
  at: z.string(),
  tenant: z.string().nullable(),
  actor: z.object({ id: z.string().nullable(), username: z.string().nullable() }).nullable(),
  target: z.object({ type: z.string(), id: z.string().nullable(), name: z.string().nullable() }).nullable(),
  sourceIp: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).nullable(),
  serviceName: z.string().nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
