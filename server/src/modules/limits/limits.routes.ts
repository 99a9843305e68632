/**
 * `GET|PUT /api/v1/tenants/:id/limits`: a tenant's limits, guarded like the rest of tenant
 * management (`iam.tenants.read|write`, which only a platform admin holds).
 */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { LimitOverrides, TenantLimitsView } from '../../contracts/limits.js';
import type { HttpApp } from '../../platform/http/index.js';
import { TenantId } from '../iam/index.js';
import type { CallContext, LimitsService } from './limits.service.js';

const tags = ['limits'];
const bearer = [{ bearer: [] }];
const One = z.object({ data: TenantLimitsView });
const TenantParams = z.strictObject({ id: TenantId });

function ctx(req: FastifyRequest): CallContext {
  return { principal: req.principal, ip: req.ip };
}

export function limitsRoutes(service: LimitsService) {
  return async (app: HttpApp): Promise<void> => {
    app.get(
      '/api/v1/tenants/:id/limits',
      {
        config: { permission: 'iam.tenants.read' },
        schema: { tags, summary: "A tenant's limits: in force, its overrides and the defaults", security: bearer, params: TenantParams, response: { 200: One } },
      },
      async (req) => ({ data: await service.view(req.params.id) }),
    );

    app.put(
      '/api/v1/tenants/:id/limits',
      {
        config: { permission: 'iam.tenants.write' },
        schema: {
          tags,
          summary: "Set a tenant's overrides (a limit left out takes its default; {} resets all); every process applies them within a second",
          security: bearer,
          params: TenantParams,
          body: LimitOverrides,
          response: { 200: One },
        },
      },
      async (req) => ({ data: await service.update(ctx(req), req.params.id, req.body) }),
    );
  };
}
