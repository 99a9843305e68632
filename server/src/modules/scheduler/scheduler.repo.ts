/** SQL of the scheduler. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';

export interface ScheduledFlowRow {
  flow_id: string;
  tenant_id: string;
  start_node: string;
  flow_version: number;
  cron: string;
  timezone: string | null;
  due_execution: Date | null;
}

/** A claimed due flow, with the database's clock at the claim. */
export interface DueFlowRow extends ScheduledFlowRow {
  due_execution: Date;
  db_now: Date;
}

export interface ScheduledFlowInput {
  flowId: string;
  tenant: string;
  startNode: string;
  flowVersion: number;
  cron: string;
  timezone: string | null;
}

/** `flow.starting`: record the flow, not scheduled yet (a restart replaces the old record). */
export async function upsertScheduledFlow(db: Queryable, f: ScheduledFlowInput): Promise<void> {
  await db.query(
    `INSERT INTO scheduler_flows (flow_id, tenant_id, start_node, flow_version, cron, timezone, due_execution)
     VALUES ($1, $2, $3, $4, $5, $6, NULL)
     ON CONFLICT (flow_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, start_node = EXCLUDED.start_node,
       flow_version = EXCLUDED.flow_version, cron = EXCLUDED.cron, timezone = EXCLUDED.timezone,
       due_execution = NULL, claimed_until = NULL, updated_at = now()`,
    [f.flowId, f.tenant, f.startNode, f.flowVersion, f.cron, f.timezone],
  );
}

export async function findScheduledFlow(db: Queryable, flowId: string): Promise<ScheduledFlowRow | undefined> {
  const res = await db.query<ScheduledFlowRow>(
    'SELECT flow_id, tenant_id, start_node, flow_version, cron, timezone, due_execution FROM scheduler_flows WHERE flow_id = $1',
    [flowId],
  );
  return res.rows[0];
}

/** `flow.started`: set the first due time, unless the flow is scheduled already. */
export async function setFirstDueExecution(db: Queryable, flowId: string, due: Date): Promise<boolean> {
  const res = await db.query('UPDATE scheduler_flows SET due_execution = $2, updated_at = now() WHERE flow_id = $1 AND due_execution IS NULL', [flowId, due.toISOString()]);
  return res.rowCount > 0;
}

/** `flow.stopping`: forget the flow. */
export async function deleteScheduledFlow(db: Queryable, flowId: string): Promise<void> {
  await db.query('DELETE FROM scheduler_flows WHERE flow_id = $1', [flowId]);
}

/**
 * Claims up to `limit` due flows, earliest first, for `leaseMs`: one statement, and rows another
 * scheduler is claiming are skipped, so each due time goes to exactly one claimer. An expired
 * claim (its scheduler died) can be taken again.
 */
export async function claimDueFlows(db: Queryable, limit: number, leaseMs: number): Promise<DueFlowRow[]> {
  const res = await db.query<DueFlowRow>(
    `UPDATE scheduler_flows AS f SET claimed_until = now() + $2 * interval '1 millisecond'
     FROM (
       SELECT flow_id FROM scheduler_flows
       WHERE due_execution <= now() AND (claimed_until IS NULL OR claimed_until < now())
       ORDER BY due_execution
       LIMIT $1
       FOR UPDATE SKIP LOCKED
     ) AS due
     WHERE f.flow_id = due.flow_id
     RETURNING f.flow_id, f.tenant_id, f.start_node, f.flow_version, f.cron, f.timezone, f.due_execution, now() AS db_now`,
    [limit, leaseMs],
  );
  return res.rows;
}

/**
 * After their jobs are stored: moves claimed flows from the due time they fired to the next
 * (NULL: never again) and releases them. A flow restarted or stopped meanwhile is left alone.
 */
export async function advanceDueExecutions(
  db: Queryable,
  flowIds: readonly string[],
  firedDue: readonly Date[],
  nextDue: ReadonlyArray<Date | null>,
): Promise<void> {
  await db.query(
    `UPDATE scheduler_flows AS f SET due_execution = x.next_due, claimed_until = NULL, last_fired_at = now(), updated_at = now()
     FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS x(flow_id, fired_due, next_due)
     WHERE f.flow_id = x.flow_id AND f.due_execution = x.fired_due`,
    [flowIds, firedDue.map((d) => d.toISOString()), nextDue.map((d) => (d ? d.toISOString() : null))],
  );
}

/** Milliseconds from the database's now to the nearest due time (negative: overdue); undefined when none. */
export async function msUntilNextDue(db: Queryable): Promise<number | undefined> {
  const res = await db.query<{ ms: number | null }>(
    `SELECT (extract(epoch FROM (min(greatest(due_execution, claimed_until)) - now())) * 1000)::float8 AS ms
     FROM scheduler_flows WHERE due_execution IS NOT NULL`,
  );
  const ms = res.rows[0]?.ms;
  return ms === null || ms === undefined ? undefined : ms;
}

export async function schedulerChannel(db: Queryable): Promise<string> {
  const res = await db.query<{ channel: string }>('SELECT scheduler_channel(current_schema()) AS channel');
  return res.rows[0]!.channel;
}
