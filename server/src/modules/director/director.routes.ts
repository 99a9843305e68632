/**
 * `POST /director/graphql` (and GraphiQL at `GET /director/graphql` in development): Mercurius on
 * the hub's Fastify server, schema-first from `director.schema.graphql`.
 *
 * The route is `public` to the HTTP layer and authenticates itself, so that every refusal is a
 * GraphQL error with `extensions.error_code` (26 no or bad credentials, 23 a foreign `Tenant`
 * header from a non-admin, 25 an unknown tenant) instead of a REST error body. Identity headers a
 * client sends are never read: the tenant and the caller come from the credentials alone.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GraphQLError, Kind, type ASTVisitor, type SelectionSetNode, type ValidationContext } from 'graphql';
import mercurius from 'mercurius';
import { z } from 'zod';
import { AppError, toAppError } from '../../platform/errors.js';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Caller } from './director.ports.js';
import type { Authenticator, HttpApp } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { QueryCache } from './director.cache.js';
import { RequestLoaders, type DirectorContext } from './director.resolvers.js';
import type { DirectorService } from './director.service.js';

export const SCHEMA_FILE = fileURLToPath(new URL('./director.schema.graphql', import.meta.url));
const GRAPHIQL_FILE = fileURLToPath(new URL('./director.graphiql.html', import.meta.url));

/** Deepest selection allowed. Compass's deepest example requests nest 11 levels. */
export const MAX_DEPTH = 12;
/** Most fields one request may select (fragments expanded, aliases counted). Compass's largest example selects ~260. */
export const MAX_FIELDS = 600;
/** Largest request body: room for a 4 MB inline spec, not for a 10 MB one. */
export const MAX_BODY_BYTES = 5 * 1024 * 1024;

const GraphqlRequest = z.object({
  query: z.string({ error: 'query: must be a string holding a GraphQL document' }).min(1, 'query: must not be empty'),
  variables: z.record(z.string(), z.unknown()).nullish(),
  operationName: z.string().nullish(),
});

interface FormattedError {
  message: string;
  path?: ReadonlyArray<string | number> | undefined;
  extensions: { error_code: number; code: string };
}

/** Counts the fields a selection selects, fragments expanded (each fragment at most once per path). */
function countFields(set: SelectionSetNode, ctx: ValidationContext, seen: Set<string>): number {
  let n = 0;
  for (const s of set.selections) {
    if (s.kind === Kind.FIELD) {
      n += 1;
      if (s.selectionSet) n += countFields(s.selectionSet, ctx, seen);
    } else if (s.kind === Kind.INLINE_FRAGMENT) {
      n += countFields(s.selectionSet, ctx, seen);
    } else {
      const name = s.name.value;
      const frag = ctx.getFragment(name);
      if (frag && !seen.has(name)) {
        seen.add(name);
        n += countFields(frag.selectionSet, ctx, seen);
        seen.delete(name);
      }
    }
  }
  return n;
}

/** A validation rule refusing operations that select more than MAX_FIELDS fields. */
function fieldCostRule(ctx: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(node) {
      const n = countFields(node.selectionSet, ctx, new Set());
      if (n > MAX_FIELDS) {
        ctx.reportError(new GraphQLError(`the operation selects ${n} fields (aliases and fragments counted); at most ${MAX_FIELDS} are allowed`, { nodes: [node] }));
      }
    },
  };
}

function formatErrors(errors: readonly GraphQLError[], logger: Logger): FormattedError[] {
  return errors.map((e) => {
    let original: Error | undefined = e.originalError;
    // graphql-jit wraps a resolver's error in another GraphQLError.
    while (original instanceof GraphQLError && original.originalError) original = original.originalError;
    if (!original || original instanceof GraphQLError) {
      // Syntax and validation errors of the document itself.
      return { message: e.message, path: e.path, extensions: { error_code: 22, code: 'VALIDATION_FAILED' } };
    }
    const appError = toAppError(original);
    if (appError.kind === 'bug' || appError.status >= 500) {
      logger.error({ err: original, path: e.path }, 'director: resolver failed');
      return { message: 'internal error', path: e.path, extensions: { error_code: appError.graphqlCode, code: appError.code } };
    }
    return { message: appError.message, path: e.path, extensions: { error_code: appError.graphqlCode, code: appError.code } };
  });
}

function sendErrors(reply: FastifyReply, status: number, errors: FormattedError[]): FastifyReply {
  return reply.code(status).type('application/json').send({ data: null, errors });
}

