/** The IAM API's shapes: each zod schema beside its inferred type, shared by routes and service. */
import { z } from 'zod';
import { AccountInfo } from '../../contracts/iam.js';
import { isKnownPermission } from '../../contracts/permissions.js';
import { pageQuery, searchQuery, sortQuery } from '../../contracts/list.js';

export const TenantId = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lowercase letters, digits and dashes, starting with a letter or digit');
export const Username = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@+-]*$/, 'must be letters, digits and . _ @ + - (starting with a letter or digit)');
/** Long enough to mean something, short enough that hashing it costs nothing extra. */
export const Password = z.string().min(8, 'must be at least 8 characters').max(256);
export const Uuid = z.uuid({ error: 'must be a UUID' });
export const PermissionName = z
  .string()
  .max(100)
  .refine(isKnownPermission, { error: (iss) => `unknown permission ${JSON.stringify(iss.input)}` });
export const Permissions = z.array(PermissionName).max(100);
export const RoleIds = z.array(Uuid).max(50);
const Name = z.string().trim().min(1).max(200);
const Description = z.string().max(500);

export const IdParams = z.strictObject({ id: Uuid });
export const TenantParams = z.strictObject({ id: TenantId });

// ---------------------------------------------------------------- login / me

export const LoginBody = z.strictObject({
  username: z.string().min(1).max(200),
  password: z.string().min(1).max(1024),
  /** The account's tenant: usernames are unique per tenant. Default `default` (the bootstrap admin's). */
  tenant: TenantId.optional(),
});

export { AccountInfo, LoginResponse } from '../../contracts/iam.js';

export const IntrospectBody = z.strictObject({
  token: z.string().min(1).max(200),
  /** The tenant the caller asked for (its `Tenant` header); answered as the effective tenant. */
  tenant: TenantId.optional(),
});

export const Introspection = AccountInfo.extend({
  tokenId: z.string(),
  expiresAt: z.string().nullable(),
});
export type Introspection = z.infer<typeof Introspection>;

// ---------------------------------------------------------------- tenants

export const Tenant = z.object({ id: z.string(), name: z.string(), createdAt: z.string(), updatedAt: z.string() });
export type Tenant = z.infer<typeof Tenant>;
export const CreateTenantBody = z.strictObject({ id: TenantId, name: Name });
export type CreateTenantBody = z.infer<typeof CreateTenantBody>;
export const UpdateTenantBody = z.strictObject({ name: Name });
export type UpdateTenantBody = z.infer<typeof UpdateTenantBody>;
export const TenantListQuery = z.strictObject({ ...pageQuery, search: searchQuery, sort: sortQuery(['id', 'name', 'createdAt']) });
export type TenantListQuery = z.infer<typeof TenantListQuery>;

// ---------------------------------------------------------------- users (accounts)

export const User = z.object({
  id: z.string(),
  username: z.string(),
  tenant: z.string(),
  kind: z.enum(['user', 'service']),
  permissions: z.array(z.string()),
  roles: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type User = z.infer<typeof User>;

export const CreateUserBody = z
  .strictObject({
    username: Username,
    /** Required for users; service accounts log in with persistent tokens only. */
    password: Password.optional(),
    kind: z.enum(['user', 'service']).default('user'),
    tenant: TenantId.optional(),
    permissions: Permissions.default([]),
    roles: RoleIds.default([]),
  })
  .superRefine((b, ctx) => {
    if (b.kind === 'user' && b.password === undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: 'is required for a user' });
    if (b.kind === 'service' && b.password !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'a service account has no password (issue it a token)' });
    }
  });
export type CreateUserBody = z.infer<typeof CreateUserBody>;

export const UpdateUserBody = z.strictObject({
  password: Password.optional(),
  permissions: Permissions.optional(),
  roles: RoleIds.optional(),
});
export type UpdateUserBody = z.infer<typeof UpdateUserBody>;

export const UserListQuery = z.strictObject({
  ...pageQuery,
  'filter[kind]': z.enum(['user', 'service']).optional(),
  'filter[role]': Uuid.optional(),
  search: searchQuery,
  sort: sortQuery(['username', 'createdAt', 'updatedAt']),
});
export type UserListQuery = z.infer<typeof UserListQuery>;

// ---------------------------------------------------------------- roles

export const Role = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string(),
  permissions: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Role = z.infer<typeof Role>;
const RoleName = z.string().trim().min(1).max(100);
export const CreateRoleBody = z.strictObject({ name: RoleName, permissions: Permissions.default([]) });
export type CreateRoleBody = z.infer<typeof CreateRoleBody>;
export const UpdateRoleBody = z.strictObject({ name: RoleName.optional(), permissions: Permissions.optional() });
export type UpdateRoleBody = z.infer<typeof UpdateRoleBody>;
export const RoleListQuery = z.strictObject({ ...pageQuery, search: searchQuery, sort: sortQuery(['name', 'createdAt', 'updatedAt']) });
export type RoleListQuery = z.infer<typeof RoleListQuery>;

// ---------------------------------------------------------------- tokens

export const TokenInfo = z.object({
  id: z.string(),
  accountId: z.string(),
  username: z.string(),
  kind: z.enum(['session', 'persistent']),
  description: z.string().nullable(),
  /** null: every permission of the account. */
  permissions: z.array(z.string()).nullable(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  createdAt: z.string(),
});
export type TokenInfo = z.infer<typeof TokenInfo>;

/** A new persistent token: the only time its value is shown. */
export const IssuedToken = TokenInfo.extend({ token: z.string() });
export type IssuedToken = z.infer<typeof IssuedToken>;

const MAX_TOKEN_LIFETIME_MS = 10 * 365 * 86_400_000;
export const CreateTokenBody = z.strictObject({
  /** Whose token; default the caller. */
  accountId: Uuid.optional(),
  description: Description.optional(),
  /** Narrow the token to these permissions (each held by the account); default all of the account's. */
  permissions: Permissions.optional(),
  /** Default: never expires (revoke it with DELETE /api/v1/tokens/:id). */
  expiresAt: z.iso
    .datetime({ offset: true, error: 'must be an ISO 8601 date-time', abort: true })
    .refine((v) => Date.parse(v) > Date.now(), 'must be in the future')
    .refine((v) => Date.parse(v) < Date.now() + MAX_TOKEN_LIFETIME_MS, 'must be within 10 years')
    .optional(),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBody>;

export const TokenListQuery = z.strictObject({
  ...pageQuery,
  'filter[accountId]': Uuid.optional(),
  'filter[kind]': z.enum(['session', 'persistent']).optional(),
  sort: sortQuery(['createdAt', 'expiresAt', 'lastUsedAt']),
});
export type TokenListQuery = z.infer<typeof TokenListQuery>;
