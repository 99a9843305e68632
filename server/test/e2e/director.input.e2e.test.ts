/**
 * Bad input to the Director answers with GraphQL errors naming the problem (never a 500, a hang
 * or a stack trace); a depth / field limit refuses abusive queries but lets Compass's deepest
 * real queries through; specs are validated (lenient by default, strict on request) and fetch
 * requests are fetched in the background with a visible status.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, ok, registerApp } from '../helpers/director.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { startTokenServer, type TokenServer } from '../helpers/oauth2.js';

let hub: TestHub;
beforeAll(async () => {
  hub = await createTestHub();
});
afterAll(async () => {
  await hub?.close();
});

function expectClean(r: { status: number; errors?: Array<{ message: string; extensions: { error_code: number } }> }, code: number): void {
  expect(r.status).toBeLessThan(500);
  expect(r.errors?.length).toBeGreaterThan(0);
  expect(r.errors![0]!.extensions.error_code).toBe(code);
  expect(JSON.stringify(r.errors)).not.toMatch(/\n\s+at |SELECT |INSERT |node_modules/);
}

describe('bad-input corpus', () => {
  it('wrong types, unknown fields and arguments, bad enums, missing input', async () => {
    for (const q of [
      'mutation { registerApplication(in: {name: 42}) { id } }',
      'mutation { registerApplication(in: {name: "x", bogus: 1}) { id } }',
      '{ applications { data { id nope } } }',
      '{ applications(first: "ten") { totalCount } }',
      'mutation { registerApplication(in: {name: "x", integrationLevel: NOPE}) { id } }',
      'mutation { registerApplication { id } }',
      '{ applications { ',
    ]) {
      const r = await gql(hub, q);
      expectClean(r, 22);
      expect(r.status).toBe(400);
    }
  });

  it('invalid values name the field', async () => {
    const r = await gql(hub, 'mutation { registerApplication(in: {name: "Not A DNS Name", apiDefinitions: [{name: "a", targetURL: "not a url"}]}) { id } }');
    expectClean(r, 22);
    expect(r.errors![0]!.message).toContain('in.name');
    expect(r.errors![0]!.message).toContain('in.apiDefinitions.0.targetURL');
    const both = await gql(hub, 'mutation { registerApplication(in: {name: "both", apiDefinitions: [{name: "a", targetURL: "http://x.example", spec: {type: OPEN_API, format: XML, data: "{}", fetchRequest: {url: "http://x.example"}}}]}) { id } }');
    expect(both.errors![0]!.message).toContain('exactly one of data or fetchRequest');
    expect(both.errors![0]!.message).toContain('XML is not a valid format for spec type OPEN_API');
    const noBody = await hub.api('POST', '/director/graphql', { variables: {} });
    expect(noBody.status).toBe(400);
    const notJson = await hub.app.inject({ method: 'POST', url: '/director/graphql', headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }, payload: '{"query": ' });
    expect(notJson.statusCode).toBe(400);
    expect(JSON.parse(notJson.body).errors[0].extensions.error_code).toBe(22);
  });

  it('a 10 MB spec is refused as too large (413), without a 500', async () => {
    const big = 'x'.repeat(10 * 1024 * 1024);
    const r = await gql(hub, 'mutation($d: CLOB) { registerApplication(in: {name: "big", apiDefinitions: [{name: "a", targetURL: "http://x.example", spec: {type: OPEN_API, format: JSON, data: $d}}]}) { id } }', { variables: { d: big } });
    expect(r.status).toBe(413);
    expect(r.errors![0]!.extensions.error_code).toBe(22);
  });

  it('a deeply nested query and 1,000 aliases are refused; Compass-depth queries pass', async () => {
    // 11 levels, as deep as Compass's own requests go (application → … → credential → username).
    const compassDepth = '{ applications { data { apiDefinitions { data { spec { fetchRequest { auth { requestAuth { csrf { credential { ... on BasicCredentialData { username } } } } } } } } } } } }';
    expect((await gql(hub, compassDepth)).errors).toBeUndefined();
    const recursive = `{ ${Array.from({ length: 14 }, () => 'applications { data {').join(' ')} id ${'} }'.repeat(14)} }`;
    expectClean(await gql(hub, recursive), 22);
    const aliases = `{ ${Array.from({ length: 1000 }, (_v, i) => `a${i}: viewer { id }`).join(' ')} }`;
    const r = await gql(hub, aliases);
    expectClean(r, 22);
    expect(r.errors![0]!.message).toContain('fields');
  });

  it('every Compass example stays within the limits (the largest selects ~260 fields, 11 levels)', async () => {
    const dir = path.resolve(import.meta.dirname, '../fixtures/compass-director-examples');
    const largest = fs.readFileSync(path.join(dir, 'register-application-with-api-definitions.graphql'), 'utf8');
    const r = await gql(hub, largest);
    expect(r.errors).toBeUndefined();
  });
});

describe('specs', () => {
  let server: http.Server;
  let base: string;
  let failuresLeft = 0;
  /** Another origin (another port) that records what reached it. */
  let elsewhere: http.Server;
  let elsewhereBase: string;
  const elsewhereSaw: Array<{ headers: http.IncomingHttpHeaders; url: string }> = [];
  /** Requests to `server`, by path. */
  const saw = new Map<string, { headers: http.IncomingHttpHeaders; url: string }>();
  let tokens: TokenServer;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      saw.set((req.url ?? '/').split('?')[0]!, { headers: req.headers, url: req.url ?? '/' });
      if (req.url === '/to-private') {
        res.writeHead(302, { location: 'http://10.0.0.1/spec.json' });
        return res.end();
      }
      if (req.url?.startsWith('/to-elsewhere')) {
        res.writeHead(302, { location: `${elsewhereBase}/spec.json` });
        return res.end();
      }
      if (req.url === '/flaky' && failuresLeft > 0) {
        failuresLeft--;
        res.statusCode = 503;
        return res.end();
      }
      if (req.url === '/missing') {
        res.statusCode = 404;
        return res.end();
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ openapi: '3.0.2', info: { title: 'orders', version: '1' }, paths: {} }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    elsewhere = http.createServer((req, res) => {
      elsewhereSaw.push({ headers: req.headers, url: req.url ?? '/' });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ openapi: '3.0.2', info: { title: 'moved', version: '1' }, paths: {} }));
    });
    await new Promise<void>((r) => elsewhere.listen(0, '127.0.0.1', r));
    elsewhereBase = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
    tokens = await startTokenServer();
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => elsewhere.close(() => r()));
    await tokens.close();
  });

  const fetchStatus = async (appId: string) =>
    (await ok(hub, `{ application(id: "${appId}") { apiDefinitions { data { id spec { data validation { valid } fetchRequest { status { condition message } } } } } } }`)).application.apiDefinitions.data[0];

  it('fetchRequest: fetched in the background, retried after a 503, stored and validated; refetchAPISpec again; a 404 fails with its reason', async () => {
    failuresLeft = 1;
    const app = await registerApp(hub, `{name: "fetched", apiDefinitions: [{name: "orders", targetURL: "http://x.example", spec: {type: OPEN_API, format: JSON, fetchRequest: {url: "${base}/flaky"}}}]}`);
    const done = await waitFor('spec fetched', async () => {
      const a = await fetchStatus(app.id);
      return a.spec.fetchRequest.status.condition === 'SUCCEEDED' ? a : undefined;
    }, 20_000);
    expect(JSON.parse(done.spec.data).info.title).toBe('orders');
    expect(done.spec.validation.valid).toBe(true);
    expect(failuresLeft).toBe(0);
    const again = await ok(hub, `mutation { r: refetchAPISpec(apiID: "${done.id}") { fetchRequest { status { condition } } } }`);
    expect(again.r.fetchRequest.status.condition).toBe('INITIAL');
    await waitFor('refetched', async () => (await fetchStatus(app.id)).spec.fetchRequest.status.condition === 'SUCCEEDED', 20_000);

    const missing = await registerApp(hub, `{name: "missing", apiDefinitions: [{name: "o", targetURL: "http://x.example", spec: {type: OPEN_API, format: JSON, fetchRequest: {url: "${base}/missing"}}}]}`);
    const failed = await waitFor('fetch failed', async () => {
      const a = await fetchStatus(missing.id);
      return a.spec.fetchRequest.status.condition === 'FAILED' ? a : undefined;
    }, 20_000);
    expect(failed.spec.fetchRequest.status.message).toContain('404');
  });

  const fetchFrom = async (name: string, fetchRequest: string) => {
    const app = await registerApp(hub, `{name: "${name}", apiDefinitions: [{name: "o", targetURL: "http://x.example", spec: {type: OPEN_API, format: JSON, fetchRequest: ${fetchRequest}}}]}`);
    return waitFor(`${name} fetched or failed`, async () => {
      const a = await fetchStatus(app.id);
      return a.spec.fetchRequest.status.condition === 'INITIAL' ? undefined : a;
    }, 20_000);
  };

  it("the operator's network policy: a refused address fails at once naming why, a redirect to one too", async () => {
    const direct = await fetchFrom('refused', '{url: "http://10.0.0.1/spec.json"}');
    expect(direct.spec.fetchRequest.status.condition).toBe('FAILED');
    expect(direct.spec.fetchRequest.status.message).toContain('10.0.0.1 is a non-public address');
    expect(direct.spec.fetchRequest.status.message).toContain('PLEXUS_STEPS_ALLOWED_HOSTS');
    expect(direct.spec.data).toBeNull();
    const redirected = await fetchFrom('redirected', `{url: "${base}/to-private"}`);
    expect(redirected.spec.fetchRequest.status.condition).toBe('FAILED');
    expect(redirected.spec.fetchRequest.status.message).toContain('10.0.0.1 is a non-public address');
  });

  it('credentials stay on their origin: a redirect elsewhere drops the Authorization, the additional headers and parameters', async () => {
    const auth = '{credential: {basic: {username: "u", password: "p"}}, additionalHeaders: {apikey: ["k1"]}, additionalQueryParams: {token: ["q1"]}}';
    const done = await fetchFrom('moved', `{url: "${base}/to-elsewhere", auth: ${auth}}`);
    expect(done.spec.fetchRequest.status.condition).toBe('SUCCEEDED');
    expect(JSON.parse(done.spec.data).info.title).toBe('moved');
    const first = saw.get('/to-elsewhere')!;
    expect(first.headers.authorization).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(first.headers.apikey).toBe('k1');
    expect(first.url).toBe('/to-elsewhere?token=q1');
    const second = elsewhereSaw.at(-1)!;
    expect(second.headers.authorization).toBeUndefined();
    expect(second.headers.apikey).toBeUndefined();
    expect(second.url).toBe('/spec.json');
  });

  it('OAuth client credentials: a token from the credential url, sent as a bearer token', async () => {
    const done = await fetchFrom('oauth', `{url: "${base}/oauth-spec", auth: {credential: {oauth: {clientId: "cid", clientSecret: "cs3cret", url: "${tokens.url}"}}}}`);
    expect(done.spec.fetchRequest.status.condition).toBe('SUCCEEDED');
    expect(tokens.requests.at(-1)).toMatchObject({ form: { grant_type: 'client_credentials' }, authorization: `Basic ${Buffer.from('cid:cs3cret').toString('base64')}` });
    expect(saw.get('/oauth-spec')!.headers.authorization).toBe(`Bearer access-${tokens.requests.length}`);
    tokens.refuseWith = 'invalid_client';
    try {
      const refused = await fetchFrom('oauth-refused', `{url: "${base}/oauth-spec", auth: {credential: {oauth: {clientId: "cid", clientSecret: "wrong", url: "${tokens.url}"}}}}`);
      expect(refused.spec.fetchRequest.status.condition).toBe('FAILED');
      expect(refused.spec.fetchRequest.status.message).toContain('invalid_client');
    } finally {
      tokens.refuseWith = undefined;
    }
  });

  it("a tenant's own strict setting refuses what the lenient default stores; only its administrator changes it", async () => {
    const spec = 'spec: {type: OPEN_API, format: JSON, data: "{\\"openapi\\":\\"3.0.2\\"}"}';
    const tenant = `strict-${Date.now().toString(36)}`;
    expect((await hub.api('POST', '/api/v1/tenants', { id: tenant, name: tenant })).status).toBe(201);
    expect((await hub.api('POST', '/api/v1/users', { username: `${tenant}-admin`, password: 'password-123', tenant, permissions: ['tenant.all'] })).status).toBe(201);
    expect((await hub.api('POST', '/api/v1/users', { username: `${tenant}-dev`, password: 'password-123', tenant, permissions: ['application:read', 'application:write'] })).status).toBe(201);
    const admin = await hub.login(`${tenant}-admin`, 'password-123', tenant);
    const dev = await hub.login(`${tenant}-dev`, 'password-123', tenant);
    expect((await ok(hub, '{ directorSettings { specValidation specValidationOverride } }', { token: admin })).directorSettings).toEqual({ specValidation: 'LENIENT', specValidationOverride: null });
    const denied = await gql(hub, 'mutation { setDirectorSettings(in: {specValidation: STRICT}) { specValidation } }', { token: dev });
    expect(denied.errors?.[0]?.extensions.error_code).toBe(23);
    const set = await ok(hub, 'mutation { r: setDirectorSettings(in: {specValidation: STRICT}) { specValidation specValidationOverride } }', { token: admin });
    expect(set.r).toEqual({ specValidation: 'STRICT', specValidationOverride: 'STRICT' });
    const refused = await gql(hub, `mutation { registerApplication(in: {name: "placeholder", apiDefinitions: [{name: "a", targetURL: "http://x.example", ${spec}}]}) { id } }`, { token: dev });
    expectClean(refused, 22);
    expect(refused.errors![0]!.message).toContain('in.apiDefinitions.0.spec.data');
    // Another tenant keeps the installation's default: the same placeholder is stored, with its problems.
    const elsewhere = await ok(hub, `mutation { r: registerApplication(in: {name: "placeholder-${tenant}", apiDefinitions: [{name: "a", targetURL: "http://x.example", ${spec}}]}) { apiDefinitions { data { spec { validation { valid } } } } } }`);
    expect(elsewhere.r.apiDefinitions.data[0].spec.validation.valid).toBe(false);
    // Back to the default.
    const reset = await ok(hub, 'mutation { r: setDirectorSettings(in: {specValidation: null}) { specValidation specValidationOverride } }', { token: admin });
    expect(reset.r).toEqual({ specValidation: 'LENIENT', specValidationOverride: null });
    await ok(hub, `mutation { registerApplication(in: {name: "placeholder", apiDefinitions: [{name: "a", targetURL: "http://x.example", ${spec}}]}) { id } }`, { token: dev });
  });

  it('strict validation refuses a spec its parser rejects (22), with the problems', async () => {
    const strict = await createTestHub({ env: { PLEXUS_DIRECTOR_SPEC_VALIDATION: 'strict' } });
    try {
      const r = await gql(strict, 'mutation { registerApplication(in: {name: "s", apiDefinitions: [{name: "a", targetURL: "http://x.example", spec: {type: OPEN_API, format: JSON, data: "{\\"openapi\\":\\"3.0.2\\",\\"info\\":{\\"title\\":\\"t\\"},\\"paths\\":{}}"}}]}) { id } }');
      expectClean(r, 22);
      expect(r.errors![0]!.message).toContain('in.apiDefinitions.0.spec.data');
      expect(r.errors![0]!.message).toContain("version");
      const odata = await gql(strict, 'mutation { registerApplication(in: {name: "o", apiDefinitions: [{name: "a", targetURL: "http://x.example", spec: {type: ODATA, format: XML, data: "<edmx:Edmx xmlns:edmx=\\"x\\"><edmx:DataServices/></edmx:Edmx>"}}]}) { id } }');
      expect(odata.errors).toBeUndefined();
    } finally {
      await strict.close();
    }
  });
});
