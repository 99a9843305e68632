/** SQL of the orchestrator module. One operation per function, parameterised. */
import type { Flow } from '../../contracts/flows.js';
import type { Queryable } from '../../platform/db/index.js';

// ---- flows the orchestrator runs ----

export interface OrchestratorFlowRow {
  flow_id: string;
  tenant_id: string;
  version: number;
  status: 'active' | 'stopped';
  runtime: string;
  flow: Flow;
  updated_at: Date;
}

export async function upsertFlow(db: Queryable, flow: Flow, status: 'active' | 'stopped', runtime: string): Promise<void> {
  await db.query(
    `INSERT INTO orchestrator_flows (flow_id, tenant_id, version, status, runtime, flow, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, now())
     ON CONFLICT (flow_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, version = EXCLUDED.version, status = EXCLUDED.status,
       runtime = EXCLUDED.runtime, flow = EXCLUDED.flow, updated_at = now()`,
    [flow.id, flow.tenant, flow.version, status, runtime, JSON.stringify(flow)],
  );
}

export async function insertFlowVersion(db: Queryable, flow: Flow): Promise<void> {
  await db.query(
    `INSERT INTO orchestrator_flow_versions (flow_id, version, flow) VALUES ($1, $2, $3::jsonb)
     ON CONFLICT (flow_id, version) DO UPDATE SET flow = EXCLUDED.flow`,
    [flow.id, flow.version, JSON.stringify(flow)],
  );
}

export async function setFlowStatus(db: Queryable, flowId: string, status: 'active' | 'stopped'): Promise<boolean> {
  const res = await db.query('UPDATE orchestrator_flows SET status = $2, updated_at = now() WHERE flow_id = $1 RETURNING flow_id', [flowId, status]);
  return res.rows.length === 1;
}

export async function listActiveFlows(db: Queryable): Promise<Array<Pick<OrchestratorFlowRow, 'flow_id' | 'version' | 'runtime'>>> {
  const res = await db.query<Pick<OrchestratorFlowRow, 'flow_id' | 'version' | 'runtime'>>("SELECT flow_id, version, runtime FROM orchestrator_flows WHERE status = 'active'");
  return res.rows;
}

export async function findFlow(db: Queryable, flowId: string): Promise<OrchestratorFlowRow | undefined> {
  const res = await db.query<OrchestratorFlowRow>('SELECT * FROM orchestrator_flows WHERE flow_id = $1', [flowId]);
  return res.rows[0];
}

export async function findFlowVersion(db: Queryable, flowId: string, version: number): Promise<Flow | undefined> {
  const res = await db.query<{ flow: Flow }>('SELECT flow FROM orchestrator_flow_versions WHERE flow_id = $1 AND version = $2', [flowId, version]);
  return res.rows[0]?.flow;
}

// ---- placements ----

export async function upsertPlacement(db: Queryable, instanceId: string, flowId: string, version: number, runtime: string): Promise<void> {
  await db.query(
    `INSERT INTO orchestrator_placements (instance_id, flow_id, version, runtime, heartbeat_at) VALUES ($1, $2, $3, $4, now())
     ON CONFLICT (instance_id, flow_id) DO UPDATE SET version = EXCLUDED.version, runtime = EXCLUDED.runtime, heartbeat_at = now()`,
    [instanceId, flowId, version, runtime],
  );
}

/** Deletes the placement and tells every process (NOTIFY 'placements' with the flow id): a stop may wait for it. */
export async function deletePlacement(db: Queryable, instanceId: string, flowId: string): Promise<void> {
  await db.query(
    `WITH gone AS (DELETE FROM orchestrator_placements WHERE instance_id = $1 AND flow_id = $2 RETURNING flow_id)
     SELECT pg_notify(orchestrator_channel('placements'), flow_id) FROM gone`,
    [instanceId, flowId],
  );
}

export async function deleteInstancePlacements(db: Queryable, instanceId: string): Promise<void> {
  await db.query(
    `WITH gone AS (DELETE FROM orchestrator_placements WHERE instance_id = $1 RETURNING flow_id)
     SELECT pg_notify(orchestrator_channel('placements'), flow_id) FROM gone`,
    [instanceId],
  );
}

export async function heartbeatPlacements(db: Queryable, instanceId: string): Promise<void> {
  await db.query('UPDATE orchestrator_placements SET heartbeat_at = now() WHERE instance_id = $1', [instanceId]);
}

