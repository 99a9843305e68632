/**
 * `http-request` / `request`: calls an HTTP API and emits `{status, headers, body}`.
 *
 * As the first node of a scheduled flow it is the polling adapter of seed 002: GET the
 * application's API, emit the payload; `fields.snapshot` keeps a cursor between runs (`$snapshot`
 * in the templates). Every request carries the step run's `Idempotency-Key`, the same across
 * retries, so a receiving API can drop the duplicates that at-least-once delivery may cause.
 *
 * Plain node:http with keep-alive agents rather than fetch: it lets the SSRF guard check the
 * address a name resolves to at connect time (no DNS-rebinding window), and it is faster.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { StepError, deriveMessage, isTransientStatus, type StepContext } from '../components.descriptor.js';
import { compileExpression, compileTemplate, type CompiledExpression, type CompiledTemplate } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
const MAX_REDIRECTS = 5;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

export interface HttpRequestOptions {
  /** The default of `fields.allowPrivateNetwork` for nodes that do not set it. */
  allowPrivateNetworkByDefault: boolean;
}

const Fields = z.strictObject({
  method: z.enum(METHODS).default('GET'),
  url: z.string().min(1).max(8_192).describe('http(s) URL; `{{ JSONata }}` parts are evaluated over the body'),
  headers: z.record(z.string().regex(HEADER_NAME, 'must be an HTTP header name'), z.string().max(8_192)).default({}).describe('values may use `{{ JSONata }}`'),
  query: z.record(z.string().min(1).max(200), z.string().max(8_192)).default({}).describe('values may use `{{ JSONata }}`'),
  body: z.string().min(1).max(100_000).optional().describe('JSONata over the body (`$message` is the whole message); default: the message body. Not sent with GET or HEAD.'),
  bodyType: z.enum(['json', 'form', 'text']).default('json'),
  responseType: z.enum(['auto', 'json', 'text']).default('auto'),
  timeoutMs: z.number().int().min(1).max(300_000).default(30_000),
  followRedirects: z.boolean().default(true),
  /** false: refuse loopback, private, link-local and other non-public addresses (SSRF guard). */
  allowPrivateNetwork: z.boolean().optional(),
  /** false: a 4xx/5xx answer is emitted like any other instead of failing the step. */
  failOnHttpError: z.boolean().default(true),
  maxResponseBytes: z.number().int().min(1).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
  snapshot: z.string().min(1).max(100_000).optional().describe('JSONata over the response {status, headers, body}; its result is saved as the step snapshot (`$snapshot` next time)'),
});
type Fields = z.infer<typeof Fields>;

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

// Separate pools: a socket opened without the guard must never serve a guarded request.
const agents = {
  open: { http: new http.Agent({ keepAlive: true, maxSockets: 256 }), https: new https.Agent({ keepAlive: true, maxSockets: 256 }) },
  guarded: { http: new http.Agent({ keepAlive: true, maxSockets: 256 }), https: new https.Agent({ keepAlive: true, maxSockets: 256 }) },
};

const nonPublic = new net.BlockList();
for (const [net4, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  nonPublic.addSubnet(net4, prefix, 'ipv4');
}
for (const [net6, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  nonPublic.addSubnet(net6, prefix, 'ipv6');
}

/** True for loopback, private, link-local, CGNAT, documentation, multicast and reserved addresses. */
export function isNonPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return nonPublic.check(address, 'ipv4');
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return nonPublic.check(mapped[1]!, 'ipv4');
    return nonPublic.check(address, 'ipv6');
  }
  return true;
}

/** dns.lookup that refuses names resolving to a non-public address; used at connect time. */
export const guardedLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '', 0);
    const list = addresses as dns.LookupAddress[];
    const blocked = list.find((a) => isNonPublicAddress(a.address));
    if (blocked || list.length === 0) {
      const e = Object.assign(new Error(`${hostname} resolves to non-public address ${blocked?.address ?? '(none)'}; set allowPrivateNetwork to reach it`), { code: 'EPRIVATE' });
      return callback(e, '', 0);
    }
    if ((options as dns.LookupOptions).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
    callback(null, list[0]!.address, list[0]!.family);
  });
};

interface Prepared {
  fields: Fields;
  url: CompiledTemplate;
  headers: Array<[string, CompiledTemplate]>;
  query: Array<[string, CompiledTemplate]>;
  body: CompiledExpression | undefined;
  snapshot: CompiledExpression | undefined;
  allowPrivate: boolean;
}

