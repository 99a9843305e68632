/**
 * The platform services OIH / elastic.io components reach through their environment, answered
 * by the hub for the step that runs:
 * - `ELASTICIO_API_URI` + `ELASTICIO_API_USERNAME` / `ELASTICIO_API_KEY`: the secrets lookup such
 *   components make with `cfg.secretId` (`GET {uri}/v2/workspaces/{workspace}/secrets/{id}` →
 *   `{data: {id, type, attributes: {credentials}}}`), for secrets of the step's tenant only, each
 *   read audited by the secrets module (`secret.read-raw` by step);
 * - `ELASTICIO_OBJECT_STORAGE_URI` + `ELASTICIO_OBJECT_STORAGE_TOKEN`: an object store (attachments,
 *   the splitter's reassemble): `POST {uri}/objects` (raw body) → `{objectId}`, `GET|PUT|DELETE
 *   {uri}/objects/{id}`, per tenant, in the database, each object at most `objectMaxBytes` and a
 *   tenant's at most `tenantQuotaBytes` together.
 * The key and token are one step token: HMAC-signed (tenant, flow, node, execution, expiry), so
 * any hub process sharing PLEXUS_SECRET_KEY accepts it; without that key, a random key of this
 * process (single-process hubs).
 * Also here: startup data of running flows (startup once per node, shutdown when the flow stops)
 * and a component's `updateKeys` into its node's credential.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { SecretUse, SecretValue } from '../../contracts/secrets.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HttpApp } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { OihScope } from './components.oih.js';
import * as repo from './components.repo.js';

/** A step token lives as long as the longest step may, and then some. */
const TOKEN_TTL_MS = 2 * 3_600_000;
export const OIH_API_PATH = '/api/v1/oih/platform';
export const OIH_OBJECTS_PATH = '/api/v1/oih/object-storage';

/** What the platform services need of the secrets module. */
export interface OihSecrets {
  resolveForStep(tenantId: string, secretId: string, use?: SecretUse): Promise<SecretValue>;
  updateForStep(tenantId: string, secretId: string, keys: Record<string, unknown>, use?: SecretUse): Promise<void>;
}

export interface OihPlatformOptions {
  db: Db;
  logger: Logger;
  secrets: OihSecrets | undefined;
  /** PLEXUS_SECRET_KEY, when set: tokens then hold across the hub's processes. */
  signingKey: string | undefined;
  /** The base URL components reach the hub at (PLEXUS_COMPONENT_API_URL, else the hub's own address once it listens). */
  apiBase: string | undefined;
  objectMaxBytes: number;
  tenantQuotaBytes: number;
}

const TokenClaims = z.object({ t: z.string(), f: z.string(), n: z.string(), x: z.string().optional(), e: z.number() });
type TokenClaims = z.infer<typeof TokenClaims>;

/** A credential as elastic.io's secrets API answers it (`attributes.credentials`). */
function credentialsOf(v: SecretValue): Record<string, unknown> {
  if (v.type === 'oauth2') {
    const expiresIn = v.value.expiresAt ? Math.max(0, Math.round((Date.parse(v.value.expiresAt) - Date.now()) / 1000)) : undefined;
    return {
      ...(v.value.accessToken ? { access_token: v.value.accessToken } : {}),
      ...(v.value.refreshToken ? { refresh_token: v.value.refreshToken } : {}),
      ...(expiresIn !== undefined ? { expires_in: expiresIn } : {}),
      token_type: 'Bearer',
    };
  }
  if (v.type === 'apiKey') return { ...v.value, apiKey: v.value.key };
  return { ...v.value };
}

export class OihPlatform {
  private readonly key: Buffer;
  private apiBase: string | undefined;
  private readonly startups = new Map<string, Promise<unknown>>();

  constructor(private readonly o: OihPlatformOptions) {
    this.key = o.signingKey ? createHmac('sha256', o.signingKey).update('plexus oih step tokens').digest() : randomBytes(32);
    this.apiBase = o.apiBase?.replace(/\/+$/, '');
  }

  /** The hub's own address, known once it listens (unless the operator set one). */
  setApiBase(url: string): void {
    this.apiBase ??= url.replace(/\/+$/, '');
  }

