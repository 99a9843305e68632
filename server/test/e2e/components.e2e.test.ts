/**
 * Components through the public surface: the built-ins and their schemas, registering a
 * component in the OIH / elastic.io format from a folder on the hub, and running it in a flow.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { createAndStart, startSink, stepsOf, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/oih-orders');
const BUILTINS = ['code', 'delay', 'filter', 'http-request', 'log', 'split', 'transform', 'webhook-reply'];

describe.each(dbTargets)('components on %s', (target) => {
  let hub: TestHub;
  let sink: Sink;
  let root: string;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-components-e2e-'));
    fs.chmodSync(root, 0o755);
    fs.cpSync(FIXTURE, path.join(root, 'oih-orders'), { recursive: true });
    hub = await createTestHub({ target, env: { PLEXUS_COMPONENT_PATHS: root } });
    sink = await startSink();
  }, 60_000);

  afterAll(async () => {
    await hub?.close();
    await sink?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('lists the built-ins with the JSON schemas of their fields', async () => {
    const res = await hub.api('GET', '/api/v1/components?page[size]=100');
    expect(res.status).toBe(200);
    expect(res.body.data.map((c: { id: string }) => c.id).sort()).toEqual(BUILTINS);
    expect(res.body.meta).toMatchObject({ total: 8, page: 1 });
    const http = res.body.data.find((c: { id: string }) => c.id === 'http-request');
    // `url`, or `api` (an application's API through the Director): neither is required alone.
    expect(http).toMatchObject({ builtin: true, source: { kind: 'builtin' }, actions: { request: { fields: { type: 'object' } } } });
    expect(Object.keys(http.actions.request.fields.properties)).toEqual(expect.arrayContaining(['method', 'url', 'api', 'headers', 'query', 'body', 'timeoutMs', 'allowPrivateNetwork']));
    const one = await hub.api('GET', '/api/v1/components/transform');
    expect(one.body.data.actions.jsonata.fields.properties.expression.type).toBe('string');
    expect((await hub.api('GET', '/api/v1/components/nope')).status).toBe(404);
    expect((await hub.api('GET', '/api/v1/components?search=sandbox')).body.data.map((c: { id: string }) => c.id)).toEqual(['code']);
  });

  it('registers an OIH component from a folder on the hub and runs it in a flow with its credential', async () => {
    const created = await hub.api('POST', '/api/v1/components', { directory: 'oih-orders' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.data).toMatchObject({ id: 'oih-orders', version: '1.2.3', builtin: false, source: { kind: 'directory' } });
    expect(Object.keys(created.body.data.actions).sort()).toEqual(['unreliable', 'upsertOrder']);
    expect((await hub.api('GET', '/api/v1/components?filter[builtin]=false')).body.data.map((c: { id: string }) => c.id)).toEqual(['oih-orders']);
    await waitFor('the audit record', async () => {
      const audit = await hub.api('GET', '/api/v1/audit?filter[name]=audit.components.registered');
      return audit.body.data?.length > 0;
    });

    const secret = await hub.api('POST', '/api/v1/secrets', { name: `orders key ${target}`, type: 'mixed', value: { apiKey: 'k-1' } });
    expect(secret.status).toBe(201);
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'upsert', componentId: 'oih-orders', function: 'upsertOrder', credentialsId: secret.body.data.id, fields: { prefix: 'PX', region: 'us' } },
        { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${sink.base}/oih` } },
      ],
      edges: [{ source: 'upsert', target: 'send' }],
    });
    const x = await waitForExecution(hub, await trigger(hub, flowId, { id: 9 }));
    expect(x.status).toBe('succeeded');
    expect(stepsOf(x, 'upsert')[0]!.output).toEqual([{ number: 'PX-000009', region: 'us', authorised: true, sameAsBody: true }]);
    const got = sink.requests.find((r) => r.url === '/oih' && String(r.headers['idempotency-key']).startsWith(x.id));
    expect(got?.body).toEqual({ number: 'PX-000009', region: 'us', authorised: true, sameAsBody: true });
    const snaps = await hub.api('GET', `/api/v1/snapshots?filter[flowId]=${flowId}`);
    expect(snaps.body.data).toEqual([expect.objectContaining({ nodeId: 'upsert', snapshot: { seen: 1 } })]);
  });

  it('registers an OIH component from an npm package installed on the hub and runs it', async () => {
    // "Installed on the hub" = resolvable from the hub's code, as `npm install <pkg>` in the
    // hub's folder would put it: a package in the project's node_modules.
    const name = `plexus-e2e-orders-${target}`;
    const installed = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../node_modules', name);
    fs.rmSync(installed, { recursive: true, force: true });
    fs.cpSync(FIXTURE, installed, { recursive: true });
    const pkg = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(installed, 'package.json'), JSON.stringify({ ...pkg, name, version: '2.0.0' }));
    try {
      const created = await hub.api('POST', '/api/v1/components', { package: name });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body.data).toMatchObject({ id: name, version: '2.0.0', builtin: false, source: { kind: 'package', name } });
      // Its own dependencies were installed from its package.json at registration.
      expect(fs.existsSync(path.join(installed, 'node_modules', 'order-format'))).toBe(true);
      expect((await hub.api('POST', '/api/v1/components', { package: name })).status).toBe(409);

      const secret = await hub.api('POST', '/api/v1/secrets', { name: `orders pkg key ${target}`, type: 'mixed', value: { apiKey: 'k-2' } });
      const flowId = await createAndStart(hub, {
        nodes: [{ id: 'upsert', componentId: name, function: 'upsertOrder', credentialsId: secret.body.data.id, fields: { prefix: 'PKG', region: 'eu' } }],
        edges: [],
      });
      const x = await waitForExecution(hub, await trigger(hub, flowId, { id: 42 }));
      expect(x.status).toBe('succeeded');
      expect(stepsOf(x, 'upsert')[0]!.output).toEqual([{ number: 'PKG-000042', region: 'eu', authorised: true, sameAsBody: true }]);
    } finally {
      fs.rmSync(installed, { recursive: true, force: true });
    }
  });

  it('rebounds a message when the component asks, up to maxRebounds, then fails it', async () => {
    // The component declares a required credential field (apiKey): every node of it needs one.
    const secret = await hub.api('POST', '/api/v1/secrets', { name: `orders rebound key ${target}`, type: 'mixed', value: { apiKey: 'k-3' } });
    const flowId = await createAndStart(hub, {
      nodes: [{ id: 'flaky', componentId: 'oih-orders', function: 'unreliable', credentialsId: secret.body.data.id, nodeSettings: { maxRebounds: 2, reboundDelayMs: 20 } }],
      edges: [],
    });
    const x = await waitForExecution(hub, await trigger(hub, flowId, { mode: 'rebound' }));
    expect(x.status).toBe('failed');
    expect(stepsOf(x, 'flaky')[0]).toMatchObject({ status: 'failed', rebounds: 2, attempt: 1 });
    expect(stepsOf(x, 'flaky')[0]!.error).toMatch(/rebounded 2 times .*not ready yet/);
  });

  it('keeps a tenant’s components to itself and checks permissions and input', async () => {
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'globex', name: 'Globex' })).status).toBe(201);
    const made = await hub.api('POST', '/api/v1/users', { username: `globex-${target}`, password: 'globex-password-1', tenant: 'globex', permissions: ['components.read'] });
    expect(made.status).toBe(201);
    const globex = await hub.login(`globex-${target}`, 'globex-password-1', 'globex');
    expect((await hub.api('GET', '/api/v1/components/oih-orders', undefined, globex)).status).toBe(404);
    expect((await hub.api('GET', '/api/v1/components?page[size]=100', undefined, globex)).body.data.map((c: { id: string }) => c.id)).not.toContain('oih-orders');
    expect((await hub.api('POST', '/api/v1/components', { directory: 'oih-orders' }, globex)).status).toBe(403);
    expect((await hub.api('DELETE', '/api/v1/components/oih-orders', undefined, globex)).status).toBe(403);

    const bad = async (body: unknown): Promise<string> => {
      const res = await hub.api('POST', '/api/v1/components', body);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      return res.body.errors[0].message as string;
    };
    expect(await bad({})).toMatch(/exactly one of directory or package/);
    expect(await bad({ directory: 'oih-orders', package: 'x' })).toMatch(/exactly one/);
    expect(await bad({ directory: 'oih-orders', extra: 1 })).toMatch(/extra/);
    expect(await bad({ directory: '/etc' })).toMatch(/not under an allowed component folder/);
    expect(await bad({ package: 'left-pad-does-not-exist-here' })).toMatch(/not installed on the hub/);
    const dup = await hub.api('POST', '/api/v1/components', { directory: 'oih-orders' });
    expect([dup.status, dup.body.errors[0].code]).toEqual([409, 'ALREADY_EXISTS']);
    expect((await hub.api('DELETE', '/api/v1/components/http-request')).status).toBe(409);
  });

  it('unregisters a component', async () => {
    expect((await hub.api('DELETE', '/api/v1/components/oih-orders')).status).toBe(204);
    expect((await hub.api('GET', '/api/v1/components/oih-orders')).status).toBe(404);
    expect((await hub.api('DELETE', '/api/v1/components/oih-orders')).status).toBe(404);
  });
});
