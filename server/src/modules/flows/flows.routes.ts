/** Flow repository routes (`/api/v1/flows`): each declares its schema and its permission together. */
import { validatorCompiler } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import type { FastifyRouteSchemaDef, FastifyValidationResult } from 'fastify/types/schema.js';
import { z } from 'zod';
import { Flow, FlowGraph, FlowStatus } from '../../contracts/flows.js';
import { listOf, pageQuery, parseSort, searchQuery, sortQuery } from '../../contracts/list.js';
import type { EventStreams, HttpApp } from '../../platform/http/index.js';
import { FLOW_CHANGED, type FlowChanged } from './flows.events.js';
import type { FlowsService } from './flows.service.js';
import { FLOW_EXAMPLES } from './flows.examples.js';
import { FlowInput, FlowPatch } from './flows.validation.js';

/**
 * The flow as answered: with `links.webhook`, the URL its webhook takes calls at, built from the
 * request's own origin (behind a proxy: PLEXUS_TRUST_PROXY makes that the public one). A cron
 * flow has none.
 */
function withLinks(req: FastifyRequest, flow: Flow): Flow {
  if (flow.cron) return flow;
  return { ...flow, links: { webhook: `${req.protocol}://${req.host}/hook/${encodeURIComponent(flow.id)}` } };
}

const IdParams = z.strictObject({ id: z.string().min(1).max(100) });
const StatusAnswer = z.object({ data: z.object({ id: z.string(), status: FlowStatus }) });
const tags = ['flows'];
const security = [{ bearer: [] }];

const FlowVersion = z.object({
  version: z.number().int(),
  current: z.boolean(),
  name: z.string(),
  description: z.string().optional(),
  cron: z.string().optional(),
  timezone: z.string().optional(),
  graph: FlowGraph,
  flowSettings: z.record(z.string(), z.unknown()),
  createdBy: z.string().optional(),
  createdAt: z.string(),
});

/**
 * Flow bodies are documented by their schema but validated by the service, which lists every
 * problem (shape, graph, components, cron) at once instead of stopping at the schema's.
 */
function bodyCheckedByService<T>(def: FastifyRouteSchemaDef<T>): FastifyValidationResult {
  if (def.httpPart === 'body') return (data: unknown) => ({ value: data });
  return validatorCompiler(def as FastifyRouteSchemaDef<z.ZodType>);
}

export function flowsRoutes(service: FlowsService, streams: EventStreams) {
  return async (app: HttpApp): Promise<void> => {
    streams.endOnClose(app);

    app.get(
      '/api/v1/flows/live',
      {
        config: { permission: 'flows.read' },
        schema: {
          tags,
          security,
          summary: 'Server-sent events: `flow` {id, status} each time the status of one of the tenant’s flows changes',
          description: 'Opens with `event: ready`; nothing is replayed.',
          querystring: z.strictObject({ 'filter[flowId]': z.string().min(1).max(100).optional() }),
          produces: ['text/event-stream'],
        },
      },
      async (req, reply) => {
        const tenant = req.principal.tenantId;
        const only = req.query['filter[flowId]'];
        return streams.serve<FlowChanged>(req, reply, FLOW_CHANGED, ({ payload: f }) =>
          f.tenant === tenant && (only === undefined || f.id === only) ? [{ event: 'flow', data: { id: f.id, status: f.status } }] : [],
        );
      },
    );

    app.get(
      '/api/v1/flows',
      {
        config: { permission: 'flows.read' },
        schema: {
          tags,
          security,
          summary: "List the tenant's flows",
          querystring: z.strictObject({
            ...pageQuery,
            'filter[status]': FlowStatus.optional(),
            search: searchQuery,
            sort: sortQuery(['name', 'createdAt', 'updatedAt', 'status']),
          }),
          response: { 200: listOf(Flow) },
        },
      },
      async (req) => {
        const page = await service.list(req.principal, {
          page: req.query['page[number]'],
          perPage: req.query['page[size]'],
          status: req.query['filter[status]'],
          search: req.query.search,
          sort: parseSort(req.query.sort, '-createdAt'),
        });
        return { ...page, data: page.data.map((f) => withLinks(req, f)) };
      },
    );

    app.post(
      '/api/v1/flows',
      {
        config: { permission: 'flows.write' },
        validatorCompiler: bodyCheckedByService,
        schema: {
          tags,
          security,
          summary: 'Create a flow (inactive)',
          description:
            'Examples: webhook → transform → http-request; a cron flow; a flow whose http-request step uses a credential (a secret by id). The answer carries `links.webhook`, the URL that triggers a flow without `cron`.',
          body: FlowInput.meta({ examples: [...FLOW_EXAMPLES] }),
          response: { 201: z.object({ data: Flow }) },
        },
      },
      async (req, reply) => reply.code(201).send({ data: withLinks(req, await service.create(req.principal, req.body as unknown)) }),
    );

    app.get(
      '/api/v1/flows/:id',
      { config: { permission: 'flows.read' }, schema: { tags, security, summary: 'One flow', params: IdParams, response: { 200: z.object({ data: Flow }) } } },
      async (req) => ({ data: withLinks(req, await service.get(req.principal, req.params.id)) }),
    );

    app.patch(
      '/api/v1/flows/:id',
      {
        config: { permission: 'flows.write' },
        validatorCompiler: bodyCheckedByService,
        schema: {
          tags,
          security,
          summary: 'Change an inactive flow (409 otherwise); its version increases',
          params: IdParams,
          body: FlowPatch,
          response: { 200: z.object({ data: Flow }) },
        },
      },
      async (req) => ({ data: withLinks(req, await service.update(req.principal, req.params.id, req.body as unknown)) }),
    );

    app.delete(
      '/api/v1/flows/:id',
      { config: { permission: 'flows.write' }, schema: { tags, security, summary: 'Delete an inactive flow (409 otherwise)', params: IdParams } },
      async (req, reply) => {
        await service.remove(req.principal, req.params.id);
        return reply.code(204).send();
      },
    );

    app.get(
      '/api/v1/flows/:id/versions',
      {
        config: { permission: 'flows.read' },
        schema: {
          tags,
          security,
          summary: "Every version of the flow's definition, newest first",
          params: IdParams,
          querystring: z.strictObject({ ...pageQuery }),
          response: { 200: listOf(FlowVersion) },
        },
      },
      async (req) => service.listVersions(req.principal, req.params.id, { page: req.query['page[number]'], perPage: req.query['page[size]'] }),
    );

    app.post(
      '/api/v1/flows/:id/start',
      {
        config: { permission: 'flows.control' },
        schema: { tags, security, summary: 'Start a flow: status starting, then active once the orchestrator is ready', params: IdParams, response: { 200: StatusAnswer } },
      },
      async (req) => ({ data: await service.start(req.principal, req.params.id) }),
    );

    app.post(
      '/api/v1/flows/:id/stop',
      {
        config: { permission: 'flows.control' },
        schema: { tags, security, summary: 'Stop a flow from any state: status stopping, then inactive', params: IdParams, response: { 200: StatusAnswer } },
      },
      async (req) => ({ data: await service.stop(req.principal, req.params.id) }),
    );
  };
}
