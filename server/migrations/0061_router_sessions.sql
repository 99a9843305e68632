-- Router (modules/router): the workers attached to each aggregator instance, as each instance last
-- reported them (every few seconds and on every attach / detach), so that `GET /api/v1/workers`
-- on any instance lists the workers of all of them. A row whose instance stopped reporting is
-- ignored after a few periods and deleted after a minute (an instance that died says nothing).
CREATE TABLE router_sessions (
  instance_id text NOT NULL,
  session_id text NOT NULL,
  tenant_id text NOT NULL,
  -- The worker as GET /api/v1/workers shows it (components, in flight, last heartbeat, …).
  view jsonb NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (instance_id, session_id)
);
CREATE INDEX router_sessions_tenant ON router_sessions (tenant_id, reported_at);
