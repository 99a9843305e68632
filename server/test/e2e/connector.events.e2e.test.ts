/**
 * Application events over mTLS (issue 12): a paired application POSTs CloudEvents (structured
 * and binary) to its runtime's eventing URL; accepted ones are published on the bus as
 * `app.<applicationId>.<type>` and answered 202; unknown types, data that fails the AsyncAPI
 * payload schema, and requests that are no CloudEvent are 4xx naming the problem; a repeated id
 * is accepted without a second publication.
 */
import type { Consumer } from '../../src/platform/bus/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplicationEvent } from '../../src/modules/connector/index.js';
import { ok, registerApp, registerRuntime } from '../helpers/director.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { b64, csrPem, generateKeys, keyPem, tlsRequest, unb64, type TlsIdentity } from '../helpers/connector.js';

const ASYNCAPI = JSON.stringify({
  asyncapi: '2.6.0',
  info: { title: 'orders', version: '1.0.0' },
  channels: {
    'order/created': {
      subscribe: {
        message: {
          payload: { $ref: '#/components/schemas/Order' },
        },
      },
    },
  },
  components: {
    schemas: {
      Order: { type: 'object', required: ['orderId', 'total'], properties: { orderId: { type: 'string' }, total: { type: 'number', minimum: 0 } } },
    },
  },
});

async function pair(hub: TestHub, type: 'Application' | 'Runtime', id: string): Promise<TlsIdentity> {
  const { result } = await ok(hub, `mutation { result: requestOneTimeTokenFor${type}(id: "${id}") { token } }`);
  const call = async (query: string, token: string, variables?: unknown) =>
    (await hub.api('POST', '/connector/graphql', { query, variables }, null, { 'connector-token': token })).body.data;
  const cfg = (await call('{ configuration { token { token } certificateSigningRequestInfo { subject } } }', result.token)).configuration;
  const keys = await generateKeys();
  const signed = await call('mutation($csr: String!) { r: signCertificateSigningRequest(csr: $csr) { clientCertificate caCertificate } }', cfg.token.token, {
    csr: b64(await csrPem(cfg.certificateSigningRequestInfo.subject, keys)),
  });
  return { key: await keyPem(keys), cert: unb64(signed.r.clientCertificate), ca: unb64(signed.r.caCertificate) };
}

