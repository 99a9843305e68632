-- Flows triggered by application events (issue 12): `trigger {type: "event", application, event}`
-- beside webhook and cron, kept with the flow and its versions; and the Connector's record of the
-- started event flows and of the executions each event started (once per flow, source and id).
ALTER TABLE flows ADD COLUMN trigger jsonb;
ALTER TABLE flow_versions ADD COLUMN trigger jsonb;

-- A started flow with an event trigger (flow.starting → accepting on flow.started; deleted on stop).
CREATE TABLE connector_event_flows (
  flow_id text PRIMARY KEY,
  tenant_id text NOT NULL,
  application_id text NOT NULL,
  event text NOT NULL,
  start_node text NOT NULL,
  flow_version integer NOT NULL,
  accepting boolean NOT NULL DEFAULT false
);
CREATE INDEX connector_event_flows_target ON connector_event_flows (tenant_id, application_id, event);

-- The execution an event started on a flow: a redelivered bus event starts nothing new. 24 h.
CREATE TABLE connector_event_executions (
  flow_id text NOT NULL,
  source text NOT NULL,
  event_id text NOT NULL,
  execution_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, source, event_id)
);
CREATE INDEX connector_event_executions_created ON connector_event_executions (created_at);
