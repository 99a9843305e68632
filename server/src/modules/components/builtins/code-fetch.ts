/**
 * The hub side of a code step's `fetch`, until `platform/outbound` (the one guard for every
 * outbound call) provides it: one function, so it is swapped in one place. It reuses the
 * http-request step's guard — the address checked at connect time (no second DNS lookup, so no
 * rebinding window), literal addresses checked before connecting — and re-checks every redirect
 * hop the same way.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { StepError } from '../components.descriptor.js';
import type { CodeFetch } from '../components.sandbox.js';
import { guardedLookup, isNonPublicAddress } from './http-request.js';

const MAX_REDIRECTS = 5;
// Separate pools: a socket opened without the guard must never serve a guarded request.
const agents = {
  open: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) },
  guarded: { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) },
};

export const fetchForCode: CodeFetch = async (req, opts) => {
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    throw new StepError(`invalid URL ${JSON.stringify(req.url.slice(0, 200))}`, 'user');
  }
  let method = req.method;
  let body = req.body === undefined ? undefined : Buffer.from(req.body);
  const headers: Record<string, string> = { 'user-agent': 'Plexus', ...Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v])) };
  const pool = opts.allowPrivateNetwork ? agents.open : agents.guarded;
  for (let hop = 0; ; hop++) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new StepError(`${url.protocol} is not http: or https:`, 'user');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // Literal addresses never go through a lookup, so the connect-time guard would not see them.
    if (!opts.allowPrivateNetwork && net.isIP(host) && isNonPublicAddress(host)) throw new StepError(`${host} is a non-public address; set allowPrivateNetwork to reach it`, 'user');
    const answer = await new Promise<{ status: number; statusText: string; headers: Record<string, string>; data: Buffer }>((resolve, reject) => {
      const isHttps = url.protocol === 'https:';
      const request = (isHttps ? https : http).request(url, {
        method,
        headers: body ? { ...headers, 'content-length': String(body.length) } : headers,
        agent: isHttps ? pool.https : pool.http,
        ...(opts.allowPrivateNetwork ? {} : { lookup: guardedLookup }),
      });
      const timer = setTimeout(() => request.destroy(Object.assign(new Error(`timed out`), { code: 'ETIMEDOUT' })), Math.max(0, opts.deadlineMs - Date.now()));
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        reject(err);
      };
      request.once('error', fail);
      request.once('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > opts.maxBytes) {
            res.destroy();
            fail(new StepError(`response larger than ${opts.maxBytes} bytes`, 'user'));
          } else chunks.push(chunk);
        });
        res.once('error', fail);
        res.once('end', () => {
          clearTimeout(timer);
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
          resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', headers: out, data: Buffer.concat(chunks) });
        });
      });
      request.end(body);
    }).catch((err: unknown) => {
      if (err instanceof StepError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EPRIVATE') throw new StepError(e.message, 'user');
      // Node refuses a bad header name or value or method before sending: the code's mistake.
      if (e.code?.startsWith('ERR_INVALID')) throw new StepError(`${method} ${url.origin}${url.pathname}: ${e.message}`, 'user');
      throw new StepError(`${method} ${url.origin}${url.pathname} failed: ${e.code ?? e.message}`, 'transient');
    });
    const location = answer.headers.location;
    if (!location || ![301, 302, 303, 307, 308].includes(answer.status)) {
      return { status: answer.status, statusText: answer.statusText, url: url.href, headers: answer.headers, body: answer.data.toString('utf8') };
    }
    if (hop >= MAX_REDIRECTS) throw new StepError(`more than ${MAX_REDIRECTS} redirects`, 'user');
    const next = new URL(location, url);
    // Credentials belong to the origin they were given for.
    if (next.origin !== url.origin) {
      delete headers.authorization;
      delete headers.cookie;
    }
    if (answer.status === 303 || ((answer.status === 301 || answer.status === 302) && method === 'POST')) {
      method = 'GET';
      body = undefined;
      delete headers['content-type'];
    }
    url = next;
  }
};
