/**
 * `http-request` / `request`: calls an HTTP API and emits `{status, headers, body}`.
 *
 * As the first node of a scheduled flow it is the polling adapter of seed 002: GET the
 * application's API, emit the payload; `fields.snapshot` keeps a cursor between runs (`$snapshot`
 * in the templates). Every request carries the step run's `Idempotency-Key`, the same across
 * retries, so a receiving API can drop the duplicates that at-least-once delivery may cause.
 *
 * Every call goes through platform/outbound: the operator's network policy, checked at connect
 * time and on every redirect hop; credentials never follow a redirect to another origin.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AppError } from '../../../platform/errors.js';
import type { Outbound, OutboundResponse } from '../../../platform/outbound/index.js';
import { StepError, deriveMessage, isTransientStatus, type StepContext } from '../components.descriptor.js';
import { compileExpression, compileTemplate, type CompiledExpression, type CompiledTemplate } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
const MAX_REDIRECTS = 5;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** An application's API a node names instead of a URL (the API credentials flow, seed 001). */
export interface ApiReference {
  application: string;
  apiDefinition: string;
  /**
   * The Director runtime (id or name) whose credentials (`setAPIAuth`) the call uses; default
   * `local`, the embedded runtime. Not `nodeSettings.runtime`, which places the step (local |
   * workers) and says nothing about credentials.
   */
  credentialsRuntime?: string | undefined;
}

/** Where an application's API is and how the flow's runtime authenticates to it. */
export interface ResolvedApi {
  url: string;
  credentials?: Record<string, unknown> | undefined;
  credentialsType?: string | undefined;
  headers?: Record<string, string> | undefined;
  query?: Record<string, string> | undefined;
}

/** Resolves `api` for a tenant (the Director); throws StepError (user) naming what is missing. */
export type ApiResolver = (tenant: string, api: ApiReference) => Promise<ResolvedApi>;

export interface HttpRequestOptions {
  /** The one way out (platform/outbound): the operator's network policy, connection pools, redirects. */
  outbound: Outbound;
  /** `fields.api`: an application's API and the credentials it set for the flow's runtime; undefined: refused. */
  resolveApi?: ApiResolver | undefined;
  /** At save: why a tenant has no Director runtime `runtime` (id or name), or undefined when it has. */
  runtimeProblem?: ((tenant: string, runtime: string) => Promise<string | undefined>) | undefined;
}

const Fields = z.strictObject({
  method: z.enum(METHODS).default('GET'),
  url: z.string().min(1).max(8_192).optional().describe('http(s) URL; `{{ JSONata }}` parts are evaluated over the body. Or `api` instead.'),
  api: z
    .strictObject({
      application: z.string().min(1).max(200),
      apiDefinition: z.string().min(1).max(200),
      credentialsRuntime: z
        .string()
        .min(1)
        .max(200)
        .optional()
        .describe('the Director runtime (id or name) whose credentials (setAPIAuth) are used; default `local`, the embedded runtime. Checked when the flow is saved.'),
    })
    .optional()
    .describe("an application's API (application and API definition, by id or name) instead of `url`: its targetURL, called with the credentials the application set for the runtime `credentialsRuntime` (default `local`); basic, or OAuth client credentials whose token the hub fetches, caches until it expires and sends as Bearer"),
  headers: z.record(z.string().regex(HEADER_NAME, 'must be an HTTP header name'), z.string().max(8_192)).default({}).describe('values may use `{{ JSONata }}`'),
  query: z.record(z.string().min(1).max(200), z.string().max(8_192)).default({}).describe('values may use `{{ JSONata }}`'),
  body: z.string().min(1).max(100_000).optional().describe('JSONata over the body (`$message` is the whole message); default: the message body. Not sent with GET or HEAD.'),
  bodyType: z.enum(['json', 'form', 'text']).default('json'),
  responseType: z.enum(['auto', 'json', 'text']).default('auto'),
  timeoutMs: z.number().int().min(1).max(300_000).default(30_000),
  followRedirects: z.boolean().default(true),
  /**
   * true: reach loopback, private, link-local and other non-public addresses — only where the
   * operator allows private networks (refused at save otherwise); unset: the operator's setting.
   */
  allowPrivateNetwork: z.boolean().optional(),
  /** false: a 4xx/5xx answer is emitted like any other instead of failing the step. */
  failOnHttpError: z.boolean().default(true),
  maxResponseBytes: z.number().int().min(1).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
  snapshot: z.string().min(1).max(100_000).optional().describe('JSONata over the response {status, headers, body}; its result is saved as the step snapshot (`$snapshot` next time)'),
}).refine((f) => (f.url === undefined) !== (f.api === undefined), { message: 'give either url or api {application, apiDefinition}, not both', path: ['url'] });
type Fields = z.infer<typeof Fields>;

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

