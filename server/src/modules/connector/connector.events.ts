/**
 * Application events into the hub (seed 000 "eventURL"): `POST /events/:runtimeId` on the mTLS
 * listener (also `/events/:runtimeId/<application>/v1/events`, the Compass form of the URL). An
 * application authenticated by its certificate sends CloudEvents 1.0, structured
 * (`application/cloudevents+json`) or binary (`ce-*` headers, the body is `data`). The `type` must
 * be one of its event definitions; `data` must fit that definition's AsyncAPI payload schema.
 * An accepted event is published on the bus as `app.<applicationId>.<type>` in the transaction
 * that records its (source, id) for 24 h, then answered 202; a repeated id is answered 202 again
 * and published nothing.
 */
import { AppError, toAppError } from '../../platform/errors.js';
import { Batcher, flushResults } from '../../platform/batcher.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import { findUnstorable } from '../../platform/storable.js';
import type { DirectorService } from '../director/index.js';
import type { MtlsApp } from './connector.mtls.js';
import { PayloadSchemas } from './connector.payloads.js';
import * as repo from './connector.repo.js';
import type { CertificateIdentity } from './connector.service.js';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** What the bus carries for each accepted event (`app.<applicationId>.<type>`). */
export interface ApplicationEvent {
  tenant: string;
  applicationId: string;
  runtimeId: string;
  eventDefinitionId: string;
  receivedAt: string;
  /** The CloudEvent: its attributes and `data`. */
  event: Record<string, unknown> & { specversion: string; id: string; source: string; type: string; data?: unknown };
}

export const APP_EVENT_PREFIX = 'app';
/** The tenant's Director version is read again after this long: a change to definitions or scenarios is known within it. */
const DEFINITIONS_CACHE_MS = 2_000;
const MAX_ATTRIBUTE_CHARS = 1_024;
const REQUIRED = ['specversion', 'id', 'source', 'type'] as const;
const TOKEN_OK = /^[A-Za-z0-9_-]+$/;

/** The bus topic of an application's event type: dots keep their meaning, other characters become `_`. */
export function eventTopic(applicationId: string, type: string): string {
  const tokens = type.split('.').map((t) => (TOKEN_OK.test(t) ? t : t.replace(/[^A-Za-z0-9_-]/g, '_') || '_'));
  return `${APP_EVENT_PREFIX}.${applicationId}.${tokens.join('.')}`;
}

function isJsonType(contentType: string): boolean {
  return /^application\/(.+\+)?json\b/i.test(contentType) || contentType === '';
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new AppError('INVALID_JSON', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The CloudEvent of a request, structured or binary; 400 / 415 naming what is wrong. */
function readCloudEvent(req: FastifyRequest, body: Buffer): ApplicationEvent['event'] {
  const contentType = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  let event: Record<string, unknown>;
  if (contentType === 'application/cloudevents+json') {
    const parsed = parseJson(body, 'the structured CloudEvent');
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw AppError.invalid('the structured CloudEvent must be a JSON object');
    event = { ...(parsed as Record<string, unknown>) };
    if ('data_base64' in event && !('data' in event)) {
      if (typeof event.data_base64 !== 'string') throw AppError.invalid('data_base64: must be a base64 string');
      event.data = event.data_base64;
    }
  } else if (contentType === 'application/cloudevents-batch+json') {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'batched CloudEvents are not accepted: send one event per request (structured or binary mode)');
  } else if (req.headers['ce-specversion'] !== undefined) {
    event = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (name.startsWith('ce-') && typeof value === 'string') event[name.slice(3)] = value;
    }
    if (contentType) event.datacontenttype = req.headers['content-type'];
    if (body.length > 0) {
      event.data = isJsonType(contentType) ? parseJson(body, 'the event data') : /^text\//.test(contentType) ? body.toString('utf8') : body.toString('base64');
    }
  } else {
    throw new AppError(
      body.length && contentType ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST',
      'not a CloudEvent: send Content-Type application/cloudevents+json (structured mode) or the ce-specversion, ce-id, ce-source and ce-type headers with the data as the body (binary mode)',
    );
  }
  for (const name of REQUIRED) {
    const v = event[name];
    if (typeof v !== 'string' || v.length === 0) throw AppError.invalid(`${name}: a CloudEvent needs the attribute ${name} (a non-empty string)`);
    if (v.length > MAX_ATTRIBUTE_CHARS) throw AppError.invalid(`${name}: is longer than ${MAX_ATTRIBUTE_CHARS} characters`);
  }
  if (event.specversion !== '1.0') throw AppError.invalid(`specversion: ${JSON.stringify(event.specversion)} is not supported; send CloudEvents 1.0`);
  const bad = findUnstorable(event, 'event');
  if (bad) throw AppError.invalid(`${bad.path}: ${bad.problem}`);
  return event as ApplicationEvent['event'];
}