function sendAppError(reply: FastifyReply, err: AppError): FastifyReply {
  if (err.code === 'UNAUTHENTICATED') void reply.header('www-authenticate', 'Bearer');
  return sendErrors(reply, err.status, [{ message: err.status >= 500 && err.kind === 'bug' ? 'internal error' : err.message, extensions: { error_code: err.graphqlCode, code: err.code } }]);
}

export interface DirectorRoutesDeps {
  service: DirectorService;
  resolvers: Record<string, unknown>;
  authenticate: Authenticator;
  logger: Logger;
  /** GraphiQL at GET /director/graphql (development only). */
  graphiql: boolean;
  /** Answers of cacheable queries (director.cache.ts); undefined: none kept. */
  cache: QueryCache | undefined;
  /**
   * Resolves the caller another way than `authenticate` (the Connector's mTLS listener: the client
   * certificate names the application or runtime). Throws AppError UNAUTHENTICATED to refuse.
   */
  resolveCaller?: (req: FastifyRequest) => Promise<Caller>;
}

export function directorRoutes(deps: DirectorRoutesDeps): (app: HttpApp) => Promise<void> {
  return async (app) => {
    await app.register(mercurius, {
      schema: fs.readFileSync(SCHEMA_FILE, 'utf8'),
      resolvers: deps.resolvers as never,
      routes: false,
      queryDepth: MAX_DEPTH,
      validationRules: [fieldCostRule],
      jit: 1,
      // Errors stay GraphQLErrors (with their originalError) for formatErrors below.
      errorFormatter: (execution) => ({ statusCode: 200, response: execution }),
    });

    app.setErrorHandler((err: Error, _req, reply) => {
      const code = (err as { code?: string }).code;
      if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendAppError(reply, new AppError('PAYLOAD_TOO_LARGE', `the request is larger than ${MAX_BODY_BYTES} bytes; send large specs through a fetchRequest`));
      if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendAppError(reply, new AppError('UNSUPPORTED_MEDIA_TYPE', 'send the request as application/json'));
      if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
        return sendAppError(reply, new AppError('INVALID_JSON', `the body is not valid JSON: ${err.message}`));
      }
      const appError = toAppError(err);
      if (appError.status >= 500) deps.logger.error({ err }, 'director: request failed');
      return sendAppError(reply, appError);
    });

    app.post('/director/graphql', { config: { permission: 'public' }, bodyLimit: MAX_BODY_BYTES }, async (req, reply) => {
      let caller: Caller;
      try {
        if (deps.resolveCaller) {
          caller = await deps.resolveCaller(req);
        } else {
          const principal = await deps.authenticate(req);
          const object = principal.kind === 'service' ? await deps.service.callerObject(principal.accountId, principal.tenantId) : undefined;
          caller = { principal, ip: req.ip, object };
        }
      } catch (err) {
        return sendAppError(reply, toAppError(err));
      }
      const principal = caller.principal;
      const parsed = GraphqlRequest.safeParse(req.body);
      if (!parsed.success) {
        return sendAppError(reply, AppError.invalid(parsed.error.issues.map((i) => i.message).join('; ')));
      }
      const context: DirectorContext = { caller, loaders: new RequestLoaders(deps.service, caller), signingSecrets: new Map() };
      const { query, variables, operationName } = parsed.data;
      const cacheKey = deps.cache?.keyOf(context.caller, query, variables, operationName);
      // Read before the query runs: the answer is then at least as new as this version.
      const version = cacheKey === undefined ? 0 : await deps.service.tenantVersion(principal.tenantId);
      const cached = cacheKey === undefined ? undefined : deps.cache?.get(cacheKey, version);
      if (cached !== undefined) return reply.code(200).type('application/json').send(cached);
      let result;
      try {
        result = await app.graphql(query, context as never, variables ?? undefined, operationName ?? undefined);
      } catch (err) {
        const errors = (err as { errors?: GraphQLError[] }).errors;
        if (Array.isArray(errors)) return sendErrors(reply, 400, formatErrors(errors, deps.logger));
        return sendAppError(reply, toAppError(err));
      }
      const body: { data: unknown; errors?: FormattedError[] } = { data: result.data ?? null };
      if (result.errors?.length) body.errors = formatErrors(result.errors, deps.logger);
      if (cacheKey === undefined || body.errors) return reply.code(200).type('application/json').send(body);
      const bytes = Buffer.from(JSON.stringify(body));
      deps.cache?.set(cacheKey, version, bytes);
      return reply.code(200).type('application/json').send(bytes);
    });

    if (deps.graphiql) {
      const html = fs.readFileSync(GRAPHIQL_FILE, 'utf8');
      app.get('/director/graphql', { config: { permission: 'public' } }, async (_req, reply) => reply.type('text/html').send(html));
    }
  };
}
