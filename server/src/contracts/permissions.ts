/** Every permission string a route or a grant may name. `all` is the platform admin. */
export const PERMISSIONS = [
  'all',
  'tenant.all',
  // Restricted (`iam.*`, `metrics.read`): only a platform admin holds or grants them.
  'iam.token.introspect',
  'iam.tenants.read',
  'iam.tenants.write',
  // Platform-wide operations data (every tenant's traffic): restricted like `iam.*`.
  'metrics.read',
  // Tenant administration: `tenant.all` covers these, so a tenant admin manages its own tenant.
  'tenant.users.read',
  'tenant.users.write',
  'tenant.roles.read',
  'tenant.roles.write',
  'tenant.tokens.read',
  'tenant.tokens.write',
  'flows.read',
  'flows.write',
  'flows.control',
  'webhooks.execute',
  'executions.read',
  'executions.retry',
  'components.read',
  'components.write',
  'secrets.read',
  'secrets.write',
  'secrets.readRaw',
  'audit.read',
  'workers.read',
  'workers.write',
  'application:read',
  'application:write',
  'runtime:read',
  'runtime:write',
  'label_definition:read',
  'label_definition:write',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const KNOWN = new Set<string>(PERMISSIONS);

export function isKnownPermission(p: string): p is Permission {
  return KNOWN.has(p);
}

/**
 * Permissions only a platform admin holds: tenant admins can neither use nor grant them.
 * `metrics.read` is one: the metrics describe every tenant's traffic, not the caller's.
 */
export function isRestrictedPermission(permission: string): boolean {
  return permission === 'all' || permission.startsWith('iam.') || permission === 'metrics.read';
}

/** Whether `held` grants `permission`: `all` is the platform admin; `tenant.all` holds every permission that is not restricted. */
export function holdsPermission(held: readonly string[], permission: string): boolean {
  if (held.includes('all') || held.includes(permission)) return true;
  return held.includes('tenant.all') && !isRestrictedPermission(permission);
}
