-- Scheduler (modules/scheduler): the started flows that have a cron (seed 002 "Scheduler").
-- Written on flow.starting with due_execution unset, scheduled from flow.started, deleted on
-- flow.stopping.
CREATE TABLE scheduler_flows (
  flow_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  -- The node triggers deliver to: the queue is step.<flow_id>.<start_node>.
  start_node text NOT NULL,
  flow_version integer NOT NULL,
  cron text NOT NULL,
  -- IANA name; NULL means UTC.
  timezone text,
  -- When the flow fires next; NULL until flow.started (or when the cron never fires again).
  due_execution timestamptz,
  -- A scheduler firing the current due time holds it until then (a lease: one that dies lets
  -- another take over after it expires).
  claimed_until timestamptz,
  last_fired_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Claims read the due flows in due order; the same index answers "when is the next one due".
CREATE INDEX scheduler_flows_due ON scheduler_flows (due_execution) WHERE due_execution IS NOT NULL;

-- Scheduler processes sleep until the nearest due time; a newly scheduled flow wakes them all
-- (at commit). Channels are per database, so the schema is in the name.
CREATE FUNCTION scheduler_channel(schema_name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT 'plexus_scheduler_' || left(regexp_replace(lower(schema_name), '[^a-z0-9_]', '_', 'g'), 40)
$$;

CREATE FUNCTION scheduler_flows_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify(scheduler_channel(TG_TABLE_SCHEMA), '');
  RETURN NULL;
END $$;
-- Only when a flow is scheduled (flow.started), not on every claim that advances due_execution.
CREATE TRIGGER scheduler_flows_notify AFTER UPDATE OF due_execution ON scheduler_flows
  FOR EACH ROW WHEN (OLD.due_execution IS NULL AND NEW.due_execution IS NOT NULL)
  EXECUTE FUNCTION scheduler_flows_notify();
