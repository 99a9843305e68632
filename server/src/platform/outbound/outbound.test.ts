/** The outbound guard against real HTTP servers on loopback, with a resolver seam for DNS tricks. */
import type dns from 'node:dns';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { createOutbound, type Outbound, type ResolveAll } from './index.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Server {
  port: number;
  base: string;
  seen: Seen[];
  close(): Promise<void>;
}

async function serve(handler: (req: Seen, res: http.ServerResponse, self: Server) => void, host = '127.0.0.1', port = 0): Promise<Server> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body };
      seen.push(s);
      handler(s, res, self);
    });
  });
  await new Promise<void>((r) => server.listen(port, host, () => r()));
  const bound = (server.address() as AddressInfo).port;
  const self: Server = {
    port: bound,
    base: `http://${host}:${bound}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return self;
}

/** A resolver that answers from a table, counting calls per name; a name may answer differently each time. */
function fakeDns(table: Record<string, string[][]>): { resolve: ResolveAll; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const resolve: ResolveAll = async (hostname) => {
    // As a real resolver would: case and a trailing dot do not matter.
    const name = hostname.toLowerCase().replace(/\.$/, '');
    const n = (calls[name] = (calls[name] ?? 0) + 1);
    const answers = table[name];
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    const list = answers[Math.min(n, answers.length) - 1]!;
    return list.map((address): dns.LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, calls };
}

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}

let sink: Server;
let other: Server;
const outbounds: Outbound[] = [];
function outbound(...args: Parameters<typeof createOutbound>): Outbound {
  const o = createOutbound(...args);
  outbounds.push(o);
  return o;
}

beforeAll(async () => {
  sink = await serve((req, res, self) => {
    const url = new URL(req.url, 'http://x');
    switch (url.pathname) {
      case '/to': {
        const target = url.searchParams.get('target')!;
        res.writeHead(Number(url.searchParams.get('status') ?? 302), { location: target }).end();
        return;
      }
      case '/loop':
        res.writeHead(302, { location: `${self.base}/loop` }).end();
        return;
      case '/big':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('x'.repeat(64 * 1024));
        return;
      case '/slow':
        setTimeout(() => res.writeHead(200).end('late'), 2_000);
        return;
      default:
        res.writeHead(200, { 'content-type': 'application/json', 'x-answer': 'yes' }).end(JSON.stringify({ path: req.url, method: req.method, body: req.body }));
    }
  });
  other = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('landed'));
});

afterAll(async () => {
  for (const o of outbounds) o.close();
  await sink.close();
  await other.close();
});

describe('the default policy refuses every special-purpose range', () => {
  const guarded = (): Outbound => outbound({ allowPrivateNetwork: false, allowedHosts: [] });

  // One sample per block of the IANA registries (and multicast, and IPv6 outside 2000::/3), plus
  // the spellings of loopback a URL parser turns into 127.0.0.1.
  const samples = [
    'http://0.0.0.0/',
    'http://0.1.2.3/',
    'http://10.0.0.1/',
    'http://100.64.0.1/',
    'http://127.0.0.1/',
    'http://127.255.255.254/',
    'http://169.254.169.254/latest/meta-data/',
    'http://172.16.0.1/',
    'http://172.31.255.255/',
    'http://192.0.0.8/',
    'http://192.0.2.1/',
    'http://192.31.196.1/',
    'http://192.52.193.1/',
    'http://192.88.99.1/',
    'http://192.168.1.1/',
    'http://192.175.48.1/',
    'http://198.18.0.1/',
    'http://198.19.255.255/',
    'http://198.51.100.1/',
    'http://203.0.113.1/',
    'http://224.0.0.1/',
    'http://239.255.255.250/',
    'http://240.0.0.1/',
    'http://255.255.255.255/',
    // decimal, octal, hexadecimal and short forms of 127.0.0.1
    'http://2130706433/',
    'http://0177.0.0.1/',
    'http://0x7f.0.0.1/',
    'http://0x7f000001/',
    'http://127.1/',
    'https://017700000001/',
    'http://127.0.0.1./',
    'http://%31%32%37.0.0.1/',
    'http://0/',
    // IPv6
    'http://[::]/',
    'http://[::1]/',
    'http://[0:0:0:0:0:0:0:1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:169.254.169.254]/',
    'http://[::ffff:8.8.8.8]/',
    'http://[::127.0.0.1]/',
    'http://[64:ff9b::a00:1]/',
    'http://[64:ff9b::8.8.8.8]/',
    'http://[64:ff9b:1::1]/',
    'http://[100::1]/',
    'http://[100:0:0:1::1]/',
    'http://[2001::1]/',
    'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/',
    'http://[2001:2::1]/',
    'http://[2001:10::1]/',
    'http://[2001:1ff:ffff::1]/',
    'http://[2001:db8::1]/',
    'http://[2002:7f00:1::1]/',
    'http://[2620:4f:8000::1]/',
    'http://[3fff::1]/',
    'http://[5f00::1]/',
    'http://[fc00::1]/',
    'http://[fd12:3456::1]/',
    'http://[fe80::1]/',
    'http://[fec0::1]/',
    'http://[ff02::1]/',
    'http://[4000::1]/',
  ];

  it.each(samples)('%s', async (url) => {
    const before = sink.seen.length;
    const err = await refusal(guarded().request({ url }));
    expect([err.code, err.kind]).toEqual(['DESTINATION_REFUSED', 'user']);
    expect(err.message).toMatch(/is a non-public address \(/);
    expect(sink.seen.length).toBe(before);
  });

  it('names the block in the error, and lets public addresses through the check', async () => {
    expect((await refusal(guarded().request({ url: 'http://169.254.169.254/' }))).message).toContain('link-local, incl. cloud metadata');
    expect((await refusal(guarded().request({ url: 'http://[::ffff:127.0.0.1]/' }))).message).toContain('IPv4-mapped');
    expect((await refusal(guarded().request({ url: 'http://2130706433/' }))).message).toContain('127.0.0.1 is a non-public address (loopback');
    const { nonPublicRangeOf } = await import('./index.js');
    for (const publicAddress of ['8.8.8.8', '1.1.1.1', '192.0.1.1', '100.63.255.255', '2606:4700:4700::1111', '2001:200::1', '2a00:1450::1']) {
      expect(nonPublicRangeOf(publicAddress), publicAddress).toBeUndefined();
    }
  });

  it('refuses names that resolve to a non-public address at connect time, without saying where they point', async () => {
    const dns = fakeDns({ 'metadata.test': [['169.254.169.254']], 'mixed.test': [['8.8.8.8', '10.0.0.7']], 'v6.test': [['fd00::5']] });
    const o = outbound({ allowPrivateNetwork: false, allowedHosts: [] }, { resolve: dns.resolve });
    for (const host of ['metadata.test', 'mixed.test', 'v6.test']) {
      const err = await refusal(o.request({ url: `http://${host}/` }));
      expect([err.code, err.kind]).toEqual(['DESTINATION_REFUSED', 'user']);
      expect(err.message).toBe(`${host} resolves to a non-public address; the operator can allow it through PLEXUS_STEPS_ALLOWED_HOSTS`);
    }
  });

  it('refuses other schemes, bad URLs and CONNECT/TRACE as user errors', async () => {
    const o = guarded();
    expect((await refusal(o.request({ url: 'file:///etc/passwd' }))).message).toBe('file: is not http: or https:');
    expect((await refusal(o.request({ url: 'gopher://127.0.0.1:70/' }))).kind).toBe('user');
    expect((await refusal(o.request({ url: 'not a url' }))).code).toBe('BAD_REQUEST');
    expect((await refusal(o.request({ url: 'http://8.8.8.8/', method: 'CONNECT' }))).code).toBe('BAD_REQUEST');
  });
});

