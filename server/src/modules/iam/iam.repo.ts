/** SQL of the IAM module. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';
import type { LoginScope } from './iam.ratelimit.js';

export interface TenantRow {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
}

export interface AccountRow {
  id: string;
  tenant_id: string;
  username: string;
  kind: 'user' | 'service';
  password_hash: string | null;
  permissions: string[];
  role_ids: string[];
  created_at: Date;
  updated_at: Date;
}

export interface RoleRow {
  id: string;
  tenant_id: string;
  name: string;
  permissions: string[];
  created_at: Date;
  updated_at: Date;
}

/** A token's metadata (never its hash) with the username of its account. */
export interface TokenRow {
  id: string;
  account_id: string;
  username: string;
  tenant_id: string;
  kind: 'session' | 'persistent';
  description: string | null;
  permissions: string[] | null;
  expires_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
}

/** A token joined with its account and the permissions its roles grant. */
export interface TokenPrincipalRow {
  token_id: string;
  token_kind: 'session' | 'persistent';
  token_permissions: string[] | null;
  expires_at: Date | null;
  last_used_at: Date | null;
  account_id: string;
  username: string;
  tenant_id: string;
  account_kind: 'user' | 'service';
  permissions: string[];
  role_names: string[];
  role_permissions: string[];
}

export interface Page {
  limit: number;
  offset: number;
}

/** `search` as a LIKE pattern that matches it literally. */
function containsPattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

// ---------------------------------------------------------------- tenants

export async function countAllTenants(db: Queryable): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM iam_tenants');
  return res.rows[0]?.n ?? 0;
}

export async function insertTenantIfMissing(db: Queryable, id: string, name: string): Promise<void> {
  await db.query('INSERT INTO iam_tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [id, name]);
}

/** Inserts a tenant; undefined when the id is taken. */
export async function insertTenant(db: Queryable, id: string, name: string): Promise<TenantRow | undefined> {
  const res = await db.query<TenantRow>('INSERT INTO iam_tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING *', [id, name]);
  return res.rows[0];
}

export async function findTenant(db: Queryable, id: string): Promise<TenantRow | undefined> {
  const res = await db.query<TenantRow>('SELECT * FROM iam_tenants WHERE id = $1', [id]);
  return res.rows[0];
}

export async function tenantExists(db: Queryable, tenantId: string): Promise<boolean> {
  const res = await db.query('SELECT 1 FROM iam_tenants WHERE id = $1', [tenantId]);
  return res.rows.length === 1;
}

export interface TenantFilter {
  search?: string | undefined;
}

const TENANT_SORT = { id: 'id', name: 'name', createdAt: 'created_at' } as const;

export async function countTenants(db: Queryable, f: TenantFilter): Promise<number> {
  const res = await db.query<{ n: number }>(
    `SELECT count(*)::int8 AS n FROM iam_tenants WHERE ($1::text IS NULL OR id ILIKE $1 OR name ILIKE $1)`,
    [f.search ? containsPattern(f.search) : null],
  );
  return res.rows[0]?.n ?? 0;
}

export async function listTenants(db: Queryable, f: TenantFilter, sort: { field: keyof typeof TENANT_SORT; desc: boolean }, page: Page): Promise<TenantRow[]> {
  const res = await db.query<TenantRow>(
    `SELECT * FROM iam_tenants WHERE ($1::text IS NULL OR id ILIKE $1 OR name ILIKE $1)
      ORDER BY ${TENANT_SORT[sort.field]} ${sort.desc ? 'DESC' : 'ASC'}, id LIMIT $2 OFFSET $3`,
    [f.search ? containsPattern(f.search) : null, page.limit, page.offset],
  );
  return res.rows;
}

export async function updateTenantName(db: Queryable, id: string, name: string): Promise<TenantRow | undefined> {
  const res = await db.query<TenantRow>('UPDATE iam_tenants SET name = $2, updated_at = now() WHERE id = $1 RETURNING *', [id, name]);
  return res.rows[0];
}

export async function deleteTenant(db: Queryable, id: string): Promise<boolean> {
  const res = await db.query('DELETE FROM iam_tenants WHERE id = $1 RETURNING id', [id]);
  return res.rows.length === 1;
}

export async function countAccountsInTenant(db: Queryable, tenantId: string): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM iam_accounts WHERE tenant_id = $1', [tenantId]);
  return res.rows[0]?.n ?? 0;
}

