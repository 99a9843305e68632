/** Executions and snapshots: each route declares its schema and its permission together. */
import { z } from 'zod';
import { Execution, ExecutionStatus, ExecutionWithSteps, RetriedExecution, type StepRun } from '../../contracts/executions.js';
import { NodeId } from '../../contracts/flows.js';
import { listMeta, listOf, pageQuery, parseSort, sortQuery } from '../../contracts/list.js';
import type { AuditPublisher } from '../../platform/audit.js';
import type { EventStreams, HttpApp } from '../../platform/http/index.js';
import { ORCHESTRATOR_AUDIT } from './orchestrator.events.js';
import { serveExecutionStream } from './orchestrator.live.js';
import type { ExecutionRow, SnapshotRow, StepRunRow } from './orchestrator.repo.js';
import { stepRunKey } from './orchestrator.repo.js';
import type { OrchestratorService } from './orchestrator.service.js';

const Id = z.string().regex(/^[A-Za-z0-9_.:-]{1,200}$/, 'must be 1-200 characters of A-Z a-z 0-9 _ . : -');
const Instant = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time' });

const StatFigures = z.object({ executions: z.number().int(), failures: z.number().int(), p99Ms: z.number().int().nullable() });
const ExecutionStatsView = z.object({
  from: z.string(),
  bucketSeconds: z.number().int(),
  total: StatFigures,
  flows: z.array(StatFigures.extend({ flowId: z.string() })),
  buckets: z.array(StatFigures.extend({ at: z.string() })),
});

const Snapshot = z.object({ flowId: z.string(), nodeId: z.string(), snapshot: z.unknown(), updatedAt: z.string() });

function executionView(x: ExecutionRow): Execution {
  return {
    id: x.id,
    flowId: x.flow_id,
    flowVersion: x.flow_version,
    trigger: x.trigger,
    status: x.status,
    startedAt: x.started_at.toISOString(),
    finishedAt: x.finished_at ? x.finished_at.toISOString() : null,
    durationMs: x.finished_at ? x.finished_at.getTime() - x.started_at.getTime() : null,
    pendingSteps: Math.max(0, x.pending),
    failedSteps: x.failed_steps,
    stepRuns: x.step_runs,
  };
}

function stepView(r: StepRunRow): StepRun {
  return {
    nodeId: r.node_id,
    path: r.path,
    idempotencyKey: stepRunKey(r.execution_id, r.node_id, r.path),
    status: r.status,
    attempt: r.attempt,
    rebounds: r.rebounds,
    input: r.input === null ? null : (JSON.parse(r.input) as unknown),
    output: r.output === null ? null : (JSON.parse(r.output) as unknown),
    emitted: r.emitted,
    error: r.error,
    startedAt: r.started_at.toISOString(),
    finishedAt: r.finished_at.toISOString(),
    durationMs: r.duration_ms,
    ...(r.earlier?.length
      ? { earlierAttempts: r.earlier.map((e) => ({ ...e, startedAt: new Date(e.startedAt).toISOString(), finishedAt: new Date(e.finishedAt).toISOString() })) }
      : {}),
  };
}

function snapshotView(s: SnapshotRow): z.infer<typeof Snapshot> {
  return { flowId: s.flow_id, nodeId: s.node_id, snapshot: s.snapshot, updatedAt: s.updated_at.toISOString() };
}

