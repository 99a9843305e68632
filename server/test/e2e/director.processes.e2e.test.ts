/**
 * Two hub processes with the director role on one PostgreSQL database: a change that notifies an
 * application is delivered once, by whichever process takes its job, never once per process —
 * retries included; and one process's query cache never answers with data older than a change
 * the other committed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../src/entrypoints/hub.js';
import { waitFor } from '../helpers/flows.js';
import { createHubsOnOneDatabase, TEST_ADMIN_PASSWORD, type HubGroup } from '../helpers/hub.js';
import { hasPostgres } from '../helpers/services.js';

/** A GraphQL call to one process; throws on any error. */
async function director(hub: Hub, token: string, query: string): Promise<any> {
  const res = await hub.app.inject({ method: 'POST', url: '/director/graphql', headers: { authorization: `Bearer ${token}` }, payload: { query } });
  const body = JSON.parse(res.body) as { data?: unknown; errors?: unknown[] };
  if (res.statusCode !== 200 || body.errors) throw new Error(`GraphQL failed (${res.statusCode}): ${res.body}`);
  return body.data;
}

async function login(hub: Hub): Promise<string> {
  const res = await hub.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
  expect(res.statusCode).toBe(200);
  return (JSON.parse(res.body) as { token: string }).token;
}

describe.runIf(hasPostgres)('director on two processes sharing one PostgreSQL database', () => {
  let group: HubGroup;
  let tokens: string[];
  let server: http.Server;
  let url: string;
  const received: Array<{ id: string; body: string; headers: http.IncomingHttpHeaders }> = [];
  /** The first attempt of every message fails, so retries are proven single too. */
  const answeredBefore = new Set<string>();

  beforeAll(async () => {
    group = await createHubsOnOneDatabase(2, { adminPassword: TEST_ADMIN_PASSWORD, serviceName: 'director-two', env: { PLEXUS_DIRECTOR_WEBHOOK_FIRST_RETRY: '200ms' } });
    tokens = [await login(group.hubs[0]!), await login(group.hubs[1]!)];
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const id = String(req.headers['webhook-id']);
        received.push({ id, body, headers: req.headers });
        res.statusCode = answeredBefore.has(id) ? 204 : 500;
        answeredBefore.add(id);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  }, 60_000);
  afterAll(async () => {
    await group?.close();
    await new Promise<void>((r) => server?.close(() => r()));
  });

  it('each change is delivered once (one failed attempt, one success), whichever process made it', async () => {
    const [a, b] = group.hubs as [Hub, Hub];
    const [ta, tb] = tokens as [string, string];
    const app = (await director(a, ta, `mutation { r: registerApplication(in: {name: "two-processes", webhooks: [{type: CONFIGURATION_CHANGED, url: "${url}"}]}) { id webhooks { signingSecret } } }`)).r;
    const rt = (await director(a, ta, 'mutation { r: registerRuntime(in: {name: "rt"}) { id } }')).r;
    // Two changes, each made through another process: READY (B), then a new eventing URL (A).
    await director(b, tb, `mutation { setRuntimeStatus(id: "${rt.id}", condition: READY) { id } }`);
    await director(a, ta, `mutation { setRuntimeLabel(runtimeID: "${rt.id}", key: "runtime/event_service_url", value: "https://events.example") { key } }`);

    const deliveries = await waitFor('both delivered', async () => {
      const d = (await director(b, tb, `{ webhookDeliveries(applicationID: "${app.id}") { data { status attempts messageID } } }`)).webhookDeliveries.data as Array<{ status: string; attempts: number; messageID: string }>;
      return d.length === 2 && d.every((x) => x.status === 'SUCCEEDED') ? d : undefined;
    }, 30_000);
    // Nothing left for either process to send.
    await waitFor('delivery queue drained', async () => (await a.bus.stats('director.webhook-deliveries')).depth === 0, 30_000);

    expect(deliveries.map((d) => d.attempts)).toEqual([2, 2]);
    const ids = deliveries.map((d) => d.messageID).sort();
    expect([...new Set(received.map((r) => r.id))].sort()).toEqual(ids);
    // Per change: exactly the failed attempt and the successful one, no copy from the other process.
    for (const id of ids) expect(received.filter((r) => r.id === id)).toHaveLength(2);
    const verify = new Webhook(app.webhooks[0].signingSecret as string);
    // Signed with the webhook's key by whichever process sent it; one per change.
    const urls = received.map((r) => (verify.verify(r.body, r.headers as Record<string, string>) as { runtime: { eventingConfiguration: { defaultURL: string } } }).runtime.eventingConfiguration.defaultURL);
    // Without its own eventing label a runtime's URL is the hub's mTLS events URL (the Connector).
    expect(urls.sort()).toEqual([...Array(2).fill(expect.stringMatching(/^https:\/\/127\.0\.0\.1:\d+\/events\/[0-9a-f-]{36}$/)), 'https://events.example', 'https://events.example']);
  });

  it("a cached answer is never served after another process's change", async () => {
    const [a, b] = group.hubs as [Hub, Hub];
    const [ta, tb] = tokens as [string, string];
    const list = '{ applications(filter: [{key: "cachetest"}]) { data { name labels } totalCount } }';
    const names = async () => ((await director(a, ta, list)).applications.data as Array<{ name: string }>).map((x) => x.name).sort();
    await director(b, tb, 'mutation { registerApplication(in: {name: "cached-1", labels: {cachetest: "1"}}) { id } }');
    // Asked twice: the second answer comes from A's cache.
    expect(await names()).toEqual(['cached-1']);
    expect(await names()).toEqual(['cached-1']);
    const second = (await director(b, tb, 'mutation { r: registerApplication(in: {name: "cached-2", labels: {cachetest: "1"}}) { id } }')).r;
    expect(await names()).toEqual(['cached-1', 'cached-2']);
    await director(b, tb, `mutation { setApplicationLabel(applicationID: "${second.id}", key: "cachetest", value: "2") { key } }`);
    expect(((await director(a, ta, list)).applications.data as Array<{ name: string; labels: { cachetest: string } }>).find((x) => x.name === 'cached-2')!.labels.cachetest).toBe('2');
    await director(b, tb, `mutation { unregisterApplication(id: "${second.id}") { id } }`);
    expect(await names()).toEqual(['cached-1']);
    expect((await director(a, ta, list)).applications.totalCount).toBe(1);
  });
});