// ---------------------------------------------------------------- accounts

export interface NewAccount {
  id: string;
  tenantId: string;
  username: string;
  kind: 'user' | 'service';
  passwordHash: string | null;
  permissions: string[];
  roleIds: string[];
}

/** Inserts an account unless its tenant has the username already (in any letter case); undefined when taken. */
export async function insertAccount(db: Queryable, a: NewAccount): Promise<AccountRow | undefined> {
  const res = await db.query<AccountRow>(
    `INSERT INTO iam_accounts (id, tenant_id, username, kind, password_hash, permissions, role_ids)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING *`,
    [a.id, a.tenantId, a.username, a.kind, a.passwordHash, a.permissions, a.roleIds],
  );
  return res.rows[0];
}

/** The account `username` (any letter case) of `tenantId`: usernames are unique per tenant only. */
export async function findAccountByUsername(db: Queryable, tenantId: string, username: string): Promise<AccountRow | undefined> {
  const res = await db.query<AccountRow>('SELECT * FROM iam_accounts WHERE tenant_id = $1 AND lower(username) = lower($2)', [tenantId, username]);
  return res.rows[0];
}

/** The account `id` in `tenantId`; another tenant's account is as absent as a missing one. */
export async function findAccount(db: Queryable, tenantId: string, id: string): Promise<AccountRow | undefined> {
  const res = await db.query<AccountRow>('SELECT * FROM iam_accounts WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return res.rows[0];
}

export interface AccountFilter {
  tenantId: string;
  kind?: 'user' | 'service' | undefined;
  roleId?: string | undefined;
  search?: string | undefined;
}

const ACCOUNT_SORT = { username: 'username', createdAt: 'created_at', updatedAt: 'updated_at' } as const;
const ACCOUNT_WHERE = `tenant_id = $1 AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR $3 = ANY(role_ids))
  AND ($4::text IS NULL OR username ILIKE $4)`;

function accountParams(f: AccountFilter): unknown[] {
  return [f.tenantId, f.kind ?? null, f.roleId ?? null, f.search ? containsPattern(f.search) : null];
}

export async function countAccounts(db: Queryable, f: AccountFilter): Promise<number> {
  const res = await db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM iam_accounts WHERE ${ACCOUNT_WHERE}`, accountParams(f));
  return res.rows[0]?.n ?? 0;
}

export async function listAccounts(db: Queryable, f: AccountFilter, sort: { field: keyof typeof ACCOUNT_SORT; desc: boolean }, page: Page): Promise<AccountRow[]> {
  const res = await db.query<AccountRow>(
    `SELECT * FROM iam_accounts WHERE ${ACCOUNT_WHERE}
      ORDER BY ${ACCOUNT_SORT[sort.field]} ${sort.desc ? 'DESC' : 'ASC'}, id LIMIT $5 OFFSET $6`,
    [...accountParams(f), page.limit, page.offset],
  );
  return res.rows;
}

export async function updateAccount(
  db: Queryable,
  tenantId: string,
  id: string,
  changes: { passwordHash?: string | undefined; permissions?: string[] | undefined; roleIds?: string[] | undefined },
): Promise<AccountRow | undefined> {
  const res = await db.query<AccountRow>(
    `UPDATE iam_accounts SET password_hash = COALESCE($3, password_hash), permissions = COALESCE($4, permissions),
            role_ids = COALESCE($5, role_ids), updated_at = now()
      WHERE tenant_id = $1 AND id = $2 RETURNING *`,
    [tenantId, id, changes.passwordHash ?? null, changes.permissions ?? null, changes.roleIds ?? null],
  );
  return res.rows[0];
}

export async function deleteAccount(db: Queryable, tenantId: string, id: string): Promise<AccountRow | undefined> {
  const res = await db.query<AccountRow>('DELETE FROM iam_accounts WHERE tenant_id = $1 AND id = $2 RETURNING *', [tenantId, id]);
  return res.rows[0];
}

// ---------------------------------------------------------------- roles

export async function insertRole(db: Queryable, r: { id: string; tenantId: string; name: string; permissions: string[] }): Promise<RoleRow | undefined> {
  const res = await db.query<RoleRow>(
    'INSERT INTO iam_roles (id, tenant_id, name, permissions) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING *',
    [r.id, r.tenantId, r.name, r.permissions],
  );
  return res.rows[0];
}

export async function findRole(db: Queryable, tenantId: string, id: string): Promise<RoleRow | undefined> {
  const res = await db.query<RoleRow>('SELECT * FROM iam_roles WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return res.rows[0];
}

export async function findRolesByIds(db: Queryable, tenantId: string, ids: readonly string[]): Promise<RoleRow[]> {
  const res = await db.query<RoleRow>('SELECT * FROM iam_roles WHERE tenant_id = $1 AND id = ANY($2::text[]) ORDER BY name', [tenantId, ids]);
  return res.rows;
}

export interface RoleFilter {
  tenantId: string;
  search?: string | undefined;
}

const ROLE_SORT = { name: 'name', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

export async function countRoles(db: Queryable, f: RoleFilter): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM iam_roles WHERE tenant_id = $1 AND ($2::text IS NULL OR name ILIKE $2)', [
    f.tenantId,
    f.search ? containsPattern(f.search) : null,
  ]);
  return res.rows[0]?.n ?? 0;
}

export async function listRoles(db: Queryable, f: RoleFilter, sort: { field: keyof typeof ROLE_SORT; desc: boolean }, page: Page): Promise<RoleRow[]> {
  const res = await db.query<RoleRow>(
    `SELECT * FROM iam_roles WHERE tenant_id = $1 AND ($2::text IS NULL OR name ILIKE $2)
      ORDER BY ${ROLE_SORT[sort.field]} ${sort.desc ? 'DESC' : 'ASC'}, id LIMIT $3 OFFSET $4`,
    [f.tenantId, f.search ? containsPattern(f.search) : null, page.limit, page.offset],
  );
  return res.rows;
}

/** Updates a role; `null` when the new name is taken by another role of the tenant. */
export async function updateRole(
  db: Queryable,
  tenantId: string,
  id: string,
  changes: { name?: string | undefined; permissions?: string[] | undefined },
): Promise<RoleRow | undefined | null> {
  if (changes.name !== undefined) {
    const clash = await db.query('SELECT 1 FROM iam_roles WHERE tenant_id = $1 AND name = $2 AND id <> $3', [tenantId, changes.name, id]);
    if (clash.rows.length) return null;
  }
  const res = await db.query<RoleRow>(
    `UPDATE iam_roles SET name = COALESCE($3, name), permissions = COALESCE($4, permissions), updated_at = now()
      WHERE tenant_id = $1 AND id = $2 RETURNING *`,
    [tenantId, id, changes.name ?? null, changes.permissions ?? null],
  );
  return res.rows[0];
}

export async function deleteRole(db: Queryable, tenantId: string, id: string): Promise<RoleRow | undefined> {
  const res = await db.query<RoleRow>('DELETE FROM iam_roles WHERE tenant_id = $1 AND id = $2 RETURNING *', [tenantId, id]);
  return res.rows[0];
}

export async function removeRoleFromAccounts(db: Queryable, tenantId: string, roleId: string): Promise<void> {
  await db.query('UPDATE iam_accounts SET role_ids = array_remove(role_ids, $2), updated_at = now() WHERE tenant_id = $1 AND $2 = ANY(role_ids)', [tenantId, roleId]);
}

export async function countAccountsWithRole(db: Queryable, tenantId: string, roleId: string): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM iam_accounts WHERE tenant_id = $1 AND $2 = ANY(role_ids)', [tenantId, roleId]);
  return res.rows[0]?.n ?? 0;
}

// ---------------------------------------------------------------- tokens

export async function insertToken(
  db: Queryable,
  t: {
    id: string;
    accountId: string;
    tokenHash: string;
    kind: 'session' | 'persistent';
    description: string | null;
    permissions: string[] | null;
    expiresAt: Date | null;
  },
): Promise<void> {
  await db.query(
    'INSERT INTO iam_tokens (id, account_id, token_hash, kind, description, permissions, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    [t.id, t.accountId, t.tokenHash, t.kind, t.description, t.permissions, t.expiresAt],
  );
}

/** The live (unrevoked, unexpired) token with this hash, with its account and role grants. */
export async function findLiveTokenPrincipal(db: Queryable, tokenHash: string): Promise<TokenPrincipalRow | undefined> {
  const res = await db.query<TokenPrincipalRow>(
    `SELECT t.id AS token_id, t.kind AS token_kind, t.permissions AS token_permissions, t.expires_at, t.last_used_at,
            a.id AS account_id, a.username, a.tenant_id, a.kind AS account_kind, a.permissions,
            COALESCE(ARRAY(SELECT r.name FROM iam_roles r WHERE r.id = ANY(a.role_ids) ORDER BY r.name), '{}') AS role_names,
            COALESCE(ARRAY(SELECT DISTINCT p FROM iam_roles r, unnest(r.permissions) p WHERE r.id = ANY(a.role_ids)), '{}') AS role_permissions
       FROM iam_tokens t JOIN iam_accounts a ON a.id = t.account_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [tokenHash],
  );
  return res.rows[0];
}