describe('the allow-list', () => {
  it('lets the operator name a host, a wildcard suffix, an IP address or a CIDR', async () => {
    const dns = fakeDns({ 'billing.internal': [['127.0.0.1']], 'orders.svc.test': [['127.0.0.1']], 'svc.test': [['127.0.0.1']], 'other.internal': [['127.0.0.1']] });
    const byName = outbound({ allowPrivateNetwork: false, allowedHosts: ['billing.internal', '*.svc.test'] }, { resolve: dns.resolve });
    expect((await byName.request({ url: `http://billing.internal:${sink.port}/a` })).status).toBe(200);
    expect((await byName.request({ url: `http://BILLING.internal.:${sink.port}/a` })).status).toBe(200);
    expect((await byName.request({ url: `http://orders.svc.test:${sink.port}/a` })).status).toBe(200);
    // The wildcard covers names below it, not the name itself; other names stay refused.
    expect((await refusal(byName.request({ url: `http://svc.test:${sink.port}/a` }))).code).toBe('DESTINATION_REFUSED');
    expect((await refusal(byName.request({ url: `http://other.internal:${sink.port}/a` }))).code).toBe('DESTINATION_REFUSED');
    // A name is not its address.
    expect((await refusal(byName.request({ url: `${sink.base}/a` }))).code).toBe('DESTINATION_REFUSED');

    const byIp = outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.1'] }, { resolve: dns.resolve });
    expect((await byIp.request({ url: `${sink.base}/a` })).status).toBe(200);
    expect((await byIp.request({ url: `http://other.internal:${sink.port}/a` })).status).toBe(200);
    expect((await refusal(byIp.request({ url: `http://127.0.0.2:${sink.port}/a` }))).code).toBe('DESTINATION_REFUSED');

    const byCidr = outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.0/30'] });
    expect((await byCidr.request({ url: `${sink.base}/a` })).status).toBe(200);
    expect((await refusal(byCidr.request({ url: `http://127.0.0.9:${sink.port}/a` }))).code).toBe('DESTINATION_REFUSED');
    expect((await refusal(byCidr.request({ url: 'http://169.254.169.254/' }))).code).toBe('DESTINATION_REFUSED');
  });

  it('parses PLEXUS_STEPS_ALLOWED_HOSTS, naming a bad entry', async () => {
    const { parseAllowedHosts } = await import('./index.js');
    expect(parseAllowedHosts(' billing.internal, *.svc.cluster.local ,10.0.0.5,10.20.0.0/16, fd00::/8,[fd00::1], Ünïcode.example, 2130706433')).toEqual({
      entries: ['billing.internal', '*.svc.cluster.local', '10.0.0.5', '10.20.0.0/16', 'fd00::/8', 'fd00::1', new URL('http://ünïcode.example/').hostname, '127.0.0.1'],
    });
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'host:8080', 'http://x/', 'a b', '*.10.0.0.1', '10.0.0.0/8/1', 'x/8']) {
      expect(parseAllowedHosts(bad), bad).toEqual({ problem: expect.stringContaining(JSON.stringify(bad)) });
    }
  });
});

