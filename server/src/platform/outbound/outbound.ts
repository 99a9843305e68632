/**
 * The one way the hub calls out over HTTP(S) on behalf of tenants.
 *
 * Glossary
 * - Guarded call: one that may reach only public addresses plus what the operator allow-listed.
 *   Its sockets come from the guarded pool, whose agents resolve names with a lookup that refuses
 *   non-public answers; the socket connects to the very address that was checked (no second DNS
 *   lookup, so no DNS-rebinding window). IP-literal URLs skip DNS, so they are checked before
 *   the request is made.
 * - Open call: the operator allows private networks and the caller asked for it; its sockets come
 *   from the open pool. The pools are separate so that a socket opened without the guard never
 *   carries a guarded request (keep-alive would otherwise reuse it).
 * - Hop: one request of a call; redirects are followed here, each hop checked again, up to a hop
 *   limit, under one deadline and one response size limit. Credentials never follow a redirect to
 *   another origin.
 *
 * Plain node:http with keep-alive agents rather than fetch: the custom lookup needs the agent, and
 * it is the faster of the two on the flow bench's hot path.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { AppError } from '../errors.js';
import type { Logger } from '../logger.js';
import { AllowList, normaliseHost, refusalOf, type OutboundPolicy } from './policy.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024;
const DEFAULT_MAX_REDIRECTS = 5;
/** Hosts whose literal-address decision is remembered; cleared when full (tenants choose the hosts). */
const LITERAL_CACHE_SIZE = 1_024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Methods fetch also forbids: tunnels and request echo have no place in an integration step. */
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK']);
/**
 * Headers the hub sets itself: hop-by-hop ones (RFC 9110 §7.6.1) and framing. A caller's value
 * could desynchronise the framing of a keep-alive socket shared with other tenants' requests.
 */
const HUB_OWNED_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'content-length', 'expect']);
/** Dropped from every hop after the origin changes, whatever the caller says (`host` named the old origin). */
const ORIGIN_BOUND_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'host'];

export interface OutboundRequest {
  url: string | URL;
  /** Default GET. */
  method?: string;
  /** Names are matched case-insensitively; hop-by-hop and framing headers are ignored. */
  headers?: Record<string, string>;
  body?: string | Buffer | undefined;
  /** For the whole call, redirects included. Default 30 s. */
  timeoutMs?: number;
  /** Default 10 MiB. */
  maxResponseBytes?: number;
  /** 0: a 3xx answer is returned as it is. Default 5. */
  maxRedirects?: number;
  /**
   * Ask to reach non-public addresses. Granted only when the operator allows private networks;
   * unset means the operator's setting. Allow-listed hosts are reachable either way.
   */
  allowPrivateNetwork?: boolean | undefined;
  /**
   * Credentials the caller added beyond the standard ones (Authorization, Proxy-Authorization,
   * Cookie): header names, removed when a redirect leaves the origin; query parameters (name →
   * value), set again on every hop within the origin (a Location rarely repeats them) and removed
   * from every hop after it left.
   */
  credentials?: { headers?: readonly string[]; query?: Readonly<Record<string, string>> } | undefined;
}

export interface OutboundResponse {
  status: number;
  statusText: string;
  /** The URL of the last hop. */
  url: string;
  /** Lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Buffer;
  /** The method of the last hop (a 303 turns a POST into a GET). */
  method: string;
}

/**
 * What the code step's `fetch` calls on the hub (the sandbox hands over a copy of the request).
 * `deadlineMs` is an absolute time (epoch milliseconds, as Date.now()): the run's own deadline, so
 * that several fetches share one budget. `maxBytes` caps the response body. The body is returned as
 * UTF-8 text. Throws AppError: kind `user` for a refused destination, a bad request or an answer
 * over the limit; `transient` for a network failure or the deadline.
 */
export type CodeFetch = (
  req: { url: string; method: string; headers: Record<string, string>; body?: string },
  opts: { tenant: string; allowPrivateNetwork: boolean; deadlineMs: number; maxBytes: number },
) => Promise<{ status: number; statusText: string; url: string; headers: Record<string, string>; body: string }>;

/** How a name becomes addresses; the default is the system resolver (dns.lookup). A seam for tests. */
export type ResolveAll = (hostname: string, options: dns.LookupOptions) => Promise<dns.LookupAddress[]>;

export interface OutboundOptions {
  logger?: Logger | undefined;
  resolve?: ResolveAll | undefined;
}

export interface Outbound {
  readonly policy: OutboundPolicy;
  request(req: OutboundRequest): Promise<OutboundResponse>;
  codeFetch: CodeFetch;
  /**
   * Why a step's `allowPrivateNetwork` setting is refused, or undefined when it is fine: asking
   * for `true` when the operator forbids private networks. Checked when a flow is saved.
   */
  privateNetworkProblem(requested: unknown): string | undefined;
  /** Closes the pooled sockets. */
  close(): void;
}

