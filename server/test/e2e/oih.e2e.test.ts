/**
 * OIH / elastic.io components run the way sailor runs them, through real flows on a real hub:
 * one small component per convention (test/fixtures/oih-components/*), each registered from a
 * folder on the hub and run in per-tenant processes of the hub.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, createFlow, flowStatus, getExecution, startSink, stepsOf, stopFlow, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/oih-components');
const COMPONENTS = ['contract', 'oauth-like', 'rest-like', 'services', 'editor', 'deps-lock', 'build', 'late-emits', 'lifecycle', 'typescript'];
const OBJECT_MAX_BYTES = 4096;

describe('OIH components run as sailor runs them', { timeout: 90_000 }, () => {
  let hub: TestHub;
  let sink: Sink;
  let root: string;

  const secret = async (name: string, type: string, value: unknown, token?: string): Promise<string> => {
    const res = await hub.api('POST', '/api/v1/secrets', { name, type, value }, token);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data.id as string;
  };
  const register = async (name: string, token?: string): Promise<Record<string, any>> => {
    const res = await hub.api('POST', '/api/v1/components', { directory: name }, token);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data;
  };
  const runOne = async (node: Record<string, unknown>, body: unknown, extra: Record<string, unknown> = {}) => {
    const flowId = await createAndStart(hub, { nodes: [{ id: 'step', ...node } as never], edges: [], ...extra });
    return waitForExecution(hub, await trigger(hub, flowId, body), 30_000);
  };

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-e2e-'));
    // As an operator's component folder is: readable by others, so component processes run as nobody.
    fs.chmodSync(root, 0o755);
    for (const c of COMPONENTS) fs.cpSync(path.join(FIXTURES, c), path.join(root, c), { recursive: true });
    hub = await createTestHub({ env: { PLEXUS_COMPONENT_PATHS: root, PLEXUS_COMPONENT_OBJECT_MAX_BYTES: String(OBJECT_MAX_BYTES) } });
    // The platform services (secrets lookup, object store) are reached over HTTP.
    await hub.listen();
    sink = await startSink();
    for (const c of ['contract', 'oauth-like', 'rest-like', 'services', 'late-emits', 'lifecycle']) await register(c);
  }, 180_000);

  afterAll(async () => {
    await hub?.close();
    await sink?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  describe('the runner contract', () => {
    it('gives `this` the ids, getFlowVariables and passthrough, and runs out of the hub with only the step’s ELASTICIO_* env', async () => {
      fs.writeFileSync(path.join(hub.config.dataDir, 'hub-secret.txt'), 'not for components');
      const cred = await secret('contract basic', 'basic', { username: 'ann', password: 'pw-very-secret' });
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'first', componentId: 'contract', function: 'observe', credentialsId: cred },
          { id: 'second', componentId: 'contract', function: 'observe', credentialsId: cred },
        ],
        edges: [{ source: 'first', target: 'second' }],
        flowSettings: { webhooks: { auth: 'none' }, variables: { region: 'eu', limit: 3 } },
      });
      const x = await waitForExecution(hub, await trigger(hub, flowId, { probe: path.join(hub.config.dataDir, 'hub-secret.txt') }), 30_000);
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      const first = stepsOf(x, 'first')[0]!.output as Array<Record<string, any>>;
      const second = stepsOf(x, 'second')[0]!.output as Array<Record<string, any>>;
      expect(first[0]!.ids).toEqual({ flowId, stepId: 'first', execId: x.id, workspaceId: 'default' });
      expect(first[0]!.flowVariables).toEqual({ region: 'eu', limit: 3 });
      expect(first[0]!.user).toBe('ann');
      // passthrough: what earlier steps emitted, by step id.
      expect(first[0]!.passthrough).toEqual({});
      expect(second[0]!.passthrough.first.body.ids.stepId).toBe('first');
      // Its own process (not the hub's), as nobody when the hub runs as root, reading none of the hub's files.
      expect(first[0]!.pid).not.toBe(process.pid);
      if (process.getuid?.() === 0) expect(first[0]!.uid).toBe(65_534);
      expect(first[0]!.readHubFile).toBe('ERR_ACCESS_DENIED');
      // Its environment: the step's ELASTICIO_* values, and nothing of the hub's.
      const env = first[0]!.env as Record<string, string>;
      expect(Object.keys(env).filter((k) => !k.startsWith('ELASTICIO_')).sort()).toEqual(['HOME', 'NODE_ENV', 'TMPDIR']);
      expect(env).toMatchObject({ ELASTICIO_FLOW_ID: flowId, ELASTICIO_STEP_ID: 'first', ELASTICIO_EXEC_ID: x.id, ELASTICIO_WORKSPACE_ID: 'default', ELASTICIO_COMPONENT_ID: 'contract', ELASTICIO_API_KEY: 'string' });
      expect(second[0]!.env.ELASTICIO_STEP_ID).toBe('second');
    });

    it('keeps tenants in separate processes', async () => {
      expect((await hub.api('POST', '/api/v1/tenants', { id: 'globex', name: 'Globex' })).status).toBe(201);
      expect((await hub.api('POST', '/api/v1/users', { username: 'globex-admin', password: 'globex-password-1', tenant: 'globex', permissions: ['tenant.all'] })).status).toBe(201);
      const globex = await hub.login('globex-admin', 'globex-password-1', 'globex');
      await register('contract', globex);
      const ownCred = await secret('contract basic', 'basic', { username: 'gus', password: 'globex-pw' }, globex);
      const defaultCred = await secret('contract basic 2', 'basic', { username: 'ann', password: 'pw-very-secret' });
      const mine = await runOne({ componentId: 'contract', function: 'observe', credentialsId: defaultCred }, {});
      const theirsFlow = await createAndStart(hub, { nodes: [{ id: 'step', componentId: 'contract', function: 'observe', credentialsId: ownCred }], edges: [] }, globex);
      const res = await hub.api('POST', `/hook/${theirsFlow}`, {}, null);
      const theirs = await waitFor('the other tenant’s execution', async () => {
        const x = await getExecution(hub, res.body.data.executionId as string, globex);
        return x && x.status !== 'running' ? x : undefined;
      }, 30_000);
      const pidOf = (x: typeof mine): number => (stepsOf(x, 'step')[0]!.output as Array<{ pid: number }>)[0]!.pid;
      expect(theirs.status).toBe('succeeded');
      expect((stepsOf(theirs, 'step')[0]!.output as Array<{ ids: { workspaceId: string } }>)[0]!.ids.workspaceId).toBe('globex');
      expect(pidOf(theirs)).not.toBe(pidOf(mine));
    }, 120_000);
  });

  describe('error semantics', () => {
    const errorsNode = { componentId: 'contract', function: 'errors', nodeSettings: { retries: 2, retryDelayMs: 10, maxRebounds: 1, reboundDelayMs: 10 } };
    let cred: string;
    beforeAll(async () => {
      cred = await secret('errors basic', 'basic', { username: 'ann', password: 'pw-very-secret' });
    });

    it('fails the message on a thrown error or emit(error)+end, without retrying it', async () => {
      for (const [mode, error] of [
        ['throw', 'the order is invalid'],
        ['emit-error-then-end', 'refused by the remote'],
        ['http-404', 'Request failed with status code 404'],
      ] as const) {
        const x = await runOne({ ...errorsNode, credentialsId: cred }, { mode });
        expect(x.status, mode).toBe('failed');
        const runs = stepsOf(x, 'step');
        expect(runs.map((r) => [r.status, r.attempt]), mode).toEqual([['failed', 1]]);
        expect(runs[0]!.error, mode).toContain(error);
      }
    });

    it('retries an HTTP 408/429/5xx as transient, and rebounds only when asked', async () => {
      const transient = await runOne({ ...errorsNode, credentialsId: cred }, { mode: 'http-503' });
      expect(transient.status).toBe('failed');
      expect(stepsOf(transient, 'step').at(-1)).toMatchObject({ status: 'failed', attempt: 3 });
      expect(stepsOf(transient, 'step').at(-1)!.error).toContain('503');
      const rebound = await runOne({ ...errorsNode, credentialsId: cred }, { mode: 'rebound' });
      expect(stepsOf(rebound, 'step').at(-1)).toMatchObject({ status: 'failed', rebounds: 1, attempt: 1 });
      expect(stepsOf(rebound, 'step').at(-1)!.error).toMatch(/rebounded 1 times.*not ready yet/);
    });

    it('delivers what a component emits just after end', async () => {
      const x = await runOne({ ...errorsNode, credentialsId: cred }, { mode: 'late' });
      expect(x.status).toBe('succeeded');
      expect(stepsOf(x, 'step')[0]!.output).toEqual([{ late: true }]);
    });

    it('delivers emits after end to the next steps while the component still has work under way, and ends at once when it has none', async () => {
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'step', componentId: 'late-emits', function: 'late', fields: { delayMs: 300 } },
          { id: 'next', componentId: 'transform', function: 'jsonata', fields: { expression: '{"seen": n}' } },
        ],
        edges: [{ source: 'step', target: 'next' }],
      });
      const x = await waitForExecution(hub, await trigger(hub, flowId, { mode: 'after-end' }), 30_000);
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      expect(stepsOf(x, 'step')[0]!.output).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
      expect(stepsOf(x, 'next').map((r) => r.output).flat().sort((a, b) => (a as { seen: number }).seen - (b as { seen: number }).seen)).toEqual([{ seen: 0 }, { seen: 1 }, { seen: 2 }]);
      const promised = await runOne({ componentId: 'late-emits', function: 'late', fields: { delayMs: 200 } }, { mode: 'async-then-late' });
      expect(stepsOf(promised, 'step')[0]!.output).toEqual([{ n: 0 }, { n: 1 }]);
      // The common case: nothing pending (an idle keep-alive socket after a REST call is not work).
      const rest = await runOne({ componentId: 'late-emits', function: 'late' }, { mode: 'request-then-end', url: `${sink.base}/late-rest` });
      expect(stepsOf(rest, 'step')[0]!.output).toEqual([{ fetched: true }]);
      // Held to its 60 s limit, this step would also hold the unref'd timer's emit after 1.5 s.
      const quiet = await runOne({ componentId: 'late-emits', function: 'late', fields: { delayMs: 500 }, nodeSettings: { timeoutMs: 60_000 } }, { mode: 'ends-quietly' });
      expect(stepsOf(quiet, 'step')[0]!.output).toEqual([{ n: 0 }]);
    });

    it('ends a run held by a timer never cleared before the engine’s time limit, with what it emitted', async () => {
      const x = await runOne({ componentId: 'late-emits', function: 'late', fields: { delayMs: 100 }, nodeSettings: { timeoutMs: 3_000, retries: 0 } }, { mode: 'leaks' });
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      expect(stepsOf(x, 'step').map((r) => [r.status, r.output])).toEqual([['succeeded', [{ n: 0 }, { n: 1 }]]]);
    });

    it('answers a sync webhook call with httpReply', async () => {
      const flowId = await createAndStart(hub, {
        nodes: [{ id: 'step', componentId: 'contract', function: 'reply', credentialsId: cred }],
        edges: [],
        flowSettings: { webhooks: { auth: 'none', respond: 'sync', timeoutMs: 20_000 } },
      });
      const res = await hub.api('POST', `/hook/${flowId}`, { order: 7 }, null);
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.headers['x-handled-by']).toBe('oih');
      expect(res.body).toEqual({ received: { order: 7 } });
    });
  });

  describe('credentials', () => {
    it('maps a basic secret to the REST component’s auth; a node without one fails naming the field', async () => {
      const basic = await secret('rest basic', 'basic', { username: 'rita', password: 'rest-pw-1' });
      const ok = await runOne({ componentId: 'rest-like', function: 'call', credentialsId: basic, fields: { url: `${sink.base}/rest-basic` } }, { n: 1 });
      expect(ok.status, JSON.stringify(ok.steps)).toBe('succeeded');
      expect(stepsOf(ok, 'step')[0]!.output).toEqual([{ status: 200, authType: 'Basic Auth', passphraseSet: true }]);
      const got = sink.requests.find((r) => r.url === '/rest-basic');
      expect(got?.headers.authorization).toBe(`Basic ${Buffer.from('rita:rest-pw-1').toString('base64')}`);

      const nested = await secret('rest mixed', 'mixed', { auth: { type: 'Basic Auth', basic: { username: 'max', password: 'mixed-pw' } } });
      const viaMixed = await runOne({ componentId: 'rest-like', function: 'call', credentialsId: nested, fields: { url: `${sink.base}/rest-mixed` } }, {});
      expect(viaMixed.status).toBe('succeeded');
      expect(sink.requests.find((r) => r.url === '/rest-mixed')?.headers.authorization).toBe(`Basic ${Buffer.from('max:mixed-pw').toString('base64')}`);

      const before = sink.requests.length;
      const none = await runOne({ componentId: 'rest-like', function: 'call', fields: { url: `${sink.base}/rest-none` } }, {});
      expect(none.status).toBe('failed');
      expect(stepsOf(none, 'step')[0]).toMatchObject({ status: 'failed', attempt: 1 });
      expect(stepsOf(none, 'step')[0]!.error).toContain('needs the credential field auth');
      expect(sink.requests.length).toBe(before);
    });

    it('maps an oauth2 secret to cfg.oauth and saves the keys a component emits with updateKeys', async () => {
      const oauth = await secret('oauth like', 'oauth2', {
        grantType: 'refresh_token',
        tokenUrl: `${sink.base}/token`,
        clientId: 'client-1',
        refreshToken: 'refresh-1',
        accessToken: 'token-1',
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      const flowId = await createAndStart(hub, { nodes: [{ id: 'step', componentId: 'oauth-like', function: 'keys', credentialsId: oauth }], edges: [] });
      const first = await waitForExecution(hub, await trigger(hub, flowId, {}), 30_000);
      expect(stepsOf(first, 'step')[0]!.output).toEqual([{ used: 'token-1' }]);
      const second = await waitForExecution(hub, await trigger(hub, flowId, {}), 30_000);
      expect(stepsOf(second, 'step')[0]!.output).toEqual([{ used: 'token-1-renewed' }]);
      const raw = await hub.api('GET', `/api/v1/secrets/${oauth}/raw`);
      expect(raw.body.data.value).toMatchObject({ accessToken: 'token-1-renewed-renewed', refreshToken: 'refresh-1' });
    });
  });

  describe('platform services', () => {
    it('answers the secrets lookup a component makes with cfg.secretId, for its tenant only', async () => {
      const looked = await secret('looked up', 'basic', { username: 'lu', password: 'lookup-pw' });
      const x = await runOne({ componentId: 'services', function: 'secret', fields: { secretId: looked } }, {});
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      expect(stepsOf(x, 'step')[0]!.output).toEqual([{ credentials: { username: 'lu', password: 'lookup-pw' } }]);
      await waitFor('the audit record of the read', async () => {
        const audit = await hub.api('GET', '/api/v1/audit?filter[name]=audit.secrets.secret.read-raw&page[size]=100');
        return audit.body.data?.some((r: { target?: { id?: string } }) => r.target?.id === looked);
      });
      // Without a step token, or with another tenant's workspace: nothing.
      expect((await hub.api('GET', `/api/v1/oih/platform/v2/workspaces/default/secrets/${looked}`, undefined, null)).status).toBe(401);
    });

    it('keeps objects per tenant in the object store, within its size limit', async () => {
      const x = await runOne({ componentId: 'services', function: 'objects' }, { content: 'attachment body' });
      const out = (stepsOf(x, 'step')[0]!.output as Array<Record<string, unknown>>)[0]!;
      expect(out).toMatchObject({ stored: true, roundTrip: 'attachment body', contentType: 'text/plain', anonymousStatus: 401 });
      const big = await runOne({ componentId: 'services', function: 'objects' }, { content: 'x'.repeat(OBJECT_MAX_BYTES + 1) });
      expect((stepsOf(big, 'step')[0]!.output as Array<Record<string, unknown>>)[0]).toMatchObject({ stored: false, status: 413 });
    });

    it('subjects a component’s own connections to the hub’s network policy', async () => {
      const allowed = await runOne({ componentId: 'services', function: 'reach' }, { url: `${sink.base}/reach` });
      expect(stepsOf(allowed, 'step')[0]!.output).toEqual([{ status: 200 }]);
      // 127.0.0.2 is loopback, not in the test hub's allow-list (127.0.0.1).
      const refused = await runOne({ componentId: 'services', function: 'reach' }, { url: `http://127.0.0.2:${new URL(sink.base).port}/x` });
      expect((stepsOf(refused, 'step')[0]!.output as Array<{ error: string }>)[0]!.error).toMatch(/refused by the hub's network policy: loopback/);
    });
  });

  describe('registration', () => {
    it('accepts the ecosystem’s component.json and describes fields by their real types', async () => {
      const c = await register('editor');
      const upsert = c.actions.upsert;
      expect(upsert.dynamicMetadata).toBe(true);
      expect(upsert.inputSchema).toEqual({ type: 'object', properties: { id: { type: 'string', title: 'Order id' } }, required: ['id'] });
      const p = upsert.fields.properties;
      expect(p.region).toMatchObject({ type: 'string', 'x-model': 'getRegions', 'x-viewClass': 'SelectView' });
      expect([p.notes.type, p.script.type, p.mapping.type, p.dryRun.type, p.tags.type, p.limit.type, p.options.type]).toEqual(['string', 'string', 'string', 'boolean', 'array', 'number', 'object']);
      expect(p.tags.items).toEqual({ type: 'string', enum: ['a', 'b'] });
      expect(upsert.fields.required).toEqual(['region']);
      expect(c.credentials.properties.connection).toMatchObject({ type: 'object', properties: { host: { type: 'string' }, port: { type: 'number' } }, required: ['host'] });
      expect(c.credentials.properties.oauth.type).toBe('object');
    });

    it('enforces required fields and field types when a flow is saved, naming the node and field', async () => {
      const res = await hub.api('POST', '/api/v1/flows', { name: 'missing region', graph: { nodes: [{ id: 'up', componentId: 'editor', function: 'upsert', fields: { limit: 'ten' } }], edges: [] } });
      expect(res.status).toBe(400);
      const text = JSON.stringify(res.body);
      expect(text).toContain('fields.region: is required');
      expect(text).toContain('fields.limit: must be number');
      expect(text).toMatch(/"?up"?/);
    });

    it('installs locked dependencies with npm ci, and builds a component that needs it, keeping the log', async () => {
      await register('deps-lock');
      expect(fs.readFileSync(path.join(root, 'deps-lock', '.plexus-install.log'), 'utf8')).toContain('$ npm ci --omit=dev');
      const padded = await runOne({ componentId: 'deps-lock', function: 'pad' }, { value: 42 });
      expect(stepsOf(padded, 'step')[0]!.output).toEqual([{ padded: '****42' }]);

      await register('build');
      const log = fs.readFileSync(path.join(root, 'build', '.plexus-install.log'), 'utf8');
      expect(log).toContain('$ npm run build');
      expect(log).toContain('yarn.lock found');
      const hello = await runOne({ componentId: 'build', function: 'hello' }, {});
      expect(stepsOf(hello, 'step')[0]!.output).toEqual([{ greeting: 'hello from the build' }]);
    });

    it('transpiles a component’s TypeScript sources (no build script) once at registration, keeping the log', async () => {
      expect((await register('typescript')).id).toBe('typescript-component');
      expect(fs.readFileSync(path.join(root, 'typescript', '.plexus-install.log'), 'utf8')).toMatch(/TypeScript sources and no scripts.build .*transpiled with esbuild/);
      const x = await runOne({ componentId: 'typescript-component', function: 'greet', fields: { salutation: 'Hi' } }, { name: 'Ann', loud: true });
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      expect(stepsOf(x, 'step')[0]!.output).toEqual([{ text: 'HI, ANN!', tone: 'loud', compiledFrom: 'js' }]);
      const verified = await hub.api('POST', '/api/v1/components/typescript-component/verify-credentials', { fields: { apiKey: 'typed-key' } });
      expect(verified.body.data).toEqual({ verified: true });
    });

    it('refuses a component whose build fails, showing the end of its install log', async () => {
      fs.cpSync(path.join(FIXTURES, 'build'), path.join(root, 'broken-build'), { recursive: true });
      fs.writeFileSync(path.join(root, 'broken-build', 'package.json'), JSON.stringify({ name: 'broken-build', version: '1.0.0', scripts: { build: 'node -e "console.error(\'tsc: 3 errors\'); process.exit(2)"' } }));
      const res = await hub.api('POST', '/api/v1/components', { directory: 'broken-build' });
      expect(res.status).toBe(400);
      expect(res.body.errors[0].message).toMatch(/building the component \(npm run build\) failed[\s\S]*tsc: 3 errors/);
    });
  });

  describe('lifecycle and editor functions', () => {
    it('verifies credentials with the component’s verifyCredentials', async () => {
      const good = await hub.api('POST', '/api/v1/components/editor/verify-credentials', { fields: { apiKey: 'good-key' } });
      expect([good.status, good.body.data]).toEqual([200, { verified: true }]);
      const bad = await secret('editor bad', 'mixed', { apiKey: 'bad-key', connection: { host: 'db.example' } });
      const res = await hub.api('POST', '/api/v1/components/editor/verify-credentials', { credentialsId: bad });
      expect(res.body.data).toEqual({ verified: false, reason: 'unknown key for db.example' });
      expect((await hub.api('POST', '/api/v1/components/http-request/verify-credentials', {})).status).toBe(400);
    });

    it('runs getMetaModel and select-model functions for an editor', async () => {
      const meta = await hub.api('POST', '/api/v1/components/editor/dynamic/getMetaModel', { fields: { region: 'eu' } });
      expect(meta.status, JSON.stringify(meta.body)).toBe(200);
      expect(Object.keys(meta.body.data.in.properties)).toEqual(['id', 'euCode']);
      const regions = await hub.api('POST', '/api/v1/components/editor/dynamic/getRegions', { fields: { apiKey: 'good-key' }, of: 'upsert' });
      expect(regions.body.data).toEqual({ eu: 'Europe', us: 'United States' });
      expect((await hub.api('POST', '/api/v1/components/editor/dynamic/process', {})).status).toBe(400);
      expect((await hub.api('POST', '/api/v1/components/editor/dynamic/noSuchFunction', {})).status).toBe(404);
    });

    it('runs startup once when the flow starts, hands its data to process, and shutdown when it stops', async () => {
      const cred = await secret('editor good', 'mixed', { apiKey: 'good-key', connection: { host: 'db.example' } });
      const flowId = await createFlow(hub, {
        nodes: [{ id: 'up', componentId: 'editor', function: 'upsert', credentialsId: cred, fields: { region: 'eu', notifyUrl: `${sink.base}/lifecycle` } }],
        edges: [],
      });
      await hub.api('POST', `/api/v1/flows/${flowId}/start`);
      await waitFor('flow active', async () => (await hub.api('GET', `/api/v1/flows/${flowId}`)).body.data.status === 'active');
      const one = await waitForExecution(hub, await trigger(hub, flowId, { id: 'a' }), 30_000);
      const two = await waitForExecution(hub, await trigger(hub, flowId, { id: 'b' }), 30_000);
      for (const x of [one, two]) expect((stepsOf(x, 'up')[0]!.output as Array<Record<string, unknown>>)[0]).toMatchObject({ upserted: true, startupData: { subscription: 'sub-eu' } });
      expect((stepsOf(one, 'up')[0]!.output as Array<{ initCalls: number }>)[0]!.initCalls).toBeGreaterThanOrEqual(1);
      const lifecycle = () => sink.requests.filter((r) => r.url === '/lifecycle').map((r) => r.body);
      expect(lifecycle()).toEqual([{ event: 'startup', region: 'eu' }]);
      await stopFlow(hub, flowId);
      await waitFor('shutdown', async () => lifecycle().length === 2, 30_000);
      expect(lifecycle()[1]).toEqual({ event: 'shutdown', startupData: { subscription: 'sub-eu' } });
    });

    it('runs startup before the flow is active and shutdown before it is inactive (the lifecycle component)', async () => {
      const notifyUrl = `${sink.base}/hooks-one`;
      const events = () => sink.requests.filter((r) => r.url === '/hooks-one').map((r) => r.body as Record<string, unknown>);
      const flowId = await createAndStart(hub, { nodes: [{ id: 'w', componentId: 'lifecycle', function: 'watch', fields: { topic: 'orders', notifyUrl } }], edges: [] });
      // Active means startup has run: no message can come before it.
      expect(events()).toEqual([{ event: 'startup', topic: 'orders' }]);
      const x = await waitForExecution(hub, await trigger(hub, flowId, { n: 1 }), 30_000);
      expect(stepsOf(x, 'w')[0]!.output).toEqual([{ got: { n: 1 }, startupData: { subscription: 'sub-orders' } }]);
      await stopFlow(hub, flowId);
      // Inactive means shutdown has run, with startup's data.
      expect(events()).toEqual([
        { event: 'startup', topic: 'orders' },
        { event: 'shutdown', topic: 'orders', startupData: { subscription: 'sub-orders' } },
      ]);
    });

    it('fails the flow’s start with the reason when a startup fails, shutting down the nodes already started', async () => {
      const notifyUrl = `${sink.base}/hooks-two`;
      const flowId = await createFlow(hub, {
        nodes: [
          { id: 'first', componentId: 'lifecycle', function: 'watch', fields: { topic: 'invoices', notifyUrl } },
          { id: 'second', componentId: 'lifecycle', function: 'watch', fields: { topic: 'refunds', failStartup: true, notifyUrl } },
        ],
        edges: [{ source: 'first', target: 'second' }],
      });
      expect((await hub.api('POST', `/api/v1/flows/${flowId}/start`)).status).toBeLessThan(300);
      const failed = await waitFor('the start to fail', async () => {
        const f = await flowStatus(hub, flowId);
        return f.status === 'inactive' && f.statusReason ? f : undefined;
      }, 30_000);
      expect(failed.statusReason).toBe('node second (lifecycle/watch): startup failed: the remote refused the subscription to refunds');
      expect(sink.requests.filter((r) => r.url === '/hooks-two').map((r) => (r.body as { event: string }).event)).toEqual(['startup', 'shutdown']);
    });
  });
});
