/**
 * `/hook/:flowId[/*]`: public routes (each flow chooses its own auth in
 * `flowSettings.webhooks`). Bodies arrive raw — one buffer parser for every media type, limited
 * to `PLEXUS_WEBHOOK_MAX_BYTES` (413 from Content-Length before reading, or as soon as a
 * chunked body passes it) — because HMAC signatures cover the exact bytes.
 */
import { z } from 'zod';
import type { ReplyWaiter, WebhookReply } from '../../contracts/flows.js';
import { AppError } from '../../platform/errors.js';
import { hasPermission, sendError, type Authenticator, type HttpApp } from '../../platform/http/index.js';
import type { FastifyReply, FastifyRequest } from '../../platform/http/server.js';
import type { Logger } from '../../platform/logger.js';
import { findUnstorable } from '../../platform/storable.js';
import type { Admission, WebhookAdmission } from '../limits/index.js';
import type { WebhooksAuditAction } from './webhooks.events.js';
import { buildMessage, parseBody, unstorablePart } from './webhooks.messages.js';
import type { HookTarget, WebhooksService } from './webhooks.service.js';
import { signatureProblem } from './webhooks.signature.js';

export interface WebhooksRoutesDeps {
  service: WebhooksService;
  maxBytes: number;
  /** Most fields of a form-encoded body. */
  maxFields: number;
  /** Most elements of an XML body. */
  maxXmlElements: number;
  /** Resolves Bearer tokens for flows with `auth: "bearer"` (the IAM module's). */
  authenticate: Authenticator | undefined;
  /** The execution engine's, for flows with `respond: "sync"`. */
  replyWaiter: ReplyWaiter | undefined;
  logger: Logger;
  /** Per-tenant rate and in-flight limits, checked before a body is read (the limits module's). */
  admission?: WebhookAdmission | undefined;
}

type HookRequest = FastifyRequest;

function paramsOf(req: FastifyRequest): { flowId: string; suffix: string | undefined } {
  const p = req.params as { flowId: string; '*'?: string };
  return { flowId: p.flowId, suffix: p['*'] || undefined };
}

const HookParams = z.object({ flowId: z.string(), '*': z.string().optional() });
const Accepted = z.object({ data: z.object({ requestId: z.string(), executionId: z.string() }) });
const EMPTY = Buffer.alloc(0);
const MAX_KEY_LENGTH = 200;
/**
 * Headers a sync reply may not set. Hop-by-hop ones are the connection's business. The rest
 * act on the hub's whole origin — the cockpit's and the API's — which is the operator's, not a
 * flow author's: cookies (`set-cookie`; `clear-site-data` would log cockpit users out), HSTS,
 * CORS grants (`access-control-*` would let another site read answers from this origin), a
 * credentials prompt in the hub's name (`www-authenticate`), and the security headers the hub
 * sets itself (CSP, nosniff, framing, cross-origin isolation, x-execution-id), which a reply must
 * not loosen or fake.
 */
/**
 * The same answer for an unknown id, another tenant's flow and a flow that is not active: a
 * caller learns only that nothing takes calls here, and what to check.
 */
function noActiveFlow(flowId: string): AppError {
  return new AppError('NOT_FOUND', `no active flow ${flowId.slice(0, 100)} takes calls here: check the id, and that the flow is started (status active)`);
}

const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-connection']);
const RESERVED_HEADERS = new Set([
  'set-cookie',
  'set-cookie2',
  'clear-site-data',
  'strict-transport-security',
  'www-authenticate',
  'content-security-policy',
  'content-security-policy-report-only',
  'x-content-type-options',
  'x-frame-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
  'origin-agent-cluster',
  'x-execution-id',
]);
const RESERVED_HEADER_PREFIXES = ['access-control-', 'cross-origin-'];

/** Whether a flow's sync reply may set this (lower-case) header. */
export function isForwardableReplyHeader(name: string): boolean {
  return !HOP_HEADERS.has(name) && !RESERVED_HEADERS.has(name) && !RESERVED_HEADER_PREFIXES.some((p) => name.startsWith(p));
}

