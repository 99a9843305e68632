-- Router (modules/router): enrolment secrets, enrolled workers and their logical configuration.
-- Secrets and credentials are stored as SHA-256 hashes only (they are 32 random bytes: no
-- dictionary to guard against, so no slow hash is needed).

-- An enrolment secret an administrator created: single use, expiring, scoped to a tenant and to
-- the components (name or name@major) a worker enrolled with it may serve.
CREATE TABLE router_enrolments (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  secret_hash text NOT NULL,
  components jsonb NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  worker_id text
);
CREATE INDEX router_enrolments_tenant ON router_enrolments (tenant_id, created_at);

-- A worker bound on its first connect; it presents `<id>.<secret>` afterwards.
CREATE TABLE router_workers (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  worker_id text NOT NULL,
  credential_hash text NOT NULL,
  components jsonb NOT NULL,
  enrolment_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  UNIQUE (tenant_id, worker_id)
);

-- Logical configuration of one worker instance, every version kept.
CREATE TABLE router_configurations (
  tenant_id text NOT NULL,
  worker_id text NOT NULL,
  version integer NOT NULL,
  configuration jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, worker_id, version)
);
