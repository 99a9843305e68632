/**
 * Who is calling. Every non-public route declares the permission it needs in its route
 * `config.permission`; the HTTP layer resolves the caller through the IAM module's
 * Authenticator and checks the permission before the handler runs.
 */
import type { FastifyRequest } from 'fastify';
import { holdsPermission, isRestrictedPermission } from '../../contracts/permissions.js';

export interface Principal {
  accountId: string;
  username: string;
  /** The tenant this request acts in (an admin may switch with the `Tenant` header). */
  tenantId: string;
  /** The tenant the account belongs to. */
  homeTenantId: string;
  permissions: readonly string[];
  roles: readonly string[];
  kind: 'user' | 'service';
  tokenId: string;
}

/** Resolves the caller or throws AppError UNAUTHENTICATED (401). */
export type Authenticator = (req: FastifyRequest) => Promise<Principal>;

/**
 * `public`: anyone. `authenticated`: any valid caller. Anything else is a permission string
 * such as `flows.read` (see contracts/permissions.ts).
 */
export type RoutePermission = 'public' | 'authenticated' | (string & {});

/** `all` is the platform admin. `tenant.all` holds every permission that is not restricted. */
export function hasPermission(principal: Pick<Principal, 'permissions'>, permission: string): boolean {
  return holdsPermission(principal.permissions, permission);
}

// The rule lives with the permission list (contracts/permissions.ts), so the cockpit applies the same one.
export { isRestrictedPermission };

export function isPlatformAdmin(principal: Pick<Principal, 'permissions'>): boolean {
  return principal.permissions.includes('all');
}
