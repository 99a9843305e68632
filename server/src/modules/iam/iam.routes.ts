/** IAM routes: each declares its schema and its permission together. */
import { z } from 'zod';
import { listOf } from '../../contracts/list.js';
import { AppError } from '../../platform/errors.js';
import type { FastifyRequest } from 'fastify';
import type { HttpApp } from '../../platform/http/index.js';
import {
  AccountInfo,
  CreateRoleBody,
  CreateTenantBody,
  CreateTokenBody,
  CreateUserBody,
  IdParams,
  Introspection,
  IntrospectBody,
  IssuedToken,
  LoginBody,
  LoginResponse,
  Role,
  RoleListQuery,
  Tenant,
  TenantListQuery,
  TenantParams,
  TokenInfo,
  TokenListQuery,
  UpdateRoleBody,
  UpdateTenantBody,
  UpdateUserBody,
  User,
  UserListQuery,
} from './iam.schemas.js';
import { DEFAULT_TENANT, type CallContext, type IamService } from './iam.service.js';

const bearer = [{ bearer: [] }];
const tags = ['iam'];

function ctx(req: FastifyRequest): CallContext {
  return { principal: req.principal, ip: req.ip };
}

export function iamRoutes(service: IamService) {
  return async (app: HttpApp): Promise<void> => {
    // ------------------------------------------------------------ session

    app.post(
      '/api/v1/login',
      {
        config: { permission: 'public' },
        schema: {
          tags,
          summary: 'Log in with username, password and tenant (default `default`); returns a session token',
          description:
            'Usernames are unique per tenant, so a login names its tenant (`tenant`, default `default`). Every failed login answers the same 401 UNAUTHENTICATED, an unknown tenant included; repeated failures per username and address, per address (IPv6: per /64) or per username from everywhere answer 429 with Retry-After.',
          body: LoginBody,
          response: { 200: LoginResponse },
        },
      },
      async (req) => {
        const { username, password, tenant = DEFAULT_TENANT } = req.body;
        const { token, expiresAt } = await service.login({ tenant, username, password, ip: req.ip });
        return { token, expiresAt: expiresAt.toISOString() };
      },
    );

    app.post(
      '/api/v1/logout',
      { config: { permission: 'authenticated' }, schema: { tags, summary: "Revoke the caller's token", security: bearer } },
      async (req, reply) => {
        await service.logout(ctx(req));
        return reply.code(204).send();
      },
    );

    app.get(
      '/api/v1/me',
      { config: { permission: 'authenticated' }, schema: { tags, summary: 'Who am I', security: bearer, response: { 200: z.object({ data: AccountInfo }) } } },
      async (req) => {
        const p = req.principal;
        return {
          data: { id: p.accountId, username: p.username, tenant: p.tenantId, homeTenant: p.homeTenantId, kind: p.kind, roles: [...p.roles], permissions: [...p.permissions] },
        };
      },
    );

    // ------------------------------------------------------------ tokens

    app.post(
      '/api/v1/tokens/introspect',
      {
        config: { permission: 'iam.token.introspect' },
        schema: {
          tags,
          summary: 'The account behind a token (for services); 404 when the token is not live',
          security: bearer,
          body: IntrospectBody,
          response: { 200: z.object({ data: Introspection }) },
        },
      },
      async (req) => {
        const resolved = await service.resolveToken(req.body.token, req.body.tenant);
        if (!resolved) throw AppError.notFound('token');
        if (resolved.tenantRefusal) throw resolved.tenantRefusal;
        const p = resolved.principal;
        return {
          data: {
            id: p.accountId,
            username: p.username,
            tenant: p.tenantId,
            homeTenant: p.homeTenantId,
            kind: p.kind,
            roles: [...p.roles],
            permissions: [...p.permissions],
            tokenId: p.tokenId,
            expiresAt: resolved.expiresAtMs === undefined ? null : new Date(resolved.expiresAtMs).toISOString(),
          },
        };
      },
    );

    app.post(
      '/api/v1/tokens',
      {
        config: { permission: 'tenant.tokens.write' },
        schema: {
          tags,
          summary: 'Issue a persistent token (for a service account, or yourself); its value is shown only here',
          security: bearer,
          body: CreateTokenBody,
          response: { 201: z.object({ data: IssuedToken }) },
        },
      },
      async (req, reply) => reply.code(201).send({ data: await service.issueToken(ctx(req), req.body) }),
    );

    app.get(
      '/api/v1/tokens',
      {
        config: { permission: 'tenant.tokens.read' },
        schema: { tags, summary: 'Live tokens of the tenant (never their values)', security: bearer, querystring: TokenListQuery, response: { 200: listOf(TokenInfo) } },
      },
      async (req) => service.listTokens(ctx(req), req.query),
    );

    app.get(
      '/api/v1/tokens/:id',
      { config: { permission: 'tenant.tokens.read' }, schema: { tags, summary: 'One live token', security: bearer, params: IdParams, response: { 200: z.object({ data: TokenInfo }) } } },
      async (req) => ({ data: await service.getToken(ctx(req), req.params.id) }),
    );

    app.delete(
      '/api/v1/tokens/:id',
      { config: { permission: 'tenant.tokens.write' }, schema: { tags, summary: 'Revoke a token', security: bearer, params: IdParams } },
      async (req, reply) => {
        await service.revokeToken(ctx(req), req.params.id);
        return reply.code(204).send();
      },
    );

    // ------------------------------------------------------------ tenants

    app.get(
      '/api/v1/tenants',
      { config: { permission: 'iam.tenants.read' }, schema: { tags, summary: 'Tenants', security: bearer, querystring: TenantListQuery, response: { 200: listOf(Tenant) } } },
      async (req) => service.listTenants(req.query),
    );

    app.post(
      '/api/v1/tenants',
      { config: { permission: 'iam.tenants.write' }, schema: { tags, summary: 'Create a tenant', security: bearer, body: CreateTenantBody, response: { 201: z.object({ data: Tenant }) } } },
      async (req, reply) => reply.code(201).send({ data: await service.createTenant(ctx(req), req.body) }),
    );

    app.get(
      '/api/v1/tenants/:id',
      { config: { permission: 'iam.tenants.read' }, schema: { tags, summary: 'One tenant', security: bearer, params: TenantParams, response: { 200: z.object({ data: Tenant }) } } },
      async (req) => ({ data: await service.getTenant(req.params.id) }),
    );

    app.patch(
      '/api/v1/tenants/:id',
      {
        config: { permission: 'iam.tenants.write' },
        schema: { tags, summary: 'Rename a tenant', security: bearer, params: TenantParams, body: UpdateTenantBody, response: { 200: z.object({ data: Tenant }) } },
      },
      async (req) => ({ data: await service.updateTenant(ctx(req), req.params.id, req.body) }),
    );

    app.delete(
      '/api/v1/tenants/:id',
      { config: { permission: 'iam.tenants.write' }, schema: { tags, summary: 'Delete an empty tenant', security: bearer, params: TenantParams } },
      async (req, reply) => {
        await service.deleteTenant(ctx(req), req.params.id);
        return reply.code(204).send();
      },
    );

    // ------------------------------------------------------------ users

    app.get(
      '/api/v1/users',
      { config: { permission: 'tenant.users.read' }, schema: { tags, summary: 'Accounts of the tenant', security: bearer, querystring: UserListQuery, response: { 200: listOf(User) } } },
      async (req) => service.listUsers(ctx(req), req.query),
    );

    app.post(
      '/api/v1/users',
      {
        config: { permission: 'tenant.users.write' },
        schema: {
          tags,
          summary: 'Create a user or service account (a platform admin may name another tenant)',
          security: bearer,
          body: CreateUserBody,
          response: { 201: z.object({ data: User }) },
        },
      },
      async (req, reply) => reply.code(201).send({ data: await service.createUser(ctx(req), req.body) }),
    );

    app.get(
      '/api/v1/users/:id',
      { config: { permission: 'tenant.users.read' }, schema: { tags, summary: 'One account', security: bearer, params: IdParams, response: { 200: z.object({ data: User }) } } },
      async (req) => ({ data: await service.getUser(ctx(req), req.params.id) }),
    );

    app.patch(
      '/api/v1/users/:id',
      {
        config: { permission: 'tenant.users.write' },
        schema: {
          tags,
          summary: "Change an account's password, permissions or roles (a new password ends its other sessions)",
          security: bearer,
          params: IdParams,
          body: UpdateUserBody,
          response: { 200: z.object({ data: User }) },
        },
      },
      async (req) => ({ data: await service.updateUser(ctx(req), req.params.id, req.body) }),
    );

    app.delete(
      '/api/v1/users/:id',
      { config: { permission: 'tenant.users.write' }, schema: { tags, summary: 'Delete an account and its tokens', security: bearer, params: IdParams } },
      async (req, reply) => {
        await service.deleteUser(ctx(req), req.params.id);
        return reply.code(204).send();
      },
    );

    // ------------------------------------------------------------ roles

    app.get(
      '/api/v1/roles',
      { config: { permission: 'tenant.roles.read' }, schema: { tags, summary: 'Roles of the tenant', security: bearer, querystring: RoleListQuery, response: { 200: listOf(Role) } } },
      async (req) => service.listRoles(ctx(req), req.query),
    );

    app.post(
      '/api/v1/roles',
      { config: { permission: 'tenant.roles.write' }, schema: { tags, summary: 'Create a role', security: bearer, body: CreateRoleBody, response: { 201: z.object({ data: Role }) } } },
      async (req, reply) => reply.code(201).send({ data: await service.createRole(ctx(req), req.body) }),
    );

    app.get(
      '/api/v1/roles/:id',
      { config: { permission: 'tenant.roles.read' }, schema: { tags, summary: 'One role', security: bearer, params: IdParams, response: { 200: z.object({ data: Role }) } } },
      async (req) => ({ data: await service.getRole(ctx(req), req.params.id) }),
    );

    app.patch(
      '/api/v1/roles/:id',
      {
        config: { permission: 'tenant.roles.write' },
        schema: { tags, summary: 'Rename a role or change its permissions', security: bearer, params: IdParams, body: UpdateRoleBody, response: { 200: z.object({ data: Role }) } },
      },
      async (req) => ({ data: await service.updateRole(ctx(req), req.params.id, req.body) }),
    );

    app.delete(
      '/api/v1/roles/:id',
      { config: { permission: 'tenant.roles.write' }, schema: { tags, summary: 'Delete a role (removed from every account holding it)', security: bearer, params: IdParams } },
      async (req, reply) => {
        await service.deleteRole(ctx(req), req.params.id);
        return reply.code(204).send();
      },
    );
  };
}
