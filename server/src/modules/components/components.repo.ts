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
