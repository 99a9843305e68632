/**
 * What a client of the IAM API reads back from login and `/me`, shared by the iam module, the
 * CLI and the web UI. The rest of the IAM API's shapes live in the module (iam.schemas.ts).
 */
import { z } from 'zod';

export const LoginResponse = z.object({ token: z.string(), expiresAt: z.string() });

/** An introspected account: who, in which tenant, with what. */
export const AccountInfo = z.object({
  id: z.string(),
  username: z.string(),
  tenant: z.string(),
  homeTenant: z.string(),
  kind: z.enum(['user', 'service']),
  roles: z.array(z.string()),
  permissions: z.array(z.string()),
});
export type AccountInfo = z.infer<typeof AccountInfo>;

