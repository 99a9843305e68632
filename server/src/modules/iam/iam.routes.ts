/** IAM routes: each declares its schema and its permission together. */
import { z } from 'zod';
import type { HttpApp } from '../../platform/http/index.js';
import type { AuditPublisher } from '../../platform/audit.js';
import { AppError } from '../../platform/errors.js';
import type { IamService } from './iam.service.js';

const LoginBody = z.strictObject({
  username: z.string().min(1).max(200),
  password: z.string().min(1).max(1024),
});

const Me = z.object({
  id: z.string(),
  username: z.string(),
  tenant: z.string(),
  homeTenant: z.string(),
  kind: z.enum(['user', 'service']),
  roles: z.array(z.string()),
  permissions: z.array(z.string()),
});

export function iamRoutes(service: IamService, audit: AuditPublisher) {
  return async (app: HttpApp): Promise<void> => {
    app.post(
      '/api/v1/login',
      {
        config: { permission: 'public' },
        schema: {
          tags: ['iam'],
          summary: 'Log in with username and password; returns a session token',
          body: LoginBody,
          response: { 200: z.object({ token: z.string(), expiresAt: z.string() }) },
        },
      },
      async (req) => {
        try {
          const { token, expiresAt, account } = await service.login(req.body.username, req.body.password);
          await audit.record({
            action: 'login',
            actor: { accountId: account.id, username: account.username, tenantId: account.tenant_id },
            result: 'success',
            sourceIp: req.ip,
          });
          return { token, expiresAt: expiresAt.toISOString() };
        } catch (err) {
          if (err instanceof AppError && err.code === 'UNAUTHENTICATED') {
            await audit.record({ action: 'login', actor: { username: req.body.username }, result: 'failure', sourceIp: req.ip });
          }
          throw err;
        }
      },
    );

    app.post(
      '/api/v1/logout',
      { config: { permission: 'authenticated' }, schema: { tags: ['iam'], summary: "Revoke the caller's token", security: [{ bearer: [] }] } },
      async (req, reply) => {
        await service.logout(req.principal);
        await audit.record({ action: 'logout', actor: req.principal, result: 'success', sourceIp: req.ip });
        return reply.code(204).send();
      },
    );

    app.get(
      '/api/v1/me',
      { config: { permission: 'authenticated' }, schema: { tags: ['iam'], summary: 'Who am I', security: [{ bearer: [] }], response: { 200: z.object({ data: Me }) } } },
      async (req) => {
        const p = req.principal;
        return {
          data: { id: p.accountId, username: p.username, tenant: p.tenantId, homeTenant: p.homeTenantId, kind: p.kind, roles: [...p.roles], permissions: [...p.permissions] },
        };
      },
    );
  };
}
