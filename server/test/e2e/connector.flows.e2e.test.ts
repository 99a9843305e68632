/**
 * Flows started by application events (issue 12): a flow with `trigger: {type: "event",
 * application, event}` runs once per event the paired application sends over mTLS — the
 * CloudEvent's data as the body, its attributes as headers — and a repeated event id runs
 * nothing new. The flows module refuses a trigger naming an application or event definition the
 * tenant does not have; such a flow takes no /hook calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, registerApp, registerRuntime } from '../helpers/director.js';
import { createAndStart, startSink, startFlow, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { b64, csrPem, generateKeys, keyPem, tlsRequest, unb64, type TlsIdentity } from '../helpers/connector.js';

async function pair(hub: TestHub, appId: string): Promise<TlsIdentity> {
  const { result } = await ok(hub, `mutation { result: requestOneTimeTokenForApplication(id: "${appId}") { token } }`);
  const call = async (query: string, token: string, variables?: unknown) => (await hub.api('POST', '/connector/graphql', { query, variables }, null, { 'connector-token': token })).body.data;
  const cfg = (await call('{ configuration { token { token } certificateSigningRequestInfo { subject } } }', result.token)).configuration;
  const keys = await generateKeys();
  const signed = await call('mutation($csr: String!) { r: signCertificateSigningRequest(csr: $csr) { clientCertificate caCertificate } }', cfg.token.token, {
    csr: b64(await csrPem(cfg.certificateSigningRequestInfo.subject, keys)),
  });
  return { key: await keyPem(keys), cert: unb64(signed.r.clientCertificate), ca: unb64(signed.r.caCertificate) };
}

describe.each(['pglite', 'postgres'] as const)('connector: flows triggered by application events on %s', (target) => {
  let hub: TestHub;
  let sink: Sink;
  let app: { id: string };
  let id: TlsIdentity;
  let eventsUrl: string;

  beforeAll(async () => {
    hub = await createTestHub({ target, env: { PLEXUS_MTLS_PORT: '0' } });
    await hub.listen();
    sink = await startSink();
    app = await registerApp(hub, '{ name: "shop" }');
    await ok(hub, `mutation { addEventDefinition(applicationID: "${app.id}", in: { name: "order.created" }) { id } }`);
    const rt = await registerRuntime(hub, '{ name: "edge" }');
    eventsUrl = (await ok(hub, `{ runtime(id: "${rt.id}") { eventingConfiguration { defaultURL } } }`)).runtime.eventingConfiguration.defaultURL;
    id = await pair(hub, app.id);
  }, 60_000);
  afterAll(async () => {
    await hub?.close();
    await sink?.close();
  });

  const graph = (url: string) => ({
    nodes: [
      { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"order": orderId, "total": total}' } },
      { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url } },
    ],
    edges: [{ source: 'shape', target: 'send' }],
  });

  it('refuses a trigger naming an unknown application or event definition, or beside a cron', async () => {
    const create = (trigger: unknown, extra: Record<string, unknown> = {}) => hub.api('POST', '/api/v1/flows', { name: 'bad trigger', trigger, graph: graph(sink.url), ...extra });
    const noApp = await create({ type: 'event', application: 'nope', event: 'order.created' });
    expect(noApp.status).toBe(400);
    expect(JSON.stringify(noApp.body)).toContain('trigger: application \\"nope\\" is not registered in this tenant');
    const noEvent = await create({ type: 'event', application: 'shop', event: 'order.shipped' });
    expect(noEvent.status).toBe(400);
    expect(JSON.stringify(noEvent.body)).toContain('has no event definition \\"order.shipped\\" (it has: order.created)');
    const withCron = await create({ type: 'event', application: app.id, event: 'order.created' }, { cron: '*/5 * * * *' });
    expect(withCron.status).toBe(400);
    expect(JSON.stringify(withCron.body)).toContain('has no cron');
    const wrongShape = await create({ type: 'event', app: 'shop' });
    expect(wrongShape.status).toBe(400);
  });

  it('an event sent over mTLS starts the flow with its data as the body; a repeated id runs nothing new', async () => {
    const created = await hub.api('POST', '/api/v1/flows', { name: 'on order', trigger: { type: 'event', application: 'shop', event: 'order.created' }, graph: graph(sink.url) });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const flowId = created.body.data.id as string;
    expect(created.body.data.trigger).toEqual({ type: 'event', application: 'shop', event: 'order.created' });
    await startFlow(hub, flowId);
    // Started by events only: no webhook.
    expect((await hub.api('POST', `/hook/${flowId}`, { orderId: 'x' }, null)).status).toBe(404);
    // The connector opens the flow when it hears flow.started (its own subscription).
    await waitFor('the event flow to open', async () => (await hub.db.query(`SELECT 1 FROM connector_event_flows WHERE flow_id = $1 AND accepting`, [flowId])).rows.length > 0, 30_000);

    const send = (eventId: string, orderId: string) =>
      tlsRequest(eventsUrl, id, { body: { specversion: '1.0', id: eventId, source: '/shop', type: 'order.created', subject: 'orders', data: { orderId, total: 42 } }, headers: { 'content-type': 'application/cloudevents+json' } });
    expect((await send('ev-1', 'A-1')).status).toBe(202);
    const executionId = await waitFor('an execution of the flow', async () => {
      const list = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}`);
      return (list.body.data as Array<{ id: string }> | undefined)?.[0]?.id;
    }, 30_000);
    const x = await waitForExecution(hub, executionId, 30_000);
    expect(x).toMatchObject({ status: 'succeeded', trigger: 'event' });
    const shape = x.steps.find((s) => s.nodeId === 'shape')!;
    expect(shape.input).toEqual({ orderId: 'A-1', total: 42 });
    await waitFor('the sink call', async () => sink.requests.some((r) => JSON.stringify(r.body) === JSON.stringify({ order: 'A-1', total: 42 })), 30_000);

    // The same id again: accepted, but no second execution; a new id runs again.
    expect((await send('ev-1', 'A-1')).body.data.duplicate).toBe(true);
    expect((await send('ev-2', 'A-2')).status).toBe(202);
    await waitFor('the second order at the sink', async () => sink.requests.some((r) => JSON.stringify(r.body) === JSON.stringify({ order: 'A-2', total: 42 })), 30_000);
    // The execution is recorded when its step run commits, a moment after the sink's call.
    await waitFor('two executions of the flow', async () => (await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}`)).body.meta.total === 2, 30_000);
    expect(sink.requests.filter((r) => JSON.stringify(r.body) === JSON.stringify({ order: 'A-1', total: 42 }))).toHaveLength(1);
  });

  it("an http-request node names an application's API: called at its targetURL with the credentials the application set for the runtime", async () => {
    const erp = await registerApp(hub, `{ name: "erp", apiDefinitions: [{ name: "orders", targetURL: "${sink.base}/erp/orders" }, { name: "invoices", targetURL: "${sink.base}/erp/invoices" }] }`);
    const apis = (await ok(hub, `{ application(id: "${erp.id}") { apiDefinitions { data { id name } } } }`)).application.apiDefinitions.data as Array<{ id: string; name: string }>;
    const local = await registerRuntime(hub, '{ name: "local" }');
    const orders = apis.find((a) => a.name === 'orders')!.id;
    await ok(hub, `mutation($h: HttpHeaders) { setAPIAuth(apiID: "${orders}", runtimeID: "${local.id}", in: { credential: { basic: { username: "flow", password: "s3cret" } }, additionalHeaders: $h }) { runtimeID } }`, {
      variables: { h: { 'x-erp-key': ['k-1'] } },
    });

    const call = (apiDefinition: string) => ({
      nodes: [{ id: 'call', componentId: 'http-request', function: 'request', fields: { method: 'POST', api: { application: 'erp', apiDefinition } } }],
      edges: [],
    });
    const flowId = await createAndStart(hub, call('orders'));
    const x = await waitForExecution(hub, await trigger(hub, flowId, { order: 'O-7' }), 30_000);
    expect(x.status).toBe('succeeded');
    const got = sink.requests.find((r) => r.url === '/erp/orders');
    expect(got?.body).toEqual({ order: 'O-7' });
    expect(got?.headers.authorization).toBe(`Basic ${Buffer.from('flow:s3cret').toString('base64')}`);
    expect(got?.headers['x-erp-key']).toBe('k-1');

    // No credentials set for the runtime: the step fails with a user error naming both.
    const other = await createAndStart(hub, call('invoices'));
    const failed = await waitForExecution(hub, await trigger(hub, other, { invoice: 1 }), 30_000);
    expect(failed.status).toBe('failed');
    expect(failed.steps[0]!.error).toMatch(/application erp has set no credentials for runtime local on API invoices/);
    expect(sink.requests.some((r) => r.url === '/erp/invoices')).toBe(false);

    // Either a url or an api: a node with both cannot be prepared, so the flow does not start.
    const created = await hub.api('POST', '/api/v1/flows', { name: 'both', graph: { nodes: [{ id: 'c', componentId: 'http-request', function: 'request', fields: { url: sink.url, api: { application: 'erp', apiDefinition: 'orders' } } }], edges: [] } });
    await hub.api('POST', `/api/v1/flows/${created.body.data.id}/start`);
    const reason = await waitFor('the flow to fail to start', async () => {
      const f = (await hub.api('GET', `/api/v1/flows/${created.body.data.id}`)).body.data as { status: string; statusReason?: string };
      return f.status === 'inactive' && f.statusReason ? f.statusReason : undefined;
    }, 30_000);
    expect(reason).toMatch(/either url or api/);
  });

  it("OAuth credentials set for a runtime named by api.credentialsRuntime: the hub fetches a token once, caches it, calls with Bearer; a refused grant fails the step naming the application", async () => {
    // A real local token endpoint (client_credentials, HTTP Basic client authentication).
    const tokens = await startSink();
    let issued = 0;
    tokens.respondWith((req) => {
      const good = `Basic ${Buffer.from('crm-client:crm-secret-9').toString('base64')}`;
      if (req.method !== 'POST' || req.headers.authorization !== good || !String(req.body).includes('grant_type=client_credentials')) {
        return { status: 401, body: { error: 'invalid_client', error_description: 'unknown client' } };
      }
      issued++;
      return { status: 200, body: { access_token: `tok-${issued}`, token_type: 'Bearer', expires_in: 3600 } };
    });
    try {
      const crm = await registerApp(hub, `{ name: "crm", apiDefinitions: [{ name: "contacts", targetURL: "${sink.base}/crm/contacts" }, { name: "deals", targetURL: "${sink.base}/crm/deals" }] }`);
      const apis = (await ok(hub, `{ application(id: "${crm.id}") { apiDefinitions { data { id name } } } }`)).application.apiDefinitions.data as Array<{ id: string; name: string }>;
      const agent = await registerRuntime(hub, '{ name: "edge-agent" }');
      const setOAuth = async (api: string, clientSecret: string) =>
        ok(hub, `mutation { setAPIAuth(apiID: "${apis.find((a) => a.name === api)!.id}", runtimeID: "${agent.id}", in: { credential: { oauth: { clientId: "crm-client", clientSecret: "${clientSecret}", url: "${tokens.base}/oauth/token" } } }) { runtimeID } }`);
      await setOAuth('contacts', 'crm-secret-9');
      await setOAuth('deals', 'wrong-secret-5');
      const call = (apiDefinition: string, credentialsRuntime: string) => ({
        nodes: [{ id: 'call', componentId: 'http-request', function: 'request', fields: { method: 'POST', api: { application: 'crm', apiDefinition, credentialsRuntime } } }],
        edges: [],
      });

      // A runtime the tenant does not have is refused when the flow is saved.
      const refused = await hub.api('POST', '/api/v1/flows', { name: 'no such runtime', graph: call('contacts', 'nowhere') });
      expect(refused.status).toBe(400);
      expect(JSON.stringify(refused.body)).toMatch(/fields\.api\.credentialsRuntime: no runtime \\"nowhere\\" is registered/);

      const flowId = await createAndStart(hub, call('contacts', 'edge-agent'));
      for (const n of [1, 2]) expect((await waitForExecution(hub, await trigger(hub, flowId, { contact: n }), 30_000)).status).toBe('succeeded');
      const calls = sink.requests.filter((r) => r.url === '/crm/contacts');
      expect(calls.map((r) => r.headers.authorization)).toEqual(['Bearer tok-1', 'Bearer tok-1']);
      expect(issued).toBe(1);

      // The token endpoint refuses the grant: the step fails naming the application, never the secret.
      const other = await createAndStart(hub, call('deals', 'edge-agent'));
      const failed = await waitForExecution(hub, await trigger(hub, other, { deal: 1 }), 30_000);
      expect(failed.status).toBe('failed');
      expect(failed.steps[0]!.error).toMatch(/could not get an OAuth access token for application crm \(API deals, runtime edge-agent\).*invalid_client/);
      expect(JSON.stringify(failed)).not.toContain('wrong-secret-5');
      expect(sink.requests.some((r) => r.url === '/crm/deals')).toBe(false);
    } finally {
      await tokens.close();
    }
  });
});
