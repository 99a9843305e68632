/**
 * The one HTTP origin. Fastify with zod schemas: the same schema validates a request, types the
 * handler and documents the route in /openapi.json. Every route declares its permission in
 * `config.permission`; a route without one stops start-up.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import helmet, { type HelmetOptions } from 'helmet';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, ERROR_CODES, fromDatabaseInputError, type ErrorCode } from '../errors.js';
import { findUnstorable } from '../storable.js';
import type { Logger } from '../logger.js';
import { hasPermission, type Authenticator, type Principal, type RoutePermission } from './auth.js';
import type { Metrics } from './metrics.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Required on every route: `public`, `authenticated` or a permission string. */
    permission?: RoutePermission;
    /** The module that owns the route; names audit events for denied access. */
    module?: string;
  }
  interface FastifyRequest {
    /** The caller; set before the handler on every non-public route. */
    principal: Principal;
  }
}

export type HttpApp = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

export interface DeniedAccess {
  module: string;
  principal: Principal;
  permission: string;
  method: string;
  url: string;
  ip: string;
}

export interface HttpServerOptions {
  logger: Logger;
  metrics: Metrics;
  /** Resolves callers of non-public routes; without one, such routes answer 401. */
  authenticate?: () => Authenticator | undefined;
  /** Told about every 403 so it can be audited. */
  onDenied?: (denied: DeniedAccess) => void;
  /** Largest JSON body on ordinary API routes. */
  bodyLimitBytes?: number;
  /** Proxies whose X-Forwarded-For sets `req.ip` (PLEXUS_TRUST_PROXY); none by default. */
  trustProxy?: boolean | number | readonly string[];
}

/** Fastify's form of PLEXUS_TRUST_PROXY; a hop count becomes "trust the nearest n". */
function toTrustProxy(v: HttpServerOptions['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof v === 'number') return (_address, hop) => hop < v;
  if (typeof v === 'object') return [...v];
  return v ?? false;
}

/**
 * Security headers on every answer (helmet's defaults, tightened): a CSP that allows scripts
 * only from this origin's files (the cockpit and /docs have no inline script), no framing,
 * no referrer, nosniff. HSTS is left to whoever terminates TLS: the hub itself speaks plain
 * HTTP, and a max-age set here would bind every host of the domain to HTTPS for a year.
 * `upgrade-insecure-requests` is dropped for the same reason (it breaks the plain-HTTP pages).
 * Webhook answers replace the CSP with `sandbox` (webhooks module).
 */
const SECURITY_HEADERS: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: true,
    directives: { 'frame-ancestors': ["'none'"], 'upgrade-insecure-requests': null },
  },
  strictTransportSecurity: false,
  xFrameOptions: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
};

/** Routes registered by plugins (the docs UI) carry no permission of their own. */
const PLUGIN_ROUTE_PREFIXES = ['/docs'];

export async function createHttpServer(opts: HttpServerOptions): Promise<HttpApp> {
  const app = Fastify({
    loggerInstance: opts.logger.child({ module: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    bodyLimit: opts.bodyLimitBytes ?? 1024 * 1024,
    trustProxy: toTrustProxy(opts.trustProxy),
    // Keep-alive sockets are closed on shutdown once idle; in-flight requests finish.
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null as unknown as Principal);

  app.addHook('onRoute', (route) => {
    if (PLUGIN_ROUTE_PREFIXES.some((p) => route.url.startsWith(p))) {
      route.config = { ...route.config, permission: 'public' };
      return;
    }
    if (!route.config?.permission) {
      throw new AppError('INTERNAL', `route ${String(route.method)} ${route.url} declares no permission (config.permission)`, 'bug');
    }
  });

  // helmet's middleware is built once and applied to the raw response before any route runs.
  // (@fastify/helmet builds it again on every request: +35-60 µs a request against +15-22 µs,
  // measured with inject on a busy 2-core machine, which the /hook hot path would pay.)
  const applySecurityHeaders = helmet(SECURITY_HEADERS);
  app.addHook('onRequest', (req, reply, done) => applySecurityHeaders(req.raw, reply.raw, (err?: unknown) => done(err instanceof Error ? err : undefined)));

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Plexus', version: '0.1.0', description: 'Integration hub: management plane, flows, execution.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: withBodyExamples,
    hideUntagged: false,
  });
  // The page carries Plexus's name and mark, not the framework's.
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    theme: { title: 'Plexus API reference', favicon: [{ filename: 'plexus.svg', rel: 'icon', sizes: 'any', type: 'image/svg+xml', content: Buffer.from(PLEXUS_MARK_SVG) }] },
    logo: { type: 'image/svg+xml', content: Buffer.from(PLEXUS_LOGO_SVG), href: '/docs', target: '_self' },
  });

  app.addHook('onRequest', async (req) => {
    const permission = req.routeOptions.config.permission;
    if (!permission || permission === 'public') return;
    const authenticate = opts.authenticate?.();
    if (!authenticate) throw new AppError('UNAUTHENTICATED', 'authentication is not available on this process');
    req.principal = await authenticate(req);
    if (permission === 'authenticated' || hasPermission(req.principal, permission)) return;
    opts.onDenied?.({
      module: req.routeOptions.config.module ?? 'http',
      principal: req.principal,
      permission,
      method: req.method,
      url: req.routeOptions.url ?? req.url,
      ip: req.ip,
    });
    throw new AppError('FORBIDDEN', `missing permission ${permission}`);
  });

  // Values the database cannot store (NUL, unpaired surrogates) or JSON nested too deep are
  // refused here, naming the field, before any route's schema or handler sees them. Routes with
  // raw bodies (webhooks) check their parsed bodies themselves.
  app.addHook('preValidation', async (req) => {
    const found = findUnstorable(req.params, 'params') ?? findUnstorable(req.query, 'querystring') ?? findUnstorable(req.body, 'body');
    if (found) {
      const problem = `${found.path}: ${found.problem}`;
      throw new AppError('VALIDATION_FAILED', problem, 'user', { problems: [problem] });
    }
    const misplaced = misplacedFilter(req);
    if (misplaced) throw new AppError('VALIDATION_FAILED', misplaced, 'user', { problems: [misplaced] });
  });

  // While closing, answer in-flight requests with `connection: close` so keep-alive sockets end
  // with their last response instead of holding the shutdown open.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  // Callback style on purpose: an async onSend hook defers the write past the handler's own
  // promise, and a handler that resolved without returning `reply` was then sent twice.
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onResponse', async (req, reply) => {
    const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) };
    opts.metrics.httpRequests.inc(labels);
    opts.metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
  });

  app.setNotFoundHandler((req, reply) => {
    void sendError(reply, new AppError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const appError = toHttpError(err);
    if (appError.kind === 'bug' || appError.status >= 500) {
      req.log.error({ err, reqId: req.id, route: req.routeOptions.url }, 'request failed');
    }
    return sendError(reply, appError);
  });

  return app;
}