  /** Host and port of the platform services, as components are told to reach them. */
  apiTarget(): { hostname: string; port: number } | undefined {
    if (!this.apiBase) return undefined;
    const u = new URL(this.apiBase);
    const hostname = u.hostname.replace(/^\[|\]$/g, '');
    return { hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
  }

  private sign(claims: TokenClaims): string {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${body}.${createHmac('sha256', this.key).update(body).digest('base64url')}`;
  }

  /** The claims of a valid, unexpired token; undefined otherwise. */
  verify(token: string): TokenClaims | undefined {
    const [body, mac] = token.split('.');
    if (!body || !mac) return undefined;
    const expected = createHmac('sha256', this.key).update(body).digest();
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      const claims = TokenClaims.parse(JSON.parse(Buffer.from(body, 'base64url').toString('utf8')));
      return claims.e > Date.now() ? claims : undefined;
    } catch {
      return undefined;
    }
  }

  /** The ELASTICIO_* service variables of one step. */
  services(scope: OihScope): Record<string, string> {
    if (!this.apiBase) return {};
    const token = this.sign({ t: scope.tenant, f: scope.flowId, n: scope.nodeId, ...(scope.executionId ? { x: scope.executionId } : {}), e: Date.now() + TOKEN_TTL_MS });
    return {
      ELASTICIO_API_URI: `${this.apiBase}${OIH_API_PATH}`,
      ELASTICIO_API_USERNAME: `step-${scope.nodeId || 'editor'}`,
      ELASTICIO_API_KEY: token,
      ELASTICIO_OBJECT_STORAGE_URI: `${this.apiBase}${OIH_OBJECTS_PATH}`,
      ELASTICIO_OBJECT_STORAGE_TOKEN: token,
    };
  }

  async updateKeys(scope: OihScope, keys: Record<string, unknown>): Promise<void> {
    if (!scope.credentialsId || !this.o.secrets) return;
    await this.o.secrets.updateForStep(scope.tenant, scope.credentialsId, keys, { flowId: scope.flowId, stepId: scope.nodeId, ...(scope.executionId ? { executionId: scope.executionId } : {}) });
  }

  /** startup's data for the node: stored, or made now by `runStartup` (once, however many runs ask at once). */
  async startupData(scope: OihScope, node: { fields: Record<string, unknown> }, runStartup: () => Promise<unknown>): Promise<unknown> {
    const stored = await repo.findStartupState(this.o.db, scope.flowId, scope.nodeId);
    if (stored) return stored.data;
    const key = `${scope.flowId}/${scope.nodeId}`;
    let pending = this.startups.get(key);
    if (!pending) {
      pending = (async () => {
        const data = await runStartup();
        return repo.insertStartupState(this.o.db, {
          tenantId: scope.tenant,
          flowId: scope.flowId,
          nodeId: scope.nodeId,
          componentId: scope.componentId,
          fn: scope.fn,
          fields: node.fields,
          credentialsId: scope.credentialsId,
          data: data ?? null,
        });
      })().finally(() => this.startups.delete(key));
      this.startups.set(key, pending);
    }
    return pending;
  }

  /** The step a request comes from: its token as Basic password or Bearer; 401 otherwise. */
  private claimsOf(req: FastifyRequest): TokenClaims {
    const header = req.headers.authorization ?? '';
    let token = '';
    if (/^bearer /i.test(header)) token = header.slice(7).trim();
    else if (/^basic /i.test(header)) {
      const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
      token = decoded.slice(decoded.indexOf(':') + 1);
    }
    const claims = token ? this.verify(token) : undefined;
    if (!claims) throw new AppError('UNAUTHENTICATED', 'a valid step token is required (ELASTICIO_API_KEY or ELASTICIO_OBJECT_STORAGE_TOKEN of a running step)');
    return claims;
  }

  /** Routes of the secrets lookup and the object store. */
  routes(app: HttpApp): Promise<void> {
    const tags = ['components'];
    app.get(
      `${OIH_API_PATH}/v2/workspaces/:workspaceId/secrets/:secretId`,
      {
        config: { permission: 'public' },
        schema: {
          tags,
          summary: 'OIH components: a secret of the step’s tenant, as elastic.io’s API answers it (step token as Basic password)',
          params: z.strictObject({ workspaceId: z.string().max(200), secretId: z.string().max(200) }),
        },
      },
      async (req) => {
        const claims = this.claimsOf(req);
        const { workspaceId, secretId } = req.params as { workspaceId: string; secretId: string };
        // Another tenant's workspace looks like a secret that does not exist.
        if (workspaceId !== claims.t || !this.o.secrets) throw AppError.notFound(`secret ${secretId}`);
        const value = await this.o.secrets.resolveForStep(claims.t, secretId, { flowId: claims.f, stepId: claims.n, ...(claims.x ? { executionId: claims.x } : {}) });
        return { data: { id: secretId, type: 'secret', attributes: { type: value.type, credentials: credentialsOf(value) } } };
      },
    );

    const ObjectParams = z.strictObject({ id: z.uuid({ error: 'must be a UUID' }) });
    const store = async (req: FastifyRequest, id: string, claims: TokenClaims): Promise<{ objectId: string; contentType: string; size: number }> => {
      const data = Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body === undefined ? '' : JSON.stringify(req.body));
      if (data.length > this.o.objectMaxBytes) throw new AppError('PAYLOAD_TOO_LARGE', `an object may be at most ${this.o.objectMaxBytes} bytes (PLEXUS_COMPONENT_OBJECT_MAX_BYTES)`);
      const existing = (await repo.objectSize(this.o.db, claims.t, id)) ?? 0;
      const used = await repo.tenantObjectBytes(this.o.db, claims.t);
      if (used - existing + data.length > this.o.tenantQuotaBytes) {
        throw new AppError('PAYLOAD_TOO_LARGE', `the tenant's objects would exceed ${this.o.tenantQuotaBytes} bytes (PLEXUS_COMPONENT_OBJECT_STORE_BYTES); delete objects first`);
      }
      const contentType = String(req.headers['content-type'] ?? 'application/octet-stream').slice(0, 200);
      // maester's searchable fields and time to live.
      const query: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (name.startsWith('x-query-') && typeof value === 'string') query[name.slice('x-query-'.length)] = value.slice(0, 1_000);
      }
      if (Object.keys(query).length > 5) throw AppError.invalid('at most 5 x-query-* headers per object');
      const ttl = Number(req.headers['x-eio-ttl']);
      await repo.upsertObject(this.o.db, {
        tenantId: claims.t,
        id,
        contentType,
        data,
        query,
        ttlSeconds: Number.isInteger(ttl) && ttl > 0 ? ttl : undefined,
        flowId: claims.f,
        nodeId: claims.n,
        executionId: claims.x,
      });
      return { objectId: id, contentType, size: data.length };
    };

    return app.register(async (scope) => {
      // Objects are bytes: every content type is taken as it is, up to the object limit.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: this.o.objectMaxBytes }, (_req, body, done) => done(null, body));
      scope.post(
        `${OIH_OBJECTS_PATH}/objects`,
        { config: { permission: 'public' }, schema: { tags, summary: 'OIH components: store an object (raw body; step token as Bearer)' } },
        async (req, reply: FastifyReply) => reply.code(201).send(await store(req, randomUUID(), this.claimsOf(req))),
      );
      scope.get(
        `${OIH_OBJECTS_PATH}/objects`,
        { config: { permission: 'public' }, schema: { tags, summary: 'OIH components: the tenant’s objects whose searchable fields match `query[key]=value`' } },
        async (req) => {
          const claims = this.claimsOf(req);
          const query: Record<string, string> = {};
          for (const [name, value] of Object.entries(req.query as Record<string, unknown>)) {
            const key = /^query\[(.+)\]$/.exec(name)?.[1];
            if (key && typeof value === 'string') query[key] = value;
          }
          if (Object.keys(query).length === 0) throw AppError.invalid('give at least one query[key]=value');
          const rows = await repo.findObjectsByQuery(this.o.db, claims.t, query);
          return rows.map((r) => ({ objectId: r.id, contentType: r.content_type, size: r.size_bytes, createdAt: r.created_at.toISOString() }));
        },
      );
      scope.put(
        `${OIH_OBJECTS_PATH}/objects/:id`,
        { config: { permission: 'public' }, schema: { tags, summary: 'OIH components: replace an object', params: ObjectParams } },
        async (req) => store(req, (req.params as { id: string }).id, this.claimsOf(req)),
      );
      scope.get(
        `${OIH_OBJECTS_PATH}/objects/:id`,
        { config: { permission: 'public' }, schema: { tags, summary: 'OIH components: read an object', params: ObjectParams } },
        async (req, reply: FastifyReply) => {
          const claims = this.claimsOf(req);
          const id = (req.params as { id: string }).id;
          const row = await repo.findObject(this.o.db, claims.t, id);
          if (!row) throw AppError.notFound(`object ${id}`);
          return reply.header('content-type', row.content_type).header('x-content-type-options', 'nosniff').send(Buffer.from(row.data));
        },
      );
      scope.delete(
        `${OIH_OBJECTS_PATH}/objects/:id`,
        { config: { permission: 'public' }, schema: { tags, summary: 'OIH components: delete an object', params: ObjectParams } },
        async (req, reply: FastifyReply) => {
          const claims = this.claimsOf(req);
          const id = (req.params as { id: string }).id;
          if (!(await repo.deleteObject(this.o.db, claims.t, id))) throw AppError.notFound(`object ${id}`);
          return reply.code(204).send();
        },
      );
    }) as unknown as Promise<void>;
  }
}
