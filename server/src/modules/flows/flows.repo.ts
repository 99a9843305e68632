/** SQL of the flow repository. One operation per function, parameterised. */
import type { EventTrigger, FlowGraph, FlowStatus } from '../../contracts/flows.js';
import type { Queryable } from '../../platform/db/index.js';
import type { FlowDefinition } from './flows.validation.js';

export interface FlowRow {
  id: string;
  tenant_id: string;
  name: string;
  description: string | null;
  cron: string | null;
  timezone: string | null;
  trigger: EventTrigger | null;
  graph: FlowGraph;
  status: FlowStatus;
  status_reason: string | null;
  owners: Array<{ id: string; type: string }>;
  flow_settings: Record<string, unknown>;
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface FlowVersionRow {
  flow_id: string;
  version: number;
  name: string;
  description: string | null;
  cron: string | null;
  timezone: string | null;
  trigger: EventTrigger | null;
  graph: FlowGraph;
  flow_settings: Record<string, unknown>;
  created_by: string | null;
  created_at: Date;
}

export interface FlowFilter {
  status?: FlowStatus | undefined;
  search?: string | undefined;
}

export const FLOW_SORT_COLUMNS = { name: 'name', createdAt: 'created_at', updatedAt: 'updated_at', status: 'status' } as const;
export type FlowSortField = keyof typeof FLOW_SORT_COLUMNS;

const COLUMNS = 'id, tenant_id, name, description, cron, timezone, trigger, graph, status, status_reason, owners, flow_settings, version, created_at, updated_at';

/** `search` as a LIKE pattern that matches it literally. */
function containsPattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** WHERE clause shared by the list and its count: tenant, then optional status and search. */
function filterClause(tenant: string, filter: FlowFilter): { where: string; params: unknown[] } {
  const params: unknown[] = [tenant];
  let where = 'tenant_id = $1';
  if (filter.status) {
    params.push(filter.status);
    where += ` AND status = $${params.length}`;
  }
  if (filter.search) {
    params.push(containsPattern(filter.search));
    where += ` AND (name ILIKE $${params.length} OR coalesce(description, '') ILIKE $${params.length})`;
  }
  return { where, params };
}

export async function insertFlow(db: Queryable, id: string, tenant: string, def: FlowDefinition): Promise<FlowRow> {
  const res = await db.query<FlowRow>(
    `INSERT INTO flows (id, tenant_id, name, description, cron, timezone, graph, owners, flow_settings, trigger)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb)
     RETURNING ${COLUMNS}`,
    [id, tenant, def.name, def.description, def.cron, def.timezone, JSON.stringify(def.graph), JSON.stringify(def.owners), JSON.stringify(def.flowSettings), def.trigger ? JSON.stringify(def.trigger) : null],
  );
  return res.rows[0]!;
}

/** Records the flow's current definition as its version `row.version`. */
export async function insertFlowVersion(db: Queryable, row: FlowRow, createdBy: string | undefined): Promise<void> {
  await db.query(
    `INSERT INTO flow_versions (flow_id, version, name, description, cron, timezone, graph, flow_settings, created_by, trigger)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10::jsonb)`,
    [row.id, row.version, row.name, row.description, row.cron, row.timezone, JSON.stringify(row.graph), JSON.stringify(row.flow_settings), createdBy ?? null, row.trigger ? JSON.stringify(row.trigger) : null],
  );
}

export async function findFlow(db: Queryable, tenant: string, id: string): Promise<FlowRow | undefined> {
  const res = await db.query<FlowRow>(`SELECT ${COLUMNS} FROM flows WHERE id = $1 AND tenant_id = $2`, [id, tenant]);
  return res.rows[0];
}

export async function countFlows(db: Queryable, tenant: string, filter: FlowFilter): Promise<number> {
  const { where, params } = filterClause(tenant, filter);
  const res = await db.query<{ n: number }>(`SELECT count(*)::int8 AS n FROM flows WHERE ${where}`, params);
  return res.rows[0]?.n ?? 0;
}

export async function listFlows(
  db: Queryable,
  tenant: string,
  filter: FlowFilter,
  sort: { field: FlowSortField; desc: boolean },
  page: { limit: number; offset: number },
): Promise<FlowRow[]> {
  const { where, params } = filterClause(tenant, filter);
  const dir = sort.desc ? 'DESC' : 'ASC';
  params.push(page.limit, page.offset);
  const res = await db.query<FlowRow>(
    `SELECT ${COLUMNS} FROM flows WHERE ${where}
     ORDER BY ${FLOW_SORT_COLUMNS[sort.field]} ${dir}, id ${dir}
     LIMIT $${params.length - 1} OFFSET $${params.length}`,
    params,
  );
  return res.rows;
}

/**
 * Replaces the definition and bumps the version, only while the flow is inactive and still at
 * `expectedVersion`; undefined when either no longer holds (or the flow is gone).
 */
export async function updateInactiveFlow(db: Queryable, tenant: string, id: string, expectedVersion: number, def: FlowDefinition): Promise<FlowRow | undefined> {
  const res = await db.query<FlowRow>(
    `UPDATE flows SET name = $4, description = $5, cron = $6, timezone = $7, graph = $8::jsonb, owners = $9::jsonb,
            flow_settings = $10::jsonb, trigger = $11::jsonb, version = version + 1, updated_at = now()
     WHERE id = $1 AND tenant_id = $2 AND version = $3 AND status = 'inactive'
     RETURNING ${COLUMNS}`,
    [id, tenant, expectedVersion, def.name, def.description, def.cron, def.timezone, JSON.stringify(def.graph), JSON.stringify(def.owners), JSON.stringify(def.flowSettings), def.trigger ? JSON.stringify(def.trigger) : null],
  );
  return res.rows[0];
}

/** Deletes the flow (and its versions) only while it is inactive; false otherwise. */
export async function deleteInactiveFlow(db: Queryable, tenant: string, id: string): Promise<boolean> {
  const res = await db.query(`DELETE FROM flows WHERE id = $1 AND tenant_id = $2 AND status = 'inactive'`, [id, tenant]);
  return res.rowCount > 0;
}

/**
 * Moves a flow to `to` if its status is one of `from`; undefined when the flow is gone or in
 * another status. `tenant` undefined: any tenant (lifecycle events). `reason`: set it (a string
 * or null to clear); omitted: keep it.
 */
export async function transitionFlow(
  db: Queryable,
  id: string,
  tenant: string | undefined,
  from: readonly FlowStatus[],
  to: FlowStatus,
  opts: { reason?: string | null } = {},
): Promise<FlowRow | undefined> {
  const res = await db.query<FlowRow>(
    `UPDATE flows SET status = $3, status_reason = CASE WHEN $6::boolean THEN $4 ELSE status_reason END, updated_at = now()
     WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) AND status = ANY($5::text[])
     RETURNING ${COLUMNS}`,
    [id, tenant ?? null, to, opts.reason ?? null, from, 'reason' in opts],
  );
  return res.rows[0];
}

/** Records why a flow failed without changing its status. */
export async function setFlowStatusReason(db: Queryable, id: string, reason: string): Promise<void> {
  await db.query('UPDATE flows SET status_reason = $2, updated_at = now() WHERE id = $1', [id, reason]);
}

export async function countFlowVersions(db: Queryable, flowId: string): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM flow_versions WHERE flow_id = $1', [flowId]);
  return res.rows[0]?.n ?? 0;
}

