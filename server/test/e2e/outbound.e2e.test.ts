/**
 * The operator's outbound network policy through the public surface: a flow asking for more than
 * the operator allows is refused when saved; steps and the OAuth2 token refresh reach only public
 * or allow-listed addresses; credentials stay on their origin across redirects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, createFlow, startSink, stepsOf, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const privateNode = (url: string) => ({
  name: 'reaches inside',
  graph: {
    nodes: [
      { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
      { id: 'send', componentId: 'http-request', function: 'request', fields: { url, allowPrivateNetwork: true } },
      { id: 'script', componentId: 'code', function: 'run', fields: { code: 'return body', allowPrivateNetwork: true } },
    ],
    edges: [
      { source: 'shape', target: 'send' },
      { source: 'send', target: 'script' },
    ],
  },
});

describe('outbound policy, the default (private networks denied, the test sinks allow-listed)', () => {
  let hub: TestHub;
  let sink: Sink;

  beforeAll(async () => {
    hub = await createTestHub();
    sink = await startSink();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  it('refuses allowPrivateNetwork: true when the flow is saved, naming each node and the field', async () => {
    const res = await hub.api('POST', '/api/v1/flows', privateNode(sink.url));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].code).toBe('INVALID_FLOW');
    expect(res.body.errors[0].details.problems).toEqual([
      expect.stringMatching(/^graph\.nodes\[1\] \("send"\): fields\.allowPrivateNetwork: the operator does not allow steps to reach private networks \(PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK=false\)/),
      expect.stringMatching(/^graph\.nodes\[2\] \("script"\): fields\.allowPrivateNetwork: the operator does not allow/),
    ]);
    // A PATCH that would add it is refused the same way; `false` is always fine.
    const ok = privateNode(sink.url);
    for (const n of ok.graph.nodes) if ('allowPrivateNetwork' in n.fields) n.fields.allowPrivateNetwork = false;
    const created = await hub.api('POST', '/api/v1/flows', ok);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const patch = await hub.api('PATCH', `/api/v1/flows/${created.body.data.id}`, { graph: privateNode(sink.url).graph });
    expect(patch.status).toBe(400);
    expect(patch.body.errors[0].message).toContain('graph.nodes[1] ("send"): fields.allowPrivateNetwork');
  });

  it('fails a step that calls cloud metadata, or an allowed host that redirects there, before anything is sent', async () => {
    sink.respondWith((req) => (req.url === '/hop' ? { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/iam/' } } : { status: 200 }));
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'direct', componentId: 'http-request', function: 'request', fields: { url: '{{ target }}' }, nodeSettings: { retries: 0 } },
      ],
      edges: [],
    });
    // 127.0.0.1 is allow-listed here, so metadata in its other spellings stands for the refused.
    for (const target of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://2852039166/', 'http://0251.0376.0251.0376/', 'http://[::1]:9/', `${sink.base}/hop`]) {
      const x = await waitForExecution(hub, await trigger(hub, flowId, { target }));
      expect(x.status, target).toBe('failed');
      expect(stepsOf(x, 'direct')[0]!.error, target).toMatch(/non-public address/);
    }
    // The allow-listed sink itself is reached (the suite's other flows rely on it).
    sink.respond(200, { ok: true });
    const ok = await waitForExecution(hub, await trigger(hub, flowId, { target: `${sink.base}/fine` }));
    expect(ok.status).toBe('succeeded');
  });

  it('refreshes an OAuth2 token only from a reachable token endpoint', async () => {
    const created = await hub.api('POST', '/api/v1/secrets', {
      name: 'metadata idp',
      type: 'oauth2',
      value: { grantType: 'client_credentials', tokenUrl: 'http://169.254.169.254/token', clientId: 'c', clientSecret: 'client-secret-value' },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const res = await hub.api('POST', `/api/v1/secrets/${created.body.data.id}/refresh`);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].code).toBe('DESTINATION_REFUSED');
    expect(res.body.errors[0].message).toMatch(/169\.254\.169\.254 is a non-public address \(link-local/);
    expect(JSON.stringify(res.body)).not.toContain('client-secret-value');
  });
});

describe('outbound policy, operator allows private networks', () => {
  let hub: TestHub;
  let sink: Sink;

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK: 'true', PLEXUS_STEPS_ALLOWED_HOSTS: '' } });
    sink = await startSink();
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  it('saves allowPrivateNetwork: true, and a node can still opt out', async () => {
    const id = await createFlow(hub, { nodes: privateNode(sink.url).graph.nodes.slice(0, 2), edges: [{ source: 'shape', target: 'send' }] });
    expect(id).toBeTruthy();
    const optOut = await createAndStart(hub, {
      nodes: [{ id: 'send', componentId: 'http-request', function: 'request', fields: { url: sink.url, allowPrivateNetwork: false }, nodeSettings: { retries: 0 } }],
      edges: [],
    });
    const x = await waitForExecution(hub, await trigger(hub, optOut, {}));
    expect(stepsOf(x, 'send')[0]!.error).toMatch(/non-public address/);
  });
});
