/**
 * `POST /connector/graphql`: Compass's Connector schema (connector.schema.graphql), executed with
 * graphql-js. The same handler serves the HTTP port (a one-time token in `Connector-Token`) and
 * the mTLS port (the client certificate, and optionally a token). Identity headers a client
 * sends are never read: who calls is the token or the certificate.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  buildSchema,
  execute,
  GraphQLError,
  Kind,
  parse,
  specifiedRules,
  validate,
  type ASTVisitor,
  type DocumentNode,
  type ValidationContext,
} from 'graphql';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, toAppError } from '../../platform/errors.js';
import type { HttpApp } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { CertificateIdentity, ConnectorService } from './connector.service.js';

export const CONNECTOR_SCHEMA_FILE = fileURLToPath(new URL('./connector.schema.graphql', import.meta.url));
const schema = buildSchema(fs.readFileSync(CONNECTOR_SCHEMA_FILE, 'utf8'));

/** The schema is small and flat: no honest request selects more. */
const MAX_FIELDS = 40;
/** A request signs or revokes once: 1,000 aliased signings would be 1,000 certificates. */
const MAX_MUTATION_FIELDS = 1;
export const MAX_BODY_BYTES = 128 * 1024;

const GraphqlRequest = z.object({
  query: z.string({ error: 'query: must be a string holding a GraphQL document' }).min(1, 'query: must not be empty').max(16 * 1024, 'query: is longer than 16384 characters'),
  variables: z.record(z.string(), z.unknown()).nullish(),
  operationName: z.string().nullish(),
});

function sizeRule(ctx: ValidationContext): ASTVisitor {
  let fields = 0;
  return {
    Field() {
      fields += 1;
      if (fields === MAX_FIELDS + 1) ctx.reportError(new GraphQLError(`the request selects more than ${MAX_FIELDS} fields`));
    },
    OperationDefinition(node) {
      if (node.operation === 'mutation' && node.selectionSet.selections.filter((s) => s.kind === Kind.FIELD).length > MAX_MUTATION_FIELDS) {
        ctx.reportError(new GraphQLError(`a request may run at most ${MAX_MUTATION_FIELDS} mutation; send one signCertificateSigningRequest or revokeCertificate per request`, { nodes: [node] }));
      }
    },
  };
}

interface FormattedError {
  message: string;
  path?: ReadonlyArray<string | number> | undefined;
  extensions: { error_code: number; code: string };
}

interface ConnectorContext {
  token: string | undefined;
  identity: CertificateIdentity | undefined;
  ip: string;
}

function rootValue(service: ConnectorService): Record<string, unknown> {
  return {
    configuration: (_a: unknown, c: ConnectorContext) => service.configuration(c),
    signCertificateSigningRequest: (a: { csr: string }, c: ConnectorContext) => service.signCsr(a.csr, c),
    revokeCertificate: (_a: unknown, c: ConnectorContext) => {
      if (!c.identity) throw new AppError('UNAUTHENTICATED', 'revokeCertificate revokes the client certificate of the call: call it on the mTLS port with that certificate');
      return service.revokeOwn(c.identity);
    },
  };
}

const parsedDocuments = new Map<string, DocumentNode | readonly GraphQLError[]>();

function parseDocument(query: string): DocumentNode | readonly GraphQLError[] {
  const known = parsedDocuments.get(query);
  if (known) return known;
  let result: DocumentNode | readonly GraphQLError[];
  try {
    const doc = parse(query, { maxTokens: 2_000 });
    const errors = validate(schema, doc, [...specifiedRules, sizeRule]);
    result = errors.length ? errors : doc;
  } catch (err) {
    result = [err instanceof GraphQLError ? err : new GraphQLError((err as Error).message)];
  }
  if (parsedDocuments.size > 200) parsedDocuments.clear();
  parsedDocuments.set(query, result);
  return result;
}