/** Sliding session expiry; also records use of any token. */
export async function touchToken(db: Queryable, tokenId: string, expiresAt: Date | null): Promise<void> {
  await db.query(
    `UPDATE iam_tokens SET expires_at = CASE WHEN kind = 'session' THEN $2 ELSE expires_at END, last_used_at = now()
      WHERE id = $1 AND revoked_at IS NULL`,
    [tokenId, expiresAt],
  );
}

/** Revokes one live token of an account in `tenantId`; returns its hash (to drop it from caches). */
export async function revokeTokenInTenant(db: Queryable, tenantId: string, tokenId: string): Promise<{ token_hash: string; account_id: string } | undefined> {
  const res = await db.query<{ token_hash: string; account_id: string }>(
    `UPDATE iam_tokens t SET revoked_at = now() FROM iam_accounts a
      WHERE t.id = $2 AND t.account_id = a.id AND a.tenant_id = $1 AND t.revoked_at IS NULL
        AND (t.expires_at IS NULL OR t.expires_at > now())
      RETURNING t.token_hash, t.account_id`,
    [tenantId, tokenId],
  );
  return res.rows[0];
}

export async function revokeToken(db: Queryable, tokenId: string): Promise<string | undefined> {
  const res = await db.query<{ token_hash: string }>('UPDATE iam_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING token_hash', [tokenId]);
  return res.rows[0]?.token_hash;
}

