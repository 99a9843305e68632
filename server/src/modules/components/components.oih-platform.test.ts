/**
 * The step tokens OIH components reach the platform services with, and the secrets lookup's
 * tenant scope, through the routes on a real database.
 */
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SecretValue } from '../../contracts/secrets.js';
import { AppError } from '../../platform/errors.js';
import type { HttpApp } from '../../platform/http/index.js';
import { createLogger } from '../../platform/logger.js';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { OihPlatform } from './components.oih-platform.js';

const scope = { tenant: 'acme', flowId: 'f-1', nodeId: 'n-1', executionId: 'x-1', componentId: 'c', fn: 'a' };

describe('OIH platform services', () => {
  let testDb: TestDb;
  let platform: OihPlatform;
  let app: ReturnType<typeof Fastify>;
  const reads: string[] = [];

  beforeAll(async () => {
    testDb = await openTestDb('pglite');
    platform = new OihPlatform({
      db: testDb.db,
      logger: createLogger('silent'),
      signingKey: 'a-test-signing-key-of-some-length',
      apiBase: 'http://127.0.0.1:9',
      objectMaxBytes: 1024,
      tenantQuotaBytes: 1536,
      secrets: {
        async resolveForStep(tenant, id): Promise<SecretValue> {
          reads.push(`${tenant}/${id}`);
          if (tenant !== 'acme' || id !== 's-1') throw AppError.notFound(`secret ${id}`);
          return { type: 'oauth2', value: { grantType: 'refresh_token', tokenUrl: 'https://auth.example/token', clientId: 'c', refreshToken: 'r-1', accessToken: 'a-1' } };
        },
        async updateForStep() {},
      },
    });
    app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    app.setErrorHandler((err: Error, _req: FastifyRequest, reply: FastifyReply) =>
      reply.code(err instanceof AppError ? err.status : ((err as { statusCode?: number }).statusCode ?? 500)).send({ message: err.message }),
    );
    await platform.routes(app as unknown as HttpApp);
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await testDb?.drop();
  });

  it('signs step tokens that only this key verifies, and refuses tampered ones', () => {
    const env = platform.services(scope);
    expect(env).toMatchObject({ ELASTICIO_API_URI: 'http://127.0.0.1:9/api/v1/oih/platform', ELASTICIO_OBJECT_STORAGE_URI: 'http://127.0.0.1:9/api/v1/oih/object-storage' });
    const token = env.ELASTICIO_API_KEY!;
    expect(platform.verify(token)).toMatchObject({ t: 'acme', f: 'f-1', n: 'n-1', x: 'x-1' });
    const [body] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ t: 'globex', f: 'f-1', n: 'n-1', e: Date.now() + 1000 })).toString('base64url');
    expect(platform.verify(`${forged}.${token.split('.')[1]}`)).toBeUndefined();
    expect(platform.verify(`${body}.AAAA`)).toBeUndefined();
    const other = new OihPlatform({ db: testDb.db, logger: createLogger('silent'), signingKey: 'another-key-entirely-different', apiBase: 'http://x', objectMaxBytes: 1, tenantQuotaBytes: 1, secrets: undefined });
    expect(other.verify(token)).toBeUndefined();
  });

  it('answers the secrets lookup for the token’s tenant only, as elastic.io’s API does', async () => {
    const token = platform.services(scope).ELASTICIO_API_KEY!;
    const auth = `Basic ${Buffer.from(`step-n-1:${token}`).toString('base64')}`;
    const ok = await app.inject({ method: 'GET', url: '/api/v1/oih/platform/v2/workspaces/acme/secrets/s-1', headers: { authorization: auth } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ data: { id: 's-1', type: 'secret', attributes: { type: 'oauth2', credentials: { access_token: 'a-1', refresh_token: 'r-1', token_type: 'Bearer' } } } });
    const before = reads.length;
    expect((await app.inject({ method: 'GET', url: '/api/v1/oih/platform/v2/workspaces/globex/secrets/s-1', headers: { authorization: auth } })).statusCode).toBe(404);
    expect(reads.length).toBe(before);
    expect((await app.inject({ method: 'GET', url: '/api/v1/oih/platform/v2/workspaces/acme/secrets/s-1' })).statusCode).toBe(401);
  });

  it('keeps each tenant’s objects to itself, within the per-object and per-tenant limits', async () => {
    const acme = { authorization: `Bearer ${platform.services(scope).ELASTICIO_OBJECT_STORAGE_TOKEN}` };
    const globex = { authorization: `Bearer ${platform.services({ ...scope, tenant: 'globex' }).ELASTICIO_OBJECT_STORAGE_TOKEN}` };
    const put = await app.inject({ method: 'POST', url: '/api/v1/oih/object-storage/objects', headers: { ...acme, 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(1000, 1) });
    expect(put.statusCode).toBe(201);
    const { objectId } = put.json() as { objectId: string };
    expect((await app.inject({ method: 'GET', url: `/api/v1/oih/object-storage/objects/${objectId}`, headers: acme })).rawPayload.length).toBe(1000);
    expect((await app.inject({ method: 'GET', url: `/api/v1/oih/object-storage/objects/${objectId}`, headers: globex })).statusCode).toBe(404);
    // Over the per-object limit, and over the tenant's total.
    expect((await app.inject({ method: 'POST', url: '/api/v1/oih/object-storage/objects', headers: { ...acme, 'content-type': 'text/plain' }, payload: 'x'.repeat(1025) })).statusCode).toBe(413);
    expect((await app.inject({ method: 'POST', url: '/api/v1/oih/object-storage/objects', headers: { ...acme, 'content-type': 'text/plain' }, payload: 'x'.repeat(600) })).statusCode).toBe(413);
    expect((await app.inject({ method: 'POST', url: '/api/v1/oih/object-storage/objects', headers: { ...globex, 'content-type': 'text/plain' }, payload: 'x'.repeat(600) })).statusCode).toBe(201);
    expect((await app.inject({ method: 'DELETE', url: `/api/v1/oih/object-storage/objects/${objectId}`, headers: globex })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: `/api/v1/oih/object-storage/objects/${objectId}`, headers: acme })).statusCode).toBe(204);
  });

  it('finds objects by their maester query fields (x-query-* headers), per tenant', async () => {
    const acme = { authorization: `Bearer ${platform.services(scope).ELASTICIO_OBJECT_STORAGE_TOKEN}` };
    const globex = { authorization: `Bearer ${platform.services({ ...scope, tenant: 'globex' }).ELASTICIO_OBJECT_STORAGE_TOKEN}` };
    const put = await app.inject({ method: 'POST', url: '/api/v1/oih/object-storage/objects', headers: { ...acme, 'content-type': 'application/json', 'x-query-externalid': 'group-7' }, payload: '{"n":1}' });
    expect(put.statusCode).toBe(201);
    const found = await app.inject({ method: 'GET', url: '/api/v1/oih/object-storage/objects?query[externalid]=group-7', headers: acme });
    expect(found.json()).toEqual([expect.objectContaining({ objectId: (put.json() as { objectId: string }).objectId, contentType: 'application/json' })]);
    expect((await app.inject({ method: 'GET', url: '/api/v1/oih/object-storage/objects?query[externalid]=group-8', headers: acme })).json()).toEqual([]);
    expect((await app.inject({ method: 'GET', url: '/api/v1/oih/object-storage/objects?query[externalid]=group-7', headers: globex })).json()).toEqual([]);
    expect((await app.inject({ method: 'GET', url: '/api/v1/oih/object-storage/objects', headers: acme })).statusCode).toBe(400);
  });
});
