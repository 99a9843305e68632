/**
 * The audit API's shapes. The query and the record the API answers with are contracts shared
 * with the CLI and the web UI (contracts/audit.ts); the route parameters stay here.
 */
import { z } from 'zod';

export { AuditEntry, AuditListQuery } from '../../contracts/audit.js';

export const AuditParams = z.strictObject({ id: z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a record id (a positive integer)') });
