/**
 * Who may hand out which permission. The rule is "you can only give what you have, and only a
 * platform admin gives restricted permissions": a tenant admin (`tenant.all`) grants any
 * non-restricted permission inside its tenant, a user holding `tenant.users.write` grants only
 * what it holds itself, and nobody but `all` grants `all` or `iam.*`.
 */
import { hasPermission, isPlatformAdmin, isRestrictedPermission, type Principal } from '../../platform/http/index.js';

type Holder = Pick<Principal, 'permissions'>;

export function canGrant(grantor: Holder, permission: string): boolean {
  if (isPlatformAdmin(grantor)) return true;
  if (isRestrictedPermission(permission)) return false;
  return hasPermission(grantor, permission);
}

/** The permissions in `wanted` the grantor may not grant (empty: all fine). */
export function ungrantable(grantor: Holder, wanted: readonly string[]): string[] {
  return [...new Set(wanted.filter((p) => !canGrant(grantor, p)))];
}

/**
 * An account may be changed, deleted or given tokens only by someone who could have granted
 * everything it holds: a tenant admin cannot take over the platform admin of its tenant.
 */
export function canManage(actor: Holder, targetPermissions: readonly string[]): boolean {
  return ungrantable(actor, targetPermissions).length === 0;
}

/** The permissions a token grants: the account's, narrowed to the token's own list if it has one. */
export function effectivePermissions(accountPermissions: readonly string[], tokenPermissions: readonly string[] | null): string[] {
  const account = [...new Set(accountPermissions)];
  if (!tokenPermissions) return account;
  return [...new Set(tokenPermissions.filter((p) => hasPermission({ permissions: account }, p)))];
}
