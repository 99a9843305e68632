/**
 * The one authentication middleware (seed 002 "Request Resources"): a bearer token is
 * introspected — in-process by the IAM service in the all-in-one hub, or over HTTP at
 * `POST /api/v1/tokens/introspect` by a process without IAM — and the answer is cached for a
 * few seconds, so an authorised request costs a hash and a map lookup, not a round trip.
 * Every refused request (no token, bad token, forbidden tenant switch) is audited.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditPublisher } from '../../platform/audit.js';
import { AppError } from '../../platform/errors.js';
import type { Authenticator, Principal } from '../../platform/http/index.js';
import { Introspection } from './iam.schemas.js';
import type { CacheInvalidation, ResolvedToken } from './iam.service.js';

/** Resolves a token (acting in `tenant` when given); undefined when the token is not live. */
export type TokenResolver = (token: string, tenant: string | undefined) => Promise<ResolvedToken | undefined>;

export interface CachingAuthenticator {
  authenticate: Authenticator;
  /** Drops cached principals (after revocations or grant changes). */
  invalidate: CacheInvalidation;
}

interface CacheEntry {
  principal: Principal;
  validUntilMs: number;
}

export const DEFAULT_CACHE_TTL_MS = 5_000;
const DEFAULT_CACHE_MAX = 10_000;
const TENANT_HEADER_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function createAuthenticator(opts: {
  resolve: TokenResolver;
  audit: AuditPublisher;
  cacheTtlMs?: number;
  cacheMax?: number;
}): CachingAuthenticator {
  const ttlMs = opts.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  const max = opts.cacheMax ?? DEFAULT_CACHE_MAX;
  // token hash → (requested tenant or '') → principal
  const cache = new Map<string, Map<string, CacheEntry>>();

  const refuse = async (req: FastifyRequest, err: AppError, who?: Principal): Promise<never> => {
    await opts.audit.record({
      action: err.code === 'UNAUTHENTICATED' ? 'unauthenticated' : 'denied',
      actor: who ? { accountId: who.accountId, username: who.username, tenantId: who.homeTenantId } : undefined,
      result: 'denied',
      sourceIp: req.ip,
      target: { type: 'route', name: `${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]}` },
      details: { reason: err.message },
    });
    throw err;
  };

  const authenticate: Authenticator = async (req) => {
    const header = req.headers.authorization;
    const m = header ? /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header) : null;
    if (!m) {
      return refuse(req, new AppError('UNAUTHENTICATED', header ? 'Authorization header must be "Bearer <token>"' : 'missing Authorization: Bearer <token>'));
    }
    const token = m[1]!;
    const rawTenant = req.headers.tenant;
    const tenant = (Array.isArray(rawTenant) ? rawTenant[0] : rawTenant)?.trim() || undefined;
    if (tenant !== undefined && !TENANT_HEADER_PATTERN.test(tenant)) {
      return refuse(req, new AppError('TENANT_NOT_FOUND', `tenant ${JSON.stringify(tenant.slice(0, 70))} not found`));
    }

    const hash = tokenHash(token);
    const now = Date.now();
    const hit = cache.get(hash)?.get(tenant ?? '');
    if (hit && hit.validUntilMs > now) return hit.principal;

    const resolved = await opts.resolve(token, tenant);
    if (!resolved) {
      cache.delete(hash);
      return refuse(req, new AppError('UNAUTHENTICATED', 'token is invalid, expired or revoked'));
    }
    if (resolved.tenantRefusal) return refuse(req, resolved.tenantRefusal, resolved.principal);
    // Bounded memory: a flood of distinct valid tokens empties the cache rather than growing it.
    if (cache.size >= max) cache.clear();
    let perTenant = cache.get(hash);
    if (!perTenant) cache.set(hash, (perTenant = new Map()));
    perTenant.set(tenant ?? '', { principal: resolved.principal, validUntilMs: Math.min(now + ttlMs, resolved.expiresAtMs ?? Number.POSITIVE_INFINITY) });
    return resolved.principal;
  };

  return {
    authenticate,
    invalidate(stale) {
      if (stale === 'all') cache.clear();
      else for (const h of stale) cache.delete(h);
    },
  };
}

const IntrospectionReply = z.object({ data: Introspection });
const ErrorReply = z.object({ errors: z.array(z.object({ code: z.string(), message: z.string() })).min(1) });

/**
 * Introspection over HTTP, for processes that do not host IAM: `serviceToken` must hold
 * `iam.token.introspect`. Unknown tokens resolve to undefined; IAM being unreachable is a 503.
 */
export function remoteTokenResolver(opts: { url: string; serviceToken: string; timeoutMs?: number }): TokenResolver {
  const endpoint = `${opts.url.replace(/\/+$/, '')}/api/v1/tokens/introspect`;
  const introspect: TokenResolver = async (token, tenant) => {
    let res: Response;
    try {
      res = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${opts.serviceToken}`, 'content-type': 'application/json' },
        body: JSON.stringify(tenant ? { token, tenant } : { token }),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000),
      });
    } catch (err) {
      throw new AppError('UNAVAILABLE', `IAM at ${opts.url} does not answer: ${(err as Error).message}`, 'transient', undefined, { cause: err });
    }
    const body: unknown = await res.json().catch(() => undefined);
    if (res.status === 200) {
      const parsed = IntrospectionReply.safeParse(body);
      if (!parsed.success) throw new AppError('UNAVAILABLE', `IAM at ${opts.url} answered introspection with an unexpected body`, 'transient');
      const d = parsed.data.data;
      return {
        principal: {
          accountId: d.id,
          username: d.username,
          tenantId: d.tenant,
          homeTenantId: d.homeTenant,
          permissions: d.permissions,
          roles: d.roles,
          kind: d.kind,
          tokenId: d.tokenId,
        },
        expiresAtMs: d.expiresAt ? Date.parse(d.expiresAt) : undefined,
      };
    }
    const first = ErrorReply.safeParse(body).data?.errors[0];
    if (res.status === 404 && first?.code === 'NOT_FOUND') return undefined;
    if (tenant && first && (first.code === 'TENANT_NOT_FOUND' || first.code === 'TENANT_FORBIDDEN')) {
      // Who was refused, for the audit record: the same token in its home tenant.
      const home = await introspect(token, undefined);
      return home && { ...home, tenantRefusal: new AppError(first.code, first.message) };
    }
    throw new AppError('UNAVAILABLE', `IAM at ${opts.url} refused introspection: ${res.status} ${first?.code ?? ''}`.trim(), 'transient');
  };
  return introspect;
}
