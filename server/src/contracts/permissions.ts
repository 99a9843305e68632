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