/**
 * Other live processes still consuming the flow's steps (heartbeat within `freshMs`), and in
 * how many ms the freshest of them goes stale (its process stopped heartbeating: dead).
 */
export async function livePlacements(db: Queryable, flowId: string, exceptInstance: string, freshMs: number): Promise<{ count: number; staleInMs: number }> {
  const res = await db.query<{ n: number; stale_in_ms: number | null }>(
    `SELECT count(*)::int8 AS n,
            (extract(epoch FROM max(heartbeat_at) + ($3::int8 * interval '1 millisecond') - now()) * 1000)::float8 AS stale_in_ms
       FROM orchestrator_placements
      WHERE flow_id = $1 AND instance_id <> $2 AND heartbeat_at > now() - ($3::int8 * interval '1 millisecond')`,
    [flowId, exceptInstance, freshMs],
  );
  return { count: res.rows[0]?.n ?? 0, staleInMs: Math.max(0, res.rows[0]?.stale_in_ms ?? 0) };
}

// ---- executions and step runs (the engine's hot path) ----

export interface NewExecution {
  id: string;
  tenantId: string;
  flowId: string;
  flowVersion: number | null;
  trigger: string;
  awaitsReply: boolean;
  /**
   * When its trigger job began running. An execution row is often written only when that job
   * commits (a pure start step, or one job from start to end); without this its started_at would
   * be the commit and its duration ~0 ms however long its steps took.
   */
  startedAt: Date;
}

/**
 * Milliseconds since `startedAt`, for `clock_timestamp() - age`: the database's clock, no skew
 * between hosts. Taken when the statement is built, so a statement that waits its turn (PGlite
 * runs one at a time) would start the execution late: the row takes the earlier of that and
 * `startedAt` itself, so it never starts after its first step (whose times are this clock's).
 */
function ageMs(startedAt: Date): number {
  return Math.max(0, Date.now() - startedAt.getTime());
}

/**
 * Creates executions that do not exist yet. `pending` is the number of jobs still to settle (1
 * for a trigger not yet run); at 0 the execution is created ended. Batches go in as one JSON
 * parameter: PostgreSQL parses it faster than the driver serialises arrays of strings.
 * Returns the ids of the created executions that ended while a sync call awaits their reply.
 */
export async function insertExecutions(db: Queryable, xs: ReadonlyArray<NewExecution & { pending: number; failed: number }>): Promise<string[]> {
  const res = await db.query<{ id: string }>(
    `WITH created AS (
       INSERT INTO orchestrator_executions (id, tenant_id, flow_id, flow_version, trigger, awaits_reply, pending, failed_steps, status, started_at, finished_at)
       SELECT id, t, f, v, tr, ar, p, fl,
              CASE WHEN p > 0 THEN 'running' WHEN fl > 0 THEN 'failed' ELSE 'succeeded' END,
              least(clock_timestamp() - age * interval '1 millisecond', st),
              CASE WHEN p > 0 THEN NULL ELSE clock_timestamp() END
         FROM json_to_recordset($1::json) AS x(id text, t text, f text, v int, tr text, ar boolean, p int, fl int, age int, st timestamptz)
       ON CONFLICT (id) DO NOTHING
       RETURNING id, status, awaits_reply)
     SELECT id FROM created WHERE awaits_reply AND status <> 'running'`,
    [JSON.stringify(xs.map((x) => ({ id: x.id, t: x.tenantId, f: x.flowId, v: x.flowVersion, tr: x.trigger, ar: x.awaitsReply, p: x.pending, fl: x.failed, age: ageMs(x.startedAt), st: x.startedAt.toISOString() })))],
  );
  return res.rows.map((r) => r.id);
}

/**
 * Creates executions that ran start to end in one job with every step succeeding, their step runs
 * stored with them (`runsJson`, see compactRuns and migration 0032) rather than as rows of their
 * own. An execution that exists already is left alone: its id is not in `created`, and the
 * caller records those runs the ordinary way, where they meet the existing rows.
 */