function prepare(fields: Fields, options: HttpRequestOptions): Prepared {
  return {
    fields,
    url: compileTemplate(fields.url, 'fields.url'),
    headers: Object.entries(fields.headers).map(([k, v]) => [k, compileTemplate(v, `fields.headers.${k}`)]),
    query: Object.entries(fields.query).map(([k, v]) => [k, compileTemplate(v, `fields.query.${k}`)]),
    body: fields.body ? compileExpression(fields.body, 'fields.body') : undefined,
    snapshot: fields.snapshot ? compileExpression(fields.snapshot, 'fields.snapshot') : undefined,
    allowPrivate: fields.allowPrivateNetwork ?? options.allowPrivateNetworkByDefault,
  };
}

/** Authorization from the node's credential: basic, apiKey, oauth2 / bearer. */
function applyCredentials(credentials: Record<string, unknown>, declaredType: string | undefined, headers: Record<string, string>, url: URL): void {
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
    return;
  }
  if (type === 'basic' || (!type && username)) {
    if (username === undefined) throw new StepError('credentials: the basic credential has no username', 'user');
    headers.authorization = `Basic ${Buffer.from(`${username}:${str('password') ?? ''}`).toString('base64')}`;
    return;
  }
  if (type === 'apikey' || (!type && apiKey)) {
    if (!apiKey) throw new StepError('credentials: the apiKey credential has no key', 'user');
    const where = str('in', 'location')?.toLowerCase() ?? 'header';
    const name = str('headerName', 'queryName', 'name', 'paramName') ?? (where === 'query' ? 'api_key' : 'x-api-key');
    if (where === 'query') url.searchParams.set(name, apiKey);
    else headers[name.toLowerCase()] = str('prefix') ? `${str('prefix')} ${apiKey}` : apiKey;
    return;
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

interface RawResponse {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  data: Buffer;
}

/**
 * One request/response under the call's deadline. A timer that destroys the request, not an
 * AbortSignal: a signal per call (with its listeners on the request and the socket) measured
 * ~2.5 % of the embedded hub's main thread in the flow bench.
 */
function sendOnce(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, p: Prepared, deadline: number): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const isHttps = url.protocol === 'https:';
    const pool = p.allowPrivate ? agents.open : agents.guarded;
    const req = (isHttps ? https : http).request(url, {
      method,
      headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
      agent: isHttps ? pool.https : pool.http,
      ...(p.allowPrivate ? {} : { lookup: guardedLookup }),
    });
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        req.destroy(new TimeoutError());
      },
      Math.max(0, deadline - Date.now()),
    );
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      reject(err);
    };
    req.once('error', fail);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > p.fields.maxResponseBytes) {
          res.destroy();
          fail(new StepError(`response larger than maxResponseBytes (${p.fields.maxResponseBytes})`, 'user'));
          return;
        }
        chunks.push(chunk);
      });
      res.once('error', fail);
      res.once('aborted', () => fail(timedOut ? new TimeoutError() : new Error('the connection closed before the whole response arrived')));
      res.once('end', () => {
        clearTimeout(timer);
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
        resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: out, data: Buffer.concat(chunks) });
      });
    });
    req.end(body);
  });
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
  constructor() {
    super('timed out');
  }
}

function checkTarget(url: URL, allowPrivate: boolean): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new StepError(`fields.url: ${url.protocol} is not http: or https:`, 'user');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // Literal addresses never go through a lookup, so the connect-time guard would not see them.
  if (!allowPrivate && net.isIP(host) && isNonPublicAddress(host)) {
    throw new StepError(`${host} is a non-public address; set allowPrivateNetwork to reach it`, 'user');
  }
}

function decodeBody(raw: RawResponse, responseType: Fields['responseType']): unknown {
  if (raw.data.length === 0) return null;
  const type = raw.headers['content-type'] ?? '';
  const text = (): string => raw.data.toString('utf8');
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
  return raw.data.toString('base64');
}

