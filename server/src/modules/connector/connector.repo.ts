/** SQL of the Connector. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';

export type ObjectType = 'application' | 'runtime';
export type TokenPurpose = 'pairing' | 'csr';

export interface TokenRow {
  token_hash: string;
  tenant_id: string;
  object_type: ObjectType;
  object_id: string;
  system_auth_id: string;
  purpose: TokenPurpose;
  created_by: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  invalidated_at: Date | null;
}

export interface CaRow {
  certificate_pem: string;
  key_id: string;
  key_ciphertext: string;
}

export interface CertificateRow {
  fingerprint: string;
  serial: string;
  tenant_id: string;
  system_auth_id: string;
  object_type: ObjectType;
  object_id: string;
  subject: string;
  not_before: Date;
  not_after: Date;
  issued_at: Date;
  revoked_at: Date | null;
  revoked_reason: string | null;
}

const TOKEN_COLUMNS = 'token_hash, tenant_id, object_type, object_id, system_auth_id, purpose, created_by, created_at, expires_at, used_at, invalidated_at';
const CERT_COLUMNS = 'fingerprint, serial, tenant_id, system_auth_id, object_type, object_id, subject, not_before, not_after, issued_at, revoked_at, revoked_reason';

// ---------------------------------------------------------------- one-time tokens

export async function insertToken(
  db: Queryable,
  t: { tokenHash: string; tenantId: string; objectType: ObjectType; objectId: string; systemAuthId: string; purpose: TokenPurpose; createdBy: string | null; ttlMs: number },
): Promise<TokenRow> {
  const res = await db.query<TokenRow>(
    `INSERT INTO connector_one_time_tokens (token_hash, tenant_id, object_type, object_id, system_auth_id, purpose, created_by, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now() + ($8::bigint * interval '1 millisecond'))
     RETURNING ${TOKEN_COLUMNS}`,
    [t.tokenHash, t.tenantId, t.objectType, t.objectId, t.systemAuthId, t.purpose, t.createdBy, t.ttlMs],
  );
  return res.rows[0]!;
}

/** Marks the token used if it is still good; only one of concurrent callers gets the row. */
export async function redeemToken(db: Queryable, tokenHash: string, purpose: TokenPurpose): Promise<TokenRow | undefined> {
  const res = await db.query<TokenRow>(
    `UPDATE connector_one_time_tokens SET used_at = now()
      WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND invalidated_at IS NULL AND expires_at > now()
      RETURNING ${TOKEN_COLUMNS}`,
    [tokenHash, purpose],
  );
  return res.rows[0];
}

/**
 * `configuration`'s one statement: redeems the pairing token (guarded as redeemToken: of
 * concurrent callers only one gets the row) and, only then, stores the csr token for the same
 * object, valid as long as the object's tokens are.
 */
export async function redeemForCsrToken(db: Queryable, tokenHash: string, csrTokenHash: string, ttlMs: { application: number; runtime: number }): Promise<TokenRow | undefined> {
  const res = await db.query<TokenRow>(
    `WITH redeemed AS (
       UPDATE connector_one_time_tokens SET used_at = now()
        WHERE token_hash = $1 AND purpose = 'pairing' AND used_at IS NULL AND invalidated_at IS NULL AND expires_at > now()
        RETURNING ${TOKEN_COLUMNS}
     ), issued AS (
       INSERT INTO connector_one_time_tokens (token_hash, tenant_id, object_type, object_id, system_auth_id, purpose, created_by, expires_at)
       SELECT $2, tenant_id, object_type, object_id, system_auth_id, 'csr', NULL,
              now() + ((CASE WHEN object_type = 'application' THEN $3::bigint ELSE $4::bigint END) * interval '1 millisecond')
         FROM redeemed
     )
     SELECT ${TOKEN_COLUMNS} FROM redeemed`,
    [tokenHash, csrTokenHash, ttlMs.application, ttlMs.runtime],
  );
  return res.rows[0];
}

/** A new pairing token, every older one of the object still redeemable invalidated, in one statement. */
export async function replaceTokens(
  db: Queryable,
  t: { tokenHash: string; tenantId: string; objectType: ObjectType; objectId: string; systemAuthId: string; createdBy: string | null; ttlMs: number },
): Promise<TokenRow> {
  const res = await db.query<TokenRow>(
    `WITH invalidated AS (
       UPDATE connector_one_time_tokens SET invalidated_at = now()
        WHERE tenant_id = $2 AND object_type = $3 AND object_id = $4 AND used_at IS NULL AND invalidated_at IS NULL AND expires_at > now()
     )
     INSERT INTO connector_one_time_tokens (token_hash, tenant_id, object_type, object_id, system_auth_id, purpose, created_by, expires_at)
     VALUES ($1, $2, $3, $4, $5, 'pairing', $6, now() + ($7::bigint * interval '1 millisecond'))
     RETURNING ${TOKEN_COLUMNS}`,
    [t.tokenHash, t.tenantId, t.objectType, t.objectId, t.systemAuthId, t.createdBy, t.ttlMs],
  );
  return res.rows[0]!;
}