export async function insertCompactExecutions(
  db: Queryable,
  xs: ReadonlyArray<NewExecution & { runsJson: string }>,
): Promise<{ created: Set<string>; awaitingReply: string[] }> {
  const res = await db.query<{ n: number; ids: string[] | null; awaiting: string[] | null }>(
    `WITH created AS (
       INSERT INTO orchestrator_executions (id, tenant_id, flow_id, flow_version, trigger, awaits_reply, pending, failed_steps, status, started_at, finished_at, runs)
       SELECT id, t, f, v, tr, ar, 0, 0, 'succeeded', least(clock_timestamp() - age * interval '1 millisecond', st), clock_timestamp(), r
         FROM json_to_recordset($1::json) AS x(id text, t text, f text, v int, tr text, ar boolean, age int, st timestamptz, r text)
       ON CONFLICT (id) DO NOTHING
       RETURNING id, awaits_reply)
     SELECT count(*)::int AS n, CASE WHEN count(*) < $2 THEN json_agg(id) END AS ids, json_agg(id) FILTER (WHERE awaits_reply) AS awaiting
       FROM created`,
    // The runs are JSON already: spliced in as they are rather than escaped into a string.
    ['[' + xs.map((x) => `{"id":${JSON.stringify(x.id)},"t":${JSON.stringify(x.tenantId)},"f":${JSON.stringify(x.flowId)},"v":${x.flowVersion === null ? 'null' : x.flowVersion},"tr":${JSON.stringify(x.trigger)},"ar":${x.awaitsReply},"age":${ageMs(x.startedAt)},"st":"${x.startedAt.toISOString()}","r":${x.runsJson}}`).join(',') + ']', xs.length],
  );
  const { n, ids, awaiting } = res.rows[0]!;
  return { created: new Set(ids ?? (n === xs.length ? xs.map((x) => x.id) : [])), awaitingReply: awaiting ?? [] };
}

/** Step runs as an execution row stores them (migration 0032); bodies are JSON text already. */
export function compactRuns(runs: readonly StepRunWrite[]): string {
  return (
    '[' +
    runs
      .map(
        (r) =>
          `{"n":${JSON.stringify(r.nodeId)},"p":${JSON.stringify(r.path)},"s":"${r.status}","a":${r.attempt},"rb":${r.rebounds},"g":${r.generation},` +
          `"i":${r.inputJson ?? 'null'},"o":${r.outputJson ?? 'null'},"em":${r.emitted},"st":"${r.startedAt.toISOString()}","ft":"${r.finishedAt.toISOString()}","d":${r.durationMs}}`,
      )
      .join(',') +
    ']'
  );
}

export type StepRunStatus = 'succeeded' | 'failed' | 'retrying' | 'rebounded' | 'queued';

export interface StepRunWrite {
  executionId: string;
  nodeId: string;
  path: string;
  status: StepRunStatus;
  attempt: number;
  rebounds: number;
  /** The generation of the job that ran (retries + rebounds before it). */
  generation: number;
  /** JSON text (already cut to the size cap) or null. */
  inputJson: string | null;
  outputJson: string | null;
  emitted: number;
  error: string | null;
  retryMessageJson: string | null;
  startedAt: Date;
  finishedAt: Date;
  durationMs: number;
}

/**
 * Records step runs. A run is recorded only over a row of an older generation that is not final
 * (succeeded / failed): anything else means this delivery was a duplicate or a stale copy.
 * Returns the keys it recorded. Nearly always that is all of them, so the statement answers one
 * row: the count, and the keys only when some were not recorded (rather than a row per run that
 * the driver would parse for nothing).
 */
