/**
 * Issue 10 items 2 and 5 through the public surface: nothing a tenant sends stalls the hub's
 * main thread (regular expressions, form bodies), and what is accepted is kept — input the
 * database could not store is refused with a 400 naming where it is, before anything is queued,
 * and a step that produces such a value fails with a user error instead of being lost.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasPostgres } from '../helpers/services.js';
import { createAndStart, startSink, stepsOf, waitForExecution, type Sink } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const NUL_PROBLEM = /contains a NUL character/;

/** A one-step flow whose webhook needs no auth; returns its id. */
async function logFlow(hub: TestHub): Promise<string> {
  return createAndStart(hub, { nodes: [{ id: 'keep', componentId: 'log', function: 'write', fields: { level: 'debug' } }], edges: [] });
}

async function executionCount(hub: TestHub, flowId: string): Promise<number> {
  const res = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}`);
  expect(res.status).toBe(200);
  return res.body.meta.total as number;
}

describe('nothing a tenant sends stalls the main thread', () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await createTestHub();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
  });

  it('ends a catastrophic regular expression on a long input at once, and /healthz answers meanwhile', async () => {
    await hub.app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(hub.app.server.address() as AddressInfo).port}`;
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'check', componentId: 'transform', function: 'jsonata', fields: { expression: '{"matches": $contains(s, /^(a+)+$/)}' } },
        { id: 'keep', componentId: 'log', function: 'write', fields: { level: 'debug' } },
      ],
      edges: [{ source: 'check', target: 'keep', config: { condition: '$not($contains(s, /^(b+)+$/))' } }],
    });
    // 30 characters held V8's backtracking engine for 12-16 s; this is 100,000.
    const s = 'a'.repeat(100_000) + 'b';
    const sent = fetch(`${base}/hook/${flowId}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ s }) });
    // The bound is generous for a busy machine, and far below what one backtracking match takes.
    const healthStartedAt = performance.now();
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(performance.now() - healthStartedAt).toBeLessThan(3_000);
    const accepted = (await (await sent).json()) as { data: { executionId: string } };
    const x = await waitForExecution(hub, accepted.data.executionId);
    expect(x.status).toBe('succeeded');
    expect(stepsOf(x, 'check')[0]!.output).toEqual([{ matches: false }]);
  }, 60_000);

  it('refuses to save a flow whose regular expression RE2 cannot run, naming the node or edge and the field', async () => {
    const res = await hub.api('POST', '/api/v1/flows', {
      name: 'backtracking',
      graph: {
        nodes: [
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$replace(s, /(a)\\1/, "")' } },
          { id: 'call', componentId: 'http-request', function: 'request', fields: { method: 'GET', url: 'http://example.test/{{ $match(id, /x(?=y)/).match }}' } },
        ],
        edges: [{ source: 'shape', target: 'call', config: { condition: '$contains(s, /(?<=a)b/)' } }],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].code).toBe('INVALID_FLOW');
    const problems = res.body.errors[0].details.problems as string[];
    expect(problems).toEqual([
      expect.stringMatching(/^graph\.nodes\[0\] \("shape"\): fields\.expression: regular expression \/\(a\)\\1\/ cannot run: .*backreferences or lookaround/),
      expect.stringMatching(/^graph\.nodes\[1\] \("call"\): fields\.url: regular expression \/x\(\?=y\)\/ cannot run/),
      expect.stringMatching(/^graph\.edges\[0\]\.config\.condition: regular expression \/\(\?<=a\)b\/ cannot run/),
    ]);
  });

  it('records an execution as long as its steps took, also when it is written in one commit at its end', async () => {
    const flowId = await createAndStart(hub, {
      nodes: [{ id: 'work', componentId: 'transform', function: 'jsonata', fields: { expression: '$count($map([1..50000], function($v) { $v * 2 }))' } }],
      edges: [],
    });
    const res = await hub.api('POST', `/hook/${flowId}`, {}, null);
    expect(res.status).toBe(202);
    // Succeeded, or failed by the 2 s guard on a very busy machine: either way it is written at its end.
    const x = await waitForExecution(hub, res.body.data.executionId as string);
    const step = stepsOf(x, 'work')[0]!;
    const execution = (await hub.api('GET', `/api/v1/executions/${x.id}`)).body.data as { durationMs: number };
    // Before, a pure trigger step's execution row was created at the commit: ~0 ms.
    expect(step.durationMs).toBeGreaterThan(0);
    expect(execution.durationMs).toBeGreaterThanOrEqual(step.durationMs);
  });

  it('answers a form body with more fields than PLEXUS_WEBHOOK_MAX_FIELDS with 413 naming the limit', async () => {
    const flowId = await logFlow(hub);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const tooMany = await hub.app.inject({ method: 'POST', url: `/hook/${flowId}`, headers: form, payload: Array.from({ length: 30_000 }, (_, i) => `k=${i}`).join('&') });
    expect(tooMany.statusCode).toBe(413);
    expect(tooMany.json().errors[0]).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: expect.stringMatching(/30000 fields; at most 1000 .*PLEXUS_WEBHOOK_MAX_FIELDS/) });
    const fine = await hub.app.inject({ method: 'POST', url: `/hook/${flowId}`, headers: form, payload: Array.from({ length: 1_000 }, (_, i) => `k=${i}`).join('&') });
    expect(fine.statusCode).toBe(202);
    const x = await waitForExecution(hub, fine.json().data.executionId as string);
    expect((stepsOf(x, 'keep')[0]!.input as { k: string[] }).k).toHaveLength(1_000);
  });

  it('answers no route with a 500 for NUL, unpaired surrogates or deep nesting anywhere in the request (every route of /openapi.json)', async () => {
    const token = await hub.login('admin', 'test-admin-password');
    const openapi = (await hub.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    const deep = `${'['.repeat(6_000)}${']'.repeat(6_000)}`;
    const flow = (name: string, fields: string): string => `{"name":${name},"graph":{"nodes":[{"id":"a","componentId":"log","function":"write","fields":${fields}}],"edges":[]}}`;
    // Bodies each route may find valid but for one value: a strict schema must not hide the rest.
    const bodies = [
      flow('"a\\u0000b"', '{}'),
      flow('"deep"', `{"x":${deep}}`),
      flow('"lone \\ud800"', '{"level":"debug"}'),
      '{"name":"a\\u0000b"}',
      '{"name":"x","description":"\\u0000"}',
      '{"username":"a\\u0000b","password":"a-long-enough-password"}',
      '{"name":"x","type":"basic","value":{"username":"u","password":"p\\u0000"}}',
      `{"name":"x","value":${deep}}`,
    ];
    const failures: string[] = [];
    let requests = 0;
    for (const [route, methods] of Object.entries(openapi.paths)) {
      // Logout would end the corpus's own session; it reads no input.
      if (route.startsWith('/docs') || route === '/api/v1/logout') continue;
      const url = route.replace(/\{[^}]+\}/g, 'abc%00def');
      for (const method of Object.keys(methods)) {
        const m = method.toUpperCase() as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
        // One bad part per request, so an earlier check (an unknown query key) cannot hide a later one.
        const clean = url.replaceAll('abc%00def', 'abc');
        const attempts: Array<{ url: string; payload?: string }> = [{ url }, { url: `${clean}?search=a%00b` }];
        if (m !== 'GET' && m !== 'HEAD' && m !== 'DELETE') for (const payload of bodies) attempts.push({ url: clean, payload });
        for (const a of attempts) {
          requests++;
          const res = await hub.app.inject({
            method: m,
            url: a.url,
            headers: { authorization: `Bearer ${token}`, ...(a.payload ? { 'content-type': 'application/json' } : {}) },
            ...(a.payload ? { payload: a.payload } : {}),
          });
          if (res.statusCode >= 500) failures.push(`${m} ${a.url} ${a.payload ? a.payload.slice(0, 40) : ''} → ${res.statusCode} ${res.body.slice(0, 200)}`);
        }
      }
    }
    expect(requests).toBeGreaterThan(50);
    expect(failures).toEqual([]);
    expect((await hub.api('GET', '/api/v1/me', undefined, token)).status).toBe(200); // every request was authenticated
    // A few answers named precisely.
    const named = async (url: string): Promise<string> => (await hub.api('GET', url)).body.errors[0].message as string;
    expect(await named('/api/v1/flows/abc%00def')).toMatch(/^params\.id: contains a NUL character/);
    expect(await named('/api/v1/flows?search=a%00b')).toMatch(/^querystring\.search: contains a NUL character/);
    expect((await hub.app.inject({ method: 'GET', url: '/hook/%00' })).json().errors[0].message).toMatch(/^params\.flowId: contains a NUL/);
    const deepFlow = await hub.app.inject({ method: 'POST', url: '/api/v1/flows', headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }, payload: bodies[1]! });
    expect(deepFlow.statusCode).toBe(400);
    expect(deepFlow.json().errors[0].message).toMatch(/^body\.graph\.nodes\[0\]\.fields\.x\[0\].*: nests deeper than 256 levels/);
  }, 120_000);
});

const targets: Array<{ name: string; target: 'pglite' | 'postgres'; nats: boolean }> = [
  { name: 'PGlite', target: 'pglite', nats: false },
  ...(hasPostgres ? [{ name: 'PostgreSQL', target: 'postgres' as const, nats: false }, { name: 'PostgreSQL + NATS', target: 'postgres' as const, nats: true }] : []),
];

describe.each(targets)('accepted means kept on $name', ({ target, nats }) => {
  let hub: TestHub;
  let sink: Sink;

  beforeAll(async () => {
    hub = await createTestHub({ target, nats });
    sink = await startSink();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  it('refuses what the database could not store with 400 naming where it is, before queueing anything', async () => {
    const flowId = await logFlow(hub);
    const json = { 'content-type': 'application/json' };
    const cases: Array<[string, { url?: string; method?: 'GET' | 'POST'; payload?: string; headers: Record<string, string> }, RegExp]> = [
      ['JSON string', { payload: '{"a":["x","y\\u0000"]}', headers: json }, /^body\.a\[1\]: contains a NUL character/],
      ['JSON key', { payload: '{"k\\u0000":1}', headers: json }, /^body\["k\\u0000"\]: has a key that contains a NUL/],
      ['JSON lone surrogate', { payload: '{"a":"\\ud800"}', headers: json }, /^body\.a: contains an unpaired UTF-16 surrogate/],
      ['JSON nested too deep', { payload: `{"a":${'['.repeat(5_000)}${']'.repeat(5_000)}}`, headers: json }, /^body\.a\[0\].*: nests deeper than 256 levels/],
      ['form field', { payload: 'a=1&b=%00', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, /^body\.b: contains a NUL/],
      ['text', { payload: 'a\u0000b', headers: { 'content-type': 'text/plain' } }, /^body: contains a NUL/],
      ['XML', { payload: '<a>x\u0000</a>', headers: { 'content-type': 'application/xml' } }, NUL_PROBLEM],
      ['query of a POST', { url: `/hook/${flowId}?a=%00`, payload: '{}', headers: json }, /^querystring\.a: contains a NUL/],
      ['query of a GET', { url: `/hook/${flowId}?a=x&a=%00`, method: 'GET', headers: {} }, /^querystring\.a\[1\]: contains a NUL/],
      ['header', { payload: '{}', headers: { ...json, 'x-a': 'a\u0000b' } }, /^headers\["x-a"\]: contains a NUL/],
      ['path', { url: `/hook/${flowId}/a%00b`, payload: '{}', headers: json }, /^params\["\*"\]: contains a NUL/],
    ];
    for (const [label, c, problem] of cases) {
      const res = await hub.app.inject({ method: c.method ?? 'POST', url: c.url ?? `/hook/${flowId}`, headers: c.headers, ...(c.payload === undefined ? {} : { payload: c.payload }) });
      expect(res.statusCode, label).toBe(400);
      expect(res.json().errors[0].code, label).toBe('VALIDATION_FAILED');
      expect(res.json().errors[0].message, label).toMatch(problem);
    }
    // Nothing was queued: only the call that is fine runs.
    const ok = await hub.app.inject({ method: 'POST', url: `/hook/${flowId}`, headers: json, payload: '{"a":"x\\\\u0000 is text, 😀 is fine"}' });
    expect(ok.statusCode).toBe(202);
    const x = await waitForExecution(hub, ok.json().data.executionId as string);
    expect(stepsOf(x, 'keep')[0]!.input).toEqual({ a: 'x\\u0000 is text, 😀 is fine' });
    expect(await executionCount(hub, flowId)).toBe(1);
  });

  it('fails a step whose output the database could not store, once, with a user error — and its neighbours commit', async () => {
    sink.respondWith((req) => ({ status: 200, body: req.url.includes('bad') ? { name: 'a\u0000b' } : { name: 'fine' } }));
    const fetched = await createAndStart(hub, {
      nodes: [
        { id: 'fetch', componentId: 'http-request', function: 'request', fields: { method: 'GET', url: `${sink.base}/{{ kind }}` } },
        { id: 'keep', componentId: 'log', function: 'write', fields: { level: 'debug' } },
      ],
      edges: [{ source: 'fetch', target: 'keep' }],
    });
    const built = await createAndStart(hub, {
      nodes: [{ id: 'build', componentId: 'transform', function: 'jsonata', fields: { expression: '{"label": "x" & $decodeUrlComponent("%00")}' } }],
      edges: [],
    });
    const send = async (flowId: string, body: unknown): Promise<string> => {
      const res = await hub.api('POST', `/hook/${flowId}`, body, null);
      expect(res.status).toBe(202);
      return res.body.data.executionId as string;
    };
    // Sent together, so the good ones share commits with the bad ones.
    const ids = await Promise.all([send(fetched, { kind: 'bad' }), send(built, {}), ...Array.from({ length: 8 }, () => send(fetched, { kind: 'good' }))]);
    const [fromResponse, fromTransform, ...good] = await Promise.all(ids.map((id) => waitForExecution(hub, id)));

    expect(fromResponse!.status).toBe('failed');
    const fetch = stepsOf(fromResponse!, 'fetch');
    expect(fetch).toHaveLength(1);
    expect(fetch[0]).toMatchObject({ status: 'failed', attempt: 1, error: expect.stringMatching(/^output body\.body\.name: contains a NUL character/) });
    expect(fromTransform!.status).toBe('failed');
    expect(stepsOf(fromTransform!, 'build')[0]).toMatchObject({ status: 'failed', attempt: 1, error: expect.stringMatching(/^output body\.label: contains a NUL/) });
    for (const x of good) expect(x.status).toBe('succeeded');
    expect(sink.requests.filter((r) => r.url.includes('bad'))).toHaveLength(1);
  }, 60_000);
});
