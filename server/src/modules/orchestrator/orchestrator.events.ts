/**
 * What the orchestrator listens to and publishes.
 * - listens (durable group `orchestrator`): `flow.starting`, `flow.stopping` (payload: the Flow);
 * - publishes: `flow.started {id}`, `flow.stopped {id}`, `flow.failed {id, reason}`;
 * - consumes: every active flow's step queues `step.<flowId>.<nodeId>` (StepJob);
 * - audit: `audit.orchestrator.<action>` for the changes made through its API;
 * - live (bus.live, not stored): `execution.changed {executions:[{id, tenant, flowId}]}` after
 *   each commit that created or advanced executions, and after a retry request.
 */
export const ORCHESTRATOR_AUDIT = {
  executionRetried: 'execution.retried',
  snapshotDeleted: 'snapshot.deleted',
} as const;

/** Live event: these executions changed (read them again to see how). */
export const EXECUTIONS_CHANGED = 'execution.changed';

export interface ExecutionChange {
  id: string;
  tenant: string;
  flowId: string;
}

export interface ExecutionsChanged {
  executions: ExecutionChange[];
}