interface Prepared {
  fields: Fields;
  url: CompiledTemplate | undefined;
  headers: Array<[string, CompiledTemplate]>;
  query: Array<[string, CompiledTemplate]>;
  body: CompiledExpression | undefined;
  snapshot: CompiledExpression | undefined;
}

function prepare(fields: Fields): Prepared {
  return {
    fields,
    url: fields.url === undefined ? undefined : compileTemplate(fields.url, 'fields.url'),
    headers: Object.entries(fields.headers).map(([k, v]) => [k, compileTemplate(v, `fields.headers.${k}`)]),
    query: Object.entries(fields.query).map(([k, v]) => [k, compileTemplate(v, `fields.query.${k}`)]),
    body: fields.body ? compileExpression(fields.body, 'fields.body') : undefined,
    snapshot: fields.snapshot ? compileExpression(fields.snapshot, 'fields.snapshot') : undefined,
  };
}

/** Where a credential went: the header or query parameter to drop when a redirect leaves the origin. */
interface Placed {
  header?: string;
  query?: Record<string, string>;
}

/** Authorization from the node's credential: basic, apiKey, oauth2 / bearer. */
function applyCredentials(credentials: Record<string, unknown>, declaredType: string | undefined, headers: Record<string, string>, url: URL): Placed {
  const str = (...keys: string[]): string | undefined => {
    for (const k of keys) {
      const v = credentials[k];
      if (typeof v === 'string' && v !== '') return v;
    }
    return undefined;
  };
  // `mixed` credentials are free-form: infer the scheme from the fields they carry.
  const given = (declaredType ?? str('type'))?.toLowerCase();
  const type = given === 'mixed' ? undefined : given;
  const token = str('access_token', 'accessToken', 'token');
  const apiKey = str('apiKey', 'api_key', 'key', 'value');
  const username = str('username', 'user');
  if (type === 'oauth2' || type === 'bearer' || (!type && token)) {
    if (!token) throw new StepError('credentials: the oauth2 credential has no access_token', 'user');
    headers.authorization = `${str('token_type', 'tokenType') === 'mac' ? 'MAC' : 'Bearer'} ${token}`;
    return { header: 'authorization' };
  }
  if (type === 'basic' || (!type && username)) {
    if (username === undefined) throw new StepError('credentials: the basic credential has no username', 'user');
    headers.authorization = `Basic ${Buffer.from(`${username}:${str('password') ?? ''}`).toString('base64')}`;
    return { header: 'authorization' };
  }
  if (type === 'apikey' || (!type && apiKey)) {
    if (!apiKey) throw new StepError('credentials: the apiKey credential has no key', 'user');
    // The secrets API's fields (headerName | queryName); older free-form names still work.
    const where = str('in', 'location')?.toLowerCase() ?? (str('queryName') ? 'query' : 'header');
    const name = (where === 'query' ? str('queryName', 'name', 'paramName') : str('headerName', 'name')) ?? (where === 'query' ? 'api_key' : 'x-api-key');
    if (where === 'query') {
      url.searchParams.set(name, apiKey);
      return { query: { [name]: apiKey } };
    }
    headers[name.toLowerCase()] = str('prefix') ? `${str('prefix')} ${apiKey}` : apiKey;
    return { header: name.toLowerCase() };
  }
  throw new StepError(`credentials: a credential of type ${type ?? 'unknown'} cannot authenticate an HTTP request (use basic, apiKey or oauth2)`, 'user');
}