export async function upsertStepRuns(db: Queryable, runs: readonly StepRunWrite[]): Promise<Set<string>> {
  const res = await db.query<{ n: number; keys: Array<[string, string, string]> | null }>(
    `WITH recorded AS (
     INSERT INTO orchestrator_step_runs AS r (execution_id, node_id, path, status, attempt, rebounds, generation, input, output, emitted, error, retry_message, started_at, finished_at, duration_ms)
     SELECT e, n, p, s, a, rb, g, i, o, em, er, rm, st, ft, d
       FROM json_to_recordset($1::json) AS x(e text, n text, p text, s text, a int, rb int, g int, i text, o text, em int, er text, rm text, st timestamptz, ft timestamptz, d int)
      -- Runs stored with their execution are final: a late copy must not add rows beside them.
      -- (An array, computed once by index: a correlated test would hash the executions table.)
      WHERE x.e <> ALL (ARRAY(SELECT c.id FROM orchestrator_executions c WHERE c.id = ANY($3::text[]) AND c.runs IS NOT NULL))
     ON CONFLICT (execution_id, node_id, path) DO UPDATE SET
       status = EXCLUDED.status, attempt = EXCLUDED.attempt, rebounds = EXCLUDED.rebounds, generation = EXCLUDED.generation, input = EXCLUDED.input,
       output = EXCLUDED.output, emitted = EXCLUDED.emitted, error = EXCLUDED.error, retry_message = EXCLUDED.retry_message,
       started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, duration_ms = EXCLUDED.duration_ms
     WHERE r.status NOT IN ('succeeded', 'failed') AND r.generation < EXCLUDED.generation
     RETURNING execution_id, node_id, path)
     SELECT count(*)::int AS n,
            CASE WHEN count(*) < $2 THEN json_agg(json_build_array(execution_id, node_id, path)) END AS keys
       FROM recorded`,
    [
      JSON.stringify(
        runs.map((r) => ({
          e: r.executionId,
          n: r.nodeId,
          p: r.path,
          s: r.status,
          a: r.attempt,
          rb: r.rebounds,
          g: r.generation,
          i: r.inputJson,
          o: r.outputJson,
          em: r.emitted,
          er: r.error,
          rm: r.retryMessageJson,
          st: r.startedAt.toISOString(),
          ft: r.finishedAt.toISOString(),
          d: r.durationMs,
        })),
      ),
      runs.length,
      [...new Set(runs.map((r) => r.executionId))],
    ],
  );
  const { n, keys } = res.rows[0]!;
  if (keys) return new Set(keys.map(([e, node, path]) => stepRunKey(e, node, path)));
  return n === runs.length ? new Set(runs.map((r) => stepRunKey(r.executionId, r.nodeId, r.path))) : new Set();
}

export function stepRunKey(executionId: string, nodeId: string, path: string): string {
  return `${executionId}:${nodeId}:${path}`;
}

export interface StepRunState {
  status: StepRunStatus;
  generation: number;
}

export async function findStepRunState(db: Queryable, executionId: string, nodeId: string, path: string): Promise<StepRunState | undefined> {
  const res = await db.query<StepRunState>(
    `SELECT status, generation FROM orchestrator_step_runs WHERE execution_id = $1 AND node_id = $2 AND path = $3
     UNION ALL
     SELECT r.s, r.g FROM orchestrator_executions x, json_to_recordset(x.runs::json) AS r(n text, p text, s text, g int)
      WHERE x.id = $1 AND x.runs IS NOT NULL AND r.n = $2 AND r.p = $3
     LIMIT 1`,
    [executionId, nodeId, path],
  );
  return res.rows[0];
}

export interface ExecutionDelta {
  id: string;
  /** Jobs added minus jobs settled. */
  pending: number;
  failed: number;
}

/**
 * Applies pending-job deltas; an execution whose count reaches 0 ends. Ids must be distinct and
 * sorted. Returns the ids of the executions that ended while a sync call awaits their reply.
 */
export async function applyExecutionDeltas(db: Queryable, deltas: readonly ExecutionDelta[]): Promise<string[]> {
  const res = await db.query<{ id: string }>(
    `WITH settled AS (
     UPDATE orchestrator_executions x SET
       pending = x.pending + d.p,
       failed_steps = x.failed_steps + d.f,
       status = CASE WHEN x.pending + d.p > 0 THEN 'running'
                     WHEN x.failed_steps + d.f > 0 THEN 'failed' ELSE 'succeeded' END,
       finished_at = CASE WHEN x.pending + d.p > 0 THEN NULL ELSE clock_timestamp() END
       FROM unnest($1::text[], $2::int[], $3::int[]) AS d(id, p, f)
      WHERE x.id = d.id
      RETURNING x.id, x.status, x.awaits_reply)
     SELECT id FROM settled WHERE awaits_reply AND status <> 'running'`,
    // Arrays, not a JSON batch: the planner counts an array's elements but guesses 100 rows for
    // json_to_recordset, and for that guess it hashes the whole executions table on every batch
    // (a sequential scan measured at ~250 µs per updated row with 20,000 executions, ~35 µs now).
    [deltas.map((d) => d.id), deltas.map((d) => d.pending), deltas.map((d) => d.failed)],
  );
  return res.rows.map((r) => r.id);
}

/**
 * Adds messages produced to executions' counts (a row is created on first use); returns each
 * one's new total. Ids must be distinct and sorted (rows are locked in that order).
 */