/** Revokes every live session of an account but one (after a password change); returns their hashes. */
export async function revokeSessionsOfAccount(db: Queryable, accountId: string, exceptTokenId: string): Promise<string[]> {
  const res = await db.query<{ token_hash: string }>(
    `UPDATE iam_tokens SET revoked_at = now() WHERE account_id = $1 AND id <> $2 AND kind = 'session' AND revoked_at IS NULL RETURNING token_hash`,
    [accountId, exceptTokenId],
  );
  return res.rows.map((r) => r.token_hash);
}

export async function listTokenHashesOfAccount(db: Queryable, accountId: string): Promise<string[]> {
  const res = await db.query<{ token_hash: string }>('SELECT token_hash FROM iam_tokens WHERE account_id = $1 AND revoked_at IS NULL', [accountId]);
  return res.rows.map((r) => r.token_hash);
}

export interface TokenFilter {
  tenantId: string;
  accountId?: string | undefined;
  kind?: 'session' | 'persistent' | undefined;
}

const TOKEN_WHERE = `a.tenant_id = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
  AND ($2::text IS NULL OR t.account_id = $2) AND ($3::text IS NULL OR t.kind = $3)`;
const TOKEN_SORT = { createdAt: 't.created_at', expiresAt: 't.expires_at', lastUsedAt: 't.last_used_at' } as const;

