-- Webhooks ingress (modules/webhooks): the flows it accepts calls for, and the request keys
-- that make calls idempotent.

-- One row per started flow without cron (seed 002 "Webhooks"): written on flow.starting,
-- accepting from flow.started, deleted on flow.stopping.
CREATE TABLE webhook_flows (
  flow_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  -- The node triggers deliver to: the queue is step.<flow_id>.<start_node>.
  start_node text NOT NULL,
  flow_version integer NOT NULL,
  -- flowSettings.webhooks with defaults applied; may hold the HMAC secret.
  settings jsonb NOT NULL DEFAULT '{}',
  accepting boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency (`x-request-id` / `idempotency-key`, prefix `key:`) and replay protection
-- (Standard Webhooks `webhook-id`, prefix `whid:`), written in the transaction that enqueues the
-- message, so a key exists if and only if its message does. Kept 24 hours.
CREATE TABLE webhook_requests (
  flow_id text NOT NULL,
  request_key text NOT NULL,
  execution_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, request_key)
);
CREATE INDEX webhook_requests_created ON webhook_requests (created_at);

-- Every webhooks process caches webhook_flows in memory; a change NOTIFYs them all (at commit)
-- with the flow id so they drop it at once. Channels are per database, so the schema is in the
-- name (several installations or test files may share a database).
CREATE FUNCTION webhooks_channel(schema_name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'plexus_webhooks_' || left(regexp_replace(lower(schema_name), '[^a-z0-9_]', '_', 'g'), 40)
$$;

CREATE FUNCTION webhook_flows_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(webhooks_channel(TG_TABLE_SCHEMA), CASE WHEN TG_OP = 'DELETE' THEN OLD.flow_id ELSE NEW.flow_id END);
  RETURN NULL;
END $$;
CREATE TRIGGER webhook_flows_notify AFTER INSERT OR UPDATE OR DELETE ON webhook_flows
  FOR EACH ROW EXECUTE FUNCTION webhook_flows_notify();
