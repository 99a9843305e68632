/**
 * The Director through its public surface (`POST /director/graphql`): Compass's director
 * scenarios ported (applications, runtimes, labels, scenarios, tenants), the gateway's tenant
 * rules, integration levels, the application webhook API and the API credentials flow.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, ok, registerApp, registerRuntime } from '../helpers/director.js';
import { waitFor } from '../helpers/flows.js';
import type { Db, Queryable } from '../../src/platform/db/index.js';
import { dbTargets } from '../helpers/db.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';


/** The hub of the target being run (one per target, in turn: describe blocks run one after another). */
let hub: TestHub;
/** Statements on Director tables the hub has run (its database is wrapped to count them). */
let directorStatements = 0;
const counted = (q: Queryable): Queryable => ({
  exec: (sql) => q.exec(sql),
  query: (sql, params) => {
    if (sql.includes('director_')) directorStatements++;
    return q.query(sql, params);
  },
});
const countingDb = (db: Db): Db => ({ ...db, ...counted(db), transaction: (fn) => db.transaction((tx) => fn(counted(tx))) });
let seq = 0;
const uniq = (p: string) => `${p}-${Date.now().toString(36)}${(seq++).toString(36)}`;

/** A tenant with a tenant admin, for cross-tenant checks. */
async function tenantAdmin(): Promise<{ tenant: string; token: string }> {
  const tenant = uniq('t');
  expect((await hub.api('POST', '/api/v1/tenants', { id: tenant, name: tenant })).status).toBe(201);
  const username = uniq('admin');
  expect((await hub.api('POST', '/api/v1/users', { username, password: 'password-123', tenant, permissions: ['tenant.all'] })).status).toBe(201);
  return { tenant, token: await hub.login(username, 'password-123', tenant) };
}

/** Issues a credential standing for an application or runtime (requestClientCredentialsFor…). */
async function credentialFor(type: 'Application' | 'Runtime', id: string, token?: string): Promise<string> {
  const r = await ok(hub, `mutation { r: requestClientCredentialsFor${type}(id: "${id}") { id auth { credential { ... on BearerTokenCredentialData { token } } } } }`, { token });
  return r.r.auth.credential.token as string;
}

