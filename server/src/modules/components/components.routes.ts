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
  dynamicMetadata: z.boolean().optional(),
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

/** What an editor sends: the credential and/or the node's fields the function gets as cfg. */
const EditorBody = z.strictObject({
  credentialsId: z.string().min(1).max(200).optional().describe('a secret of this tenant: its fields are merged into cfg as for a step'),
  fields: z.record(z.string(), z.unknown()).optional().describe('the node fields filled in so far'),
});
/** sailor's lifecycle functions are not editor functions. */
const NOT_DYNAMIC = new Set(['process', 'init', 'startup', 'shutdown', 'verifyCredentials', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']);
const DynamicParams = z.strictObject({
  id: ComponentName,
  function: z
    .string()
    .regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,99}$/, 'must be a JavaScript function name')
    .refine((n) => !NOT_DYNAMIC.has(n), 'is not a metadata or select-model function'),
});

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

    app.post(
      '/api/v1/components/:id/verify-credentials',
      {
        // Runs tenant-registered code with a stored credential: who edits flows may.
        config: { permission: 'flows.write' },
        schema: {
          tags: ['components'],
          summary: 'Run the component’s verifyCredentials(cfg) on a credential and/or fields (in a process of the tenant)',
          security: [{ bearer: [] }],
          params: IdParams,
          body: EditorBody,
          response: { 200: z.object({ data: z.object({ verified: z.boolean(), reason: z.string().optional() }) }) },
        },
      },
      async (req) => ({ data: await service.verifyCredentials(req.principal.tenantId, req.params.id, req.body) }),
    );

    app.post(
      '/api/v1/components/:id/dynamic/:function',
      {
        // Runs tenant-registered code with a stored credential: who edits flows may.
        config: { permission: 'flows.write' },
        schema: {
          tags: ['components'],
          summary: 'Run getMetaModel(cfg) or a select-model function of the component (what an editor calls to fill a schema or a dropdown)',
          security: [{ bearer: [] }],
          params: DynamicParams,
          body: EditorBody.extend({ of: z.string().min(1).max(200).optional().describe('the trigger or action whose file holds the function; default: the first that exports it') }),
          response: { 200: z.object({ data: z.unknown() }) },
        },
      },
      async (req) => ({ data: await service.dynamic(req.principal.tenantId, req.params.id, req.params.function, req.body) }),
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
