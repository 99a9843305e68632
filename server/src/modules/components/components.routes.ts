/** Component routes: each declares its schema and its permission together. */
import { z } from 'zod';
import { listMeta, listOf, pageQuery, searchQuery } from '../../contracts/list.js';
import type { AuditPublisher } from '../../platform/audit.js';
import { AppError } from '../../platform/errors.js';
import type { HttpApp } from '../../platform/http/index.js';
import { ComponentName } from './components.descriptor.js';
import { COMPONENT_AUDIT } from './components.events.js';
import type { ComponentsService, RegisterSource } from './components.service.js';

const Schema = z.record(z.string(), z.unknown());
const FunctionView = z.object({
  title: z.string().optional(),
  description: z.string().optional(),
  fields: Schema,
  inputSchema: Schema.optional(),
  outputSchema: Schema.optional(),
});
const ComponentView = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  title: z.string().optional(),
  description: z.string(),
  credentials: Schema.optional(),
  triggers: z.record(z.string(), FunctionView),
  actions: z.record(z.string(), FunctionView),
  builtin: z.boolean(),
  /** Present when the operator switched the component off: why. */
  disabled: z.string().optional(),
  source: z.object({ kind: z.enum(['builtin', 'directory', 'package']), path: z.string().optional(), name: z.string().optional() }),
  createdAt: z.string().optional(),
});

const RegisterBody = z
  .strictObject({
    directory: z.string().min(1).max(1_000).optional().describe('a folder on the hub, under PLEXUS_COMPONENT_PATHS'),
    package: z.string().min(1).max(214).optional().describe('an npm package installed on the hub'),
  })
  .refine((b) => (b.directory === undefined) !== (b.package === undefined), { message: 'give exactly one of directory or package' });

const IdParams = z.strictObject({ id: ComponentName });

export function componentsRoutes(service: ComponentsService, audit: AuditPublisher) {
  return async (app: HttpApp): Promise<void> => {
    app.get(
      '/api/v1/components',
      {
        config: { permission: 'components.read' },
        schema: {
          tags: ['components'],
          summary: 'List the components this tenant can use (built-ins and its own), with their schemas',
          security: [{ bearer: [] }],
          querystring: z.strictObject({ ...pageQuery, search: searchQuery, 'filter[builtin]': z.enum(['true', 'false']).optional() }),
          response: { 200: listOf(ComponentView) },
        },
      },
      async (req) => {
        const q = req.query;
        const needle = q.search?.toLowerCase();
        const all = (await service.list(req.principal.tenantId)).filter(
          (c) =>
            (q['filter[builtin]'] === undefined || String(c.builtin) === q['filter[builtin]']) &&
            (!needle || [c.name, c.title ?? '', c.description].some((s) => s.toLowerCase().includes(needle))),
        );
        const size = q['page[size]'];
        const page = q['page[number]'];
        return { data: all.slice((page - 1) * size, page * size), meta: listMeta(all.length, page, size) };
      },
    );

    app.get(
      '/api/v1/components/:id',
      {
        config: { permission: 'components.read' },
        schema: { tags: ['components'], summary: 'One component with its schemas', security: [{ bearer: [] }], params: IdParams, response: { 200: z.object({ data: ComponentView }) } },
      },
      async (req) => ({ data: await service.get(req.principal.tenantId, req.params.id) }),
    );

    app.post(
      '/api/v1/components',
      {
        config: { permission: 'components.write' },
        schema: {
          tags: ['components'],
          summary: 'Register a component (OIH / elastic.io format) from a directory or an npm package installed on the hub',
          security: [{ bearer: [] }],
          body: RegisterBody,
          response: { 201: z.object({ data: ComponentView }) },
        },
      },
      async (req, reply) => {
        const source: RegisterSource = req.body.directory !== undefined ? { directory: req.body.directory } : { package: req.body.package! };
        const actor = req.principal;
        try {
          const created = await service.register(actor.tenantId, source, actor.accountId);
          await audit.record({ action: COMPONENT_AUDIT.registered, actor, target: { type: 'component', id: created.id, name: created.name }, result: 'success', sourceIp: req.ip, details: { source: created.source, version: created.version } });
          return reply.code(201).send({ data: created });
        } catch (err) {
          if (err instanceof AppError && err.status < 500) {
            await audit.record({ action: COMPONENT_AUDIT.registered, actor, target: { type: 'component' }, result: 'failure', sourceIp: req.ip, details: { reason: err.message } });
          }
          throw err;
        }
      },
    );

    app.delete(
      '/api/v1/components/:id',
      {
        config: { permission: 'components.write' },
        schema: { tags: ['components'], summary: 'Unregister one of this tenant’s components (running flows keep the code they loaded)', security: [{ bearer: [] }], params: IdParams },
      },
      async (req, reply) => {
        await service.remove(req.principal.tenantId, req.params.id);
        await audit.record({ action: COMPONENT_AUDIT.removed, actor: req.principal, target: { type: 'component', id: req.params.id }, result: 'success', sourceIp: req.ip });
        return reply.code(204).send();
      },
    );
  };
}
