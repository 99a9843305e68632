/** SQL of the limits module. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';

export interface TenantLimitsRow {
  tenant_id: string;
  overrides: Record<string, unknown>;
  updated_at: Date;
}

/** Every tenant's overrides: one row per tenant that has any, so few enough to hold in memory. */
export async function listTenantLimits(db: Queryable): Promise<TenantLimitsRow[]> {
  const res = await db.query<TenantLimitsRow>('SELECT tenant_id, overrides, updated_at FROM tenant_limits');
  return res.rows;
}

export async function findTenantLimits(db: Queryable, tenantId: string): Promise<TenantLimitsRow | undefined> {
  const res = await db.query<TenantLimitsRow>('SELECT tenant_id, overrides, updated_at FROM tenant_limits WHERE tenant_id = $1', [tenantId]);
  return res.rows[0];
}

export async function upsertTenantLimits(db: Queryable, tenantId: string, overrides: Record<string, unknown>): Promise<TenantLimitsRow> {
  const res = await db.query<TenantLimitsRow>(
    `INSERT INTO tenant_limits (tenant_id, overrides) VALUES ($1, $2::jsonb)
     ON CONFLICT (tenant_id) DO UPDATE SET overrides = EXCLUDED.overrides, updated_at = now()
     RETURNING tenant_id, overrides, updated_at`,
    [tenantId, JSON.stringify(overrides)],
  );
  return res.rows[0]!;
}

/** True when the tenant had overrides. */
export async function deleteTenantLimits(db: Queryable, tenantId: string): Promise<boolean> {
  const res = await db.query('DELETE FROM tenant_limits WHERE tenant_id = $1', [tenantId]);
  return res.rowCount > 0;
}

/** The LISTEN/NOTIFY channel on which a change of limits is announced to every process (per schema). */
export async function changesChannel(db: Queryable): Promise<string> {
  const res = await db.query<{ channel: string }>("SELECT bus_channel('limits', current_schema()) AS channel");
  return res.rows[0]!.channel;
}

/** Announces a tenant's changed limits; inside a transaction, delivered at its commit. */
export async function notifyChange(db: Queryable, tenantId: string): Promise<void> {
  await db.query("SELECT pg_notify(bus_channel('limits', current_schema()), $1)", [tenantId]);
}