export async function findToken(db: Queryable, tokenHash: string): Promise<TokenRow | undefined> {
  const res = await db.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM connector_one_time_tokens WHERE token_hash = $1`, [tokenHash]);
  return res.rows[0];
}

/** The newest pairing token of an object (its status is what the requester sees). */
export async function latestPairingToken(db: Queryable, tenant: string, objectType: ObjectType, objectId: string): Promise<TokenRow | undefined> {
  const res = await db.query<TokenRow>(
    `SELECT ${TOKEN_COLUMNS} FROM connector_one_time_tokens
      WHERE tenant_id = $1 AND object_type = $2 AND object_id = $3 AND purpose = 'pairing'
      ORDER BY created_at DESC LIMIT 1`,
    [tenant, objectType, objectId],
  );
  return res.rows[0];
}

/** Tokens past their expiry for more than a day are of no use to anyone. */
export async function purgeTokens(db: Queryable): Promise<number> {
  const res = await db.query(`DELETE FROM connector_one_time_tokens WHERE expires_at < now() - interval '1 day'`);
  return res.rowCount ?? 0;
}

// ---------------------------------------------------------------- certificate authority

export async function findCa(db: Queryable): Promise<CaRow | undefined> {
  const res = await db.query<CaRow>(`SELECT certificate_pem, key_id, key_ciphertext FROM connector_ca WHERE id = 'default'`);
  return res.rows[0];
}

/** Stores the CA unless another process stored one first; the caller reads the winner back. */
export async function insertCaIfAbsent(db: Queryable, ca: CaRow): Promise<void> {
  await db.query(
    `INSERT INTO connector_ca (id, certificate_pem, key_id, key_ciphertext) VALUES ('default', $1, $2, $3) ON CONFLICT (id) DO NOTHING`,
    [ca.certificate_pem, ca.key_id, ca.key_ciphertext],
  );
}

// ---------------------------------------------------------------- certificates

/** A certificate row as signing makes it (the database adds issued_at). */
export type NewCertificate = Omit<CertificateRow, 'issued_at' | 'revoked_at' | 'revoked_reason'>;

export async function insertCertificate(db: Queryable, c: NewCertificate): Promise<void> {
  await db.query(
    `INSERT INTO connector_certificates (fingerprint, serial, tenant_id, system_auth_id, object_type, object_id, subject, not_before, not_after)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [c.fingerprint, c.serial, c.tenant_id, c.system_auth_id, c.object_type, c.object_id, c.subject, c.not_before, c.not_after],
  );
}

/**
 * Spends a csr token (guarded as redeemToken: of concurrent callers only one gets the row) and,
 * only then, stores the certificate signed for it: one statement. Undefined when the token was
 * no longer good (the certificate is not stored).
 */
export async function redeemForCertificate(db: Queryable, tokenHash: string, c: NewCertificate): Promise<TokenRow | undefined> {
  const res = await db.query<TokenRow>(
    `WITH redeemed AS (
       UPDATE connector_one_time_tokens SET used_at = now()
        WHERE token_hash = $1 AND purpose = 'csr' AND used_at IS NULL AND invalidated_at IS NULL AND expires_at > now()
        RETURNING ${TOKEN_COLUMNS}
     ), stored AS (
       INSERT INTO connector_certificates (fingerprint, serial, tenant_id, system_auth_id, object_type, object_id, subject, not_before, not_after)
       SELECT $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::timestamptz, $10::timestamptz FROM redeemed
     )
     SELECT ${TOKEN_COLUMNS} FROM redeemed`,
    [tokenHash, c.fingerprint, c.serial, c.tenant_id, c.system_auth_id, c.object_type, c.object_id, c.subject, c.not_before, c.not_after],
  );
  return res.rows[0];
}

export async function findCertificate(db: Queryable, fingerprint: string): Promise<CertificateRow | undefined> {
  const res = await db.query<CertificateRow>(`SELECT ${CERT_COLUMNS} FROM connector_certificates WHERE fingerprint = $1`, [fingerprint]);
  return res.rows[0];
}

/** Fingerprints of the certificates revoked within the last `seconds` (the revocation list's recent end). */
export async function recentlyRevoked(db: Queryable, seconds: number): Promise<string[]> {
  const res = await db.query<{ fingerprint: string }>(
    `SELECT fingerprint FROM connector_certificates WHERE revoked_at IS NOT NULL AND revoked_at > now() - ($1::float8 * interval '1 second')`,
    [seconds],
  );
  return res.rows.map((r) => r.fingerprint);
}

export async function revokeCertificate(db: Queryable, fingerprint: string, reason: string): Promise<CertificateRow | undefined> {
  const res = await db.query<CertificateRow>(
    `UPDATE connector_certificates SET revoked_at = now(), revoked_reason = $2 WHERE fingerprint = $1 AND revoked_at IS NULL RETURNING ${CERT_COLUMNS}`,
    [fingerprint, reason],
  );
  return res.rows[0];
}