const systemResolve: ResolveAll = (hostname, options) =>
  new Promise((resolve, reject) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

/** The error a refusing lookup hands to net.connect; recognised by `code` when the request fails. */
class RefusedLookup extends Error implements NodeJS.ErrnoException {
  readonly code = 'EREFUSED_BY_POLICY';
}

class TimedOut extends Error {
  constructor() {
    super('timed out');
  }
}

export function createOutbound(policy: OutboundPolicy, options: OutboundOptions = {}): Outbound {
  const allow = new AllowList(policy.allowedHosts);
  const resolve = options.resolve ?? systemResolve;
  const logger = options.logger;

  /**
   * The connect-time guard: resolves once, refuses when any answer is non-public and not allowed
   * (a name with one private address among public ones is not one to trust), and hands net.connect
   * the checked addresses to connect to.
   */
  const guardedLookup: net.LookupFunction = (hostname, lookupOptions, callback) => {
    resolve(hostname, lookupOptions).then(
      (list) => {
        if (list.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
        for (const a of list) {
          const why = refusalOf(allow, hostname, a.address);
          if (why !== undefined) {
            // The tenant learns that the name is refused, not where it points inside the network.
            logger?.debug({ hostname, address: a.address, range: why }, 'outbound connection refused');
            return callback(new RefusedLookup(`${hostname} resolves to a non-public address`), '', 0);
          }
        }
        if (lookupOptions.all) return callback(null, list);
        callback(null, list[0]!.address, list[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };

  /** Without the guard: the system resolver, or the seam when a test gives one. */
  const openLookup: net.LookupFunction | undefined = options.resolve
    ? (hostname, lookupOptions, callback) => {
        resolve(hostname, lookupOptions).then(
          (list) => (lookupOptions.all ? callback(null, list) : callback(null, list[0]?.address ?? '', list[0]?.family)),
          (err: NodeJS.ErrnoException) => callback(err, '', 0),
        );
      }
    : undefined;

  const agentOptions = { keepAlive: true, maxSockets: 256 };
  const pools = {
    open: { http: new http.Agent({ ...agentOptions, lookup: openLookup }), https: new https.Agent({ ...agentOptions, lookup: openLookup }) },
    // The lookup lives on the agent, so every socket of this pool was opened through the guard.
    guarded: { http: new http.Agent({ ...agentOptions, lookup: guardedLookup }), https: new https.Agent({ ...agentOptions, lookup: guardedLookup }) },
  };

  const isOpen = (asked: boolean | undefined): boolean => policy.allowPrivateNetwork && asked !== false;

  /**
   * Decisions on IP literals, by URL host: a BlockList check costs ~1 µs and a literal takes two, on
   * every request of the hot path (the flow bench calls 127.0.0.1 thousands of times a second).
   */
  const literals = new Map<string, string | undefined>();

  /** The check DNS cannot do for IP-literal URLs, which net.connect dials without a lookup. */
  function refuseLiteral(url: URL): void {
    let why: string | undefined;
    if (literals.has(url.hostname)) {
      why = literals.get(url.hostname);
    } else {
      const host = normaliseHost(url.hostname);
      why = net.isIP(host) ? refusalOf(allow, host, host) : undefined;
      if (why !== undefined) why = `${host} is a non-public address (${why})`;
      if (literals.size >= LITERAL_CACHE_SIZE) literals.clear();
      literals.set(url.hostname, why);
    }
    if (why !== undefined) throw new AppError('DESTINATION_REFUSED', `${why}${hint}`, 'user');
  }

  async function request(req: OutboundRequest): Promise<OutboundResponse> {
    const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const maxBytes = req.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const maxRedirects = req.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
    const open = isOpen(req.allowPrivateNetwork);
    let url = parseUrl(req.url);
    let method = (req.method ?? 'GET').toUpperCase();
    if (FORBIDDEN_METHODS.has(method)) throw new AppError('BAD_REQUEST', `method ${method} is not allowed`, 'user');
    // No prototype: a header named `__proto__` (code steps choose the names) stays a header.
    const headers: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [k, v] of Object.entries(req.headers ?? {})) {
      const name = k.toLowerCase();
      if (!HUB_OWNED_HEADERS.has(name)) headers[name] = v;
    }
    let body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
    if (body && (method === 'GET' || method === 'HEAD')) body = undefined;
    let leftOrigin = false;

    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new AppError('BAD_REQUEST', `${url.protocol} is not http: or https:`, 'user');
      if (!open) refuseLiteral(url);
      const pool = open ? pools.open : pools.guarded;
      let res: Hop;
      try {
        res = await sendOnce(url, method, headers, body, url.protocol === 'https:' ? pool.https : pool.http, deadline, maxBytes);
      } catch (err) {
        throw describeFailure(err, method, url, timeoutMs);
      }
      const location = res.headers.location;
      if (maxRedirects === 0 || location === undefined || !REDIRECT_STATUSES.has(res.status)) {
        return { status: res.status, statusText: res.statusText, url: url.href, headers: res.headers, body: res.data, method };
      }
      if (hop >= maxRedirects) throw new AppError('UPSTREAM_FAILED', `${method} ${url.origin}${url.pathname}: more than ${maxRedirects} redirects`, 'user');
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new AppError('UPSTREAM_FAILED', `${method} ${url.origin}${url.pathname} redirected to an invalid URL`, 'user');
      }
      // Credentials belong to the origin they were given for; once dropped they stay dropped.
      if (next.origin !== url.origin) leftOrigin = true;
      if (leftOrigin) {
        for (const h of ORIGIN_BOUND_HEADERS) delete headers[h];
        for (const h of req.credentials?.headers ?? []) delete headers[h.toLowerCase()];
        for (const q of Object.keys(req.credentials?.query ?? {})) next.searchParams.delete(q);
      } else {
        for (const [q, v] of Object.entries(req.credentials?.query ?? {})) next.searchParams.set(q, v);
      }
      if (res.status === 303 ? method !== 'HEAD' : (res.status === 301 || res.status === 302) && method === 'POST') {
        method = 'GET';
        body = undefined;
        delete headers['content-type'];
      }
      url = next;
    }
  }

  const codeFetch: CodeFetch = async (req, opts) => {
    const res = await request({
      url: req.url,
      method: req.method,
      headers: req.headers,
      body: req.body,
      timeoutMs: Math.max(1, opts.deadlineMs - Date.now()),
      maxResponseBytes: opts.maxBytes,
      allowPrivateNetwork: opts.allowPrivateNetwork,
    });
    return { status: res.status, statusText: res.statusText, url: res.url, headers: res.headers, body: res.body.toString('utf8') };
  };

  return {
    policy,
    request,
    codeFetch,
    privateNetworkProblem(requested) {
      if (requested !== true || policy.allowPrivateNetwork) return undefined;
      return 'the operator does not allow steps to reach private networks (PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK=false); ask for the host to be added to PLEXUS_STEPS_ALLOWED_HOSTS instead';
    },
    close() {
      for (const p of [pools.open, pools.guarded]) {
        p.http.destroy();
        p.https.destroy();
      }
    },
  };
}

const hint = '; the operator can allow it through PLEXUS_STEPS_ALLOWED_HOSTS';

function parseUrl(raw: string | URL): URL {
  // Never changed here (each hop gets a URL of its own), so the caller's object is used as it is.
  if (raw instanceof URL) return raw;
  try {
    return new URL(raw);
  } catch {
    throw new AppError('BAD_REQUEST', `${JSON.stringify(raw.slice(0, 200))} is not a valid URL`, 'user');
  }
}

function describeFailure(err: unknown, method: string, url: URL, timeoutMs: number): AppError {
  if (err instanceof AppError) return err;
  const where = `${method} ${url.origin}${url.pathname}`;
  if (err instanceof TimedOut) return new AppError('TIMEOUT', `${where} timed out after ${timeoutMs} ms`, 'transient');
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EREFUSED_BY_POLICY') return new AppError('DESTINATION_REFUSED', `${e.message}${hint}`, 'user');
  // Node refuses bad header names or values, and bad methods, before anything is sent.
  if (e.code === 'ERR_INVALID_HTTP_TOKEN' || e.code === 'ERR_INVALID_CHAR' || e.code === 'ERR_HTTP_INVALID_HEADER_VALUE' || e.code === 'ERR_UNESCAPED_CHARACTERS') {
    return new AppError('BAD_REQUEST', `${where}: ${e.message}`, 'user');
  }
  return new AppError('UNAVAILABLE', `${where} failed: ${e.code ?? e.message}`, 'transient', undefined, { cause: err });
}

interface Hop {
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
function sendOnce(url: URL, method: string, headers: Record<string, string>, body: Buffer | undefined, agent: http.Agent, deadline: number, maxBytes: number): Promise<Hop> {
  return new Promise((resolve, reject) => {
    let req: http.ClientRequest;
    try {
      req = (url.protocol === 'https:' ? https : http).request(url, {
        method,
        headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
        agent,
      });
    } catch (err) {
      reject(err);
      return;
    }
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        req.destroy(new TimedOut());
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
        if (size > maxBytes) {
          // Settle first: destroying emits 'aborted', which would settle with a vaguer error.
          fail(new AppError('PAYLOAD_TOO_LARGE', `${method} ${url.origin}${url.pathname}: the response is larger than ${maxBytes} bytes`, 'user'));
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.once('error', fail);
      res.once('aborted', () => fail(timedOut ? new TimedOut() : new Error('the connection closed before the whole response arrived')));
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
