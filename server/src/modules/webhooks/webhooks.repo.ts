/** SQL of the webhooks module. One operation per function, parameterised. */
import type { Queryable } from '../../platform/db/index.js';

export interface WebhookFlowRow {
  flow_id: string;
  tenant_id: string;
  start_node: string;
  flow_version: number;
  settings: Record<string, unknown>;
  accepting: boolean;
}

export interface WebhookFlowInput {
  flowId: string;
  tenant: string;
  startNode: string;
  flowVersion: number;
  settings: Record<string, unknown>;
}

/** `flow.starting`: record the flow, not accepting yet (a restart replaces the old record). */
export async function upsertWebhookFlow(db: Queryable, f: WebhookFlowInput): Promise<void> {
  await db.query(
    `INSERT INTO webhook_flows (flow_id, tenant_id, start_node, flow_version, settings, accepting)
     VALUES ($1, $2, $3, $4, $5::jsonb, false)
     ON CONFLICT (flow_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, start_node = EXCLUDED.start_node,
       flow_version = EXCLUDED.flow_version, settings = EXCLUDED.settings, accepting = false, updated_at = now()`,
    [f.flowId, f.tenant, f.startNode, f.flowVersion, JSON.stringify(f.settings)],
  );
}

/** `flow.started`: accept calls. False when the flow is not recorded (scheduled, or stopped meanwhile). */
export async function markWebhookFlowAccepting(db: Queryable, flowId: string): Promise<boolean> {
  const res = await db.query('UPDATE webhook_flows SET accepting = true, updated_at = now() WHERE flow_id = $1 AND NOT accepting', [flowId]);
  return res.rowCount > 0;
}

/** `flow.stopping`: forget the flow. */
export async function deleteWebhookFlow(db: Queryable, flowId: string): Promise<void> {
  await db.query('DELETE FROM webhook_flows WHERE flow_id = $1', [flowId]);
}

export async function findWebhookFlow(db: Queryable, flowId: string): Promise<WebhookFlowRow | undefined> {
  const res = await db.query<WebhookFlowRow>(
    'SELECT flow_id, tenant_id, start_node, flow_version, settings, accepting FROM webhook_flows WHERE flow_id = $1',
    [flowId],
  );
  return res.rows[0];
}

/**
 * Takes `key` for this call: true when it was free (or held by a call older than `ttlMs`,
 * which it replaces); false when a live earlier call holds it. Inside the enqueueing
 * transaction: a concurrent call with the same key waits here for the first one's commit.
 */
export async function claimRequestKey(db: Queryable, flowId: string, key: string, executionId: string, ttlMs: number): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO webhook_requests (flow_id, request_key, execution_id) VALUES ($1, $2, $3)
     ON CONFLICT (flow_id, request_key) DO UPDATE SET execution_id = EXCLUDED.execution_id, created_at = now()
       WHERE webhook_requests.created_at < now() - $4 * interval '1 millisecond'
     RETURNING execution_id`,
    [flowId, key, executionId, ttlMs],
  );
  return res.rowCount > 0;
}

export async function findRequestExecution(db: Queryable, flowId: string, key: string): Promise<string | undefined> {
  const res = await db.query<{ execution_id: string }>('SELECT execution_id FROM webhook_requests WHERE flow_id = $1 AND request_key = $2', [flowId, key]);
  return res.rows[0]?.execution_id;
}

/** Drops request keys older than `ttlMs`; returns how many. */
export async function deleteExpiredRequestKeys(db: Queryable, ttlMs: number): Promise<number> {
  const res = await db.query(`DELETE FROM webhook_requests WHERE created_at < now() - $1 * interval '1 millisecond'`, [ttlMs]);
  return res.rowCount;
}

/** Locks the next `limit` records (by flow id, after `afterId`) whose settings hold a clear signing secret. */
export async function lockWebhookFlowsWithClearSecrets(db: Queryable, afterId: string, limit: number): Promise<WebhookFlowRow[]> {
  const res = await db.query<WebhookFlowRow>(
    `SELECT flow_id, tenant_id, start_node, flow_version, settings, accepting FROM webhook_flows
      WHERE flow_id > $1 AND settings ? 'secret' ORDER BY flow_id LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [afterId, limit],
  );
  return res.rows;
}

/** Replaces a record's settings, keeping whether it accepts calls. */
export async function setWebhookFlowSettings(db: Queryable, flowId: string, settings: Record<string, unknown>): Promise<void> {
  await db.query('UPDATE webhook_flows SET settings = $2::jsonb, updated_at = now() WHERE flow_id = $1', [flowId, JSON.stringify(settings)]);
}

/** The NOTIFY channel changes of webhook_flows are announced on (see 0021_webhooks.sql). */
export async function webhooksChannel(db: Queryable): Promise<string> {
  const res = await db.query<{ channel: string }>('SELECT webhooks_channel(current_schema()) AS channel');
  return res.rows[0]!.channel;
}