export async function countTokens(db: Queryable, f: TokenFilter): Promise<number> {
  const res = await db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM iam_tokens t JOIN iam_accounts a ON a.id = t.account_id WHERE ${TOKEN_WHERE}`, [
    f.tenantId,
    f.accountId ?? null,
    f.kind ?? null,
  ]);
  return res.rows[0]?.n ?? 0;
}

export async function listTokens(db: Queryable, f: TokenFilter, sort: { field: keyof typeof TOKEN_SORT; desc: boolean }, page: Page): Promise<TokenRow[]> {
  const res = await db.query<TokenRow>(
    `SELECT t.id, t.account_id, a.username, a.tenant_id, t.kind, t.description, t.permissions, t.expires_at, t.last_used_at, t.created_at
       FROM iam_tokens t JOIN iam_accounts a ON a.id = t.account_id WHERE ${TOKEN_WHERE}
      ORDER BY ${TOKEN_SORT[sort.field]} ${sort.desc ? 'DESC' : 'ASC'} NULLS LAST, t.id LIMIT $4 OFFSET $5`,
    [f.tenantId, f.accountId ?? null, f.kind ?? null, page.limit, page.offset],
  );
  return res.rows;
}

export async function findToken(db: Queryable, tenantId: string, tokenId: string): Promise<TokenRow | undefined> {
  const res = await db.query<TokenRow>(
    `SELECT t.id, t.account_id, a.username, a.tenant_id, t.kind, t.description, t.permissions, t.expires_at, t.last_used_at, t.created_at
       FROM iam_tokens t JOIN iam_accounts a ON a.id = t.account_id
      WHERE a.tenant_id = $1 AND t.id = $2 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [tenantId, tokenId],
  );
  return res.rows[0];
}

/** Forgets tokens that can no longer be used; their rows serve nothing once dead for a day. */
export async function deleteDeadTokens(db: Queryable, before: Date): Promise<number> {
  const res = await db.query('DELETE FROM iam_tokens WHERE (revoked_at IS NOT NULL AND revoked_at < $1) OR (expires_at IS NOT NULL AND expires_at < $1)', [before]);
  return res.rowCount;
}

// ---------------------------------------------------------------- login failures

/** `at` comes from the caller's clock, the same clock the window is measured with. */
export async function insertLoginFailure(db: Queryable, scope: LoginScope, keyHash: string, at: Date): Promise<void> {
  await db.query('INSERT INTO iam_login_failures (scope, key_hash, at) VALUES ($1, $2, $3)', [scope, keyHash, at]);
}

/** Times of the newest `limit` failures for a key since `since`, newest first. */
export async function listRecentLoginFailures(db: Queryable, scope: LoginScope, keyHash: string, since: Date, limit: number): Promise<Date[]> {
  const res = await db.query<{ at: Date }>(
    'SELECT at FROM iam_login_failures WHERE scope = $1 AND key_hash = $2 AND at > $3 ORDER BY at DESC LIMIT $4',
    [scope, keyHash, since, limit],
  );
  return res.rows.map((r) => r.at);
}

export async function deleteLoginFailures(db: Queryable, scope: LoginScope, keyHash: string): Promise<void> {
  await db.query('DELETE FROM iam_login_failures WHERE scope = $1 AND key_hash = $2', [scope, keyHash]);
}

export async function deleteLoginFailuresBefore(db: Queryable, before: Date): Promise<number> {
  const res = await db.query('DELETE FROM iam_login_failures WHERE at < $1', [before]);
  return res.rowCount;
}

/** Records that an account logged in from a source (the hash of both). */
export async function recordLoginSource(db: Queryable, keyHash: string, at: Date): Promise<void> {
  await db.query(
    'INSERT INTO iam_login_sources (key_hash, last_success_at) VALUES ($1, $2) ON CONFLICT (key_hash) DO UPDATE SET last_success_at = EXCLUDED.last_success_at',
    [keyHash, at],
  );
}

/** Whether the account logged in from this source since `since`. */
export async function isKnownLoginSource(db: Queryable, keyHash: string, since: Date): Promise<boolean> {
  const res = await db.query('SELECT 1 FROM iam_login_sources WHERE key_hash = $1 AND last_success_at > $2', [keyHash, since]);
  return res.rows.length === 1;
}

export async function deleteLoginSourcesBefore(db: Queryable, before: Date): Promise<number> {
  const res = await db.query('DELETE FROM iam_login_sources WHERE last_success_at < $1', [before]);
  return res.rowCount;
}

// ---- cache invalidation across processes ----

/** The LISTEN/NOTIFY channel on which IAM names stale cached tokens (per schema, like the bus's). */
export async function invalidationChannel(db: Queryable): Promise<string> {
  const res = await db.query<{ channel: string }>("SELECT bus_channel('iam', current_schema()) AS channel");
  return res.rows[0]!.channel;
}

/** Tells every process listening: these token hashes (comma-separated), or `all`, are stale. */
export async function notifyInvalidation(db: Queryable, payload: string): Promise<void> {
  await db.query("SELECT pg_notify(bus_channel('iam', current_schema()), $1)", [payload]);
}
