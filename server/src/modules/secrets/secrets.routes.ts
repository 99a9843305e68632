/** Secrets routes: each declares its schema and its permission together. */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { listOf } from '../../contracts/list.js';
import type { HttpApp } from '../../platform/http/index.js';
import { CreateSecretBody, Secret, SecretListQuery, SecretParams, UpdateSecretBody } from './secrets.schemas.js';
import type { CallContext, SecretsService } from './secrets.service.js';

const tags = ['secrets'];
const bearer = [{ bearer: [] }];
const One = z.object({ data: Secret });

function ctx(req: FastifyRequest): CallContext {
  return { principal: req.principal, ip: req.ip };
}

export function secretsRoutes(service: SecretsService) {
  return async (app: HttpApp): Promise<void> => {
    app.get(
      '/api/v1/secrets',
      { config: { permission: 'secrets.read' }, schema: { tags, summary: 'Secrets of the tenant, values masked', security: bearer, querystring: SecretListQuery, response: { 200: listOf(Secret) } } },
      async (req) => service.list(ctx(req), req.query),
    );

    app.post(
      '/api/v1/secrets',
      {
        config: { permission: 'secrets.write' },
        schema: { tags, summary: 'Store a credential (basic, apiKey, oauth2, mixed), encrypted at rest', security: bearer, body: CreateSecretBody, response: { 201: One } },
      },
      async (req, reply) => reply.code(201).send({ data: await service.create(ctx(req), req.body) }),
    );

    app.get(
      '/api/v1/secrets/:id',
      { config: { permission: 'secrets.read' }, schema: { tags, summary: 'One secret, sensitive fields masked as ***', security: bearer, params: SecretParams, response: { 200: One } } },
      async (req) => ({ data: await service.get(ctx(req), req.params.id) }),
    );

    app.get(
      '/api/v1/secrets/:id/raw',
      {
        config: { permission: 'secrets.readRaw' },
        schema: {
          tags,
          summary: 'One secret unmasked (oauth2 refreshed first when due); every read is audited',
          security: bearer,
          params: SecretParams,
          response: { 200: One },
        },
      },
      async (req) => ({ data: await service.getRaw(ctx(req), req.params.id) }),
    );

    app.patch(
      '/api/v1/secrets/:id',
      {
        config: { permission: 'secrets.write' },
        schema: { tags, summary: 'Rename a secret or change fields of its value (*** leaves a field as it is)', security: bearer, params: SecretParams, body: UpdateSecretBody, response: { 200: One } },
      },
      async (req) => ({ data: await service.update(ctx(req), req.params.id, req.body) }),
    );

    app.post(
      '/api/v1/secrets/:id/refresh',
      { config: { permission: 'secrets.write' }, schema: { tags, summary: 'Refresh an oauth2 secret now (tests its grant)', security: bearer, params: SecretParams, response: { 200: One } } },
      async (req) => ({ data: await service.refresh(ctx(req), req.params.id) }),
    );

    app.delete(
      '/api/v1/secrets/:id',
      { config: { permission: 'secrets.write' }, schema: { tags, summary: 'Delete a secret', security: bearer, params: SecretParams } },
      async (req, reply) => {
        await service.delete(ctx(req), req.params.id);
        return reply.code(204).send();
      },
    );
  };
}