export interface EventRoutesDeps {
  db: Db;
  bus: Bus;
  director: DirectorService;
  logger: Logger;
  maxBytes: number;
}

interface Accepted {
  key: string;
  tenant: string;
  applicationId: string;
  source: string;
  eventId: string;
  topic: string;
  payload: ApplicationEvent;
}

/**
 * Events arriving together are stored in one transaction (one INSERT of their ids, one publish
 * of the new ones), as the bus group-commits its enqueues: on embedded PGlite a transaction per
 * event held ingress at ~200/s. Resolves per event: true when new, false for a repeated id.
 */
function eventCommitter(deps: EventRoutesDeps): Batcher<Accepted, boolean> {
  const storeBatch = async (items: Accepted[]): Promise<boolean[]> =>
    deps.db.transaction(async (tx) => {
      const first = new Map<string, Accepted>();
      for (const i of items) if (!first.has(i.key)) first.set(i.key, i);
      const fresh = await repo.recordEventIds(tx, [...first.values()]);
      const publish = [...first.values()].filter((i) => fresh.has(i.key));
      if (publish.length) await deps.bus.publishMany(publish.map((i) => ({ name: i.topic, payload: i.payload })), { tx });
      return items.map((i) => fresh.has(i.key) && first.get(i.key) === i);
    });
  const store = async (items: Accepted[]): Promise<boolean[]> => {
    try {
      return await storeBatch(items);
    } catch (err) {
      if (items.length === 1) throw err;
      // One bad event must not fail its neighbours: store them one by one.
      const out: boolean[] = [];
      for (const i of items) out.push(await storeBatch([i]).then((r) => r[0]!));
      return out;
    }
  };
  return new Batcher<Accepted, boolean>({ maxBatch: 128, maxInFlight: deps.db.dialect === 'pglite' ? 1 : 4, flush: flushResults(store) });
}