export function sendError(reply: FastifyReply, err: AppError): FastifyReply {
  const body: { errors: Array<{ code: string; message: string; details?: unknown }> } = {
    errors: [{ code: err.code, message: err.status >= 500 && err.kind === 'bug' ? 'internal error' : err.message }],
  };
  if (err.details && err.status < 500) body.errors[0]!.details = err.details;
  if (err.code === 'UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer');
  const retryAfter = err.details?.retryAfterSeconds;
  if (typeof retryAfter === 'number') void reply.header('retry-after', String(Math.ceil(retryAfter)));
  return reply.code(err.status).type('application/json').send(body);
}

const PLEXUS_MARK_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="14" fill="#1f6feb"/><path d="M9 22V10h8a4 4 0 0 1 0 8h-8" fill="none" stroke="#fff" stroke-width="3"/></svg>';
const PLEXUS_LOGO_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="150" height="32" viewBox="0 0 150 32"><circle cx="16" cy="16" r="14" fill="#1f6feb"/><path d="M9 22V10h8a4 4 0 0 1 0 8h-8" fill="none" stroke="#fff" stroke-width="3"/><text x="38" y="23" font-family="sans-serif" font-size="20" font-weight="700" fill="#fff">Plexus API</text></svg>';

/**
 * jsonSchemaTransform, keeping the `examples` a route's body schema declares with
 * `.meta({examples})` (the conversion drops the root's metadata): @fastify/swagger shows them as
 * the request's worked examples at /docs.
 */
const withBodyExamples: typeof jsonSchemaTransform = (document) => {
  const out = jsonSchemaTransform(document);
  const body = document.schema?.body;
  const examples = body instanceof z.ZodType ? z.globalRegistry.get(body)?.examples : undefined;
  if (Array.isArray(examples) && out.schema?.body && typeof out.schema.body === 'object') {
    out.schema.body = { ...(out.schema.body as Record<string, unknown>), examples };
  }
  return out;
};

/**
 * `?flowId=` where the route filters with `filter[flowId]=` (REST conventions, DESIGN.md): a
 * problem that names the parameter to use, rather than "unrecognized key".
 */
function misplacedFilter(req: FastifyRequest): string | undefined {
  const schema = req.routeOptions.schema?.querystring as { shape?: Record<string, unknown> } | undefined;
  const shape = schema?.shape;
  if (!shape || typeof req.query !== 'object' || req.query === null) return undefined;
  const wrong = Object.keys(req.query).filter((k) => !(k in shape) && `filter[${k}]` in shape);
  if (wrong.length === 0) return undefined;
  return wrong.map((k) => `querystring.${k}: not a parameter of this list; filter with filter[${k}]=…`).join('; ');
}

/** Fastify's own 4xx errors mapped to our stable codes; unknown errors become a generic 500. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_EMPTY_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
};

export function toHttpError(err: FastifyError | Error): AppError {
  if (err instanceof AppError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as FastifyError).validationContext ?? 'request';
    const problems = err.validation.map((v) => {
      const field = [where, ...v.instancePath.split('/').filter(Boolean)].join('.');
      return `${field}: ${v.message ?? 'invalid'}`;
    });
    return new AppError('VALIDATION_FAILED', problems.join('; '), 'user', { problems });
  }
  if (isResponseSerializationError(err)) return new AppError('INTERNAL', err.message, 'bug', undefined, { cause: err });
  const input = fromDatabaseInputError(err);
  if (input) return input;
  const fe = err as FastifyError;
  const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new AppError(mapped, fe.message);
  if (err instanceof SyntaxError || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return new AppError('INVALID_JSON', `body is not valid JSON: ${err.message}`);
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = (Object.keys(ERROR_CODES) as ErrorCode[]).find((c) => ERROR_CODES[c].status === fe.statusCode) ?? 'BAD_REQUEST';
    return new AppError(code, fe.message);
  }
  return new AppError('INTERNAL', err.message, 'bug', undefined, { cause: err });
}

/** Registers a module's routes in their own context, naming the module on each route. */
export async function registerModuleRoutes(app: HttpApp, module: string, register: (scope: HttpApp) => Promise<void>): Promise<void> {
  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, module };
    });
    await register(scope as unknown as HttpApp);
  });
}

export type { FastifyRequest, FastifyReply };
