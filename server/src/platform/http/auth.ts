/**
 * Who is calling. Every non-public route declares the permission it needs in its route
 * `config.permission`; the HTTP layer resolves the caller through the IAM module's
 * Authenticator and checks the permission before the handler runs.
 */
import type { FastifyRequest } from 'fastify';

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
  const held = principal.permissions;
  if (held.includes('all') || held.includes(permission)) return true;
  return held.includes('tenant.all') && !isRestrictedPermission(permission);
}

/**
 * Permissions only a platform admin holds: tenant admins can neither use nor grant them.
 * `metrics.read` is one: the metrics describe every tenant's traffic, not the caller's.
 */
export function isRestrictedPermission(permission: string): boolean {
  return permission === 'all' || permission.startsWith('iam.') || permission === 'metrics.read';
}

export function isPlatformAdmin(principal: Pick<Principal, 'permissions'>): boolean {
  return principal.permissions.includes('all');
}