export async function addExecutionMessages(db: Queryable, counts: ReadonlyArray<{ id: string; messages: number }>): Promise<Map<string, number>> {
  const res = await db.query<{ execution_id: string; messages: number }>(
    `INSERT INTO orchestrator_execution_messages AS m (execution_id, messages)
     SELECT id, n FROM unnest($1::text[], $2::int[]) AS c(id, n)
     ON CONFLICT (execution_id) DO UPDATE SET messages = m.messages + EXCLUDED.messages
     RETURNING execution_id, messages`,
    [counts.map((c) => c.id), counts.map((c) => c.messages)],
  );
  return new Map(res.rows.map((r) => [r.execution_id, r.messages]));
}

// ---- snapshots ----

export interface SnapshotRow {
  flow_id: string;
  node_id: string;
  tenant_id: string;
  snapshot: unknown;
  updated_at: Date;
}

/** The snapshots of several nodes in one statement, in the order asked (undefined: none stored). */
export async function findSnapshots(db: Queryable, keys: ReadonlyArray<{ flowId: string; nodeId: string }>): Promise<unknown[]> {
  const res = await db.query<{ flow_id: string; node_id: string; snapshot: unknown }>(
    `SELECT s.flow_id, s.node_id, s.snapshot FROM orchestrator_snapshots s
      JOIN unnest($1::text[], $2::text[]) AS k(flow_id, node_id) ON s.flow_id = k.flow_id AND s.node_id = k.node_id`,
    [keys.map((k) => k.flowId), keys.map((k) => k.nodeId)],
  );
  const found = new Map(res.rows.map((r) => [`${r.flow_id}\u0000${r.node_id}`, r.snapshot]));
  return keys.map((k) => found.get(`${k.flowId}\u0000${k.nodeId}`));
}

export async function upsertSnapshots(db: Queryable, s: ReadonlyArray<{ flowId: string; nodeId: string; tenantId: string; json: string }>): Promise<void> {
  await db.query(
    `INSERT INTO orchestrator_snapshots (flow_id, node_id, tenant_id, snapshot, updated_at)
     SELECT f, n, t, j::jsonb, clock_timestamp() FROM json_to_recordset($1::json) AS x(f text, n text, t text, j text)
     ON CONFLICT (flow_id, node_id) DO UPDATE SET snapshot = EXCLUDED.snapshot, tenant_id = EXCLUDED.tenant_id, updated_at = EXCLUDED.updated_at`,
    [JSON.stringify(s.map((x) => ({ f: x.flowId, n: x.nodeId, t: x.tenantId, j: x.json })))],
  );
}

export async function listSnapshots(db: Queryable, tenantId: string, flowId: string | undefined, limit: number, offset: number): Promise<SnapshotRow[]> {
  const res = await db.query<SnapshotRow>(
    `SELECT * FROM orchestrator_snapshots WHERE tenant_id = $1 AND ($2::text IS NULL OR flow_id = $2)
      ORDER BY flow_id, node_id LIMIT $3 OFFSET $4`,
    [tenantId, flowId ?? null, limit, offset],
  );
  return res.rows;
}

export async function countSnapshots(db: Queryable, tenantId: string, flowId: string | undefined): Promise<number> {
  const res = await db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM orchestrator_snapshots WHERE tenant_id = $1 AND ($2::text IS NULL OR flow_id = $2)', [tenantId, flowId ?? null]);
  return res.rows[0]?.n ?? 0;
}

export async function deleteSnapshot(db: Queryable, tenantId: string, flowId: string, nodeId: string): Promise<boolean> {
  const res = await db.query('DELETE FROM orchestrator_snapshots WHERE tenant_id = $1 AND flow_id = $2 AND node_id = $3 RETURNING flow_id', [tenantId, flowId, nodeId]);
  return res.rows.length === 1;
}

// ---- webhook replies ----

export async function insertReplies(db: Queryable, replies: ReadonlyArray<{ executionId: string; json: string }>): Promise<void> {
  await db.query(
    `INSERT INTO orchestrator_replies (execution_id, reply) SELECT e, r::jsonb FROM json_to_recordset($1::json) AS x(e text, r text)
     ON CONFLICT (execution_id) DO NOTHING`,
    [JSON.stringify(replies.map((r) => ({ e: r.executionId, r: r.json })))],
  );
}

