/** SQL of the IAM module. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';

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

/** A token joined with its account and the permissions its roles grant. */
export interface TokenPrincipalRow {
  token_id: string;
  token_kind: 'session' | 'persistent';
  expires_at: Date | null;
  account_id: string;
  username: string;
  tenant_id: string;
  account_kind: 'user' | 'service';
  permissions: string[];
  role_names: string[];
  role_permissions: string[];
}

export async function countTenants(db: Queryable): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM iam_tenants');
  return res.rows[0]?.n ?? 0;
}

export async function insertTenantIfMissing(db: Queryable, id: string, name: string): Promise<void> {
  await db.query('INSERT INTO iam_tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [id, name]);
}

/** Inserts an account unless the username is taken; returns whether it was inserted. */
export async function insertAccountIfMissing(
  db: Queryable,
  a: { id: string; tenantId: string; username: string; kind: 'user' | 'service'; passwordHash: string | null; permissions: string[]; roleIds: string[] },
): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO iam_accounts (id, tenant_id, username, kind, password_hash, permissions, role_ids)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING RETURNING id`,
    [a.id, a.tenantId, a.username, a.kind, a.passwordHash, a.permissions, a.roleIds],
  );
  return res.rows.length === 1;
}

export async function findAccountByUsername(db: Queryable, username: string): Promise<AccountRow | undefined> {
  const res = await db.query<AccountRow>('SELECT * FROM iam_accounts WHERE username = $1', [username]);
  return res.rows[0];
}

export async function insertToken(
  db: Queryable,
  t: { id: string; accountId: string; tokenHash: string; kind: 'session' | 'persistent'; description: string | null; expiresAt: Date | null },
): Promise<void> {
  await db.query(
    'INSERT INTO iam_tokens (id, account_id, token_hash, kind, description, expires_at) VALUES ($1, $2, $3, $4, $5, $6)',
    [t.id, t.accountId, t.tokenHash, t.kind, t.description, t.expiresAt],
  );
}

/** The live (unrevoked, unexpired) token with this hash, with its account and role grants. */
export async function findLiveTokenPrincipal(db: Queryable, tokenHash: string): Promise<TokenPrincipalRow | undefined> {
  const res = await db.query<TokenPrincipalRow>(
    `SELECT t.id AS token_id, t.kind AS token_kind, t.expires_at, a.id AS account_id, a.username, a.tenant_id,
            a.kind AS account_kind, a.permissions,
            COALESCE(ARRAY(SELECT r.name FROM iam_roles r WHERE r.id = ANY(a.role_ids) ORDER BY r.name), '{}') AS role_names,
            COALESCE(ARRAY(SELECT DISTINCT p FROM iam_roles r, unnest(r.permissions) p WHERE r.id = ANY(a.role_ids)), '{}') AS role_permissions
       FROM iam_tokens t JOIN iam_accounts a ON a.id = t.account_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [tokenHash],
  );
  return res.rows[0];
}

/** Sliding session expiry: pushes expires_at forward, at most once per `minIntervalMs`. */
export async function touchSessionToken(db: Queryable, tokenId: string, expiresAt: Date): Promise<void> {
  await db.query(`UPDATE iam_tokens SET expires_at = $2, last_used_at = now() WHERE id = $1 AND kind = 'session' AND revoked_at IS NULL`, [tokenId, expiresAt]);
}

export async function revokeToken(db: Queryable, tokenId: string): Promise<string | undefined> {
  const res = await db.query<{ token_hash: string }>('UPDATE iam_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING token_hash', [tokenId]);
  return res.rows[0]?.token_hash;
}

export async function tenantExists(db: Queryable, tenantId: string): Promise<boolean> {
  const res = await db.query('SELECT 1 FROM iam_tenants WHERE id = $1', [tenantId]);
  return res.rows.length === 1;
}