export function eventRoutes(deps: EventRoutesDeps) {
  const schemas = new PayloadSchemas();
  /** Each definition read (kept with its route) has its compiled check: the spec is not hashed per event. */
  const checks = new WeakMap<object, ReturnType<PayloadSchemas['checkFor']>>();
  const committer = eventCommitter(deps);
  /**
   * Per application and runtime: may it send there (a shared scenario), and its event definitions,
   * as of the tenant's Director version (raised by every change to the tenant's Director rows).
   */
  const routes = new Map<string, { version: number; refusal: AppError | undefined; defs: Awaited<ReturnType<DirectorService['eventDefinitionsOf']>> }>();
  /**
   * The tenant's Director version, read again after DEFINITIONS_CACHE_MS: one query per tenant,
   * where reading every application's runtime and definitions again each time cost ~5 queries per
   * sender every 2 s (most of the hub's CPU per event at a low event rate).
   */
  const versions = new Map<string, { at: number; version: Promise<number> }>();

  function tenantVersion(tenant: string, now: number): Promise<number> {
    let v = versions.get(tenant);
    if (!v || v.at + DEFINITIONS_CACHE_MS <= now) {
      const read = { at: now, version: deps.director.tenantVersion(tenant) };
      read.version.catch(() => versions.get(tenant) === read && versions.delete(tenant));
      if (versions.size > 10_000) versions.clear();
      versions.set(tenant, read);
      v = read;
    }
    return v.version;
  }

  async function routeOf(caller: CertificateIdentity['caller'], applicationId: string, runtimeId: string) {
    const tenant = caller.principal.tenantId;
    const key = `${tenant}\n${applicationId}\n${runtimeId}`;
    const version = await tenantVersion(tenant, Date.now());
    let entry = routes.get(key);
    if (!entry || entry.version !== version) {
      // An application sends to the runtimes it shares a scenario with (404 otherwise, as for an unknown one).
      const refusal = await deps.director.runtime(caller, runtimeId).then(
        () => undefined,
        (err: unknown) => toAppError(err),
      );
      // A failure to read is not an answer: nothing is kept.
      if (refusal && refusal.status >= 500) throw refusal;
      // Kept under the version read before these reads: a change meanwhile is read again next time.
      entry = { version, refusal, defs: refusal ? [] : await deps.director.eventDefinitionsOf(tenant, applicationId) };
      if (routes.size > 10_000) routes.clear();
      routes.set(key, entry);
    }
    if (entry.refusal) throw entry.refusal;
    return entry.defs;
  }

  function sendError(reply: FastifyReply, err: AppError): FastifyReply {
    return reply.code(err.status).type('application/json').send({ errors: [{ code: err.code, message: err.status >= 500 && err.kind === 'bug' ? 'internal error' : err.message }] });
  }

  return async (app: MtlsApp, identityOf: (req: FastifyRequest) => Promise<CertificateIdentity>): Promise<void> => {
    // Every body arrives raw: structured, binary JSON, text or bytes.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxBytes }, (_req, body, done) => done(null, body));
    app.setErrorHandler((err: Error, _req, reply) => {
      const code = (err as { code?: string }).code;
      if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, new AppError('PAYLOAD_TOO_LARGE', `the event is larger than ${deps.maxBytes} bytes`));
      const appError = toAppError(err);
      if (appError.status >= 500) deps.logger.error({ err }, 'connector: event ingress failed');
      return sendError(reply, appError);
    });

    const handler = async (req: FastifyRequest<{ Params: { runtimeId: string } }>, reply: FastifyReply): Promise<FastifyReply> => {
      const identity = await identityOf(req);
      const caller = identity.caller;
      if (caller.object?.type !== 'application') throw new AppError('FORBIDDEN', 'only applications send events; this certificate stands for a runtime');
      const tenant = caller.principal.tenantId;
      const applicationId = caller.object.id;
      const defs = await routeOf(caller, applicationId, req.params.runtimeId);
      const event = readCloudEvent(req, Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0));
      const def = defs.find((d) => d.name === event.type);
      if (!def) {
        throw AppError.invalid(
          `type: ${JSON.stringify(event.type)} is not an event of this application; ${defs.length ? `known types: ${defs.map((d) => d.name).join(', ')}` : 'it has no event definitions (addEventDefinition first)'}`,
        );
      }
      let check = checks.get(def);
      if (!check) {
        check = schemas.checkFor(def.id, def.specData);
        checks.set(def, check);
      }
      const problem = check(event.data);
      if (problem) throw AppError.invalid(problem);
      const topic = eventTopic(applicationId, event.type);
      const payload: ApplicationEvent = { tenant, applicationId, runtimeId: req.params.runtimeId, eventDefinitionId: def.id, receivedAt: new Date().toISOString(), event };
      const key = [tenant, applicationId, event.source, event.id].join('\n');
      const fresh = await committer.add({ key, tenant, applicationId, source: event.source, eventId: event.id, topic, payload });
      return reply.code(202).type('application/json').send({ data: { id: event.id, source: event.source, type: event.type, topic, duplicate: !fresh } });
    };
    app.post('/events/:runtimeId', handler);
    app.post('/events/:runtimeId/:application/v1/events', handler);
  };
}