function encodeBody(value: unknown, bodyType: Fields['bodyType']): { data: Buffer; contentType: string } | undefined {
  if (value === undefined) return undefined;
  if (bodyType === 'text') return { data: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), contentType: 'text/plain; charset=utf-8' };
  if (bodyType === 'form') {
    const params = new URLSearchParams();
    if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) params.append(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
    }
    return { data: Buffer.from(params.toString()), contentType: 'application/x-www-form-urlencoded' };
  }
  return { data: Buffer.from(JSON.stringify(value)), contentType: 'application/json' };
}

function parseRetryAfterMs(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function decodeBody(raw: OutboundResponse, responseType: Fields['responseType']): unknown {
  if (raw.body.length === 0) return null;
  const type = raw.headers['content-type'] ?? '';
  const text = (): string => raw.body.toString('utf8');
  if (responseType === 'text') return text();
  if (responseType === 'json' || /[/+]json\b/i.test(type)) {
    try {
      return JSON.parse(text());
    } catch {
      if (responseType === 'json') throw new StepError('response is not valid JSON', 'user');
      return text();
    }
  }
  if (type === '' || /^text\/|[/+]xml\b|javascript|x-www-form-urlencoded/i.test(type)) return text();
  return raw.body.toString('base64');
}

async function call(p: Prepared, ctx: StepContext, options: HttpRequestOptions): Promise<{ response: HttpResponse }> {
  const { message } = ctx;
  const bindings = { headers: message.headers, metadata: message.metadata, snapshot: ctx.snapshot, message };
  let url: URL;
  let api: ResolvedApi | undefined;
  if (p.fields.api) {
    if (!options.resolveApi) throw new StepError("fields.api: calling an application's API needs the Director, which this process does not reach", 'user');
    api = await options.resolveApi(ctx.tenant, p.fields.api);
  }
  const rendered = api ? api.url : await p.url!.render(message.body, bindings);
  try {
    url = new URL(rendered);
  } catch {
    throw new StepError(`${api ? 'the API\'s targetURL' : 'fields.url'}: ${JSON.stringify(rendered.slice(0, 200))} is not a valid URL`, 'user');
  }
  for (const [k, v] of Object.entries(api?.query ?? {})) url.searchParams.set(k, v);
  for (const [k, t] of p.query) url.searchParams.set(k, await t.render(message.body, bindings));
  const headers: Record<string, string> = { 'user-agent': 'Plexus', accept: 'application/json, text/plain;q=0.9, */*;q=0.8' };
  for (const [k, v] of Object.entries(api?.headers ?? {})) headers[k.toLowerCase()] = v;
  for (const [k, t] of p.headers) headers[k.toLowerCase()] = await t.render(message.body, bindings);
  headers['idempotency-key'] ??= ctx.idempotencyKey;
  // An API's own credentials (set for the runtime) stand in for the node's.
  const credentials = api ? api.credentials : ctx.credentials;
  const placed = credentials ? applyCredentials(credentials, api ? api.credentialsType : ctx.credentialsType, headers, url) : undefined;

  const method = p.fields.method;
  let body: Buffer | undefined;
  if (method !== 'GET' && method !== 'HEAD') {
    const value = p.body ? await p.body.evaluate(message.body, bindings) : message.body;
    const encoded = encodeBody(value, p.fields.bodyType);
    if (encoded) {
      body = encoded.data;
      headers['content-type'] ??= encoded.contentType;
    }
  }

  let raw: OutboundResponse;
  try {
    raw = await options.outbound.request({
      url,
      method,
      headers,
      body,
      timeoutMs: p.fields.timeoutMs,
      maxResponseBytes: p.fields.maxResponseBytes,
      maxRedirects: p.fields.followRedirects ? MAX_REDIRECTS : 0,
      allowPrivateNetwork: p.fields.allowPrivateNetwork,
      credentials: placed && { headers: placed.header ? [placed.header] : [], query: placed.query ?? {} },
    });
  } catch (err) {
    // Outbound speaks AppError; a step reports StepError of the same kind.
    if (err instanceof AppError) throw new StepError(err.message, err.kind === 'transient' ? 'transient' : 'user');
    throw err;
  }

  if (raw.status >= 400 && p.fields.failOnHttpError) {
    const last = new URL(raw.url);
    const where = `${raw.method} ${last.origin}${last.pathname}`;
    const snippet = raw.body.toString('utf8', 0, Math.min(raw.body.length, 300));
    const what = `${where} answered ${raw.status}${raw.statusText ? ` ${raw.statusText}` : ''}${snippet ? `: ${snippet}` : ''}`;
    if (isTransientStatus(raw.status)) throw new StepError(what, 'transient', parseRetryAfterMs(raw.headers['retry-after']));
    throw new StepError(what, 'user');
  }
  return { response: { status: raw.status, headers: raw.headers, body: raw.method === 'HEAD' ? null : decodeBody(raw, p.fields.responseType) } };
}

export function createHttpRequestComponent(options: HttpRequestOptions) {
  return builtinComponent({
    name: 'http-request',
    title: 'HTTP request',
    description: 'Calls an HTTP API; emits {status, headers, body}.',
    credentials: {
      type: 'object',
      // The secrets API's field names (contracts/secrets.ts), so a secret made there fits as is.
      description:
        'A secret (credentialsId) of type basic {username, password}; apiKey {key, headerName (default X-API-Key) | queryName}; or oauth2 {grantType, tokenUrl, clientId, clientSecret | refreshToken, scope?, audience?}, whose access token the hub obtains and refreshes and sends as Bearer.',
    },
    functions: {
      request: builtinFunction({
        title: 'Request',
        description:
          'Sends `method` to `url` with `headers`, `query` and a body (`body` JSONata, else the message body), authenticated with the node credential (basic, apiKey, oauth2); emits {status, headers, body}. 5xx, 429 and 408 answers and network failures are retried (honouring Retry-After); other 4xx fail the step unless failOnHttpError is false. Sends the step run idempotency key as Idempotency-Key.',
        fields: Fields,
        checkPolicy(fields) {
          const why = options.outbound.privateNetworkProblem(fields.allowPrivateNetwork);
          return why && `fields.allowPrivateNetwork: ${why}`;
        },
        async checkReferences(tenant, fields) {
          const api = fields.api as { credentialsRuntime?: unknown } | undefined;
          const runtime = typeof api === 'object' && api !== null ? api.credentialsRuntime : undefined;
          if (typeof runtime !== 'string' || runtime === '' || !options.runtimeProblem) return undefined;
          const why = await options.runtimeProblem(tenant, runtime);
          return why && `fields.api.credentialsRuntime: ${why}`;
        },
        outputSchema: {
          type: 'object',
          properties: { status: { type: 'integer' }, headers: { type: 'object' }, body: {} },
          required: ['status', 'headers', 'body'],
        },
        prepare(fields) {
          const p = prepare(fields);
          return {
            usesSnapshot: Boolean(p.snapshot) || /\$snapshot\b/.test(JSON.stringify([fields.url ?? '', fields.headers, fields.query, fields.body ?? ''])),
            async run(ctx) {
              const { response } = await call(p, ctx, options);
              const out = { messages: [{ message: deriveMessage(ctx.message, response, randomUUID()) }] };
              if (!p.snapshot) return out;
              const value = await p.snapshot.evaluate(response, { snapshot: ctx.snapshot, headers: ctx.message.headers, metadata: ctx.message.metadata });
              return value === undefined ? out : { ...out, snapshot: { value } };
            },
          };
        },
      }),
    },
  });
}