/** NOTIFY on our channel, delivered at commit. */
export async function notify(db: Queryable, kind: string, payloads: readonly string[]): Promise<void> {
  await db.query('SELECT pg_notify(orchestrator_channel($1), p) FROM unnest($2::text[]) AS p', [kind, payloads]);
}

export async function channelName(db: Queryable, kind: string): Promise<string> {
  const res = await db.query<{ c: string }>('SELECT orchestrator_channel($1) AS c', [kind]);
  return res.rows[0]!.c;
}

export async function findReply(db: Queryable, executionId: string): Promise<unknown> {
  const res = await db.query<{ reply: unknown }>('SELECT reply FROM orchestrator_replies WHERE execution_id = $1', [executionId]);
  return res.rows[0]?.reply;
}

// ---- the executions API ----

export interface ExecutionRow {
  id: string;
  tenant_id: string;
  flow_id: string;
  flow_version: number | null;
  trigger: string;
  status: 'running' | 'succeeded' | 'failed';
  pending: number;
  failed_steps: number;
  /** Step runs that ended (succeeded or failed for good), counted when read. */
  step_runs: number;
  awaits_reply: boolean;
  started_at: Date;
  finished_at: Date | null;
}

const EXECUTION_COLUMNS = `x.id, x.tenant_id, x.flow_id, x.flow_version, x.trigger, x.status, x.pending, x.failed_steps, x.awaits_reply, x.started_at, x.finished_at,
  CASE WHEN x.runs IS NOT NULL THEN json_array_length(x.runs::json)::int8
       ELSE (SELECT count(*)::int8 FROM orchestrator_step_runs r WHERE r.execution_id = x.id AND r.status IN ('succeeded', 'failed')) END AS step_runs`;

export interface ExecutionFilter {
  tenantId: string;
  flowId?: string | undefined;
  status?: string | undefined;
  /** Started at or after this instant. */
  from?: Date | undefined;
  /** Started before this instant. */
  to?: Date | undefined;
}

const EXECUTION_FILTER = `tenant_id = $1 AND ($2::text IS NULL OR flow_id = $2) AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR started_at >= $4) AND ($5::timestamptz IS NULL OR started_at < $5)`;
const filterParams = (f: ExecutionFilter): unknown[] => [f.tenantId, f.flowId ?? null, f.status ?? null, f.from ?? null, f.to ?? null];

