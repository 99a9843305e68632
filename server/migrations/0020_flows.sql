-- Flow repository (modules/flows): flows and every version of their definition.

CREATE TABLE flows (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  description text,
  cron text,
  timezone text,
  graph jsonb NOT NULL,
  -- Server-owned lifecycle (seed 002): inactive → starting → active → stopping → inactive.
  status text NOT NULL DEFAULT 'inactive' CHECK (status IN ('inactive', 'starting', 'active', 'stopping')),
  -- Why the last start failed (flow.failed), cleared by the next start.
  status_reason text,
  owners jsonb NOT NULL DEFAULT '[]',
  -- May hold a webhook signing secret: never returned unmasked by the API.
  flow_settings jsonb NOT NULL DEFAULT '{}',
  -- Increases on every change of the definition (not of the status).
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX flows_tenant_created ON flows (tenant_id, created_at, id);

-- One row per version of a flow's definition, the current one included; written in the same
-- transaction as the flow, so GET /flows/:id/versions always agrees with the flow.
CREATE TABLE flow_versions (
  flow_id text NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  version integer NOT NULL,
  name text NOT NULL,
  description text,
  cron text,
  timezone text,
  graph jsonb NOT NULL,
  flow_settings jsonb NOT NULL DEFAULT '{}',
  -- Who made this version.
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, version)
);
