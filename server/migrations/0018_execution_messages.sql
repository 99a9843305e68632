-- Messages produced per execution (modules/orchestrator, the tenant limit messagesPerExecution).
-- Only executions whose work went on past their trigger job get a row: the commit of each later
-- job adds the messages it routed and is refused when the sum passes the tenant's limit. An
-- execution run start to end by its trigger job is counted in memory and never has a row.
-- Rows go with their execution (retention). A separate table, not a column of
-- orchestrator_executions: this migration runs before the one that creates that table.
CREATE TABLE orchestrator_execution_messages (
  execution_id text PRIMARY KEY,
  messages integer NOT NULL
);