export function webhooksRoutes(deps: WebhooksRoutesDeps) {
  const { service } = deps;
  /** Each call's flow and admission, found before its body is read (preParsing). */
  const admitted = new WeakMap<FastifyRequest, { target: HookTarget; admission: Admission | undefined }>();

  /**
   * Before the body is read: the flow (an unknown one is a 404 without reading a byte) and, by
   * its tenant, the call's admission; a refusal is answered before the body is buffered. The
   * admission's bytes in flight are released once the message is stored, or when the response
   * ends, whichever comes first.
   */
  const admit = async (req: HookRequest, reply: FastifyReply, payload: NodeJS.ReadableStream): Promise<NodeJS.ReadableStream> => {
    if (req.method === 'HEAD') return payload;
    // As the HTTP layer's preValidation would, but before the flow id reaches the database here.
    const unstorable = findUnstorable(req.params, 'params');
    if (unstorable) {
      const problem = `${unstorable.path}: ${unstorable.problem}`;
      throw new AppError('VALIDATION_FAILED', problem, 'user', { problems: [problem] });
    }
    const { flowId } = paramsOf(req);
    const target = flowId.length <= 100 ? await service.resolve(flowId) : undefined;
    if (!target) throw noActiveFlow(flowId);
    if (!deps.admission) {
      admitted.set(req, { target, admission: undefined });
      return payload;
    }
    const length = req.headers['content-length'];
    const contentLength = length === undefined ? undefined : Number(length) || 0;
    const chunked = req.method === 'POST' && req.headers['transfer-encoding'] !== undefined;
    let admission: Admission;
    try {
      admission = deps.admission.admit(target.tenant, { contentLength, chunked, body: req.raw });
    } catch (err) {
      closeIfLarge(reply, chunked ? Infinity : (contentLength ?? 0));
      throw err;
    }
    // A chunked body stopped on its way: its length is unknown, so nothing more of it is read.
    if (chunked) admission.body.once('error', () => closeIfLarge(reply, Infinity));
    admitted.set(req, { target, admission });
    reply.raw.once('close', admission.release);
    return admission.body;
  };

  const deny = async (req: HookRequest, target: HookTarget, err: AppError): Promise<never> => {
    await service.audit.record({
      action: 'hook.denied' satisfies WebhooksAuditAction,
      tenantId: target.tenant,
      target: { type: 'flow', id: target.flowId },
      result: 'denied',
      sourceIp: req.ip,
      details: { auth: target.settings.auth, reason: err.message },
    });
    throw err;
  };

  const authorize = async (req: HookRequest, target: HookTarget, raw: Buffer): Promise<void> => {
    const { auth } = target.settings;
    if (auth === 'none') return;
    if (auth === 'hmac') {
      const key = target.signingKey;
      const problem = key
        ? signatureProblem(key, { id: header(req, 'webhook-id'), timestamp: header(req, 'webhook-timestamp'), signature: header(req, 'webhook-signature') }, raw)
        : (target.signingKeyProblem ?? 'the flow has no signing secret');
      if (problem) await deny(req, target, new AppError('INVALID_SIGNATURE', problem));
      return;
    }
    if (!deps.authenticate) return deny(req, target, new AppError('UNAUTHENTICATED', 'Bearer authentication is not available on this process'));
    let principal;
    try {
      principal = await deps.authenticate(req);
    } catch (err) {
      if (err instanceof AppError) return deny(req, target, err);
      throw err;
    }
    if (principal.tenantId !== target.tenant || !hasPermission(principal, 'webhooks.execute')) {
      await deny(req, target, new AppError('FORBIDDEN', "the token may not execute this flow (needs webhooks.execute in the flow's tenant)"));
    }
  };

  const handle = async (req: HookRequest, reply: FastifyReply, method: 'GET' | 'POST'): Promise<void> => {
    const { flowId, suffix } = paramsOf(req);
    const early = admitted.get(req);
    const target = early?.target ?? (flowId.length <= 100 ? await service.resolve(flowId) : undefined);
    if (!target) throw noActiveFlow(flowId);
    const raw = method === 'POST' && Buffer.isBuffer(req.body) ? req.body : EMPTY;
    if (raw.length > 0 && !req.headers['content-type']) throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'a request body needs a Content-Type header');
    await authorize(req, target, raw);

    const requestKey = header(req, 'idempotency-key') ?? header(req, 'x-request-id');
    if (requestKey !== undefined && (requestKey.length === 0 || requestKey.length > MAX_KEY_LENGTH)) {
      throw AppError.invalid(`idempotency-key / x-request-id must be 1-${MAX_KEY_LENGTH} characters`);
    }
    const requestId = requestKey ?? req.id;
    const parsed = method === 'POST' ? parseBody(raw, req.headers['content-type'], { maxFields: deps.maxFields, maxXmlElements: deps.maxXmlElements }) : { body: {}, attachments: {} };
    const message = buildMessage({ method, headers: req.headers, query: (req.query ?? {}) as Record<string, unknown>, parsed, requestId, suffix });
    const unstorable = unstorablePart(parsed, message.headers);
    if (unstorable) throw AppError.invalid(unstorable, { problems: [unstorable] });

    const sync = target.settings.respond === 'sync';
    if (sync && !deps.replyWaiter) throw new AppError('UNAVAILABLE', 'this flow answers synchronously, but no execution engine runs on this process');
    let pendingReply: Promise<WebhookReply | undefined> | undefined;
    const accepted = await service.accept({
      target,
      job: { message, ...(sync ? { awaitsReply: true } : {}) },
      requestKey,
      webhookId: target.settings.auth === 'hmac' ? header(req, 'webhook-id') : undefined,
      // Registered before the job exists, so a fast reply cannot slip past the waiter.
      beforeEnqueue: sync ? (id) => (pendingReply = deps.replyWaiter!.waitForReply(id, target.settings.timeoutMs).catch(() => undefined)) : undefined,
    });
    // Stored: the body no longer counts as in flight (a sync call's wait holds none of it).
    early?.admission?.release();
    if (!pendingReply) {
      // Serialised by hand: the hot path skips the response schema (documented on the route).
      const answer = `{"data":{"requestId":${JSON.stringify(requestId)},"executionId":"${accepted.executionId}"}}`;
      return void reply.code(202).type('application/json; charset=utf-8').send(answer);
    }

    const result = await pendingReply;
    if (!result) {
      req.log.warn({ flowId, executionId: accepted.executionId, timeoutMs: target.settings.timeoutMs }, 'webhooks: no sync reply in time');
      return void sendError(reply, new AppError('TIMEOUT', `the flow gave no reply within ${target.settings.timeoutMs} ms (execution ${accepted.executionId})`));
    }
    sendReply(reply, result, accepted.executionId);
  };

  return async (app: HttpApp): Promise<void> => {
    // The params are plain strings, checked by the handler; the schema only documents them.
    app.setValidatorCompiler(() => (data: unknown) => ({ value: data }));
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxBytes }, (_req, body, done) => done(null, body));
    app.addHook('preParsing', admit);
    // What /hook answers is a tenant's content served from the hub's origin: a browser opening
    // it runs no script, submits no form and reaches no storage of this origin (a unique
    // opaque origin), and never takes it for another type than it says.
    app.addHook('onSend', (_req, reply, payload, done) => {
      void reply.header('content-security-policy', 'sandbox').header('x-content-type-options', 'nosniff').removeHeader('set-cookie');
      done(null, payload);
    });

    const tags = ['webhooks'];
    for (const url of ['/hook/:flowId', '/hook/:flowId/*']) {
      const suffix = url.endsWith('*') ? ' (the rest of the path goes to metadata.path)' : '';
      app.post(
        url,
        {
          config: { permission: 'public' },
          bodyLimit: deps.maxBytes,
          schema: {
            tags,
            summary: `Deliver a message to an active flow; 202 once durably queued${suffix}`,
            params: HookParams,
            response: { 202: Accepted },
          },
        },
        async (req, reply) => {
          await handle(req, reply, 'POST');
          // Resolves once the answer is written: Fastify must not send again.
          return reply;
        },
      );
      app.get(
        url,
        {
          config: { permission: 'public' },
          exposeHeadRoute: false,
          schema: { tags, summary: `Deliver the query string as the message body${suffix}`, params: HookParams, response: { 202: Accepted } },
        },
        async (req, reply) => {
          await handle(req, reply, 'GET');
          return reply;
        },
      );
      app.head(
        url,
        { config: { permission: 'public' }, schema: { tags, summary: '200 when the flow accepts calls, 404 otherwise', params: HookParams } },
        async (req, reply) => {
          const { flowId } = paramsOf(req);
          if (flowId.length > 100 || !(await service.resolve(flowId))) throw noActiveFlow(flowId);
          return reply.code(200).send();
        },
      );
    }
  };
}

