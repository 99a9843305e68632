-- Executions per tenant, flow and minute — the minute they finished — for the cockpit's
-- throughput charts: how many, how many failed, and their durations as a histogram (bucket →
-- count; 80 buckets, equal on a log scale from 1 ms to 1 h, so each spans ×1.2; see
-- orchestrator.stats.ts). Rolled up once a minute from orchestrator_executions, so a chart of
-- the last hour reads 60 rows per flow instead of every execution.
CREATE TABLE orchestrator_minute_stats (
  tenant_id text NOT NULL,
  flow_id text NOT NULL,
  minute timestamptz NOT NULL,
  executions integer NOT NULL,
  failures integer NOT NULL,
  histogram jsonb NOT NULL,
  PRIMARY KEY (tenant_id, minute, flow_id)
);

-- The first minute not rolled up yet; one row. Processes that roll up at once take turns on it.
CREATE TABLE orchestrator_stats_progress (
  id integer PRIMARY KEY CHECK (id = 1),
  next_minute timestamptz NOT NULL
);