export async function listExecutions(db: Queryable, f: ExecutionFilter, desc: boolean, limit: number, offset: number): Promise<ExecutionRow[]> {
  const res = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM orchestrator_executions x
      WHERE ${EXECUTION_FILTER}
      ORDER BY started_at ${desc ? 'DESC' : 'ASC'}, id ${desc ? 'DESC' : 'ASC'} LIMIT $6 OFFSET $7`,
    [...filterParams(f), limit, offset],
  );
  return res.rows;
}

export async function countExecutions(db: Queryable, f: ExecutionFilter): Promise<number> {
  const res = await db.query<{ n: number }>(
    `SELECT count(*)::int8 AS n FROM orchestrator_executions WHERE ${EXECUTION_FILTER}`,
    filterParams(f),
  );
  return res.rows[0]?.n ?? 0;
}

/** Executions of one tenant, flow and minute (finished in it): counts and a duration histogram. */
export interface MinuteStatsRow {
  flow_id: string;
  minute: Date;
  executions: number;
  failures: number;
  /** Duration bucket (1-81, orchestrator.stats.ts) → executions. */
  histogram: Record<string, number>;
}

/**
 * The per-minute figures of executions that finished in [from, to), for one tenant (and flow)
 * or, with `tenantId` undefined, every tenant (the roll-up). Buckets: log scale, 1 ms – 1 h.
 */
const MINUTE_STATS = `
  WITH b AS (
    SELECT tenant_id, flow_id, date_trunc('minute', finished_at) AS minute,
           width_bucket(ln(greatest(extract(epoch FROM finished_at - started_at) * 1000, 1)), 0, ln(3600000), 80) AS bucket,
           count(*) AS n, count(*) FILTER (WHERE status = 'failed') AS failed
      FROM orchestrator_executions
     WHERE finished_at >= $1 AND finished_at < $2
       AND ($3::text IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR flow_id = $4)
     GROUP BY 1, 2, 3, 4)
  SELECT tenant_id, flow_id, minute, sum(n)::int8 AS executions, sum(failed)::int8 AS failures, jsonb_object_agg(bucket, n) AS histogram
    FROM b GROUP BY 1, 2, 3`;

export async function liveMinuteStats(db: Queryable, tenantId: string, flowId: string | undefined, from: Date, to: Date): Promise<MinuteStatsRow[]> {
  const res = await db.query<MinuteStatsRow>(MINUTE_STATS, [from, to, tenantId, flowId ?? null]);
  return res.rows;
}

export async function rolledMinuteStats(db: Queryable, tenantId: string, flowId: string | undefined, from: Date, to: Date): Promise<MinuteStatsRow[]> {
  const res = await db.query<MinuteStatsRow>(
    `SELECT flow_id, minute, executions, failures, histogram FROM orchestrator_minute_stats
      WHERE tenant_id = $1 AND minute >= $2 AND minute < $3 AND ($4::text IS NULL OR flow_id = $4)`,
    [tenantId, from, to, flowId ?? null],
  );
  return res.rows;
}

/** Stores the figures of every tenant's minutes in [from, to); minutes stored already stay. */
export async function rollUpMinuteStats(db: Queryable, from: Date, to: Date): Promise<number> {
  const res = await db.query(
    `INSERT INTO orchestrator_minute_stats (tenant_id, flow_id, minute, executions, failures, histogram)
     ${MINUTE_STATS}
     ON CONFLICT DO NOTHING`,
    [from, to, null, null],
  );
  return res.rowCount;
}

/** The first minute not rolled up yet, locked until the caller's transaction ends; undefined before the first roll-up. */
export async function lockStatsProgress(db: Queryable): Promise<Date | undefined> {
  await db.query('INSERT INTO orchestrator_stats_progress (id, next_minute) VALUES (1, $1) ON CONFLICT DO NOTHING', [new Date(0)]);
  const res = await db.query<{ next_minute: Date }>('SELECT next_minute FROM orchestrator_stats_progress WHERE id = 1 FOR UPDATE');
  const next = res.rows[0]?.next_minute;
  return next && next.getTime() > 0 ? next : undefined;
}

export async function readStatsProgress(db: Queryable): Promise<Date | undefined> {
  const res = await db.query<{ next_minute: Date }>('SELECT next_minute FROM orchestrator_stats_progress WHERE id = 1');
  const next = res.rows[0]?.next_minute;
  return next && next.getTime() > 0 ? next : undefined;
}

export async function setStatsProgress(db: Queryable, next: Date): Promise<void> {
  await db.query('UPDATE orchestrator_stats_progress SET next_minute = $1 WHERE id = 1', [next]);
}

export async function pruneMinuteStats(db: Queryable, before: Date): Promise<number> {
  const res = await db.query('DELETE FROM orchestrator_minute_stats WHERE minute < $1', [before]);
  return res.rowCount;
}

export async function findExecution(db: Queryable, tenantId: string, id: string): Promise<ExecutionRow | undefined> {
  const res = await db.query<ExecutionRow>(`SELECT ${EXECUTION_COLUMNS} FROM orchestrator_executions x WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
  return res.rows[0];
}

export async function findExecutionStatus(db: Queryable, id: string): Promise<ExecutionRow['status'] | undefined> {
  const res = await db.query<{ status: ExecutionRow['status'] }>('SELECT status FROM orchestrator_executions WHERE id = $1', [id]);
  return res.rows[0]?.status;
}

