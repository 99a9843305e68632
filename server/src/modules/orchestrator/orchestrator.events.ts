/**
 * What the orchestrator listens to and publishes.
 * - listens (durable group `orchestrator`): `flow.starting`, `flow.stopping` (payload: the Flow);
 * - publishes: `flow.started {id}`, `flow.stopped {id}`, `flow.failed {id, reason}`;
 * - consumes: every active flow's step queues `step.<flowId>.<nodeId>` (StepJob);
 * - audit: `audit.orchestrator.<action>` for the changes made through its API.
 */
export const ORCHESTRATOR_AUDIT = {
  executionRetried: 'execution.retried',
  snapshotDeleted: 'snapshot.deleted',
} as const;
