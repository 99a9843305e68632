/** SQL of the components module. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';
import type { ComponentDescriptor } from './components.descriptor.js';

export interface RegisteredComponentRow {
  tenant_id: string;
  name: string;
  version: string;
  descriptor: ComponentDescriptor;
  source_kind: 'directory' | 'package';
  source: string;
  source_path: string;
  created_by: string | null;
  created_at: Date;
}

/** Inserts unless the tenant already has a component of that name; returns whether it did. */
export async function insertComponent(
  db: Queryable,
  c: { tenantId: string; name: string; version: string; descriptor: ComponentDescriptor; sourceKind: 'directory' | 'package'; source: string; sourcePath: string; createdBy: string | undefined },
): Promise<RegisteredComponentRow | undefined> {
  const res = await db.query<RegisteredComponentRow>(
    `INSERT INTO components_registry (tenant_id, name, version, descriptor, source_kind, source, source_path, created_by)
     VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING *`,
    [c.tenantId, c.name, c.version, JSON.stringify(c.descriptor), c.sourceKind, c.source, c.sourcePath, c.createdBy ?? null],
  );
  return res.rows[0];
}

export async function findComponent(db: Queryable, tenantId: string, name: string): Promise<RegisteredComponentRow | undefined> {
  const res = await db.query<RegisteredComponentRow>('SELECT * FROM components_registry WHERE tenant_id = $1 AND name = $2', [tenantId, name]);
  return res.rows[0];
}

export async function listComponents(db: Queryable, tenantId: string): Promise<RegisteredComponentRow[]> {
  const res = await db.query<RegisteredComponentRow>('SELECT * FROM components_registry WHERE tenant_id = $1 ORDER BY name', [tenantId]);
  return res.rows;
}

export async function deleteComponent(db: Queryable, tenantId: string, name: string): Promise<boolean> {
  const res = await db.query('DELETE FROM components_registry WHERE tenant_id = $1 AND name = $2 RETURNING name', [tenantId, name]);
  return res.rows.length === 1;
}

// ------------------------------------------------------------------ OIH object store (0035)

export interface OihObjectRow {
  id: string;
  content_type: string;
  size_bytes: number;
  data: Uint8Array;
  created_at: Date;
}

/** Bytes a tenant's objects hold, in all. */
export async function tenantObjectBytes(db: Queryable, tenantId: string): Promise<number> {
  const res = await db.query<{ total: string | number | null }>('SELECT COALESCE(SUM(size_bytes), 0) AS total FROM oih_objects WHERE tenant_id = $1', [tenantId]);
  return Number(res.rows[0]?.total ?? 0);
}

export async function upsertObject(
  db: Queryable,
  o: { tenantId: string; id: string; contentType: string; data: Buffer; query: Record<string, string>; ttlSeconds: number | undefined; flowId: string; nodeId: string; executionId: string | undefined },
): Promise<void> {
  await db.query(
    `INSERT INTO oih_objects (tenant_id, id, content_type, size_bytes, data, query, expires_at, flow_id, node_id, execution_id)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, CASE WHEN $7::int IS NULL THEN NULL ELSE now() + make_interval(secs => $7::int) END, $8, $9, $10)
     ON CONFLICT (tenant_id, id) DO UPDATE SET content_type = EXCLUDED.content_type, size_bytes = EXCLUDED.size_bytes, data = EXCLUDED.data,
       query = EXCLUDED.query, expires_at = EXCLUDED.expires_at, updated_at = now()`,
    [o.tenantId, o.id, o.contentType, o.data.length, o.data, JSON.stringify(o.query), o.ttlSeconds ?? null, o.flowId, o.nodeId, o.executionId ?? null],
  );
}

export async function findObject(db: Queryable, tenantId: string, id: string): Promise<OihObjectRow | undefined> {
  const res = await db.query<OihObjectRow>(
    'SELECT id, content_type, size_bytes, data, created_at FROM oih_objects WHERE tenant_id = $1 AND id = $2 AND (expires_at IS NULL OR expires_at > now())',
    [tenantId, id],
  );
  return res.rows[0];
}

/** A tenant's live objects whose searchable fields hold all of `query`, oldest first (at most 1,000). */
export async function findObjectsByQuery(db: Queryable, tenantId: string, query: Record<string, string>): Promise<Array<{ id: string; content_type: string; size_bytes: number; created_at: Date }>> {
  const res = await db.query<{ id: string; content_type: string; size_bytes: number; created_at: Date }>(
    `SELECT id, content_type, size_bytes, created_at FROM oih_objects
     WHERE tenant_id = $1 AND query @> $2::jsonb AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at LIMIT 1000`,
    [tenantId, JSON.stringify(query)],
  );
  return res.rows;
}

export async function objectSize(db: Queryable, tenantId: string, id: string): Promise<number | undefined> {
  const res = await db.query<{ size_bytes: number }>('SELECT size_bytes FROM oih_objects WHERE tenant_id = $1 AND id = $2', [tenantId, id]);
  return res.rows[0]?.size_bytes;
}

export async function deleteObject(db: Queryable, tenantId: string, id: string): Promise<boolean> {
  const res = await db.query('DELETE FROM oih_objects WHERE tenant_id = $1 AND id = $2 RETURNING id', [tenantId, id]);
  return res.rows.length === 1;
}

// ------------------------------------------------------------------ OIH startup state (0036)

export async function findStartupState(db: Queryable, flowId: string, nodeId: string): Promise<{ data: unknown } | undefined> {
  const res = await db.query<{ data: unknown }>('SELECT data FROM oih_startup_state WHERE flow_id = $1 AND node_id = $2', [flowId, nodeId]);
  return res.rows[0];
}

/** Keeps the first startup data stored for the node (a concurrent start lost the race); returns what is stored. */
export async function insertStartupState(
  db: Queryable,
  s: { tenantId: string; flowId: string; nodeId: string; componentId: string; fn: string; fields: Record<string, unknown>; credentialsId: string | undefined; data: unknown },
): Promise<unknown> {
  await db.query(
    `INSERT INTO oih_startup_state (tenant_id, flow_id, node_id, component_id, function, fields, credentials_id, data)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb) ON CONFLICT (flow_id, node_id) DO NOTHING`,
    [s.tenantId, s.flowId, s.nodeId, s.componentId, s.fn, JSON.stringify(s.fields), s.credentialsId ?? null, JSON.stringify(s.data ?? null)],
  );
  return (await findStartupState(db, s.flowId, s.nodeId))?.data;
}

export interface StartupStateRow {
  tenant_id: string;
  node_id: string;
  component_id: string;
  function: string;
  fields: Record<string, unknown>;
  credentials_id: string | null;
  data: unknown;
}

/** Removes the flow's startup states; returns them for shutdown. */
export async function deleteStartupStates(db: Queryable, flowId: string): Promise<StartupStateRow[]> {
  const res = await db.query<StartupStateRow>(
    'DELETE FROM oih_startup_state WHERE flow_id = $1 RETURNING tenant_id, node_id, component_id, function, fields, credentials_id, data',
    [flowId],
  );
  return res.rows;
}
