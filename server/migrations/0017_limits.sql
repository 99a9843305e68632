-- Per-tenant limits (modules/limits): the overrides a platform admin set for a tenant. A limit
-- missing from `overrides` takes its default from configuration (PLEXUS_LIMITS_*). Every process
-- keeps all rows in memory (the table holds one row per tenant with overrides, at most); a change
-- NOTIFYs them (bus_channel('limits', schema)) in the transaction that makes it.
CREATE TABLE tenant_limits (
  tenant_id text PRIMARY KEY,
  overrides jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