describe('connector: application events over mTLS', () => {
  let hub: TestHub;
  let consumer: Consumer;
  const heard: ApplicationEvent[] = [];
  let app: { id: string };
  let id: TlsIdentity;
  let eventsUrl: string;

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_MTLS_PORT: '0' } });
    await hub.listen();
    consumer = await hub.bus.subscribe<ApplicationEvent>('app.>', 'events-test', async (e) => void heard.push(e.payload));
    app = await registerApp(hub, '{ name: "orders", labels: { scenarios: ["DEFAULT"] } }');
    await ok(hub, `mutation { addEventDefinition(applicationID: "${app.id}", in: { name: "order.created", spec: { type: ASYNC_API, format: JSON, data: ${JSON.stringify(ASYNCAPI)} } }) { id } }`);
    await ok(hub, `mutation { addEventDefinition(applicationID: "${app.id}", in: { name: "order.cancelled" }) { id } }`);
    const rt = await registerRuntime(hub, '{ name: "edge-events" }');
    eventsUrl = (await ok(hub, `{ runtime(id: "${rt.id}") { eventingConfiguration { defaultURL } } }`)).runtime.eventingConfiguration.defaultURL;
    id = await pair(hub, 'Application', app.id);
  });
  afterAll(async () => {
    await consumer?.stop();
    await hub?.close();
  });

  it('a structured CloudEvent is accepted (202) and published as app.<applicationId>.<type>', async () => {
    const event = { specversion: '1.0', id: 'e-1', source: '/shop', type: 'order.created', datacontenttype: 'application/json', data: { orderId: 'A1', total: 12.5 } };
    const r = await tlsRequest(eventsUrl, id, { body: event, headers: { 'content-type': 'application/cloudevents+json' } });
    expect(r.status).toBe(202);
    expect(r.body.data).toMatchObject({ id: 'e-1', type: 'order.created', topic: `app.${app.id}.order.created`, duplicate: false });
    const got = await waitFor('the event on the bus', async () => heard.find((e) => e.event.id === 'e-1'), 30_000);
    expect(got).toMatchObject({ applicationId: app.id, event: { source: '/shop', type: 'order.created', data: { orderId: 'A1', total: 12.5 } } });
  });

  it('binary mode: ce-* headers and the data as the body; the Compass form of the URL works too', async () => {
    const r = await tlsRequest(`${eventsUrl}/orders/v1/events`, id, {
      rawBody: JSON.stringify({ orderId: 'B2', total: 3 }),
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'e-2', 'ce-source': '/shop', 'ce-type': 'order.created', 'ce-traceparent': '00-abc' },
    });
    expect(r.status).toBe(202);
    const got = await waitFor('the binary event on the bus', async () => heard.find((e) => e.event.id === 'e-2'), 30_000);
    expect(got.event).toMatchObject({ data: { orderId: 'B2', total: 3 }, traceparent: '00-abc' });
  });

  it('a repeated id from the same source is accepted again and published once', async () => {
    const event = { specversion: '1.0', id: 'e-dup', source: '/shop', type: 'order.cancelled', data: { any: 'thing' } };
    const first = await tlsRequest(eventsUrl, id, { body: event, headers: { 'content-type': 'application/cloudevents+json' } });
    const second = await tlsRequest(eventsUrl, id, { body: event, headers: { 'content-type': 'application/cloudevents+json' } });
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.body.data.duplicate).toBe(true);
    await waitFor('the event on the bus', async () => heard.some((e) => e.event.id === 'e-dup'), 30_000);
    // Another event after it arrives; the duplicate never does.
    await tlsRequest(eventsUrl, id, { body: { ...event, id: 'e-after' }, headers: { 'content-type': 'application/cloudevents+json' } });
    await waitFor('the next event', async () => heard.some((e) => e.event.id === 'e-after'), 30_000);
    expect(heard.filter((e) => e.event.id === 'e-dup')).toHaveLength(1);
  });

  it('refuses unknown types, data failing the payload schema, and requests that are no CloudEvent', async () => {
    const send = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/cloudevents+json' }) => tlsRequest(eventsUrl, id, { body, headers });
    const unknown = await send({ specversion: '1.0', id: 'x1', source: '/shop', type: 'order.shipped', data: {} });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0].message).toMatch(/known types: order\.created, order\.cancelled|known types: order\.cancelled, order\.created/);
    const badData = await send({ specversion: '1.0', id: 'x2', source: '/shop', type: 'order.created', data: { orderId: 'A', total: -1 } });
    expect(badData.status).toBe(400);
    expect(badData.body.errors[0].message).toMatch(/^data\.total: must be >= 0/);
    const missing = await send({ specversion: '1.0', id: 'x3', source: '/shop', type: 'order.created', data: { total: 1 } });
    expect(missing.body.errors[0].message).toMatch(/must have required property 'orderId'/);
    const noId = await send({ specversion: '1.0', source: '/shop', type: 'order.created' });
    expect(noId.status).toBe(400);
    expect(noId.body.errors[0].message).toMatch(/^id: /);
    const oldSpec = await send({ specversion: '0.3', id: 'x4', source: '/shop', type: 'order.created' });
    expect(oldSpec.body.errors[0].message).toMatch(/specversion/);
    const plain = await tlsRequest(eventsUrl, id, { body: { orderId: 'A' } });
    expect(plain.status).toBe(415);
    expect(plain.body.errors[0].message).toMatch(/not a CloudEvent/);
    const broken = await tlsRequest(eventsUrl, id, { rawBody: '{"specversion":', headers: { 'content-type': 'application/cloudevents+json' } });
    expect(broken.status).toBe(400);
    const nul = await send({ specversion: '1.0', id: 'x5', source: '/shop', type: 'order.cancelled', data: { s: 'a\u0000b' } });
    expect(nul.status).toBe(400);
    expect(heard.some((e) => e.event.id.startsWith('x'))).toBe(false);
  });

  it('only applications send events, only to runtimes of their scenarios', async () => {
    const rt = await registerRuntime(hub, '{ name: "edge-sender" }');
    const rtId = await pair(hub, 'Runtime', rt.id);
    const event = { specversion: '1.0', id: 'r-1', source: '/rt', type: 'order.cancelled' };
    const asRuntime = await tlsRequest(eventsUrl, rtId, { body: event, headers: { 'content-type': 'application/cloudevents+json' } });
    expect(asRuntime.status).toBe(403);
    await ok(hub, 'mutation { updateLabelDefinition(in: { key: "scenarios", schema: { type: "array", items: { type: "string", enum: ["DEFAULT", "OTHER"] } } }) { key } }');
    const far = await registerRuntime(hub, '{ name: "edge-far", labels: { scenarios: ["OTHER"] } }');
    const farUrl = eventsUrl.replace(/[^/]+$/, far.id);
    const elsewhere = await tlsRequest(farUrl, id, { body: event, headers: { 'content-type': 'application/cloudevents+json' } });
    expect(elsewhere.status).toBe(404);
  });
});