/** Revokes every live certificate standing for these system auths. */
export async function revokeCertificatesOfSystemAuths(db: Queryable, tenant: string, systemAuthIds: readonly string[], reason: string): Promise<CertificateRow[]> {
  if (systemAuthIds.length === 0) return [];
  const res = await db.query<CertificateRow>(
    `UPDATE connector_certificates SET revoked_at = now(), revoked_reason = $3
      WHERE tenant_id = $1 AND system_auth_id = ANY($2::text[]) AND revoked_at IS NULL RETURNING ${CERT_COLUMNS}`,
    [tenant, systemAuthIds, reason],
  );
  return res.rows;
}

/** Revokes every live certificate of an application or runtime. */
export async function revokeCertificatesOfObject(db: Queryable, tenant: string, objectType: ObjectType, objectId: string, reason: string): Promise<CertificateRow[]> {
  const res = await db.query<CertificateRow>(
    `UPDATE connector_certificates SET revoked_at = now(), revoked_reason = $4
      WHERE tenant_id = $1 AND object_type = $2 AND object_id = $3 AND revoked_at IS NULL RETURNING ${CERT_COLUMNS}`,
    [tenant, objectType, objectId, reason],
  );
  return res.rows;
}

// ---------------------------------------------------------------- application events

/** Records many (source, id)s at once (distinct keys); resolves to the keys that were new. */
export async function recordEventIds(db: Queryable, rows: ReadonlyArray<{ tenant: string; applicationId: string; source: string; eventId: string }>): Promise<Set<string>> {
  const res = await db.query<{ k: string }>(
    `INSERT INTO connector_event_ids (tenant_id, application_id, source, event_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
     ON CONFLICT (tenant_id, application_id, source, event_id) DO UPDATE SET received_at = now()
       WHERE connector_event_ids.received_at < now() - interval '24 hours'
     RETURNING tenant_id || chr(10) || application_id || chr(10) || source || chr(10) || event_id AS k`,
    [rows.map((r) => r.tenant), rows.map((r) => r.applicationId), rows.map((r) => r.source), rows.map((r) => r.eventId)],
  );
  return new Set(res.rows.map((r) => r.k));
}

export async function purgeEventIds(db: Queryable): Promise<number> {
  const res = await db.query(`DELETE FROM connector_event_ids WHERE received_at < now() - interval '24 hours'`);
  return res.rowCount ?? 0;
}

// ---------------------------------------------------------------- flows started by events

export interface EventFlowRow {
  flow_id: string;
  tenant_id: string;
  application_id: string;
  event: string;
  start_node: string;
  flow_version: number;
  accepting: boolean;
}

export async function upsertEventFlow(db: Queryable, f: Omit<EventFlowRow, 'accepting'>): Promise<void> {
  await db.query(
    `INSERT INTO connector_event_flows (flow_id, tenant_id, application_id, event, start_node, flow_version, accepting)
     VALUES ($1, $2, $3, $4, $5, $6, false)
     ON CONFLICT (flow_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, application_id = EXCLUDED.application_id, event = EXCLUDED.event,
       start_node = EXCLUDED.start_node, flow_version = EXCLUDED.flow_version, accepting = false`,
    [f.flow_id, f.tenant_id, f.application_id, f.event, f.start_node, f.flow_version],
  );
}

export async function acceptEventFlow(db: Queryable, flowId: string): Promise<void> {
  await db.query(`UPDATE connector_event_flows SET accepting = true WHERE flow_id = $1`, [flowId]);
}

export async function deleteEventFlow(db: Queryable, flowId: string): Promise<void> {
  await db.query(`DELETE FROM connector_event_flows WHERE flow_id = $1`, [flowId]);
}

export async function eventFlowsFor(db: Queryable, tenant: string, applicationId: string, event: string): Promise<EventFlowRow[]> {
  const res = await db.query<EventFlowRow>(
    `SELECT flow_id, tenant_id, application_id, event, start_node, flow_version, accepting FROM connector_event_flows
      WHERE tenant_id = $1 AND application_id = $2 AND event = $3 AND accepting`,
    [tenant, applicationId, event],
  );
  return res.rows;
}

/** Claims (flow, source, id) for a new execution; false when an execution exists already. */
export async function claimEventExecution(db: Queryable, flowId: string, source: string, eventId: string, executionId: string): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO connector_event_executions (flow_id, source, event_id, execution_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (flow_id, source, event_id) DO NOTHING RETURNING 1`,
    [flowId, source, eventId, executionId],
  );
  return (res.rowCount ?? 0) > 0;
}

export async function purgeEventExecutions(db: Queryable): Promise<number> {
  const res = await db.query(`DELETE FROM connector_event_executions WHERE created_at < now() - interval '24 hours'`);
  return res.rowCount ?? 0;
}
