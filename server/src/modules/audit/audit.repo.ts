/** SQL of the audit module. One operation per function, parameterised. Nothing here deletes. */
import type { Queryable } from '../../platform/db/index.js';

/** The name that replaces a deleted account's in the log (the table's guard allows only this change). */
export const ANONYMISED_NAME = '[deleted user]';

export interface AuditRow {
  id: number;
  name: string;
  module: string;
  action: string;
  result: string | null;
  at: Date;
  tenant_id: string | null;
  actor_id: string | null;
  actor_name: string | null;
  source_ip: string | null;
  target_type: string | null;
  target_id: string | null;
  target_name: string | null;
  details: Record<string, unknown> | null;
  service_name: string | null;
}

export interface NewAuditRecord {
  eventKey: string;
  name: string;
  module: string;
  action: string;
  result: string | null;
  at: Date;
  tenantId: string | null;
  actorId: string | null;
  actorName: string | null;
  sourceIp: string | null;
  targetType: string | null;
  targetId: string | null;
  targetName: string | null;
  details: Record<string, unknown> | null;
  serviceName: string | null;
}

/**
 * Waits for any erasure in progress (it holds SHARE ROW EXCLUSIVE), so the insert that follows
 * in the same transaction sees it: a late record of an erased account is stored anonymised.
 * (A batch holding an erasure takes `lockForErasure` instead, for all of its records.)
 */
export async function lockForInsert(db: Queryable): Promise<void> {
  await db.query('LOCK TABLE audit_records IN ROW EXCLUSIVE MODE');
}

/** Keeps inserts out while an account's name is erased from every record. */
export async function lockForErasure(db: Queryable): Promise<void> {
  await db.query('LOCK TABLE audit_records IN SHARE ROW EXCLUSIVE MODE');
}

/**
 * Stores records once each (by event key), anonymising names of erased accounts — including
 * erasures written earlier in the same transaction; returns how many were new. One statement for
 * a whole batch: the records travel as parallel arrays (`unnest`), which PGlite and `pg` both
 * serialise; ids follow the order given.
 */
export async function insertRecords(db: Queryable, records: readonly NewAuditRecord[]): Promise<number> {
  if (records.length === 0) return 0;
  const col = <T>(f: (r: NewAuditRecord) => T): T[] => records.map(f);
  const res = await db.query(
    `INSERT INTO audit_records (event_key, name, module, action, result, at, tenant_id, actor_id, actor_name, source_ip,
                                target_type, target_id, target_name, details, service_name)
     SELECT r.event_key, r.name, r.module, r.action, r.result, r.at::timestamptz, r.tenant_id, r.actor_id,
            CASE WHEN EXISTS (SELECT 1 FROM audit_erasures e WHERE e.account_id = r.actor_id) THEN $16 ELSE r.actor_name END,
            r.source_ip, r.target_type, r.target_id,
            CASE WHEN r.target_type = 'user' AND EXISTS (SELECT 1 FROM audit_erasures e WHERE e.account_id = r.target_id) THEN $16 ELSE r.target_name END,
            r.details::jsonb, r.service_name
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                   $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
            WITH ORDINALITY AS r(event_key, name, module, action, result, at, tenant_id, actor_id, actor_name, source_ip,
                                 target_type, target_id, target_name, details, service_name, n)
      ORDER BY r.n
     ON CONFLICT (event_key) DO NOTHING RETURNING id`,
    [
      col((r) => r.eventKey),
      col((r) => r.name),
      col((r) => r.module),
      col((r) => r.action),
      col((r) => r.result),
      col((r) => r.at.toISOString()),
      col((r) => r.tenantId),
      col((r) => r.actorId),
      col((r) => r.actorName),
      col((r) => r.sourceIp),
      col((r) => r.targetType),
      col((r) => r.targetId),
      col((r) => r.targetName),
      col((r) => (r.details === null ? null : JSON.stringify(r.details))),
      col((r) => r.serviceName),
      ANONYMISED_NAME,
    ],
  );
  return res.rows.length;
}

export async function insertErasure(db: Queryable, accountId: string): Promise<void> {
  await db.query('INSERT INTO audit_erasures (account_id) VALUES ($1) ON CONFLICT (account_id) DO NOTHING', [accountId]);
}

/** Replaces an account's name in every record that names it, as actor or as target. */
export async function anonymiseAccount(db: Queryable, accountId: string): Promise<number> {
  const res = await db.query(
    `UPDATE audit_records
        SET actor_name = CASE WHEN actor_id = $1 THEN $2 ELSE actor_name END,
            target_name = CASE WHEN target_type = 'user' AND target_id = $1 THEN $2 ELSE target_name END
      WHERE (actor_id = $1 AND actor_name IS DISTINCT FROM $2) OR (target_type = 'user' AND target_id = $1 AND target_name IS DISTINCT FROM $2)`,
    [accountId, ANONYMISED_NAME],
  );
  return res.rowCount;
}

export interface AuditFilter {
  /** undefined: every tenant (platform admins only). */
  tenantId?: string | undefined;
  name?: string | undefined;
  namePrefix?: string | undefined;
  module?: string | undefined;
  result?: string | undefined;
  user?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  search?: string | undefined;
}

function containsPattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function prefixPattern(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

const WHERE = `($1::text IS NULL OR tenant_id = $1)
  AND ($2::text IS NULL OR name = $2)
  AND ($3::text IS NULL OR name LIKE $3)
  AND ($4::text IS NULL OR module = $4)
  AND ($5::text IS NULL OR result = $5)
  AND ($6::text IS NULL OR actor_id = $6 OR actor_name = $6)
  AND ($7::timestamptz IS NULL OR at >= $7)
  AND ($8::timestamptz IS NULL OR at < $8)
  AND ($9::text IS NULL OR name ILIKE $9 OR actor_name ILIKE $9 OR target_name ILIKE $9 OR target_id ILIKE $9)`;

function params(f: AuditFilter): unknown[] {
  return [
    f.tenantId ?? null,
    f.name ?? null,
    f.namePrefix ? prefixPattern(f.namePrefix) : null,
    f.module ?? null,
    f.result ?? null,
    f.user ?? null,
    f.from ?? null,
    f.to ?? null,
    f.search ? containsPattern(f.search) : null,
  ];
}

export async function countRecords(db: Queryable, f: AuditFilter): Promise<number> {
  const res = await db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM audit_records WHERE ${WHERE}`, params(f));
  return res.rows[0]?.n ?? 0;
}

export async function listRecords(db: Queryable, f: AuditFilter, newestFirst: boolean, limit: number, offset: number): Promise<AuditRow[]> {
  const dir = newestFirst ? 'DESC' : 'ASC';
  const res = await db.query<AuditRow>(
    `SELECT id, name, module, action, result, at, tenant_id, actor_id, actor_name, source_ip, target_type, target_id, target_name, details, service_name
       FROM audit_records WHERE ${WHERE} ORDER BY at ${dir}, id ${dir} LIMIT $10 OFFSET $11`,
    [...params(f), limit, offset],
  );
  return res.rows;
}

export async function findRecord(db: Queryable, id: number, tenantId: string | undefined): Promise<AuditRow | undefined> {
  const res = await db.query<AuditRow>(
    `SELECT id, name, module, action, result, at, tenant_id, actor_id, actor_name, source_ip, target_type, target_id, target_name, details, service_name
       FROM audit_records WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)`,
    [id, tenantId ?? null],
  );
  return res.rows[0];
}