function formatError(e: GraphQLError, logger: Logger): { status: number; error: FormattedError } {
  const original = e.originalError;
  if (!original || original instanceof GraphQLError) return { status: 400, error: { message: e.message, path: e.path, extensions: { error_code: 22, code: 'VALIDATION_FAILED' } } };
  const appError = toAppError(original);
  if (appError.kind === 'bug' || appError.status >= 500) {
    logger.error({ err: original, path: e.path }, 'connector: resolver failed');
    return { status: 500, error: { message: 'internal error', path: e.path, extensions: { error_code: appError.graphqlCode, code: appError.code } } };
  }
  return { status: appError.status, error: { message: appError.message, path: e.path, extensions: { error_code: appError.graphqlCode, code: appError.code } } };
}

function sendAppError(reply: FastifyReply, err: AppError): FastifyReply {
  const message = err.status >= 500 && err.kind === 'bug' ? 'internal error' : err.message;
  return reply.code(err.status).type('application/json').send({ data: null, errors: [{ message, extensions: { error_code: err.graphqlCode, code: err.code } }] });
}

/**
 * The handler of `POST /connector/graphql`. `identityOf` gives the client certificate's identity
 * on the mTLS port (undefined on the HTTP port); it throws 401 for a revoked certificate.
 */
export function connectorGraphqlHandler(service: ConnectorService, logger: Logger, identityOf: (req: FastifyRequest) => Promise<CertificateIdentity | undefined>) {
  const root = rootValue(service);
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    let identity: CertificateIdentity | undefined;
    try {
      identity = await identityOf(req);
    } catch (err) {
      return sendAppError(reply, toAppError(err));
    }
    const parsed = GraphqlRequest.safeParse(req.body);
    if (!parsed.success) return sendAppError(reply, AppError.invalid(parsed.error.issues.map((i) => i.message).join('; ')));
    const doc = parseDocument(parsed.data.query);
    if (!('kind' in doc)) {
      return reply.code(400).type('application/json').send({ data: null, errors: doc.map((e) => formatError(e, logger).error) });
    }
    const header = req.headers['connector-token'];
    const token = typeof header === 'string' && header.trim() ? header.trim() : undefined;
    const context: ConnectorContext = { token, identity, ip: req.ip };
    const result = await execute({ schema, document: doc, rootValue: root, contextValue: context, variableValues: parsed.data.variables ?? undefined, operationName: parsed.data.operationName ?? undefined });
    if (!result.errors?.length) return reply.code(200).type('application/json').send({ data: result.data });
    const formatted = result.errors.map((e) => formatError(e, logger));
    // The one root field failed: the answer is that failure's status (401 for a bad token, 400 for a bad CSR).
    const status = result.data ? 200 : (formatted[0]?.status ?? 400);
    return reply.code(status).type('application/json').send({ data: result.data ?? null, errors: formatted.map((f) => f.error) });
  };
}

/** Registers `POST /connector/graphql` (tokens only) on the hub's HTTP origin. */
export function connectorRoutes(service: ConnectorService, logger: Logger): (app: HttpApp) => Promise<void> {
  return async (app) => {
    installErrorHandler(app, logger);
    app.post('/connector/graphql', { config: { permission: 'public' }, bodyLimit: MAX_BODY_BYTES }, connectorGraphqlHandler(service, logger, async () => undefined));
  };
}

/** Body errors answered in the GraphQL error shape. */
export function installErrorHandler(app: HttpApp, logger: Logger): void {
  app.setErrorHandler((err: Error, _req, reply) => {
    const code = (err as { code?: string }).code;
    if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendAppError(reply, new AppError('PAYLOAD_TOO_LARGE', `the request is larger than ${MAX_BODY_BYTES} bytes`));
    if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendAppError(reply, new AppError('UNSUPPORTED_MEDIA_TYPE', 'send the request as application/json'));
    if (err instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return sendAppError(reply, new AppError('INVALID_JSON', `the body is not valid JSON: ${err.message}`));
    }
    const appError = toAppError(err);
    if (appError.status >= 500) logger.error({ err }, 'connector: request failed');
    return sendAppError(reply, appError);
  });
}
