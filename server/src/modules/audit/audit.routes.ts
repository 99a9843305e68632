/** Audit routes: read-only by design — the log has no update or delete route. */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { listOf } from '../../contracts/list.js';
import { isPlatformAdmin, type HttpApp } from '../../platform/http/index.js';
import { AuditEntry, AuditListQuery, AuditParams } from './audit.schemas.js';
import type { AuditScope, AuditService } from './audit.service.js';

const tags = ['audit'];
const bearer = [{ bearer: [] }];

/** A platform admin sees every tenant unless it picks one (Tenant header); everyone else sees its own. */
function scopeOf(req: FastifyRequest): AuditScope {
  const p = req.principal;
  const pickedTenant = req.headers.tenant !== undefined;
  return { tenantId: isPlatformAdmin(p) && !pickedTenant ? undefined : p.tenantId };
}

export function auditRoutes(service: AuditService) {
  return async (app: HttpApp): Promise<void> => {
    app.get(
      '/api/v1/audit',
      {
        config: { permission: 'audit.read' },
        schema: {
          tags,
          summary: 'The audit log, newest first',
          description: 'Every change and every denied access, from every module. A tenant sees its own records only.',
          security: bearer,
          querystring: AuditListQuery,
          response: { 200: listOf(AuditEntry) },
        },
      },
      async (req) => service.list(scopeOf(req), req.query),
    );

    app.get(
      '/api/v1/audit/:id',
      {
        config: { permission: 'audit.read' },
        schema: { tags, summary: 'One audit record', security: bearer, params: AuditParams, response: { 200: z.object({ data: AuditEntry }) } },
      },
      async (req) => ({ data: await service.get(scopeOf(req), req.params.id) }),
    );
  };
}