/**
 * After a refusal answered before its body was read, Node reads the rest of the body and
 * discards it: the caller then gets the answer (and its Retry-After) rather than a reset
 * connection. That is worth it for small bodies only; for a large one the connection closes with
 * the answer, so a caller sending megabytes after megabytes cannot make the hub read them all.
 */
const DRAIN_REFUSED_BODY_MAX_BYTES = 64 * 1024;

function closeIfLarge(reply: FastifyReply, bodyBytes: number): void {
  if (bodyBytes > DRAIN_REFUSED_BODY_MAX_BYTES) void reply.header('connection', 'close');
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sendReply(reply: FastifyReply, answer: WebhookReply, executionId: string): FastifyReply {
  const status = Number.isInteger(answer.status) && answer.status >= 200 && answer.status <= 599 ? answer.status : 200;
  void reply.code(status).header('x-execution-id', executionId);
  let hasType = false;
  for (const [k, v] of Object.entries(answer.headers ?? {})) {
    const name = k.toLowerCase();
    if (!isForwardableReplyHeader(name)) continue;
    if (name === 'content-type') hasType = true;
    void reply.header(name, v);
  }
  if (answer.body === undefined || answer.body === null) return reply.send();
  if (typeof answer.body === 'string') {
    if (!hasType) void reply.header('content-type', 'text/plain; charset=utf-8');
    return reply.send(Buffer.from(answer.body, 'utf8'));
  }
  if (!hasType) void reply.header('content-type', 'application/json; charset=utf-8');
  return reply.send(Buffer.from(JSON.stringify(answer.body), 'utf8'));
}
