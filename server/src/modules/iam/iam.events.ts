/**
 * Domain events IAM publishes for other modules (besides its `audit.iam.*` records).
 * Payloads carry ids, never usernames or credentials: they outlive the account on the bus.
 */
export const IAM_EVENTS = {
  /** An account was deleted; modules drop it from owner lists. */
  userDeleted: 'iam.user.deleted',
  /** A tenant was deleted; modules may drop what they kept for it. */
  tenantDeleted: 'iam.tenant.deleted',
} as const;

export interface UserDeletedEvent {
  id: string;
  tenantId: string;
}

export interface TenantDeletedEvent {
  id: string;
}

/** Audit actions of the iam module (`audit.iam.<action>`). */
export type IamAuditAction =
  | 'login'
  | 'login.locked'
  | 'logout'
  | 'unauthenticated'
  | 'denied'
  | 'tenant.created'
  | 'tenant.updated'
  | 'tenant.deleted'
  | 'user.created'
  | 'user.updated'
  | 'user.deleted'
  | 'role.created'
  | 'role.updated'
  | 'role.deleted'
  | 'token.issued'
  | 'token.revoked';