export function orchestratorRoutes(service: OrchestratorService, audit: AuditPublisher, streams: EventStreams) {
  return async (app: HttpApp): Promise<void> => {
    streams.endOnClose(app);

    app.get(
      '/api/v1/executions',
      {
        config: { permission: 'executions.read' },
        schema: {
          tags: ['executions'],
          summary: 'List executions (runs of flows), newest first',
          security: [{ bearer: [] }],
          querystring: z.strictObject({
            ...pageQuery,
            'filter[flowId]': Id.optional(),
            'filter[status]': ExecutionStatus.optional(),
            'filter[from]': Instant.optional().describe('started at or after (ISO 8601)'),
            'filter[to]': Instant.optional().describe('started before (ISO 8601)'),
            sort: sortQuery(['startedAt']),
          }),
          response: { 200: listOf(Execution) },
        },
      },
      async (req) => {
        const q = req.query;
        const { desc } = parseSort(q.sort, '-startedAt');
        const filter = {
          tenantId: req.principal.tenantId,
          flowId: q['filter[flowId]'],
          status: q['filter[status]'],
          from: q['filter[from]'] === undefined ? undefined : new Date(q['filter[from]']),
          to: q['filter[to]'] === undefined ? undefined : new Date(q['filter[to]']),
        };
        const { rows, total } = await service.listExecutions(filter, desc, q['page[number]'], q['page[size]']);
        return { data: rows.map(executionView), meta: listMeta(total, q['page[number]'], q['page[size]']) };
      },
    );

    app.get(
      '/api/v1/executions/live',
      {
        config: { permission: 'executions.read' },
        schema: {
          tags: ['executions'],
          summary: 'Server-sent events: `execution` {id, flowId} each time one of the tenant’s executions changes',
          description: 'Opens with `event: ready`. Events name the execution, not its state: read it again. Nothing is replayed; after a reconnect, read the list again.',
          security: [{ bearer: [] }],
          querystring: z.strictObject({ 'filter[flowId]': Id.optional(), 'filter[executionId]': Id.optional() }),
          produces: ['text/event-stream'],
        },
      },
      async (req, reply) => serveExecutionStream(streams, req, reply, { flowId: req.query['filter[flowId]'], executionId: req.query['filter[executionId]'] }),
    );

    app.get(
      '/api/v1/executions/stats',
      {
        config: { permission: 'executions.read' },
        schema: {
          tags: ['executions'],
          summary: 'Throughput and errors over the last minutes (default 60): executions finished, failures and p99 duration per minute, per flow and in total',
          security: [{ bearer: [] }],
          querystring: z.strictObject({ 'filter[flowId]': Id.optional(), minutes: z.coerce.number().int().min(1).max(1440).default(60) }),
          response: { 200: z.object({ data: ExecutionStatsView }) },
        },
      },
      async (req) => ({ data: await service.executionStats(req.principal.tenantId, req.query['filter[flowId]'], req.query.minutes) }),
    );

    app.get(
      '/api/v1/executions/:id',
      {
        config: { permission: 'executions.read' },
        schema: {
          tags: ['executions'],
          summary: 'One execution with its step runs (input and output bodies up to the stored size)',
          security: [{ bearer: [] }],
          params: z.strictObject({ id: Id }),
          response: { 200: z.object({ data: ExecutionWithSteps }) },
        },
      },
      async (req) => {
        const { execution, steps } = await service.getExecution(req.principal.tenantId, req.params.id);
        return { data: { ...executionView(execution), steps: steps.map(stepView) } };
      },
    );

    app.post(
      '/api/v1/executions/:id/retry',
      {
        config: { permission: 'executions.retry' },
        schema: {
          tags: ['executions'],
          summary: 'Re-run the failed steps of a failed execution from their stored input',
          security: [{ bearer: [] }],
          params: z.strictObject({ id: Id }),
          response: { 202: z.object({ data: RetriedExecution }) },
        },
      },
      async (req, reply) => {
        const { execution, retried } = await service.retryExecution(req.principal.tenantId, req.params.id);
        await audit.record({ action: ORCHESTRATOR_AUDIT.executionRetried, actor: req.principal, target: { type: 'execution', id: execution.id }, result: 'success', sourceIp: req.ip, details: { flowId: execution.flow_id, retriedSteps: retried } });
        return reply.code(202).send({ data: { ...executionView(execution), retriedSteps: retried } });
      },
    );

    app.get(
      '/api/v1/snapshots',
      {
        config: { permission: 'executions.read' },
        schema: {
          tags: ['executions'],
          summary: 'State steps keep between executions (e.g. a polling cursor), per flow and node',
          security: [{ bearer: [] }],
          querystring: z.strictObject({ ...pageQuery, 'filter[flowId]': Id.optional() }),
          response: { 200: listOf(Snapshot) },
        },
      },
      async (req) => {
        const q = req.query;
        const { rows, total } = await service.listSnapshots(req.principal.tenantId, q['filter[flowId]'], q['page[number]'], q['page[size]']);
        return { data: rows.map(snapshotView), meta: listMeta(total, q['page[number]'], q['page[size]']) };
      },
    );

    app.delete(
      '/api/v1/snapshots/:flowId/:nodeId',
      {
        config: { permission: 'flows.write' },
        schema: {
          tags: ['executions'],
          summary: 'Forget a step’s snapshot (its next run starts from scratch, e.g. polls from the beginning)',
          security: [{ bearer: [] }],
          params: z.strictObject({ flowId: Id, nodeId: NodeId }),
        },
      },
      async (req, reply) => {
        await service.deleteSnapshot(req.principal.tenantId, req.params.flowId, req.params.nodeId);
        await audit.record({ action: ORCHESTRATOR_AUDIT.snapshotDeleted, actor: req.principal, target: { type: 'snapshot', id: `${req.params.flowId}/${req.params.nodeId}` }, result: 'success', sourceIp: req.ip });
        return reply.code(204).send();
      },
    );
  };
}
