/** SQL of the router module: enrolments, enrolled workers, logical configurations. One operation per function. */
import type { Queryable } from '../../platform/db/index.js';

export interface EnrolmentRow {
  id: string;
  tenant_id: string;
  secret_hash: string;
  components: string[];
  created_by: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  worker_id: string | null;
}

export interface WorkerRow {
  id: string;
  tenant_id: string;
  worker_id: string;
  credential_hash: string;
  components: string[];
  enrolment_id: string;
  created_at: Date;
  last_seen_at: Date;
  revoked_at: Date | null;
}

export async function insertEnrolment(db: Queryable, e: { id: string; tenantId: string; secretHash: string; components: string[]; createdBy: string; expiresAt: Date }): Promise<EnrolmentRow> {
  const res = await db.query<EnrolmentRow>(
    `INSERT INTO router_enrolments (id, tenant_id, secret_hash, components, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [e.id, e.tenantId, e.secretHash, JSON.stringify(e.components), e.createdBy, e.expiresAt],
  );
  return res.rows[0]!;
}

export async function findEnrolment(db: Queryable, id: string): Promise<EnrolmentRow | undefined> {
  const res = await db.query<EnrolmentRow>('SELECT * FROM router_enrolments WHERE id = $1', [id]);
  return res.rows[0];
}

/** Marks the enrolment used by `workerId`; false when it was used already (a concurrent connect won). */
export async function useEnrolment(db: Queryable, id: string, workerId: string): Promise<boolean> {
  const res = await db.query('UPDATE router_enrolments SET used_at = now(), worker_id = $2 WHERE id = $1 AND used_at IS NULL', [id, workerId]);
  return (res.rowCount ?? 0) === 1;
}

export async function listEnrolments(db: Queryable, tenantId: string): Promise<EnrolmentRow[]> {
  const res = await db.query<EnrolmentRow>('SELECT * FROM router_enrolments WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 500', [tenantId]);
  return res.rows;
}

/** Binds a worker name to a fresh credential; a worker enrolling again under its name replaces the old one. */
export async function upsertWorker(db: Queryable, w: { id: string; tenantId: string; workerId: string; credentialHash: string; components: string[]; enrolmentId: string }): Promise<void> {
  await db.query(
    `INSERT INTO router_workers (id, tenant_id, worker_id, credential_hash, components, enrolment_id) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (tenant_id, worker_id) DO UPDATE SET id = EXCLUDED.id, credential_hash = EXCLUDED.credential_hash, components = EXCLUDED.components,
       enrolment_id = EXCLUDED.enrolment_id, created_at = now(), last_seen_at = now(), revoked_at = NULL`,
    [w.id, w.tenantId, w.workerId, w.credentialHash, JSON.stringify(w.components), w.enrolmentId],
  );
}

export async function findWorker(db: Queryable, id: string): Promise<WorkerRow | undefined> {
  const res = await db.query<WorkerRow>('SELECT * FROM router_workers WHERE id = $1', [id]);
  return res.rows[0];
}

export async function touchWorker(db: Queryable, id: string): Promise<void> {
  await db.query('UPDATE router_workers SET last_seen_at = now() WHERE id = $1', [id]);
}

export async function latestConfiguration(db: Queryable, tenantId: string, workerId: string): Promise<{ version: number; configuration: Record<string, unknown> } | undefined> {
  const res = await db.query<{ version: number; configuration: Record<string, unknown> }>(
    'SELECT version, configuration FROM router_configurations WHERE tenant_id = $1 AND worker_id = $2 ORDER BY version DESC LIMIT 1',
    [tenantId, workerId],
  );
  return res.rows[0];
}

/** Stores a new version of the configuration; `ON CONFLICT` makes two instances racing on one worker keep one. */
export async function insertConfiguration(db: Queryable, tenantId: string, workerId: string, version: number, configuration: Record<string, unknown>): Promise<boolean> {
  const res = await db.query('INSERT INTO router_configurations (tenant_id, worker_id, version, configuration) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
    tenantId,
    workerId,
    version,
    JSON.stringify(configuration),
  ]);
  return (res.rowCount ?? 0) === 1;
}

/**
 * Deletes what this instance reported before and what dead instances left behind for longer than
 * `forgetMs` (run in one transaction with insertSessions).
 */
export async function deleteReportedSessions(db: Queryable, instanceId: string, forgetMs: number): Promise<void> {
  await db.query('DELETE FROM router_sessions WHERE instance_id = $1 OR reported_at < now() - make_interval(secs => $2::double precision / 1000)', [instanceId, forgetMs]);
}

/** The workers attached to this instance now, as GET /api/v1/workers shows them. */
export async function insertSessions(db: Queryable, instanceId: string, sessions: ReadonlyArray<{ sessionId: string; tenant: string; view: unknown }>): Promise<void> {
  if (sessions.length === 0) return;
  await db.query(
    `INSERT INTO router_sessions (instance_id, session_id, tenant_id, view)
     SELECT $1, s->>'sessionId', s->>'tenant', s->'view' FROM jsonb_array_elements($2::jsonb) AS s`,
    [instanceId, JSON.stringify(sessions)],
  );
}

/** Forgets this instance's workers (it stops). */
export async function clearSessions(db: Queryable, instanceId: string): Promise<void> {
  await db.query('DELETE FROM router_sessions WHERE instance_id = $1', [instanceId]);
}

/** The tenant's workers other instances reported within `freshMs`. */
export async function listReportedSessions(db: Queryable, tenantId: string, exceptInstance: string, freshMs: number): Promise<Array<{ instance_id: string; view: Record<string, unknown>; reported_at: Date }>> {
  const res = await db.query<{ instance_id: string; view: Record<string, unknown>; reported_at: Date }>(
    `SELECT instance_id, view, reported_at FROM router_sessions
      WHERE tenant_id = $1 AND instance_id <> $2 AND reported_at > now() - make_interval(secs => $3::double precision / 1000)
      ORDER BY instance_id, session_id LIMIT 5000`,
    [tenantId, exceptInstance, freshMs],
  );
  return res.rows;
}

/** The (tenant, component) pairs that workers of other instances serve, from reports within `freshMs`. */
export async function listServedElsewhere(db: Queryable, exceptInstance: string, freshMs: number): Promise<Array<{ tenant_id: string; component: string }>> {
  const res = await db.query<{ tenant_id: string; component: string }>(
    `SELECT DISTINCT s.tenant_id, c->>'name' AS component
       FROM router_sessions s, jsonb_array_elements(s.view->'components') AS c
      WHERE s.instance_id <> $1 AND s.reported_at > now() - make_interval(secs => $2::double precision / 1000)`,
    [exceptInstance, freshMs],
  );
  return res.rows;
}

/** The other instance whose report within `freshMs` holds the tenant's worker `workerId` (the freshest report). */
export async function findReportingInstance(db: Queryable, tenantId: string, workerId: string, exceptInstance: string, freshMs: number): Promise<string | undefined> {
  const res = await db.query<{ instance_id: string }>(
    `SELECT instance_id FROM router_sessions
      WHERE tenant_id = $1 AND view->>'workerId' = $2 AND instance_id <> $3 AND reported_at > now() - make_interval(secs => $4::double precision / 1000)
      ORDER BY reported_at DESC LIMIT 1`,
    [tenantId, workerId, exceptInstance, freshMs],
  );
  return res.rows[0]?.instance_id;
}
