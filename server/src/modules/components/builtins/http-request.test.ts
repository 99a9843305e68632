/** http-request against real HTTP servers on loopback. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../platform/logger.js';
import { createOutbound } from '../../../platform/outbound/index.js';
import { StepError } from '../components.descriptor.js';
import { bodies, runOnce } from '../components.testing.js';
import { createHttpRequestComponent } from './http-request.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  base: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function serve(handler: (req: Seen, res: http.ServerResponse) => void): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

// The operator allows private networks (and nodes get them unless they say no).
const open = createHttpRequestComponent({ outbound: createOutbound({ allowPrivateNetwork: true, allowedHosts: [] }) }).fn('request');
// The default policy, nothing allow-listed.
const guarded = createHttpRequestComponent({ outbound: createOutbound({ allowPrivateNetwork: false, allowedHosts: [] }) }).fn('request');
// The default policy with the loopback test servers allow-listed: how the suite reaches its sinks.
const allowed = createHttpRequestComponent({ outbound: createOutbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.1'] }) }).fn('request');

let api: TestServer;
let other: TestServer;

beforeAll(async () => {
  api = await serve((req, res) => {
    const url = new URL(req.url, 'http://x');
    switch (url.pathname) {
      case '/json':
        res.writeHead(200, { 'content-type': 'application/json', 'x-total': '2' }).end(JSON.stringify({ items: [1, 2], query: Object.fromEntries(url.searchParams) }));
        return;
      case '/text':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
        return;
      case '/busy':
        res.writeHead(503, { 'retry-after': '2' }).end('try later');
        return;
      case '/limited':
        res.writeHead(429, { 'retry-after': '1' }).end();
        return;
      case '/missing':
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no such order"}');
        return;
      case '/slow':
        setTimeout(() => res.writeHead(200).end('late'), 500);
        return;
      case '/slow-body':
        res.writeHead(200, { 'content-type': 'text/plain' }).write('first part, ');
        setTimeout(() => res.end('late part'), 2_000);
        return;
      case '/cut':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' }).write('only a part');
        setTimeout(() => res.destroy(), 20);
        return;
      case '/moved':
        res.writeHead(302, { location: '/json?moved=1' }).end();
        return;
      case '/away':
        res.writeHead(307, { location: `${other.base}/landing` }).end();
        return;
      case '/away-with-query':
        // A careless server that repeats the request's query string in its Location.
        res.writeHead(302, { location: `${other.base}/landing?${url.searchParams.toString()}` }).end();
        return;
      case '/to-metadata':
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
        return;
      case '/cursor':
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ next: Number(url.searchParams.get('since') ?? 0) + 10 }));
        return;
      default:
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ echo: req.body, type: req.headers['content-type'] ?? null }));
    }
  });
  other = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('landed'));
});

afterAll(async () => {
  await api.close();
  await other.close();
});

describe('http-request/request', () => {
  it('GETs with templated URL, query and headers, sends the idempotency key, emits {status, headers, body}', async () => {
    const out = await runOnce(
      open,
      { url: `${api.base}/{{ path }}`, query: { customer: '{{ customer.id }}', fixed: 'yes' }, headers: { 'X-Trace': 'order-{{ order }}' } },
      { path: 'json', customer: { id: 'c 1' }, order: 7 },
      { idempotencyKey: 'e1:n1:0.1' },
    );
    const [response] = bodies(out) as Array<{ status: number; headers: Record<string, string>; body: unknown }>;
    expect(response!.status).toBe(200);
    expect(response!.headers['x-total']).toBe('2');
    expect(response!.body).toEqual({ items: [1, 2], query: { customer: 'c 1', fixed: 'yes' } });
    const req = api.seen.at(-1)!;
    expect(req.method).toBe('GET');
    expect(req.headers['x-trace']).toBe('order-7');
    expect(req.headers['idempotency-key']).toBe('e1:n1:0.1');
  });

  it('POSTs the message body as JSON by default, or the result of `body`, as JSON, form or text', async () => {
    await runOnce(open, { method: 'POST', url: `${api.base}/echo` }, { a: 1 });
    expect(api.seen.at(-1)!).toMatchObject({ method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    await runOnce(open, { method: 'PUT', url: `${api.base}/echo`, body: '{"total": a * 2}' }, { a: 21 });
    expect(api.seen.at(-1)!.body).toBe('{"total":42}');
    await runOnce(open, { method: 'POST', url: `${api.base}/echo`, bodyType: 'form' }, { a: 1, b: 'x y' });
    expect(api.seen.at(-1)!).toMatchObject({ body: 'a=1&b=x+y', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    await runOnce(open, { method: 'POST', url: `${api.base}/echo`, bodyType: 'text', body: 'note' }, { note: 'plain words' });
    expect(api.seen.at(-1)!).toMatchObject({ body: 'plain words', headers: { 'content-type': 'text/plain; charset=utf-8' } });
  });

  it('authenticates with basic, apiKey (header or query) and oauth2 credentials', async () => {
    await runOnce(open, { url: `${api.base}/json` }, {}, { credentials: { username: 'ada', password: 's3cret' }, credentialsType: 'basic' });
    expect(api.seen.at(-1)!.headers.authorization).toBe(`Basic ${Buffer.from('ada:s3cret').toString('base64')}`);
    await runOnce(open, { url: `${api.base}/json` }, {}, { credentials: { key: 'k-123', headerName: 'X-Api-Key' }, credentialsType: 'apiKey' });
    expect(api.seen.at(-1)!.headers['x-api-key']).toBe('k-123');
    await runOnce(open, { url: `${api.base}/json` }, {}, { credentials: { key: 'k-456', in: 'query', name: 'token' }, credentialsType: 'apiKey' });
    expect(api.seen.at(-1)!.url).toContain('token=k-456');
    await runOnce(open, { url: `${api.base}/json` }, {}, { credentials: { accessToken: 'at-789', clientId: 'c' }, credentialsType: 'oauth2' });
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer at-789');
    await runOnce(open, { url: `${api.base}/json` }, {}, { credentials: { access_token: 'at-mixed' }, credentialsType: 'mixed' });
    expect(api.seen.at(-1)!.headers.authorization).toBe('Bearer at-mixed');
  });

  it('fails transiently on 503 and 429 with the Retry-After delay, and as a user error on other 4xx', async () => {
    const busy = (await runOnce(open, { url: `${api.base}/busy` }, {}).catch((e: unknown) => e)) as StepError;
    expect(busy).toBeInstanceOf(StepError);
    expect(busy.kind).toBe('transient');
    expect(busy.retryAfterMs).toBe(2_000);
    expect(busy.message).toContain('503');
    const limited = (await runOnce(open, { url: `${api.base}/limited` }, {}).catch((e: unknown) => e)) as StepError;
    expect([limited.kind, limited.retryAfterMs]).toEqual(['transient', 1_000]);
    const missing = (await runOnce(open, { url: `${api.base}/missing` }, {}).catch((e: unknown) => e)) as StepError;
    expect(missing.kind).toBe('user');
    expect(missing.message).toContain('404');
    expect(missing.message).toContain('no such order');
  });

  it('emits an error answer like any other when failOnHttpError is false', async () => {
    const out = await runOnce(open, { url: `${api.base}/missing`, failOnHttpError: false }, {});
    expect(bodies(out)).toEqual([expect.objectContaining({ status: 404, body: { error: 'no such order' } })]);
  });

  it('fails transiently on a timeout and on a refused connection', async () => {
    const slow = (await runOnce(open, { url: `${api.base}/slow`, timeoutMs: 100 }, {}).catch((e: unknown) => e)) as StepError;
    expect([slow.kind, /timed out after 100 ms/.test(slow.message)]).toEqual(['transient', true]);
    // The time limit covers the whole response, not only its headers.
    const started = Date.now();
    const slowBody = (await runOnce(open, { url: `${api.base}/slow-body`, timeoutMs: 100 }, {}).catch((e: unknown) => e)) as StepError;
    expect([slowBody.kind, /timed out after 100 ms/.test(slowBody.message)]).toEqual(['transient', true]);
    expect(Date.now() - started).toBeLessThan(1_500);
    const cut = (await runOnce(open, { url: `${api.base}/cut` }, {}).catch((e: unknown) => e)) as StepError;
    expect(cut.kind).toBe('transient');
    expect(cut.message).toMatch(/GET http:\/\/127\.0\.0\.1:\d+\/cut failed/);
    const closed = await serve(() => {});
    await closed.close();
    const refused = (await runOnce(open, { url: `${closed.base}/x` }, {}).catch((e: unknown) => e)) as StepError;
    expect(refused.kind).toBe('transient');
    expect(refused.message).toContain('ECONNREFUSED');
  });

  it('refuses loopback and private addresses under the default policy, by literal and by name', async () => {
    for (const url of [`${api.base}/json`, `http://localhost:${new URL(api.base).port}/json`, 'http://[::1]:9/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest/meta-data']) {
      const before = api.seen.length;
      const err = (await runOnce(guarded, { url }, {}).catch((e: unknown) => e)) as StepError;
      expect(err, url).toBeInstanceOf(StepError);
      expect(err.kind, url).toBe('user');
      expect(err.message, url).toMatch(/non-public address/);
      expect(api.seen.length).toBe(before);
    }
    // A node may opt out where the operator allows private networks...
    await expect(runOnce(open, { url: `${api.base}/text`, allowPrivateNetwork: false }, {})).rejects.toThrow(/non-public/);
    // ...but never opt in where the operator does not: refused before anything is sent.
    const before = api.seen.length;
    await expect(runOnce(guarded, { url: `${api.base}/text`, allowPrivateNetwork: true }, {})).rejects.toThrow(/^fields\.allowPrivateNetwork: the operator does not allow/);
    expect(api.seen.length).toBe(before);
    // An allow-listed address is reached under the default policy.
    expect(bodies(await runOnce(allowed, { url: `${api.base}/text` }, {}))).toEqual([expect.objectContaining({ body: 'hello' })]);
  });

  it('tells the flows module at save time that the operator forbids allowPrivateNetwork: true', () => {
    expect(guarded!.checkPolicy?.({ url: 'http://x', allowPrivateNetwork: true })).toMatch(/^fields\.allowPrivateNetwork: the operator does not allow steps to reach private networks/);
    expect(guarded!.checkPolicy?.({ url: 'http://x', allowPrivateNetwork: false })).toBeUndefined();
    expect(guarded!.checkPolicy?.({ url: 'http://x' })).toBeUndefined();
    expect(open!.checkPolicy?.({ url: 'http://x', allowPrivateNetwork: true })).toBeUndefined();
  });

  it('follows redirects, re-checking each hop: an allowed host that redirects to a refused one is refused', async () => {
    const moved = await runOnce(allowed, { url: `${api.base}/moved` }, {});
    expect((bodies(moved)[0] as { body: { query: unknown } }).body.query).toEqual({ moved: '1' });
    const err = (await runOnce(allowed, { url: `${api.base}/to-metadata` }, {}).catch((e: unknown) => e)) as StepError;
    expect([err.kind, err.message]).toEqual(['user', expect.stringMatching(/169\.254\.169\.254 is a non-public address \(link-local/)]);
    // followRedirects: false hands the 3xx over as it is.
    expect(bodies(await runOnce(allowed, { url: `${api.base}/to-metadata`, followRedirects: false, failOnHttpError: false }, {}))).toEqual([expect.objectContaining({ status: 302 })]);
  });

  describe('credentials never follow a redirect to another origin', () => {
    // `other` listens on another port of 127.0.0.1: another origin, reachable through the allow-list.
    const cases: Array<{ name: string; credentials?: Record<string, unknown>; credentialsType?: string; headers?: Record<string, string>; header?: string; query?: string }> = [
      { name: 'Authorization (basic)', credentials: { username: 'u', password: 'p' }, credentialsType: 'basic', header: 'authorization' },
      { name: 'Authorization (oauth2 bearer)', credentials: { access_token: 'at-1' }, credentialsType: 'oauth2', header: 'authorization' },
      { name: 'Proxy-Authorization', headers: { 'Proxy-Authorization': 'Basic cHJveHk6cHc=' }, header: 'proxy-authorization' },
      { name: 'Cookie', headers: { Cookie: 'session=s3cret' }, header: 'cookie' },
      { name: 'the apiKey header, whatever its name', credentials: { apiKey: 'k-secret', headerName: 'X-Partner-Key' }, credentialsType: 'apiKey', header: 'x-partner-key' },
      { name: 'the apiKey query parameter', credentials: { apiKey: 'k-secret', in: 'query', name: 'partner_key' }, credentialsType: 'apiKey', query: 'partner_key' },
    ];
    for (const c of cases) {
      it(`drops ${c.name} across origins and keeps it on the same origin`, async () => {
        const extra = c.credentials ? { credentials: c.credentials, credentialsType: c.credentialsType } : {};
        const fields = { headers: c.headers ?? {} };
        // Same origin: /moved → /json on api.
        await runOnce(allowed, { url: `${api.base}/moved`, ...fields }, {}, extra);
        const same = api.seen.at(-1)!;
        expect(same.url).toMatch(/^\/json\?/);
        if (c.header) expect(same.headers[c.header], 'same origin keeps it').toBeDefined();
        if (c.query) expect(new URL(same.url, 'http://x').searchParams.get(c.query), 'same origin keeps it').toBe('k-secret');
        // Another origin: /away → other/landing, and /echo-away whose Location repeats the query.
        for (const path of ['/away', '/away-with-query']) {
          await runOnce(allowed, { url: `${api.base}${path}`, ...fields }, {}, extra);
          const first = api.seen.at(-1)!;
          if (c.header) expect(first.headers[c.header], 'the first hop had it').toBeDefined();
          const landed = other.seen.at(-1)!;
          if (c.header) expect(landed.headers[c.header], `${path}: another origin must not get it`).toBeUndefined();
          expect(landed.url, `${path}: another origin must not get it`).not.toContain('k-secret');
          expect(JSON.stringify(landed.headers)).not.toMatch(/s3cret|k-secret|at-1|cHJveHk6cHc=|dTpw/);
        }
      });
    }
  });

  it('keeps a polling cursor: `snapshot` saves state, `$snapshot` reads it on the next run', async () => {
    const fields = { url: `${api.base}/cursor`, query: { since: '{{ $snapshot.next ? $snapshot.next : 0 }}' }, snapshot: '{"next": body.next}' };
    const step = await open!.prepare(fields, { logger: createLogger('silent') });
    expect(step.usesSnapshot).toBe(true);
    const first = await runOnce(open, fields, {});
    expect(first.snapshot).toEqual({ value: { next: 10 } });
    const second = await runOnce(open, fields, {}, { snapshot: { next: 10 } });
    expect(api.seen.at(-1)!.url).toBe('/cursor?since=10');
    expect(second.snapshot).toEqual({ value: { next: 20 } });
  });

  it('refuses bad fields when prepared, naming them', async () => {
    await expect(open!.prepare({ url: 'x', method: 'FETCH' }, { logger: createLogger('silent') })).rejects.toThrow(/fields\.method/);
    await expect(open!.prepare({}, { logger: createLogger('silent') })).rejects.toThrow(/fields\.url/);
    await expect(open!.prepare({ url: 'http://x/{{ ( }}' }, { logger: createLogger('silent') })).rejects.toThrow(/fields\.url: invalid JSONata/);
    const notUrl = (await runOnce(open, { url: '{{ target }}' }, { target: 'not a url' }).catch((e: unknown) => e)) as StepError;
    expect([notUrl.kind, notUrl.message]).toEqual(['user', 'fields.url: "not a url" is not a valid URL']);
    const ftp = (await runOnce(open, { url: 'ftp://example.com/x' }, {}).catch((e: unknown) => e)) as StepError;
    expect(ftp.message).toMatch(/ftp: is not http/);
  });
});