export async function lockExecution(db: Queryable, tenantId: string, id: string): Promise<ExecutionRow | undefined> {
  const res = await db.query<ExecutionRow>(`SELECT ${EXECUTION_COLUMNS} FROM orchestrator_executions x WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [tenantId, id]);
  return res.rows[0];
}

export interface StepRunRow {
  execution_id: string;
  node_id: string;
  path: string;
  status: StepRunStatus;
  attempt: number;
  rebounds: number;
  generation: number;
  /** JSON text. */
  input: string | null;
  output: string | null;
  emitted: number;
  error: string | null;
  retry_message: string | null;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  /** Earlier attempts a manual retry superseded (migration 0005), oldest first; null when none. */
  earlier?: EarlierAttempt[] | null;
}

export interface EarlierAttempt {
  attempt: number;
  status: string;
  error: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
}

export async function listStepRuns(db: Queryable, executionId: string): Promise<StepRunRow[]> {
  const res = await db.query<StepRunRow>(
    `SELECT execution_id, node_id, path, status, attempt, rebounds, generation, input, output, emitted, error, retry_message, started_at, finished_at, duration_ms,
            (SELECT json_agg(json_build_object('attempt', a.attempt, 'status', a.status, 'error', a.error, 'startedAt', a.started_at,
                                               'finishedAt', a.finished_at, 'durationMs', a.duration_ms) ORDER BY a.attempt)
               FROM orchestrator_step_run_attempts a
              WHERE a.execution_id = s.execution_id AND a.node_id = s.node_id AND a.path = s.path) AS earlier
       FROM orchestrator_step_runs s WHERE execution_id = $1
     UNION ALL
     SELECT x.id, r.n, r.p, r.s, r.a, r.rb, r.g, r.i::text, r.o::text, r.em, NULL, NULL, r.st, r.ft, r.d, NULL
       FROM orchestrator_executions x,
            json_to_recordset(x.runs::json) AS r(n text, p text, s text, a int, rb int, g int, i json, o json, em int, st timestamptz, ft timestamptz, d int)
      WHERE x.id = $1 AND x.runs IS NOT NULL
     ORDER BY started_at, node_id, path`,
    [executionId],
  );
  return res.rows;
}

export async function listFailedStepRuns(db: Queryable, executionId: string): Promise<StepRunRow[]> {
  const res = await db.query<StepRunRow>("SELECT * FROM orchestrator_step_runs WHERE execution_id = $1 AND status = 'failed' ORDER BY started_at", [executionId]);
  return res.rows;
}

export async function markStepRunsQueued(db: Queryable, executionId: string, keys: ReadonlyArray<{ nodeId: string; path: string }>): Promise<void> {
  await db.query(
    // The failed attempt goes into the run's history (migration 0005) before the row is reused.
    `WITH queued AS (
       UPDATE orchestrator_step_runs r SET status = 'queued', error = NULL
         FROM unnest($2::text[], $3::text[]) AS k(n, p), orchestrator_step_runs before
        WHERE r.execution_id = $1 AND r.node_id = k.n AND r.path = k.p
          AND before.execution_id = r.execution_id AND before.node_id = r.node_id AND before.path = r.path
        RETURNING before.*)
     INSERT INTO orchestrator_step_run_attempts (execution_id, node_id, path, attempt, status, error, started_at, finished_at, duration_ms)
     SELECT execution_id, node_id, path, attempt, status, error, started_at, finished_at, duration_ms FROM queued
     ON CONFLICT DO NOTHING`,
    [executionId, keys.map((k) => k.nodeId), keys.map((k) => k.path)],
  );
}

/** A retried execution runs again with a fresh count of messages produced (its limit counts from 0). */
export async function reopenExecution(db: Queryable, id: string, addedJobs: number): Promise<void> {
  await db.query(
    `WITH counted AS (DELETE FROM orchestrator_execution_messages WHERE execution_id = $1)
     UPDATE orchestrator_executions SET pending = pending + $2, failed_steps = GREATEST(0, failed_steps - $2), status = 'running', finished_at = NULL WHERE id = $1`,
    [id, addedJobs],
  );
}

// ---- retention ----

/** Deletes up to `limit` executions (with their step runs and message counts) finished before `before`; returns how many. */
export async function pruneExecutions(db: Queryable, before: Date, limit: number): Promise<number> {
  const res = await db.query<{ id: string }>(
    `WITH old AS (SELECT id FROM orchestrator_executions WHERE finished_at < $1 ORDER BY finished_at LIMIT $2),
          runs AS (DELETE FROM orchestrator_step_runs r USING old WHERE r.execution_id = old.id),
          attempts AS (DELETE FROM orchestrator_step_run_attempts a USING old WHERE a.execution_id = old.id),
          counts AS (DELETE FROM orchestrator_execution_messages m USING old WHERE m.execution_id = old.id)
     DELETE FROM orchestrator_executions x USING old WHERE x.id = old.id RETURNING x.id`,
    [before.toISOString(), limit],
  );
  return res.rows.length;
}

export async function pruneReplies(db: Queryable, before: Date): Promise<number> {
  const res = await db.query('DELETE FROM orchestrator_replies WHERE created_at < $1', [before.toISOString()]);
  return res.rowCount;
}
