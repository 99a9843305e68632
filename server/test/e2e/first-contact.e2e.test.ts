/**
 * What a new user meets first (issue 16, "First contact" and the lifecycle items): the flow's
 * webhook URL, worked examples in the API reference, errors that say what to do, credentials
 * named the same everywhere, expressions checked when a flow is saved, a failed start that ends
 * at once, and PLEXUS_BUS_MAX_ATTEMPTS counting component calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREDENTIAL_EXAMPLE, CRON_EXAMPLE, WEBHOOK_TO_HTTP_EXAMPLE } from '../../src/modules/flows/flows.examples.js';
import { createAndStart, createFlow, startSink, waitForExecution, type Sink } from '../helpers/engine.js';
import { sampleFlow, waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

describe('first contact', () => {
  let hub: TestHub;
  let sink: Sink;

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_BUS_MAX_ATTEMPTS: '5' } });
    sink = await startSink();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  it('gives a webhook flow its webhook URL (links.webhook), and a cron flow none', async () => {
    const created = await hub.api('POST', '/api/v1/flows', sampleFlow({ flowSettings: { webhooks: { auth: 'none' } } }));
    expect(created.status).toBe(201);
    const id = created.body.data.id as string;
    const url = created.body.data.links?.webhook as string;
    expect(url).toMatch(new RegExp(`^http://[^/]+/hook/${id}$`));
    expect((await hub.api('GET', `/api/v1/flows/${id}`)).body.data.links.webhook).toBe(url);
    const listed = (await hub.api('GET', '/api/v1/flows?page[size]=100')).body.data as Array<{ id: string; links?: { webhook?: string } }>;
    expect(listed.find((f) => f.id === id)?.links?.webhook).toBe(url);
    // The link is the one that takes calls, once the flow is started.
    await hub.api('POST', `/api/v1/flows/${id}/start`);
    await waitFor('flow active', async () => (await hub.api('GET', `/api/v1/flows/${id}`)).body.data.status === 'active');
    expect((await hub.api('POST', new URL(url).pathname, { a: 1 }, null)).status).toBe(202);
    await hub.api('POST', `/api/v1/flows/${id}/stop`);

    const cron = await hub.api('POST', '/api/v1/flows', sampleFlow({ cron: '0 0 1 1 *' }));
    expect(cron.status).toBe(201);
    expect(cron.body.data.links?.webhook).toBeUndefined();
  });

  it('documents worked examples of a flow in OpenAPI, each of which saves as is; /docs is titled Plexus', async () => {
    const spec = (await hub.api('GET', '/openapi.json', undefined, null)).body;
    const create = spec.paths['/api/v1/flows'].post;
    const media = create.requestBody.content['application/json'];
    // @fastify/swagger moves a body schema's examples onto the media type ({name: {value}}).
    const examples = (media.examples ? Object.values(media.examples as Record<string, { value: unknown }>).map((e) => e.value) : media.schema.examples) as unknown[];
    expect(examples).toHaveLength(3);
    expect(examples).toContainEqual(WEBHOOK_TO_HTTP_EXAMPLE);
    expect(examples).toContainEqual(CRON_EXAMPLE);
    const secret = await hub.api('POST', '/api/v1/secrets', { name: 'crm key', type: 'apiKey', value: { key: 'k-123456', headerName: 'X-API-Key' } });
    expect(secret.status, JSON.stringify(secret.body)).toBe(201);
    const withCredential = structuredClone(CREDENTIAL_EXAMPLE);
    withCredential.graph.nodes[1]!.credentialsId = secret.body.data.id as string;
    for (const example of [WEBHOOK_TO_HTTP_EXAMPLE, CRON_EXAMPLE, withCredential]) {
      const res = await hub.api('POST', '/api/v1/flows', example);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    const docs = await hub.app.inject({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.body).toMatch(/<title>[^<]*Plexus[^<]*<\/title>/);
    expect(docs.body).not.toMatch(/<title>Swagger UI<\/title>/);
  });

  it('answers ?flowId= with a 400 naming filter[flowId]', async () => {
    const res = await hub.api('GET', '/api/v1/executions?flowId=abc');
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).toContain('filter[flowId]');
  });

  it('answers a hook of a flow that is not active, and of an unknown id, with 404 "no active flow"', async () => {
    const id = await createFlow(hub, { nodes: [{ id: 'a', componentId: 'log', function: 'write' }], edges: [] });
    for (const target of [id, '00000000-0000-0000-0000-000000000000']) {
      const res = await hub.api('POST', `/hook/${target}`, { a: 1 }, null);
      expect(res.status).toBe(404);
      expect(res.body.errors[0].message).toMatch(new RegExp(`^no active flow ${target}`));
    }
  });

  it('names credential fields the same in the http-request component and the secrets API', async () => {
    const component = (await hub.api('GET', '/api/v1/components/http-request')).body.data;
    const description = component.credentials.description as string;
    // Every field the component names for apiKey is one the secrets API takes.
    expect(description).toContain('apiKey {key, headerName (default X-API-Key) | queryName}');
    const inHeader = await hub.api('POST', '/api/v1/secrets', { name: 'header key', type: 'apiKey', value: { key: 'header-secret-1', headerName: 'X-Shop-Key' } });
    const inQuery = await hub.api('POST', '/api/v1/secrets', { name: 'query key', type: 'apiKey', value: { key: 'query-secret-1', queryName: 'token' } });
    expect(inHeader.status, JSON.stringify(inHeader.body)).toBe(201);
    expect(inQuery.status, JSON.stringify(inQuery.body)).toBe(201);
    const both = await hub.api('POST', '/api/v1/secrets', { name: 'both', type: 'apiKey', value: { key: 'x', headerName: 'a', queryName: 'b' } });
    expect(both.status).toBe(400);
    for (const [secretId, check] of [
      [inHeader.body.data.id as string, (r: (typeof sink.requests)[number]) => r.headers['x-shop-key'] === 'header-secret-1'],
      [inQuery.body.data.id as string, (r: (typeof sink.requests)[number]) => r.url.includes('token=query-secret-1')],
    ] as const) {
      const flowId = await createAndStart(hub, {
        nodes: [{ id: 'send', componentId: 'http-request', function: 'request', credentialsId: secretId, fields: { method: 'POST', url: `${sink.url}?s=${secretId}` } }],
        edges: [],
      });
      const executionId = (await hub.api('POST', `/hook/${flowId}`, { n: 1 }, null)).body.data.executionId as string;
      expect((await waitForExecution(hub, executionId)).status).toBe('succeeded');
      const req = sink.requests.find((r) => r.url.includes(`s=${secretId}`))!;
      expect(check(req)).toBe(true);
    }
  });

  it('refuses a broken expression when the flow is saved, naming node and field (fields, edge condition, mapper)', async () => {
    const broken = await hub.api('POST', '/api/v1/flows', {
      name: 'broken',
      graph: {
        nodes: [
          { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"a": ' } },
          { id: 'log', componentId: 'log', function: 'write' },
        ],
        edges: [{ source: 'shape', target: 'log', config: { condition: 'a = (', mapper: '$$$[' } }],
      },
    });
    expect(broken.status).toBe(400);
    const problems = broken.body.errors[0].details.problems as string[];
    expect(problems).toContainEqual(expect.stringMatching(/^graph\.nodes\[0\] \("shape"\): fields\.expression: invalid JSONata/));
    expect(problems).toContainEqual(expect.stringMatching(/^graph\.edges\[0\]\.config\.condition: invalid JSONata/));
    expect(problems).toContainEqual(expect.stringMatching(/^graph\.edges\[0\]\.config\.mapper: invalid JSONata/));
    // The same on PATCH.
    const id = await createFlow(hub, { nodes: [{ id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } }], edges: [] });
    const patched = await hub.api('PATCH', `/api/v1/flows/${id}`, { graph: { nodes: [{ id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$.(' } }], edges: [] } });
    expect(patched.status).toBe(400);
    expect(patched.body.errors[0].message).toMatch(/"shape"\): fields\.expression: invalid JSONata/);
  });

  it('ends a failed start in inactive at once, with its reason, never lingering in stopping; PATCH works right after', async () => {
    const body = sampleFlow({ name: 'fails to start' });
    // A field its component refuses when the orchestrator prepares the step.
    (body.graph as { nodes: Array<{ fields: unknown }> }).nodes[1]!.fields = { level: 'shout' };
    const id = (await hub.api('POST', '/api/v1/flows', body)).body.data.id as string;
    const seen = new Set<string>();
    expect((await hub.api('POST', `/api/v1/flows/${id}/start`)).status).toBe(200);
    const startedAt = Date.now();
    const flow = await waitFor(
      'the failed start to end',
      async () => {
        const f = (await hub.api('GET', `/api/v1/flows/${id}`)).body.data;
        seen.add(f.status as string);
        return f.status === 'inactive' ? f : undefined;
      },
      30_000,
      10,
    );
    const tookMs = Date.now() - startedAt;
    expect(flow.statusReason).toMatch(/level/);
    expect(seen.has('stopping')).toBe(false);
    // "At once": the answer to flow.failed, not a drain. Generous for a loaded machine.
    expect(tookMs).toBeLessThan(5_000);
    const patched = await hub.api('PATCH', `/api/v1/flows/${id}`, { name: 'fixed' });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
  });

  it('calls a component PLEXUS_BUS_MAX_ATTEMPTS times for a message that keeps failing', async () => {
    sink.respond(503, { down: true });
    try {
      const flowId = await createAndStart(hub, {
        nodes: [{ id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/always-down` }, nodeSettings: { retryDelayMs: 10, maxRetryDelayMs: 20 } }],
        edges: [],
      });
      const executionId = (await hub.api('POST', `/hook/${flowId}`, { n: 1 }, null)).body.data.executionId as string;
      const x = await waitForExecution(hub, executionId, 30_000);
      expect(x.status).toBe('failed');
      expect(sink.requests.filter((r) => r.url === '/always-down')).toHaveLength(5);
    } finally {
      sink.respond(200);
    }
  });
});