/** Newest first. */
export async function listFlowVersions(db: Queryable, flowId: string, page: { limit: number; offset: number }): Promise<FlowVersionRow[]> {
  const res = await db.query<FlowVersionRow>(
    `SELECT flow_id, version, name, description, cron, timezone, trigger, graph, flow_settings, created_by, created_at
     FROM flow_versions WHERE flow_id = $1 ORDER BY version DESC LIMIT $2 OFFSET $3`,
    [flowId, page.limit, page.offset],
  );
  return res.rows;
}

// ---- signing secrets in clear (installs from before they moved to the secrets module) ----

/** Locks the next `limit` flows (by id, after `afterId`) whose row or any version still holds a clear webhook signing secret. */
export async function lockFlowsWithClearSigningSecrets(db: Queryable, afterId: string, limit: number): Promise<Array<Pick<FlowRow, 'id' | 'tenant_id' | 'flow_settings'>>> {
  const res = await db.query<Pick<FlowRow, 'id' | 'tenant_id' | 'flow_settings'>>(
    `SELECT id, tenant_id, flow_settings FROM flows f
      WHERE f.id > $1 AND (f.flow_settings->'webhooks' ? 'secret'
         OR EXISTS (SELECT 1 FROM flow_versions v WHERE v.flow_id = f.id AND v.flow_settings->'webhooks' ? 'secret'))
      ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [afterId, limit],
  );
  return res.rows;
}

/** Replaces the flow's clear signing secret with the id of the secret holding it (no new version: the definition is the same). */
export async function setFlowSigningSecretId(db: Queryable, flowId: string, secretId: string): Promise<void> {
  await db.query(
    `UPDATE flows SET flow_settings = jsonb_set(flow_settings #- '{webhooks,secret}', '{webhooks,secretId}', to_jsonb($2::text))
      WHERE id = $1 AND flow_settings->'webhooks' ? 'secret'`,
    [flowId, secretId],
  );
}

export async function listVersionsWithClearSigningSecrets(db: Queryable, flowId: string): Promise<Array<{ version: number; secret: string }>> {
  const res = await db.query<{ version: number; secret: string }>(
    `SELECT version, flow_settings->'webhooks'->>'secret' AS secret FROM flow_versions
      WHERE flow_id = $1 AND flow_settings->'webhooks' ? 'secret' ORDER BY version`,
    [flowId],
  );
  return res.rows;
}

export async function setVersionSigningSecretId(db: Queryable, flowId: string, version: number, secretId: string): Promise<void> {
  await db.query(
    `UPDATE flow_versions SET flow_settings = jsonb_set(flow_settings #- '{webhooks,secret}', '{webhooks,secretId}', to_jsonb($3::text))
      WHERE flow_id = $1 AND version = $2`,
    [flowId, version, secretId],
  );
}