async function call(p: Prepared, ctx: StepContext): Promise<{ response: HttpResponse }> {
  const { message } = ctx;
  const bindings = { headers: message.headers, metadata: message.metadata, snapshot: ctx.snapshot, message };
  let url: URL;
  const rendered = await p.url.render(message.body, bindings);
  try {
    url = new URL(rendered);
  } catch {
    throw new StepError(`fields.url: ${JSON.stringify(rendered.slice(0, 200))} is not a valid URL`, 'user');
  }
  for (const [k, t] of p.query) url.searchParams.set(k, await t.render(message.body, bindings));
  const headers: Record<string, string> = { 'user-agent': 'Plexus', accept: 'application/json, text/plain;q=0.9, */*;q=0.8' };
  for (const [k, t] of p.headers) headers[k.toLowerCase()] = await t.render(message.body, bindings);
  headers['idempotency-key'] ??= ctx.idempotencyKey;
  if (ctx.credentials) applyCredentials(ctx.credentials, ctx.credentialsType, headers, url);

  let method: string = p.fields.method;
  let body: Buffer | undefined;
  if (method !== 'GET' && method !== 'HEAD') {
    const value = p.body ? await p.body.evaluate(message.body, bindings) : message.body;
    const encoded = encodeBody(value, p.fields.bodyType);
    if (encoded) {
      body = encoded.data;
      headers['content-type'] ??= encoded.contentType;
    }
  }

  const deadline = Date.now() + p.fields.timeoutMs;
  let raw: RawResponse | undefined;
  for (let hop = 0; ; hop++) {
    checkTarget(url, p.allowPrivate);
    try {
      raw = await sendOnce(url, method, headers, body, p, deadline);
    } catch (err) {
      if (err instanceof StepError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EPRIVATE') throw new StepError(e.message, 'user');
      if (e instanceof TimeoutError) {
        throw new StepError(`${method} ${url.origin}${url.pathname} timed out after ${p.fields.timeoutMs} ms`, 'transient');
      }
      throw new StepError(`${method} ${url.origin}${url.pathname} failed: ${e.code ?? e.message}`, 'transient');
    }
    const location = raw.headers.location;
    if (!p.fields.followRedirects || !location || ![301, 302, 303, 307, 308].includes(raw.status)) break;
    if (hop >= MAX_REDIRECTS) throw new StepError(`more than ${MAX_REDIRECTS} redirects`, 'user');
    const next = new URL(location, url);
    // Credentials belong to the origin they were given for.
    if (next.origin !== url.origin) delete headers.authorization;
    if (raw.status === 303 || ((raw.status === 301 || raw.status === 302) && method === 'POST')) {
      method = 'GET';
      body = undefined;
      delete headers['content-type'];
    }
    url = next;
  }

  if (raw.status >= 400 && p.fields.failOnHttpError) {
    const snippet = raw.data.toString('utf8', 0, Math.min(raw.data.length, 300));
    const what = `${method} ${url.origin}${url.pathname} answered ${raw.status}${raw.statusText ? ` ${raw.statusText}` : ''}${snippet ? `: ${snippet}` : ''}`;
    if (isTransientStatus(raw.status)) throw new StepError(what, 'transient', parseRetryAfterMs(raw.headers['retry-after']));
    throw new StepError(what, 'user');
  }
  return { response: { status: raw.status, headers: raw.headers, body: method === 'HEAD' ? null : decodeBody(raw, p.fields.responseType) } };
}

export function createHttpRequestComponent(options: HttpRequestOptions) {
  return builtinComponent({
    name: 'http-request',
    title: 'HTTP request',
    description: 'Calls an HTTP API; emits {status, headers, body}.',
    credentials: {
      type: 'object',
      description: 'basic {username, password}; apiKey {apiKey, in: header|query, name}; oauth2 {access_token}',
    },
    functions: {
      request: builtinFunction({
        title: 'Request',
        description:
          'Sends `method` to `url` with `headers`, `query` and a body (`body` JSONata, else the message body), authenticated with the node credential (basic, apiKey, oauth2); emits {status, headers, body}. 5xx, 429 and 408 answers and network failures are retried (honouring Retry-After); other 4xx fail the step unless failOnHttpError is false. Sends the step run idempotency key as Idempotency-Key.',
        fields: Fields,
        outputSchema: {
          type: 'object',
          properties: { status: { type: 'integer' }, headers: { type: 'object' }, body: {} },
          required: ['status', 'headers', 'body'],
        },
        prepare(fields) {
          const p = prepare(fields, options);
          return {
            usesSnapshot: Boolean(p.snapshot) || /\$snapshot\b/.test(JSON.stringify([fields.url, fields.headers, fields.query, fields.body ?? ''])),
            async run(ctx) {
              const { response } = await call(p, ctx);
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
