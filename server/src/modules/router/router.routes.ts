/** Router routes: each declares its schema and its permission together. */
import { z } from 'zod';
import { listMeta, ListMeta } from '../../contracts/list.js';
import type { HttpApp } from '../../platform/http/index.js';
import type { WorkerRegistry } from './router.registry.js';
import type { AdminCommands } from './router.commands.js';
import type { RouterService } from './router.service.js';

const tags = ['workers'];
const bearer = [{ bearer: [] }];

/** `name` (any version), `name@2` (major 2), `name@2.1`, or `*`. */
const AllowedComponent = z.string().regex(/^(\*|[a-z0-9][a-z0-9._-]{0,99}(@\d+(\.\d+){0,2})?)$/, 'must be a component name, name@major (name@2, name@2.1) or *');

export const CreateEnrolmentBody = z.strictObject({
  components: z.array(AllowedComponent).min(1, 'name at least one component the worker may serve').max(200),
  /** Seconds until the secret expires unused (default one day, at most 30 days). */
  expiresInSeconds: z.number().int().min(60).max(30 * 86_400).default(86_400),
});

const EnrolmentView = z.object({
  id: z.string(),
  tenant: z.string(),
  components: z.array(z.string()),
  createdAt: z.string(),
  expiresAt: z.string(),
  usedAt: z.string().nullable(),
  workerId: z.string().nullable(),
});

const WorkerView = z.object({
  workerId: z.string(),
  sessionId: z.string(),
  components: z.array(z.object({ name: z.string(), version: z.string(), functions: z.array(z.string()) })),
  concurrency: z.number().int(),
  inFlight: z.number().int(),
  draining: z.boolean(),
  secure: z.boolean(),
  connectedAt: z.string(),
  lastHeartbeatAt: z.string(),
  aggregator: z.string(),
  instanceId: z.string(),
  reportedAt: z.string(),
});

const AdminBody = z.strictObject({
  command: z.enum(['admin.list', 'admin.start', 'admin.stop', 'admin.update', 'admin.drain']),
  payload: z.record(z.string(), z.unknown()).default({}),
  timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
});

export function routerRoutes(service: RouterService, registry: WorkerRegistry, admin: AdminCommands) {
  return async (app: HttpApp): Promise<void> => {
    app.post(
      '/api/v1/workers/enrolments',
      {
        config: { permission: 'workers.write' },
        schema: {
          tags,
          summary: 'Create a single-use enrolment secret for a worker (shown only in this answer)',
          security: bearer,
          body: CreateEnrolmentBody,
          response: { 201: z.object({ data: EnrolmentView.extend({ secret: z.string() }) }) },
        },
      },
      async (req, reply) => reply.code(201).send({ data: await service.createEnrolment(req.principal, req.body, req.ip) }),
    );

    app.get(
      '/api/v1/workers/enrolments',
      { config: { permission: 'workers.read' }, schema: { tags, summary: 'Enrolment secrets of the tenant (never the secrets)', security: bearer, response: { 200: z.object({ data: z.array(EnrolmentView), meta: ListMeta }) } } },
      async (req) => {
        const data = await service.listEnrolments(req.principal.tenantId);
        return { data, meta: listMeta(data.length, 1, Math.max(1, data.length)) };
      },
    );

    app.get(
      '/api/v1/workers',
      {
        config: { permission: 'workers.read' },
        schema: {
          tags,
          summary: 'Workers of the tenant attached to any aggregator instance (the instance holding each): components, versions, in-flight deliveries, last heartbeat',
          security: bearer,
          response: { 200: z.object({ data: z.array(WorkerView), meta: ListMeta }) },
        },
      },
      async (req) => {
        const data = await registry.list(req.principal.tenantId);
        return { data, meta: listMeta(data.length, 1, Math.max(1, data.length)) };
      },
    );

    app.post(
      '/api/v1/workers/:workerId/admin',
      {
        config: { permission: 'workers.write' },
        schema: {
          tags,
          summary: "Send an admin command (admin.list, start, stop, update, drain) to a worker's admin worker and wait for its answer",
          security: bearer,
          params: z.strictObject({ workerId: z.string().min(1).max(100) }),
          body: AdminBody,
          response: { 200: z.object({ data: z.object({ event: z.string(), payload: z.unknown() }) }) },
        },
      },
      async (req) => ({ data: await admin.send(req.principal.tenantId, req.params.workerId, req.body.command, req.body.payload, req.body.timeoutMs) }),
    );
  };
}