describe.each(dbTargets)('director on %s', (target) => {
  beforeAll(async () => {
    hub = await createTestHub({ target, env: { PLEXUS_DIRECTOR_WEBHOOK_FIRST_RETRY: '200ms' }, wrapDb: countingDb });
  });
  afterAll(async () => {
    await hub?.close();
  });

  describe('applications (Compass application_api_test)', () => {
    it('registers with APIs, events, documents; updates; unregisters; names are unique (21)', async () => {
      const name = uniq('wordpress');
      const app = await registerApp(
        hub,
        `{name: "${name}", providerName: "compass", description: "d", labels: {group: ["production"]}, apiDefinitions: [{name: "comments-v1", targetURL: "http://mywordpress.com/comments", spec: {data: "{\\"openapi\\":\\"3.0.2\\"}", type: OPEN_API, format: YAML}}], eventDefinitions: [{name: "ev", spec: {data: "{\\"asyncapi\\":\\"1.2.0\\"}", type: ASYNC_API, format: YAML}}]}`,
      );
      expect(app.labels).toEqual({ group: ['production'], scenarios: ['DEFAULT'], name });
      const dup = await gql(hub, `mutation { registerApplication(in: {name: "${name}"}) { id } }`);
      expect(dup.errors?.[0]?.extensions.error_code).toBe(21);
      expect(dup.errors?.[0]?.message).toContain('not unique');

      const upd = await ok(hub, `mutation { r: updateApplication(id: "${app.id}", in: {name: "${name}-after", description: "after"}) { name description labels } }`);
      expect(upd.r).toMatchObject({ name: `${name}-after`, description: 'after' });
      expect(upd.r.labels.name).toBe(`${name}-after`);

      const got = await ok(hub, `{ application(id: "${app.id}") { apiDefinitions { totalCount data { spec { validation { valid problems { message path } } } } } eventDefinitions { data { spec { validation { valid } } } } } }`);
      // Lenient by default: Compass's placeholder specs are stored, with the parser's problems.
      expect(got.application.apiDefinitions.data[0].spec.validation.valid).toBe(false);
      expect(got.application.apiDefinitions.data[0].spec.validation.problems.length).toBeGreaterThan(0);
      expect(got.application.eventDefinitions.data[0].spec.validation.valid).toBe(false);

      await ok(hub, `mutation { unregisterApplication(id: "${app.id}") { id } }`);
      expect((await ok(hub, `{ application(id: "${app.id}") { id } }`)).application).toBeNull();
    });

    it('concurrent registrations are stored together, each with its own answer', async () => {
      const t = await tenantAdmin();
      const base = uniq('burst');
      const inputs = [
        ...Array.from({ length: 10 }, (_v, i) => `{name: "${base}-${i}", apiDefinitions: [{name: "orders", targetURL: "http://orders.example"}]}`),
        `{name: "${base}-0"}`,
        `{name: "${base}-bad", labels: {scenarios: ["NOPE"]}}`,
      ];
      const results = await Promise.all(inputs.map((input) => gql(hub, `mutation { r: registerApplication(in: ${input}) { id name apiDefinitions { totalCount } } }`, { token: t.token })));
      expect(results.slice(1, 10).map((r) => [r.errors, r.data.r.name, r.data.r.apiDefinitions.totalCount])).toEqual(Array.from({ length: 9 }, (_v, i) => [undefined, `${base}-${i + 1}`, 1]));
      // Two registrations of one name at once: whichever is stored first wins, the other is a 21.
      const [won, lost] = results[0]!.errors ? [results[10]!, results[0]!] : [results[0]!, results[10]!];
      expect(won.errors).toBeUndefined();
      expect(won.data.r.name).toBe(`${base}-0`);
      expect(lost.errors?.[0]?.extensions.error_code).toBe(21);
      expect(results[11]!.errors?.[0]?.extensions.error_code).toBe(22);
      expect(results[11]!.errors?.[0]?.message).toContain('must be one of the following: "DEFAULT"');
      expect((await ok(hub, '{ applications { totalCount } }', { token: t.token })).applications.totalCount).toBe(10);
      await waitFor('ten registrations audited', async () => {
        const a = await hub.api('GET', `/api/v1/audit?filter[name]=audit.director.application.registered&filter[tenant]=${t.tenant}&page[size]=100`);
        return a.body.data.length === 10;
      });
    });

    it("nested lists of a page: each application's own page and total, in one statement per list", async () => {
      const t = await tenantAdmin();
      const api = (n: string) => `{name: "${n}", targetURL: "http://x.example/${n}"}`;
      const apps = [];
      for (let i = 0; i < 12; i++) {
        apps.push(
          await registerApp(
            hub,
            `{name: "n${i}", apiDefinitions: [${Array.from({ length: i % 4 }, (_v, k) => api(`a${k}`)).join(', ')}], eventDefinitions: [{name: "e"}], documents: [{title: "d", displayName: "d", description: "d", format: MARKDOWN, data: "x"}], webhooks: [{type: CONFIGURATION_CHANGED, url: "http://127.0.0.1:1/h${i}"}]}`,
            t.token,
          ),
        );
      }
      const before = directorStatements;
      const page = (await ok(hub, '{ applications { data { id name apiDefinitions(first: 2) { data { name } totalCount pageInfo { hasNextPage endCursor } } eventDefinitions { totalCount } documents { data { title } totalCount } webhooks { url } } } }', { token: t.token })).applications.data;
      // The page, the version and one per nested list; not one (or two) per application.
      expect(directorStatements - before).toBeLessThanOrEqual(8);
      for (const [i, a] of page.map((x: { name: string }) => x).sort((x: { name: string }, y: { name: string }) => Number(x.name.slice(1)) - Number(y.name.slice(1))).entries()) {
        const apis = i % 4;
        expect(a.apiDefinitions.totalCount, a.name).toBe(apis);
        // In id order: any two of its own APIs.
        const names = a.apiDefinitions.data.map((d: { name: string }) => d.name);
        expect(names).toHaveLength(Math.min(2, apis));
        for (const n of names) expect(Number(n.slice(1))).toBeLessThan(apis);
        expect(a.apiDefinitions.pageInfo.hasNextPage).toBe(apis > 2);
        expect(a.eventDefinitions.totalCount).toBe(1);
        expect(a.documents).toMatchObject({ data: [{ title: 'd' }], totalCount: 1 });
        expect(a.webhooks).toEqual([{ url: `http://127.0.0.1:1/h${i}` }]);
      }
      // The next page of one application's APIs, and a cursor past its end, keep its total.
      const three = page.find((a: { name: string }) => a.name === 'n3');
      const next = (await ok(hub, `{ application(id: "${three.id}") { apiDefinitions(first: 2, after: "${three.apiDefinitions.pageInfo.endCursor}") { data { name } totalCount pageInfo { hasNextPage endCursor } } } }`, { token: t.token })).application.apiDefinitions;
      expect(next).toMatchObject({ data: [{}], totalCount: 3, pageInfo: { hasNextPage: false, endCursor: '' } });
      const bad = await gql(hub, '{ applications { data { name apiDefinitions(first: 101) { totalCount } } } }', { token: t.token });
      expect(bad.errors?.[0]?.extensions.error_code).toBe(22);
      expect(bad.errors?.[0]?.message).toContain('first: must be between 1 and 100');
    });

    it('adding to an application that does not exist answers 20', async () => {
      const r = await gql(hub, 'mutation { addWebhook(applicationID: "cf889c38-490d-4896-96a7-c0721eca9932", in: {type: CONFIGURATION_CHANGED, url: "https://kyma-project.io"}) { id } }');
      expect(r.errors?.[0]?.extensions.error_code).toBe(20);
      expect(r.errors?.[0]?.message).toContain('Cannot add Webhook to not existing Application');
    });

    it('pages with opaque cursors: startCursor "" first, endCursor "" last', async () => {
      const label = uniq('page');
      for (let i = 0; i < 7; i++) await registerApp(hub, `{name: "${uniq('p')}", labels: {pageset: "${label}"}}`);
      const seen = new Set<string>();
      let after = '';
      for (let i = 0; i < 3; i++) {
        const p = (await ok(hub, `{ applications(filter: [{key: "pageset", query: "\\"${label}\\""}], first: 3, after: "${after}") { data { id } pageInfo { startCursor endCursor hasNextPage } totalCount } }`)).applications;
        expect(p.totalCount).toBe(7);
        expect(p.pageInfo.startCursor).toBe(after);
        for (const a of p.data) seen.add(a.id);
        expect(p.pageInfo.hasNextPage).toBe(i < 2);
        if (i === 2) expect(p.pageInfo.endCursor).toBe('');
        after = p.pageInfo.endCursor;
      }
      expect(seen.size).toBe(7);
      const bad = await gql(hub, '{ applications(after: "not-a-cursor") { totalCount } }');
      expect(bad.errors?.[0]?.extensions.error_code).toBe(22);
      const big = await gql(hub, '{ applications(first: 101) { totalCount } }');
      expect(big.errors?.[0]?.message).toContain('first: must be between 1 and 100');
    });
  });

  describe('labels and scenarios (Compass labeling_api_test)', () => {
    it('a label without a definition creates one; values are checked against a definition', async () => {
      const app = await registerApp(hub, `{name: "${uniq('lbl')}"}`);
      await ok(hub, `mutation { setApplicationLabel(applicationID: "${app.id}", key: "test", value: "val") { key value } }`);
      expect((await ok(hub, '{ labelDefinition(key: "test") { key schema } }')).labelDefinition).toEqual({ key: 'test', schema: null });
      const key = uniq('foo');
      const schema = JSON.stringify({ type: 'object', properties: { foo: { type: 'string' } }, required: ['foo'] });
      await ok(hub, `mutation { createLabelDefinition(in: {key: "${key}", schema: ${JSON.stringify(schema)}}) { key schema } }`);
      const bad = await gql(hub, `mutation { setApplicationLabel(applicationID: "${app.id}", key: "${key}", value: 123) { key } }`);
      expect(bad.errors?.[0]?.extensions.error_code).toBe(22);
      await ok(hub, `mutation { setApplicationLabel(applicationID: "${app.id}", key: "${key}", value: {foo: "bar"}) { key } }`);
      // A definition in use is not deleted unless its labels go with it.
      const inUse = await gql(hub, `mutation { deleteLabelDefinition(key: "${key}") { key } }`);
      expect(inUse.errors?.[0]?.message).toBe('could not delete label definition, it is already used by at least one label');
      await ok(hub, `mutation { deleteLabelDefinition(key: "${key}", deleteRelatedLabels: true) { key } }`);
      expect((await ok(hub, `{ application(id: "${app.id}") { labels } }`)).application.labels[key]).toBeUndefined();
    });

    it('scenarios: DEFAULT by default, other values refused (22) naming the allowed ones, the label stays', async () => {
      const t = await tenantAdmin();
      const app = await registerApp(hub, `{name: "${uniq('sc')}"}`, t.token);
      expect(app.labels.scenarios).toEqual(['DEFAULT']);
      const refused = await gql(hub, `mutation { setApplicationLabel(applicationID: "${app.id}", key: "scenarios", value: ["NOPE"]) { key } }`, { token: t.token });
      expect(refused.errors?.[0]?.extensions.error_code).toBe(22);
      expect(refused.errors?.[0]?.message).toContain('must be one of the following: "DEFAULT"');
      const schema = JSON.stringify({ type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: ['DEFAULT', 'Christmas'] } });
      await ok(hub, `mutation { updateLabelDefinition(in: {key: "scenarios", schema: ${JSON.stringify(schema)}}) { key } }`, { token: t.token });
      await ok(hub, `mutation { setApplicationLabel(applicationID: "${app.id}", key: "scenarios", value: ["Christmas"]) { key } }`, { token: t.token });
      const noDefault = JSON.stringify({ type: 'array', items: { type: 'string', enum: ['Christmas'] } });
      const r = await gql(hub, `mutation { updateLabelDefinition(in: {key: "scenarios", schema: ${JSON.stringify(noDefault)}}) { key } }`, { token: t.token });
      expect(r.errors?.[0]?.message).toContain('DEFAULT');
      const del = await gql(hub, `mutation { deleteApplicationLabel(applicationID: "${app.id}", key: "scenarios") { key } }`, { token: t.token });
      expect(del.errors?.[0]?.message).toBe('scenarios label can not be deleted from application');
    });

    it('label filters: key, plain value, and the JSONPath form for scenarios', async () => {
      const t = await tenantAdmin();
      const schema = JSON.stringify({ type: 'array', items: { type: 'string', enum: ['DEFAULT', 'A', 'B'] } });
      await ok(hub, `mutation { updateLabelDefinition(in: {key: "scenarios", schema: ${JSON.stringify(schema)}}) { key } }`, { token: t.token });
      const a = await registerApp(hub, `{name: "fa", labels: {scenarios: ["A"], foo: "val"}}`, t.token);
      const b = await registerApp(hub, `{name: "fb", labels: {scenarios: ["B"], foo: "other"}}`, t.token);
      const ids = async (filter: string) => (await ok(hub, `{ applications(filter: ${filter}) { data { id } } }`, { token: t.token })).applications.data.map((x: { id: string }) => x.id).sort();
      expect(await ids('[{key: "foo"}]')).toEqual([a.id, b.id].sort());
      expect(await ids('[{key: "foo", query: "\\"val\\""}]')).toEqual([a.id]);
      expect(await ids('[{key: "scenarios", query: "$[*] ? (@ == \\"A\\")"}]')).toEqual([a.id]);
      expect(await ids('[{key: "scenarios", query: "$[*] ? (@ == \\"A\\" || @ == \\"B\\")"}]')).toEqual([a.id, b.id].sort());
      const bad = await gql(hub, '{ applications(filter: [{key: "scenarios", query: "$.foo ? (@ like_regex \\"x\\")"}]) { totalCount } }', { token: t.token });
      expect(bad.errors?.[0]?.extensions.error_code).toBe(22);
    });
  });

  describe('runtimes, scenarios and tenants', () => {
    it('applicationsForRuntime: applications sharing a scenario, of the runtime tenant only (20 elsewhere)', async () => {
      const t = await tenantAdmin();
      const schema = JSON.stringify({ type: 'array', items: { type: 'string', enum: ['DEFAULT', 'S1', 'S2'] } });
      await ok(hub, `mutation { updateLabelDefinition(in: {key: "scenarios", schema: ${JSON.stringify(schema)}}) { key } }`, { token: t.token });
      const a1 = await registerApp(hub, `{name: "a1", labels: {scenarios: ["S1"]}}`, t.token);
      const a2 = await registerApp(hub, `{name: "a2", labels: {scenarios: ["S2"]}}`, t.token);
      await registerApp(hub, `{name: "a3"}`, t.token);
      const rt = await registerRuntime(hub, `{name: "r1", labels: {scenarios: ["S1", "S2"]}}`, t.token);
      const page = (await ok(hub, `{ applicationsForRuntime(runtimeID: "${rt.id}") { data { id } totalCount } }`, { token: t.token })).applicationsForRuntime;
      expect(page.data.map((x: { id: string }) => x.id).sort()).toEqual([a1.id, a2.id].sort());
      expect(page.totalCount).toBe(2);
      const other = await tenantAdmin();
      const foreign = await gql(hub, `{ applicationsForRuntime(runtimeID: "${rt.id}") { totalCount } }`, { token: other.token });
      expect(foreign.errors?.[0]?.extensions.error_code).toBe(20);
      expect((await ok(hub, '{ applications { totalCount } }', { token: other.token })).applications.totalCount).toBe(0);
      expect((await ok(hub, `{ application(id: "${a1.id}") { id } }`, { token: other.token })).application).toBeNull();
    });

    it('setRuntimeStatus changes only the status', async () => {
      const rt = await registerRuntime(hub, `{name: "${uniq('rs')}", description: "keep"}`);
      const r = await ok(hub, `mutation { r: setRuntimeStatus(id: "${rt.id}", condition: PROVISIONING) { description status { condition } labels } }`);
      expect(r.r).toMatchObject({ description: 'keep', status: { condition: 'PROVISIONING' }, labels: { scenarios: ['DEFAULT'] } });
    });

    it('gateway: a non-admin naming another tenant gets 23 saying why; an admin may; identity headers are ignored', async () => {
      const t = await tenantAdmin();
      const other = await tenantAdmin();
      const r = await gql(hub, '{ applications { totalCount } }', { token: t.token, headers: { tenant: other.tenant } });
      expect(r.status).toBe(403);
      expect(r.errors?.[0]?.extensions.error_code).toBe(23);
      expect(r.errors?.[0]?.message).toContain('only a platform admin may act in another tenant');
      await registerApp(hub, `{name: "only-in-other"}`, other.token);
      const admin = await ok(hub, '{ applications { data { name } } }', { headers: { tenant: other.tenant } });
      expect(admin.applications.data.map((a: { name: string }) => a.name)).toEqual(['only-in-other']);
      const spoof = await ok(hub, '{ applications { totalCount } viewer { id type } }', { token: t.token, headers: { 'x-tenant': other.tenant, 'x-user': 'admin', 'x-forwarded-user': 'admin' } });
      expect(spoof.applications.totalCount).toBe(0);
      expect(spoof.viewer.type).toBe('USER');
      const none = await gql(hub, '{ viewer { id } }', { token: null });
      expect(none.status).toBe(401);
      expect(none.errors?.[0]?.extensions.error_code).toBe(26);
    });

    it('scopes: a caller without application:read gets 23, and the denial is audited', async () => {
      const username = uniq('reader');
      expect((await hub.api('POST', '/api/v1/users', { username, password: 'password-123', permissions: ['runtime:read'] })).status).toBe(201);
      const token = await hub.login(username, 'password-123');
      const r = await gql(hub, '{ applications { totalCount } }', { token });
      expect(r.errors?.[0]?.extensions.error_code).toBe(23);
      // Refused again, and audited again: a refusal is never answered from the query cache.
      expect((await gql(hub, '{ applications { totalCount } }', { token })).errors?.[0]?.extensions.error_code).toBe(23);
      expect((await ok(hub, '{ runtimes { totalCount } }', { token })).runtimes.totalCount).toBeGreaterThanOrEqual(0);
      await waitFor('both denials audited', async () => {
        const a = await hub.api('GET', `/api/v1/audit?filter[module]=director&filter[result]=denied&filter[user]=${username}`);
        return a.body.data.length === 2;
      });
    });
  });

  describe('integration levels and callers that are applications or runtimes', () => {
    it('APPLICATION: its credential sees and changes only itself', async () => {
      const mine = await registerApp(hub, `{name: "${uniq('mine')}"}`);
      const theirs = await registerApp(hub, `{name: "${uniq('theirs')}"}`);
      const token = await credentialFor('Application', mine.id);
      const viewer = (await ok(hub, '{ viewer { id type } applications { data { id } } }', { token }));
      expect(viewer.viewer).toEqual({ id: mine.id, type: 'APPLICATION' });
      expect(viewer.applications.data.map((a: { id: string }) => a.id)).toEqual([mine.id]);
      await ok(hub, `mutation { addAPIDefinition(applicationID: "${mine.id}", in: {name: "self", targetURL: "http://x.example"}) { id } }`, { token });
      const denied = await gql(hub, `mutation { addAPIDefinition(applicationID: "${theirs.id}", in: {name: "x", targetURL: "http://x.example"}) { id } }`, { token });
      expect(denied.errors?.[0]?.extensions.error_code).toBe(20);
      const reg = await gql(hub, 'mutation { registerRuntime(in: {name: "nope"}) { id } }', { token });
      expect(reg.errors?.[0]?.extensions.error_code).toBe(23);
      expect((await ok(hub, `{ application(id: "${mine.id}") { status { condition } auths { id } } }`)).application).toMatchObject({ status: { condition: 'CONNECTED' } });
    });

    it('BASIC: never paired, never called; PROXY is registered naming its provider', async () => {
      const basic = await registerApp(hub, `{name: "${uniq('basic')}", integrationLevel: BASIC}`);
      expect(basic.integrationLevel).toBe('BASIC');
      const pair = await gql(hub, `mutation { requestClientCredentialsForApplication(id: "${basic.id}") { id } }`);
      expect(pair.errors?.[0]?.extensions.error_code).toBe(27);
      const hook = await gql(hub, `mutation { addWebhook(applicationID: "${basic.id}", in: {type: CONFIGURATION_CHANGED, url: "http://127.0.0.1:1/h"}) { id } }`);
      expect(hook.errors?.[0]?.extensions.error_code).toBe(27);
      const proxy = await registerApp(hub, `{name: "${uniq('proxy')}", providerName: "sap-proxy", integrationLevel: PROXY, labels: {managedBy: "sap-proxy"}}`);
      expect(proxy.integrationLevel).toBe('PROXY');
    });

    it('SERVICE: its credential manages every application whose managedBy names it', async () => {
      const svcName = uniq('svc');
      const svc = await registerApp(hub, `{name: "${svcName}", integrationLevel: SERVICE}`);
      const managed = await registerApp(hub, `{name: "${uniq('inst')}", labels: {managedBy: "${svcName}"}}`);
      const unmanaged = await registerApp(hub, `{name: "${uniq('free')}"}`);
      const token = await credentialFor('Application', svc.id);
      const seen = (await ok(hub, '{ applications { data { id } } }', { token })).applications.data.map((a: { id: string }) => a.id).sort();
      expect(seen).toEqual([svc.id, managed.id].sort());
      await ok(hub, `mutation { setApplicationLabel(applicationID: "${managed.id}", key: "env", value: "prod") { key } }`, { token });
      const denied = await gql(hub, `mutation { setApplicationLabel(applicationID: "${unmanaged.id}", key: "env", value: "prod") { key } }`, { token });
      expect(denied.errors?.[0]?.extensions.error_code).toBe(20);
    });
  });

  describe('application webhook API and the API credentials flow', () => {
    interface Received {
      headers: http.IncomingHttpHeaders;
      body: string;
    }
    let server: http.Server;
    let url: string;
    const received = new Map<string, Received[]>();
    /** Paths that answer 500 this many more times. */
    const failures = new Map<string, number>();

    beforeAll(async () => {
      server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          const path = req.url ?? '/';
          received.set(path, [...(received.get(path) ?? []), { headers: req.headers, body }]);
          const left = failures.get(path) ?? 0;
          if (left > 0) failures.set(path, left - 1);
          res.statusCode = left > 0 ? 500 : 204;
          res.end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise<void>((r) => server.close(() => r()));
    });

    it('a runtime becoming READY notifies exactly the applications in its scenarios, once, signed, retried after a 500', async () => {
      const t = await tenantAdmin();
      const schema = JSON.stringify({ type: 'array', items: { type: 'string', enum: ['DEFAULT', 'X'] } });
      await ok(hub, `mutation { updateLabelDefinition(in: {key: "scenarios", schema: ${JSON.stringify(schema)}}) { key } }`, { token: t.token });
      const inX = await registerApp(hub, `{name: "in-x", labels: {scenarios: ["X"]}, webhooks: [{type: CONFIGURATION_CHANGED, url: "${url}/in-x"}], apiDefinitions: [{name: "orders", targetURL: "http://x.example/orders"}]}`, t.token);
      await registerApp(hub, `{name: "not-x", webhooks: [{type: CONFIGURATION_CHANGED, url: "${url}/not-x"}]}`, t.token);
      await registerApp(hub, `{name: "basic-x", integrationLevel: BASIC, labels: {scenarios: ["X"]}}`, t.token);
      const secret = inX.webhooks[0].signingSecret as string;
      expect(secret).toMatch(/^whsec_/);
      expect((await ok(hub, `{ application(id: "${inX.id}") { webhooks { signingSecret } } }`, { token: t.token })).application.webhooks[0].signingSecret).toBeNull();

      const rt = await registerRuntime(hub, `{name: "rt", labels: {scenarios: ["X"]}}`, t.token);
      await ok(hub, `mutation { setRuntimeLabel(runtimeID: "${rt.id}", key: "runtime/event_service_url", value: "https://events.rt.example") { key } }`, { token: t.token });
      expect(received.get('/in-x')).toBeUndefined(); // not READY yet: nothing to tell
      failures.set('/in-x', 1);
      await ok(hub, `mutation { setRuntimeStatus(id: "${rt.id}", condition: READY) { id } }`, { token: t.token });

      const deliveries = await waitFor('delivered after one 500', async () => {
        const d = (await ok(hub, `{ webhookDeliveries(applicationID: "${inX.id}") { data { status attempts httpStatus messageID nextAttemptAt } } }`, { token: t.token })).webhookDeliveries.data;
        return d.length === 1 && d[0].status === 'SUCCEEDED' ? d : undefined;
      }, 20_000);
      expect(deliveries[0]).toMatchObject({ attempts: 2, httpStatus: 204, nextAttemptAt: null });
      const calls = received.get('/in-x')!;
      expect(calls).toHaveLength(2);
      // Both attempts carry the same webhook-id; the signature verifies with the secret shown once.
      expect(calls[0]!.headers['webhook-id']).toBe(calls[1]!.headers['webhook-id']);
      const payload = new Webhook(secret).verify(calls[1]!.body, calls[1]!.headers as Record<string, string>) as Record<string, any>;
      expect(payload).toMatchObject({ type: 'CONFIGURATION_CHANGED', runtime: { id: rt.id, name: 'rt', eventingConfiguration: { defaultURL: 'https://events.rt.example' } }, application: { id: inX.id } });
      expect(payload.credentialsRequested).toEqual({ runtimeID: rt.id, apiIDs: [inX.apiDefinitions.data[0].id] });
      expect(received.get('/not-x')).toBeUndefined();
      expect((await ok(hub, `{ runtime(id: "${rt.id}") { applicationsWaitingForCredentials } }`, { token: t.token })).runtime.applicationsWaitingForCredentials).toEqual([inX.id]);

      // The application pulls its configuration instead of (or besides) the webhook.
      const appToken = await credentialFor('Application', inX.id, t.token);
      const cfg = (await ok(hub, '{ applicationConfiguration { application { id } runtimes { id eventURL apisWaitingForCredentials } } }', { token: appToken })).applicationConfiguration;
      expect(cfg.runtimes).toEqual([{ id: rt.id, eventURL: 'https://events.rt.example/in-x/v1/events', apisWaitingForCredentials: [inX.apiDefinitions.data[0].id] }]);

      // The application answers with credentials for that runtime.
      const apiId = inX.apiDefinitions.data[0].id as string;
      const set = await ok(hub, `mutation { r: setAPIAuth(apiID: "${apiId}", runtimeID: "${rt.id}", in: {credential: {basic: {username: "u", password: "p4ss"}}}) { runtimeID status auth { credential { ... on BasicCredentialData { username password } } } } }`, { token: appToken });
      expect(set.r).toEqual({ runtimeID: rt.id, status: 'SET', auth: { credential: { username: 'u', password: '***' } } });
      const rt2 = await registerRuntime(hub, `{name: "rt2", labels: {scenarios: ["X"]}}`, t.token);
      const rtToken = await credentialFor('Runtime', rt.id, t.token);
      const rt2Token = await credentialFor('Runtime', rt2.id, t.token);
      const authQuery = (r: string) => `{ applicationsForRuntime(runtimeID: "${r}") { data { id integrationLevel apiDefinitions { data { auth(runtimeID: "${r}") { status auth { credential { ... on BasicCredentialData { password } } } } } } } } }`;
      const apiOf = (page: { data: Array<{ id: string; apiDefinitions: { data: Array<{ auth: unknown }> } }> }) => page.data.find((a) => a.id === inX.id)!.apiDefinitions.data[0]!.auth;
      const listed = (await ok(hub, authQuery(rt.id), { token: rtToken })).applicationsForRuntime;
      // BASIC applications are listed to the runtime too (static metadata).
      expect(listed.data.map((a: { integrationLevel: string }) => a.integrationLevel).sort()).toEqual(['APPLICATION', 'BASIC']);
      const own = apiOf(listed);
      expect(own).toEqual({ status: 'SET', auth: { credential: { password: 'p4ss' } } });
      const others = apiOf((await ok(hub, authQuery(rt2.id), { token: rt2Token })).applicationsForRuntime);
      expect(others).toEqual({ status: 'WAITING', auth: null });
      const peek = await gql(hub, `{ application(id: "${inX.id}") { apiDefinitions { data { auth(runtimeID: "${rt.id}") { status } } } } }`, { token: rt2Token });
      expect(peek.errors?.[0]?.extensions.error_code).toBe(20);
      expect((await ok(hub, `{ runtime(id: "${rt.id}") { applicationsWaitingForCredentials } }`, { token: t.token })).runtime.applicationsWaitingForCredentials).toEqual([]);
      // The secret never reaches the audit log or an admin's answer in clear.
      const audit = await hub.api('GET', '/api/v1/audit?filter[module]=director&page[size]=100');
      expect(JSON.stringify(audit.body)).not.toContain('p4ss');
    });

    it("a webhook on an address the operator's policy refuses fails at once, naming why", async () => {
      const t = await tenantAdmin();
      const app = await registerApp(hub, `{name: "private", webhooks: [{type: CONFIGURATION_CHANGED, url: "http://10.0.0.1/hook"}]}`, t.token);
      const rt = await registerRuntime(hub, `{name: "rt"}`, t.token);
      await ok(hub, `mutation { setRuntimeStatus(id: "${rt.id}", condition: READY) { id } }`, { token: t.token });
      const d = await waitFor('delivery given up', async () => {
        const list = (await ok(hub, `{ webhookDeliveries(applicationID: "${app.id}") { data { status attempts httpStatus error nextAttemptAt } } }`, { token: t.token })).webhookDeliveries.data;
        return list[0]?.status === 'FAILED' ? list[0] : undefined;
      }, 20_000);
      expect(d).toMatchObject({ attempts: 1, httpStatus: null, nextAttemptAt: null });
      expect(d.error).toContain('10.0.0.1 is a non-public address');
    });
  });
});