describe('DNS rebinding', () => {
  // Two servers on one port: 127.0.0.2 stands for the public address the guard checks (allowed),
  // 127.0.0.1 for the internal one a second lookup would hand a vulnerable client.
  let checked: Server;
  let internal: Server;
  beforeAll(async () => {
    checked = await serve((_req, res) => res.writeHead(200).end('checked'), '127.0.0.2');
    internal = await serve((_req, res) => res.writeHead(200).end('internal'), '127.0.0.1', checked.port);
  });
  afterAll(async () => {
    await checked.close();
    await internal.close();
  });

  it('connects to the address it checked: a name answering allowed, then internal, reaches the allowed one', async () => {
    const dns = fakeDns({ 'rebind.test': [['127.0.0.2'], ['127.0.0.1']] });
    const o = outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.2'] }, { resolve: dns.resolve });
    const res = await o.request({ url: `http://rebind.test:${checked.port}/x` });
    expect(res.body.toString()).toBe('checked');
    expect(dns.calls['rebind.test']).toBe(1);
    expect(internal.seen).toEqual([]);
    // The code step's fetch is the same request function.
    const fetched = await o.codeFetch({ url: `http://rebind.test:${checked.port}/y`, method: 'GET', headers: {} }, { tenant: 't1', allowPrivateNetwork: false, deadlineMs: Date.now() + 5_000, maxBytes: 1_000 });
    expect(fetched.body).toBe('checked');
    expect(internal.seen).toEqual([]);
  });

  it('refuses at connect when the lookup it connects with answers internal', async () => {
    const dns = fakeDns({ 'rebind2.test': [['127.0.0.1'], ['127.0.0.2']], 'rebind3.test': [['127.0.0.1'], ['127.0.0.2']] });
    const o = outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.2'] }, { resolve: dns.resolve });
    expect((await refusal(o.request({ url: `http://rebind2.test:${checked.port}/x` }))).code).toBe('DESTINATION_REFUSED');
    expect((await refusal(o.codeFetch({ url: `http://rebind3.test:${checked.port}/x`, method: 'GET', headers: {} }, { tenant: 't1', allowPrivateNetwork: false, deadlineMs: Date.now() + 5_000, maxBytes: 1_000 }))).code).toBe('DESTINATION_REFUSED');
    expect(internal.seen).toEqual([]);
  });
});

