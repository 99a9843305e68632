-- The execution engine (modules/orchestrator): the flows it runs, where their steps are placed,
-- executions and their step runs, step snapshots and sync-webhook replies.

-- The orchestrator's own record of flows, kept from flow.starting / flow.stopping (it never reads
-- the flows module's tables). Every orchestrator process places the steps of the active ones.
CREATE TABLE orchestrator_flows (
  flow_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  version integer NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'stopped')),
  runtime text NOT NULL DEFAULT 'local',
  flow jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every version the orchestrator has run: an execution started on version n finishes on it even
-- if the flow is restarted on version n+1 meanwhile.
CREATE TABLE orchestrator_flow_versions (
  flow_id text NOT NULL,
  version integer NOT NULL,
  flow jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, version)
);

-- Which process consumes which flow's steps; heartbeated, so a stop can wait for the others.
CREATE TABLE orchestrator_placements (
  instance_id text NOT NULL,
  flow_id text NOT NULL,
  version integer NOT NULL,
  runtime text NOT NULL,
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (instance_id, flow_id)
);
CREATE INDEX orchestrator_placements_flow ON orchestrator_placements (flow_id);

-- One run of a flow. `pending` counts the step jobs not yet settled; the execution ends when it
-- reaches 0: failed when any step failed for good, else succeeded.
CREATE TABLE orchestrator_executions (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  flow_id text NOT NULL,
  flow_version integer,
  trigger text NOT NULL,
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  pending integer NOT NULL,
  failed_steps integer NOT NULL DEFAULT 0,
  awaits_reply boolean NOT NULL DEFAULT false,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX orchestrator_executions_tenant ON orchestrator_executions (tenant_id, started_at DESC);
CREATE INDEX orchestrator_executions_flow ON orchestrator_executions (flow_id, started_at DESC);
CREATE INDEX orchestrator_executions_finished ON orchestrator_executions (finished_at) WHERE finished_at IS NOT NULL;

-- One row per step run: the key (execution, node, path) is the idempotency key of the run and
-- stays the same across its retries. `path` tells sibling messages apart ("0", "0.2", "0.b.1").
CREATE TABLE orchestrator_step_runs (
  execution_id text NOT NULL,
  node_id text NOT NULL,
  path text NOT NULL,
  status text NOT NULL CHECK (status IN ('succeeded', 'failed', 'retrying', 'rebounded', 'queued')),
  attempt integer NOT NULL,
  rebounds integer NOT NULL DEFAULT 0,
  -- Retries and rebounds re-queue the run as a new job of the next generation; a job of an older
  -- generation than the row is a stale duplicate and is not run (or recorded) again.
  generation integer NOT NULL DEFAULT 0,
  -- Bodies as JSON text, cut to PLEXUS_EXECUTION_STORED_BODY_BYTES: written on every step run and
  -- read only when someone looks, so they are not worth jsonb's parsing on the hot path.
  input text,
  output text,
  emitted integer NOT NULL DEFAULT 0,
  error text,
  -- The whole input message (JSON) of a run that failed for good, for POST /executions/:id/retry.
  retry_message text,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  PRIMARY KEY (execution_id, node_id, path)
);

-- State a step keeps between executions (a polling cursor), per flow and node.
CREATE TABLE orchestrator_snapshots (
  flow_id text NOT NULL,
  node_id text NOT NULL,
  tenant_id text NOT NULL,
  snapshot jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, node_id)
);

-- The webhook-reply step's answer to a sync webhook call, until the waiting caller takes it.
CREATE TABLE orchestrator_replies (
  execution_id text PRIMARY KEY,
  reply jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- LISTEN/NOTIFY channels are per database, not per schema: name ours after the schema so two
-- installations (or two test files) in one database do not hear each other. Lowercase only,
-- because PGlite's listen() does not quote channel names.
CREATE FUNCTION orchestrator_channel(kind text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT 'plexus_orch_' || kind || '_' || left(regexp_replace(lower(current_schema()), '[^a-z0-9_]', '_', 'g'), 40)
$$;
