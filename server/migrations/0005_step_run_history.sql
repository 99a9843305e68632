-- Attempts of a step run that a manual retry (POST /api/v1/executions/:id/retry) superseded: the
-- retry adds an attempt to the step's history instead of overwriting the failed one. Owned by the
-- orchestrator module (its step runs are in orchestrator_step_runs, migration 0031, which this
-- number range precedes: hence no foreign key; pruned with their execution). Written only by a
-- manual retry, read only when someone looks at the execution.
CREATE TABLE orchestrator_step_run_attempts (
  execution_id text NOT NULL,
  node_id text NOT NULL,
  path text NOT NULL,
  attempt integer NOT NULL,
  status text NOT NULL,
  error text,
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  PRIMARY KEY (execution_id, node_id, path, attempt)
);