describe('pools', () => {
  it('never lets a socket opened without the guard carry a guarded request', async () => {
    const dns = fakeDns({ 'pooled.test': [['127.0.0.1']] });
    const o = outbound({ allowPrivateNetwork: true, allowedHosts: [] }, { resolve: dns.resolve });
    const before = sink.seen.length;
    // Unguarded: the operator allows private networks and the caller asks (by default).
    expect((await o.request({ url: `http://pooled.test:${sink.port}/open` })).status).toBe(200);
    // Guarded, same host and port: the open pool's idle keep-alive socket must not serve it.
    expect((await refusal(o.request({ url: `http://pooled.test:${sink.port}/guarded`, allowPrivateNetwork: false }))).code).toBe('DESTINATION_REFUSED');
    expect(sink.seen.slice(before).map((s) => s.url)).toEqual(['/open']);
  });
});

describe('redirects', () => {
  const allowed = (): Outbound => outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.1'] });

  it('re-checks every hop: an allowed host redirecting to a refused one is refused', async () => {
    for (const target of ['http://169.254.169.254/latest/meta-data/', 'http://[::1]:9/', 'http://10.0.0.1/', `http://127.0.0.2:${sink.port}/`]) {
      for (const status of [301, 302, 303, 307, 308]) {
        const err = await refusal(allowed().request({ url: `${sink.base}/to?status=${status}&target=${encodeURIComponent(target)}` }));
        expect([err.code, err.kind], `${status} → ${target}`).toEqual(['DESTINATION_REFUSED', 'user']);
      }
    }
    const dns = fakeDns({ 'internal.test': [['10.1.1.1']] });
    const o = outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.1'] }, { resolve: dns.resolve });
    expect((await refusal(o.request({ url: `${sink.base}/to?target=${encodeURIComponent('http://internal.test/')}` }))).code).toBe('DESTINATION_REFUSED');
  });

  it('follows up to the hop limit, and hands a 3xx over as it is with maxRedirects 0', async () => {
    const err = await refusal(allowed().request({ url: `${sink.base}/loop` }));
    expect([err.code, err.kind, err.message]).toEqual(['UPSTREAM_FAILED', 'user', expect.stringContaining('more than 5 redirects')]);
    const res = await allowed().request({ url: `${sink.base}/loop`, maxRedirects: 0 });
    expect(res.status).toBe(302);
    const followed = await allowed().request({ url: `${sink.base}/to?status=303&target=/done`, method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expect([followed.status, followed.method, new URL(followed.url).pathname]).toEqual([200, 'GET', '/done']);
    expect(sink.seen.at(-1)).toMatchObject({ method: 'GET', body: '' });
  });

  it('drops Authorization, Proxy-Authorization, Cookie and named credentials across origins, keeps them within one', async () => {
    const headers = { Authorization: 'Bearer t0ken', 'Proxy-Authorization': 'Basic cHJveHk=', Cookie: 'sid=c00kie', 'X-Partner-Key': 'k3y', 'X-Trace': 'keep-me' };
    const credentials = { headers: ['x-partner-key'], query: { partner_key: 'qk3y' } };
    const o = allowed();
    await o.request({ url: `${sink.base}/to?target=/same&partner_key=qk3y`, headers, credentials });
    expect(sink.seen.at(-1)!.url).toBe('/same?partner_key=qk3y');
    expect(sink.seen.at(-1)!.headers).toMatchObject({ authorization: 'Bearer t0ken', 'proxy-authorization': 'Basic cHJveHk=', cookie: 'sid=c00kie', 'x-partner-key': 'k3y' });

    // The Location repeats the key; the other origin must get neither it nor the headers.
    const away = `${other.base}/landing?partner_key=qk3y&keep=1`;
    const res = await o.request({ url: `${sink.base}/to?target=${encodeURIComponent(away)}&partner_key=qk3y`, headers, credentials });
    expect(res.body.toString()).toBe('landed');
    const landed = other.seen.at(-1)!;
    expect(landed.url).toBe('/landing?keep=1');
    expect(landed.headers).not.toHaveProperty('authorization');
    expect(landed.headers).not.toHaveProperty('proxy-authorization');
    expect(landed.headers).not.toHaveProperty('cookie');
    expect(landed.headers).not.toHaveProperty('x-partner-key');
    expect(landed.headers['x-trace']).toBe('keep-me');
    expect(landed.headers.host).toBe(`127.0.0.1:${other.port}`);

    // The code step's fetch: the standard credential headers go too.
    await o.codeFetch({ url: `${sink.base}/to?target=${encodeURIComponent(`${other.base}/from-code`)}`, method: 'GET', headers: { authorization: 'Bearer t0ken', cookie: 'sid=c00kie' } }, { tenant: 't1', allowPrivateNetwork: false, deadlineMs: Date.now() + 5_000, maxBytes: 10_000 });
    expect(other.seen.at(-1)!.url).toBe('/from-code');
    expect(other.seen.at(-1)!.headers).not.toHaveProperty('authorization');
    expect(other.seen.at(-1)!.headers).not.toHaveProperty('cookie');
  });
});

describe('limits and hygiene', () => {
  const allowed = (): Outbound => outbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.1'] });

  it('stops a response over the size limit and a call over its time limit', async () => {
    const big = await refusal(allowed().request({ url: `${sink.base}/big`, maxResponseBytes: 1_000 }));
    expect([big.code, big.kind, big.message]).toEqual(['PAYLOAD_TOO_LARGE', 'user', expect.stringContaining('larger than 1000 bytes')]);
    const slow = await refusal(allowed().request({ url: `${sink.base}/slow`, timeoutMs: 100 }));
    expect([slow.code, slow.kind, slow.message]).toEqual(['TIMEOUT', 'transient', expect.stringMatching(/\/slow timed out after 100 ms$/)]);
    const code = await refusal(allowed().codeFetch({ url: `${sink.base}/slow`, method: 'GET', headers: {} }, { tenant: 't1', allowPrivateNetwork: false, deadlineMs: Date.now() + 100, maxBytes: 1_000 }));
    expect([code.code, code.kind]).toEqual(['TIMEOUT', 'transient']);
  });

  it('answers a code fetch with status, headers, final URL and text', async () => {
    const res = await allowed().codeFetch({ url: `${sink.base}/to?status=307&target=/echo`, method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' }, { tenant: 't1', allowPrivateNetwork: false, deadlineMs: Date.now() + 5_000, maxBytes: 10_000 });
    expect(res).toEqual({ status: 200, statusText: 'OK', url: `${sink.base}/echo`, headers: expect.objectContaining({ 'x-answer': 'yes' }), body: JSON.stringify({ path: '/echo', method: 'POST', body: 'hi' }) });
  });

  it('keeps framing to itself and turns bad headers into user errors', async () => {
    const o = allowed();
    await o.request({ url: `${sink.base}/frame`, method: 'POST', body: 'abc', headers: { 'Content-Length': '1', 'Transfer-Encoding': 'chunked', Connection: 'close' } });
    expect(sink.seen.at(-1)).toMatchObject({ body: 'abc', headers: { 'content-length': '3' } });
    expect(sink.seen.at(-1)!.headers).not.toHaveProperty('transfer-encoding');
    for (const headers of [{ 'bad name': 'x' }, { ok: 'line\r\nInjected: yes' }] as Array<Record<string, string>>) {
      const err = await refusal(o.codeFetch({ url: `${sink.base}/h`, method: 'GET', headers }, { tenant: 't1', allowPrivateNetwork: false, deadlineMs: Date.now() + 5_000, maxBytes: 1_000 }));
      expect([err.code, err.kind]).toEqual(['BAD_REQUEST', 'user']);
    }
  });

  it('reports a refused connection as transient', async () => {
    const closed = await serve(() => {});
    await closed.close();
    const err = await refusal(allowed().request({ url: `${closed.base}/x` }));
    expect([err.code, err.kind, err.message]).toEqual(['UNAVAILABLE', 'transient', expect.stringContaining('ECONNREFUSED')]);
  });
});

describe('the ceiling', () => {
  it('refuses a step asking for private networks when the operator forbids them, and grants it otherwise', async () => {
    const forbidden = outbound({ allowPrivateNetwork: false, allowedHosts: [] });
    expect(forbidden.privateNetworkProblem(true)).toMatch(/operator does not allow steps to reach private networks/);
    expect(forbidden.privateNetworkProblem(false)).toBeUndefined();
    expect(forbidden.privateNetworkProblem(undefined)).toBeUndefined();
    // Even a caller that skips the save-time check cannot widen the policy.
    expect((await refusal(forbidden.request({ url: `${sink.base}/x`, allowPrivateNetwork: true }))).code).toBe('DESTINATION_REFUSED');
    expect((await refusal(forbidden.codeFetch({ url: `${sink.base}/x`, method: 'GET', headers: {} }, { tenant: 't1', allowPrivateNetwork: true, deadlineMs: Date.now() + 5_000, maxBytes: 1_000 }))).code).toBe('DESTINATION_REFUSED');
    const permitted = outbound({ allowPrivateNetwork: true, allowedHosts: [] });
    expect(permitted.privateNetworkProblem(true)).toBeUndefined();
    expect((await permitted.request({ url: `${sink.base}/x` })).status).toBe(200);
    expect((await refusal(permitted.request({ url: `${sink.base}/x`, allowPrivateNetwork: false }))).code).toBe('DESTINATION_REFUSED');
  });
});
