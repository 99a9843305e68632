/** SQL of the secrets module. One operation per function, parameterised; values only as ciphertext. */
import type { Queryable } from '../../platform/db/index.js';
import type { SecretType } from '../../contracts/secrets.js';

export interface SecretRow {
  id: string;
  tenant_id: string;
  name: string;
  type: SecretType;
  /** What the secret belongs to (`flow:<id>`), deleted with it; null for secrets made through the API. */
  owner: string | null;
  key_id: string;
  ciphertext: string;
  version: number;
  created_by: string | null;
  token_expires_at: Date | null;
  last_refreshed_at: Date | null;
  last_error: string | null;
  refresh_locked_until: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface Page {
  limit: number;
  offset: number;
}

function containsPattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export async function insertSecret(
  db: Queryable,
  s: {
    id: string;
    tenantId: string;
    name: string;
    type: SecretType;
    keyId: string;
    ciphertext: string;
    createdBy: string | null;
    tokenExpiresAt: Date | null;
    owner?: string | undefined;
  },
): Promise<SecretRow | undefined> {
  const res = await db.query<SecretRow>(
    `INSERT INTO secrets (id, tenant_id, name, type, key_id, ciphertext, created_by, token_expires_at, owner)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING *`,
    [s.id, s.tenantId, s.name, s.type, s.keyId, s.ciphertext, s.createdBy, s.tokenExpiresAt, s.owner ?? null],
  );
  return res.rows[0];
}

/** The secrets `owner` holds in `tenantId`, oldest first. */
export async function listOwnedSecrets(db: Queryable, tenantId: string, owner: string): Promise<SecretRow[]> {
  const res = await db.query<SecretRow>('SELECT * FROM secrets WHERE tenant_id = $1 AND owner = $2 ORDER BY created_at, id', [tenantId, owner]);
  return res.rows;
}

/** Deletes the secrets `owner` holds in `tenantId`; returns them. */
export async function deleteOwnedSecrets(db: Queryable, tenantId: string, owner: string): Promise<SecretRow[]> {
  const res = await db.query<SecretRow>('DELETE FROM secrets WHERE tenant_id = $1 AND owner = $2 RETURNING *', [tenantId, owner]);
  return res.rows;
}

/** The secret `id` of `tenantId`; another tenant's secret is as absent as a missing one. */
export async function findSecret(db: Queryable, tenantId: string, id: string): Promise<SecretRow | undefined> {
  const res = await db.query<SecretRow>('SELECT * FROM secrets WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return res.rows[0];
}

export interface SecretFilter {
  tenantId: string;
  type?: SecretType | undefined;
  name?: string | undefined;
  search?: string | undefined;
}

const WHERE = 'tenant_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR name = $3) AND ($4::text IS NULL OR name ILIKE $4)';
const SORT = { name: 'name', createdAt: 'created_at', updatedAt: 'updated_at' } as const;

function filterParams(f: SecretFilter): unknown[] {
  return [f.tenantId, f.type ?? null, f.name ?? null, f.search ? containsPattern(f.search) : null];
}

export async function countSecrets(db: Queryable, f: SecretFilter): Promise<number> {
  const res = await db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM secrets WHERE ${WHERE}`, filterParams(f));
  return res.rows[0]?.n ?? 0;
}

export async function listSecrets(db: Queryable, f: SecretFilter, sort: { field: keyof typeof SORT; desc: boolean }, page: Page): Promise<SecretRow[]> {
  const res = await db.query<SecretRow>(
    `SELECT * FROM secrets WHERE ${WHERE} ORDER BY ${SORT[sort.field]} ${sort.desc ? 'DESC' : 'ASC'}, id LIMIT $5 OFFSET $6`,
    [...filterParams(f), page.limit, page.offset],
  );
  return res.rows;
}

/** Replaces name and/or sealed value; `null` when the new name is taken in the tenant. */
export async function updateSecret(
  db: Queryable,
  tenantId: string,
  id: string,
  c: { name?: string | undefined; keyId?: string | undefined; ciphertext?: string | undefined; tokenExpiresAt?: Date | null | undefined },
): Promise<SecretRow | undefined | null> {
  if (c.name !== undefined) {
    const clash = await db.query('SELECT 1 FROM secrets WHERE tenant_id = $1 AND name = $2 AND id <> $3', [tenantId, c.name, id]);
    if (clash.rows.length) return null;
  }
  const res = await db.query<SecretRow>(
    `UPDATE secrets SET name = COALESCE($3, name), key_id = COALESCE($4, key_id), ciphertext = COALESCE($5, ciphertext),
            token_expires_at = CASE WHEN $6::boolean THEN $7::timestamptz ELSE token_expires_at END,
            last_error = CASE WHEN $5::text IS NULL THEN last_error ELSE NULL END,
            version = version + 1, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 RETURNING *`,
    [tenantId, id, c.name ?? null, c.keyId ?? null, c.ciphertext ?? null, c.tokenExpiresAt !== undefined, c.tokenExpiresAt ?? null],
  );
  return res.rows[0];
}

export async function deleteSecret(db: Queryable, tenantId: string, id: string): Promise<SecretRow | undefined> {
  const res = await db.query<SecretRow>('DELETE FROM secrets WHERE tenant_id = $1 AND id = $2 RETURNING *', [tenantId, id]);
  return res.rows[0];
}

/** Takes the refresh lease when free (or expired); the row when taken, undefined when another holds it. */
export async function acquireRefreshLock(db: Queryable, tenantId: string, id: string, owner: string, until: Date): Promise<SecretRow | undefined> {
  const res = await db.query<SecretRow>(
    `UPDATE secrets SET refresh_locked_until = $4, refresh_lock_owner = $3
      WHERE tenant_id = $1 AND id = $2 AND (refresh_locked_until IS NULL OR refresh_locked_until < now())
      RETURNING *`,
    [tenantId, id, owner, until],
  );
  return res.rows[0];
}

/** Stores refreshed tokens and releases the lease, if it is still ours. */
export async function completeRefresh(
  db: Queryable,
  tenantId: string,
  id: string,
  owner: string,
  sealed: { keyId: string; ciphertext: string; tokenExpiresAt: Date | null },
): Promise<SecretRow | undefined> {
  const res = await db.query<SecretRow>(
    `UPDATE secrets SET key_id = $4, ciphertext = $5, token_expires_at = $6, last_refreshed_at = now(), last_error = NULL,
            refresh_locked_until = NULL, refresh_lock_owner = NULL, version = version + 1, updated_at = now()
      WHERE tenant_id = $1 AND id = $2 AND refresh_lock_owner = $3 RETURNING *`,
    [tenantId, id, owner, sealed.keyId, sealed.ciphertext, sealed.tokenExpiresAt],
  );
  return res.rows[0];
}

/** Records a failed refresh and releases the lease. */
export async function failRefresh(db: Queryable, tenantId: string, id: string, owner: string, error: string): Promise<void> {
  await db.query(
    `UPDATE secrets SET last_error = $4, refresh_locked_until = NULL, refresh_lock_owner = NULL
      WHERE tenant_id = $1 AND id = $2 AND refresh_lock_owner = $3`,
    [tenantId, id, owner, error],
  );
}

/** Releases the lease without changes (someone else refreshed first). */
export async function releaseRefreshLock(db: Queryable, tenantId: string, id: string, owner: string): Promise<void> {
  await db.query('UPDATE secrets SET refresh_locked_until = NULL, refresh_lock_owner = NULL WHERE tenant_id = $1 AND id = $2 AND refresh_lock_owner = $3', [
    tenantId,
    id,
    owner,
  ]);
}

/** The next batch (by id, after `afterId`) of secrets sealed with another key than `keyId`. */
export async function listSealedWithOtherKey(db: Queryable, keyId: string, afterId: string, limit: number): Promise<SecretRow[]> {
  const res = await db.query<SecretRow>('SELECT * FROM secrets WHERE key_id <> $1 AND id > $2 ORDER BY id LIMIT $3', [keyId, afterId, limit]);
  return res.rows;
}

/** Re-seals one secret if it has not changed since it was read (`version`). */
export async function resealSecret(db: Queryable, id: string, version: number, sealed: { keyId: string; ciphertext: string }): Promise<boolean> {
  const res = await db.query('UPDATE secrets SET key_id = $3, ciphertext = $4, version = version + 1 WHERE id = $1 AND version = $2 RETURNING id', [
    id,
    version,
    sealed.keyId,
    sealed.ciphertext,
  ]);
  return res.rows.length === 1;
}
