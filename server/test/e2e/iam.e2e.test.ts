/**
 * IAM through its public HTTP surface: logins and their rate limit, tokens, tenants, users,
 * roles, the permission matrix, tenant isolation, bad input, and what is never shown or logged.
 */
import { Writable } from 'node:stream';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHub } from '../../src/entrypoints/hub.js';
import { createAuthenticator, remoteTokenResolver } from '../../src/modules/iam/index.js';
import { createAuditPublisher } from '../../src/platform/audit.js';
import { createBus } from '../../src/platform/bus/index.js';
import { loadConfig } from '../../src/platform/config.js';
import { createHttpServer, createMetrics, type HttpApp } from '../../src/platform/http/index.js';
import { createLogger } from '../../src/platform/logger.js';
import { dbTargets, openTestDb } from '../helpers/db.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../helpers/hub.js';

type Api = TestHub['api'];
type Method = Parameters<Api>[0];

const PASSWORDS = {
  acmeAdmin: 'acme-admin-pass-1',
  betaAdmin: 'beta-admin-pass-1',
  nobody: 'nobody-pass-1234',
  carol: 'carol-pass-1234',
  dave: 'dave-pass-12345',
  erin: 'erin-pass-12345',
  dev: 'acme-dev-pass-1',
  devNew: 'acme-dev-pass-NEW',
  hr: 'acme-hr-pass-123',
  op: 'operator-pass-12',
  tadmin: 'default-tadmin-pw',
};

describe.each(dbTargets)('IAM over HTTP on %s', (target) => {
  let hub: TestHub;
  /** Every response body seen in this suite, to prove no password ever comes back. */
  const seen: string[] = [];
  let call: Api;
  let acmeAdmin: string;
  let betaAdmin: string;
  let nobody: string;
  const ids: Record<string, string> = {};

  /** Most accounts of this suite live in tenant acme. */
  const loginFrom = async (username: string, password: string, ip: string, tenant = 'acme') => {
    const res = await hub.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username, password, tenant }, remoteAddress: ip });
    seen.push(res.body);
    return { status: res.statusCode, body: res.json() as Record<string, unknown> & { errors?: { code: string; message: string }[] }, headers: res.headers };
  };

  const createUser = async (body: Record<string, unknown>, token?: string): Promise<string> => {
    const res = await call('POST', '/api/v1/users', body, token);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data.id as string;
  };

  beforeAll(async () => {
    hub = await createTestHub({
      target,
      env: { PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER_ADDRESS: '3', PLEXUS_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: '6', PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER: '8', PLEXUS_LOGIN_WINDOW: '10m' },
    });
    call = async (...args) => {
      const res = await hub.api(...args);
      seen.push(JSON.stringify(res.body ?? ''));
      return res;
    };
    for (const [id, name] of [['acme', 'Acme'], ['beta', 'Beta']]) expect((await call('POST', '/api/v1/tenants', { id, name })).status).toBe(201);
    ids.acmeAdmin = await createUser({ username: 'acme-admin', password: PASSWORDS.acmeAdmin, tenant: 'acme', permissions: ['tenant.all'] });
    ids.betaAdmin = await createUser({ username: 'beta-admin', password: PASSWORDS.betaAdmin, tenant: 'beta', permissions: ['tenant.all'] });
    ids.nobody = await createUser({ username: 'acme-nobody', password: PASSWORDS.nobody, tenant: 'acme' });
    acmeAdmin = await hub.login('acme-admin', PASSWORDS.acmeAdmin, 'acme');
    betaAdmin = await hub.login('beta-admin', PASSWORDS.betaAdmin, 'beta');
    nobody = await hub.login('acme-nobody', PASSWORDS.nobody, 'acme');
  });
  afterAll(async () => hub?.close());

  // ------------------------------------------------------------------ login

  describe('login', () => {
    it('answers a token with its expiry', async () => {
      const res = await loginFrom('acme-admin', PASSWORDS.acmeAdmin, '10.9.0.1');
      expect(res.status).toBe(200);
      expect(res.body.token).toMatch(/^plx_/);
      expect(Date.parse(res.body.expiresAt as string)).toBeGreaterThan(Date.now());
    });

    it('answers an unknown user exactly like a wrong password', async () => {
      const unknown = await loginFrom('no-such-user', 'whatever-pass', '10.9.0.2');
      const wrong = await loginFrom('acme-admin', 'wrong-password', '10.9.0.3');
      expect(unknown.status).toBe(401);
      expect(wrong.status).toBe(401);
      expect(unknown.body).toEqual(wrong.body);
      expect(unknown.body.errors![0]!.code).toBe('UNAUTHENTICATED');
    });

    it('matches usernames regardless of letter case', async () => {
      expect((await loginFrom('ACME-Admin', PASSWORDS.acmeAdmin, '10.9.0.4')).status).toBe(200);
    });

    /** The `audit.iam.login.locked` records so far (read as the platform admin). */
    const lockouts = async (): Promise<Array<{ actor: { username: string } | null; tenant: string | null; sourceIp: string; details: { scope: string } }>> =>
      (await call('GET', '/api/v1/audit?filter[name]=audit.iam.login.locked&page[size]=100')).body.data;

    it('answers 429 with Retry-After after repeated failures for a user from one address, and audits the lockout', async () => {
      await createUser({ username: 'carol', password: PASSWORDS.carol, tenant: 'acme' });
      for (let i = 0; i < 3; i++) expect((await loginFrom('carol', `wrong-${i}-password`, '10.1.0.1')).status).toBe(401);
      const limited = await loginFrom('carol', PASSWORDS.carol, '10.1.0.1');
      expect(limited.status).toBe(429);
      expect(limited.body.errors![0]!.code).toBe('RATE_LIMITED');
      const retryAfter = Number(limited.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(600);
      // Other users from that address are not affected, and neither is carol elsewhere: a few
      // wrong passwords from one place do not lock her out everywhere.
      expect((await loginFrom('acme-admin', PASSWORDS.acmeAdmin, '10.1.0.1')).status).toBe(200);
      expect((await loginFrom('carol', PASSWORDS.carol, '10.1.0.2')).status).toBe(200);

      const [record, ...more] = (await waitFor('the lockout audited', async () => {
        const mine = (await lockouts()).filter((r) => r.sourceIp === '10.1.0.1');
        return mine.length > 0 ? mine : undefined;
      }));
      expect(more).toEqual([]);
      expect(record).toMatchObject({ result: 'denied', tenant: 'acme', actor: { username: 'carol' }, details: { scope: 'user+address', failures: 3, lockedForSeconds: 600 } });
    });

    it('answers 429 after repeated failures from one address, whatever the usernames', async () => {
      await createUser({ username: 'dave', password: PASSWORDS.dave, tenant: 'acme' });
      for (let i = 0; i < 6; i++) expect((await loginFrom(`guess-${i}`, 'guess-password', '10.2.0.1')).status).toBe(401);
      expect((await loginFrom('dave', PASSWORDS.dave, '10.2.0.1')).status).toBe(429);
      expect((await loginFrom('dave', PASSWORDS.dave, '10.2.0.2')).status).toBe(200);
      const record = await waitFor('the lockout audited', async () => (await lockouts()).find((r) => r.sourceIp === '10.2.0.1'));
      // An address lockout names no account: the usernames tried may be anything.
      expect(record).toMatchObject({ actor: null, tenant: null, details: { scope: 'address' } });
    });

    it('counts an IPv6 /64 as one address: stepping through it does not reset the count', async () => {
      for (let i = 1; i <= 6; i++) expect((await loginFrom(`v6-guess-${i}`, 'guess-password', `2001:db8:5:5::${i.toString(16)}`)).status).toBe(401);
      expect((await loginFrom('dave', PASSWORDS.dave, '2001:db8:5:5:ffff:ffff:ffff:fffe')).status).toBe(429);
      expect((await loginFrom('v6-guess-7', 'guess-password', '2001:db8:5:5::abcd')).status).toBe(429);
      // The next /64 is another source.
      expect((await loginFrom('dave', PASSWORDS.dave, '2001:db8:5:6::1')).status).toBe(200);
    });

    it('lets a user log in from their address while an attacker fails logins in their name from many others', async () => {
      await createUser({ username: 'frank', password: 'frank-pass-12345', tenant: 'acme' });
      expect((await loginFrom('frank', 'frank-pass-12345', '10.4.0.1')).status).toBe(200);
      // 12 failures from 6 addresses: under the per-address limits, over the per-user one (8).
      for (let i = 0; i < 12; i++) {
        const res = await loginFrom('frank', `attack-${i}-password`, `10.5.0.${(i % 6) + 1}`);
        expect([401, 429]).toContain(res.status);
      }
      // The right password from an address frank never used is held by the per-user limit...
      expect((await loginFrom('frank', 'frank-pass-12345', '10.6.0.1')).status).toBe(429);
      // ...but frank still logs in where he did before.
      expect((await loginFrom('frank', 'frank-pass-12345', '10.4.0.1')).status).toBe(200);
      const record = await waitFor('the lockout audited', async () => (await lockouts()).find((r) => r.details.scope === 'user' && r.actor?.username === 'frank'));
      expect(record).toMatchObject({ tenant: 'acme' });
    });

    it('counts parallel guesses before they fail', async () => {
      await createUser({ username: 'erin', password: PASSWORDS.erin, tenant: 'acme' });
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => loginFrom('erin', `parallel-guess-${i}`, '10.3.0.1')));
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(3);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(7);
    });
  });

  // ------------------------------------------------------------------ usernames per tenant

  describe('usernames per tenant', () => {
    it('lets two tenants each have alice, and each alice logs in to her own tenant', async () => {
      expect((await call('POST', '/api/v1/tenants', { id: 'delta', name: 'Delta' })).status).toBe(201);
      await createUser({ username: 'delta-admin', password: 'delta-admin-pass', tenant: 'delta', permissions: ['tenant.all'] });
      const deltaAdmin = await hub.login('delta-admin', 'delta-admin-pass', 'delta');
      const acmeAlice = await call('POST', '/api/v1/users', { username: 'alice', password: 'acme-alice-pass' }, acmeAdmin);
      expect(acmeAlice.status).toBe(201);
      // Another tenant's account of that name is no obstacle, and the answer says nothing of it.
      const deltaAlice = await call('POST', '/api/v1/users', { username: 'ALICE', password: 'delta-alice-pass' }, deltaAdmin);
      expect(deltaAlice.status, JSON.stringify(deltaAlice.body)).toBe(201);
      expect((await call('POST', '/api/v1/users', { username: 'acme-admin', password: 'delta-own-pass' }, deltaAdmin)).status).toBe(201);
      // Within a tenant a name is still taken, in any letter case; the answer names only that tenant.
      const clash = await call('POST', '/api/v1/users', { username: 'Alice', password: 'acme-alice-pass2' }, acmeAdmin);
      expect(clash.status).toBe(409);
      expect(clash.body.errors[0].message).toBe('username Alice is taken in tenant acme');

      const acme = await loginFrom('alice', 'acme-alice-pass', '10.7.0.1', 'acme');
      const delta = await loginFrom('alice', 'delta-alice-pass', '10.7.0.1', 'delta');
      expect([acme.status, delta.status]).toEqual([200, 200]);
      const meAcme = await call('GET', '/api/v1/me', undefined, acme.body.token as string);
      const meDelta = await call('GET', '/api/v1/me', undefined, delta.body.token as string);
      expect(meAcme.body.data).toMatchObject({ id: acmeAlice.body.data.id, username: 'alice', tenant: 'acme' });
      expect(meDelta.body.data).toMatchObject({ id: deltaAlice.body.data.id, username: 'ALICE', tenant: 'delta' });
    });

    it("answers one 401 for the other tenant's password, a missing tenant and an unknown one", async () => {
      const wrong = await loginFrom('alice', 'delta-alice-pass', '10.7.0.2', 'acme');
      const noTenant = await hub.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'alice', password: 'acme-alice-pass' }, remoteAddress: '10.7.0.3' });
      const unknownTenant = await loginFrom('alice', 'acme-alice-pass', '10.7.0.4', 'no-such-tenant');
      expect([wrong.status, noTenant.statusCode, unknownTenant.status]).toEqual([401, 401, 401]);
      expect(noTenant.json()).toEqual(wrong.body);
      expect(unknownTenant.body).toEqual(wrong.body);
      // A login without a tenant is a login to `default`, as for the bootstrap admin.
      const admin = await hub.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD }, remoteAddress: '10.7.0.5' });
      expect(admin.statusCode).toBe(200);
      const bad = await loginFrom('alice', 'acme-alice-pass', '10.7.0.6', 'Not A Tenant!');
      expect(bad.status).toBe(400);
      expect(bad.body.errors![0]!.message).toContain('body.tenant');
    });
  });

  // ------------------------------------------------------------------ tokens

  describe('tokens', () => {
    it('refuses a missing, malformed, forged or unknown token with 401', async () => {
      const cases: (string | null)[] = [null, 'plx_forged', `plx_${'x'.repeat(43)}`, `${acmeAdmin}x`];
      for (const token of cases) {
        const res = await call('GET', '/api/v1/me', undefined, token);
        expect(res.status, String(token)).toBe(401);
        expect(res.body.errors[0].code).toBe('UNAUTHENTICATED');
        expect(res.headers['www-authenticate']).toBe('Bearer');
      }
      const basic = await hub.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
      expect(basic.statusCode).toBe(401);
    });

    it('revokes the caller’s token on logout', async () => {
      const token = await hub.login('acme-admin', PASSWORDS.acmeAdmin, 'acme');
      expect((await call('GET', '/api/v1/me', undefined, token)).status).toBe(200);
      expect((await call('POST', '/api/v1/logout', undefined, token)).status).toBe(204);
      expect((await call('GET', '/api/v1/me', undefined, token)).status).toBe(401);
      expect((await call('POST', '/api/v1/logout', undefined, token)).status).toBe(401);
    });

    it('issues persistent tokens for a service account, lists them without their value, and revokes them', async () => {
      const bot = await createUser({ username: 'acme-bot', kind: 'service', permissions: ['flows.read', 'flows.write'] }, acmeAdmin);
      ids.bot = bot;
      expect((await loginFrom('acme-bot', 'anything-at-all', '10.9.1.1')).status).toBe(401);
      const issued = await call('POST', '/api/v1/tokens', { accountId: bot, description: 'orchestrator', permissions: ['flows.read'] }, acmeAdmin);
      expect(issued.status).toBe(201);
      expect(issued.body.data).toMatchObject({ accountId: bot, username: 'acme-bot', kind: 'persistent', description: 'orchestrator', permissions: ['flows.read'], expiresAt: null });
      const token = issued.body.data.token as string;
      ids.botToken = issued.body.data.id;
      const me = await call('GET', '/api/v1/me', undefined, token);
      expect(me.body.data).toMatchObject({ username: 'acme-bot', kind: 'service', tenant: 'acme', permissions: ['flows.read'] });

      const list = await call('GET', '/api/v1/tokens?filter[accountId]=' + bot, undefined, acmeAdmin);
      expect(list.status).toBe(200);
      expect(list.body.meta.total).toBe(1);
      expect(list.body.data[0].id).toBe(issued.body.data.id);
      expect(JSON.stringify(list.body)).not.toContain(token);

      // More than the account holds is refused, naming the field.
      const beyond = await call('POST', '/api/v1/tokens', { accountId: bot, permissions: ['secrets.readRaw'] }, acmeAdmin);
      expect(beyond.status).toBe(400);
      expect(beyond.body.errors[0].message).toContain('body.permissions');

      // Another tenant cannot see or revoke it.
      expect((await call('GET', `/api/v1/tokens/${issued.body.data.id}`, undefined, betaAdmin)).status).toBe(404);
      expect((await call('DELETE', `/api/v1/tokens/${issued.body.data.id}`, undefined, betaAdmin)).status).toBe(404);

      expect((await call('DELETE', `/api/v1/tokens/${issued.body.data.id}`, undefined, acmeAdmin)).status).toBe(204);
      expect((await call('GET', '/api/v1/me', undefined, token)).status).toBe(401);
      expect((await call('DELETE', `/api/v1/tokens/${issued.body.data.id}`, undefined, acmeAdmin)).status).toBe(404);
    });

    it('stops accepting a token once it expires', async () => {
      // Room for a loaded machine between issuing and the first use; then wait for the expiry
      // itself rather than sleeping a fixed time past it.
      const expiresAtMs = Date.now() + 5_000;
      const issued = await call('POST', '/api/v1/tokens', { expiresAt: new Date(expiresAtMs).toISOString() }, acmeAdmin);
      expect(issued.status).toBe(201);
      const token = issued.body.data.token as string;
      expect((await call('GET', '/api/v1/me', undefined, token)).status).toBe(200);
      let refusedAtMs = 0;
      await expect
        .poll(
          async () => {
            const status = (await call('GET', '/api/v1/me', undefined, token)).status;
            refusedAtMs = Date.now();
            return status;
          },
          { timeout: 30_000, interval: 100 },
        )
        .toBe(401);
      // Refused because it expired, not before.
      expect(refusedAtMs).toBeGreaterThanOrEqual(expiresAtMs);
      const past = await call('POST', '/api/v1/tokens', { expiresAt: new Date(Date.now() - 1_000).toISOString() }, acmeAdmin);
      expect(past.status).toBe(400);
      expect(past.body.errors[0].message).toContain('body.expiresAt');
    });

    it('introspects a token for a service holding iam.token.introspect; 404 for an unknown one', async () => {
      const svc = await createUser({ username: 'gateway-svc', kind: 'service', permissions: ['iam.token.introspect'] });
      const svcToken = (await call('POST', '/api/v1/tokens', { accountId: svc }, hub.adminToken)).body.data.token as string;
      const res = await call('POST', '/api/v1/tokens/introspect', { token: acmeAdmin }, svcToken);
      expect(res.status).toBe(200);
      expect(res.body.data).toMatchObject({ id: ids.acmeAdmin, username: 'acme-admin', tenant: 'acme', roles: [], permissions: ['tenant.all'] });
      expect(res.body.data.expiresAt).not.toBeNull();
      expect((await call('POST', '/api/v1/tokens/introspect', { token: 'plx_unknown' }, svcToken)).status).toBe(404);
      expect((await call('POST', '/api/v1/tokens/introspect', { token: acmeAdmin }, acmeAdmin)).status).toBe(403);
      // A tenant admin cannot hand out the introspection permission.
      const refused = await call('POST', '/api/v1/users', { username: 'sneaky-svc', kind: 'service', permissions: ['iam.token.introspect'] }, acmeAdmin);
      expect(refused.status).toBe(403);
    });

    it('lets a process without IAM authenticate through remote introspection with a short cache', async () => {
      const baseUrl = await hub.listen();
      const svc = await createUser({ username: 'remote-gw', kind: 'service', permissions: ['iam.token.introspect'] });
      const serviceToken = (await call('POST', '/api/v1/tokens', { accountId: svc }, hub.adminToken)).body.data.token as string;
      const remote = remoteTokenResolver({ url: baseUrl, serviceToken });
      let introspections = 0;
      const logger = createLogger('silent');
      const auth = createAuthenticator({
        resolve: (token, tenant) => {
          introspections++;
          return remote(token, tenant);
        },
        audit: createAuditPublisher(hub.bus, 'gateway', logger),
      });
      const app: HttpApp = await createHttpServer({ logger, metrics: createMetrics(), authenticate: () => auth.authenticate });
      app.get('/probe', { config: { permission: 'flows.read' } }, async (req) => ({ tenant: req.principal.tenantId, user: req.principal.username }));
      await app.ready();
      try {
        const probe = async (token: string, headers: Record<string, string> = {}) => {
          const res = await app.inject({ method: 'GET', url: '/probe', headers: { authorization: `Bearer ${token}`, ...headers } });
          return { status: res.statusCode, body: res.json() as { tenant?: string; user?: string; errors?: { code: string }[] } };
        };
        for (let i = 0; i < 3; i++) expect(await probe(acmeAdmin)).toEqual({ status: 200, body: { tenant: 'acme', user: 'acme-admin' } });
        expect(introspections).toBe(1);
        expect((await probe(nobody)).status).toBe(403);
        expect((await probe('plx_forged')).status).toBe(401);
        expect((await probe(hub.adminToken, { tenant: 'beta' })).body).toMatchObject({ tenant: 'beta', user: 'admin' });
        expect((await probe(acmeAdmin, { tenant: 'beta' })).body.errors![0]!.code).toBe('TENANT_FORBIDDEN');
        expect((await probe(hub.adminToken, { tenant: 'no-such-tenant' })).status).toBe(404);
        // A service token without the permission is a configuration error, not the caller's fault.
        const wrong = createAuthenticator({ resolve: remoteTokenResolver({ url: baseUrl, serviceToken: nobody }), audit: createAuditPublisher(hub.bus, 'gateway', logger) });
        const app2 = await createHttpServer({ logger, metrics: createMetrics(), authenticate: () => wrong.authenticate });
        app2.get('/probe', { config: { permission: 'flows.read' } }, async () => ({}));
        expect((await app2.inject({ method: 'GET', url: '/probe', headers: { authorization: `Bearer ${acmeAdmin}` } })).statusCode).toBe(503);
        await app2.close();
      } finally {
        await app.close();
      }
    });
  });

  // ------------------------------------------------------------------ tenants

  describe('tenants', () => {
    it('lets the platform admin create, list, rename and delete empty tenants', async () => {
      expect((await call('POST', '/api/v1/tenants', { id: 'gamma', name: 'Gamma' })).status).toBe(201);
      expect((await call('POST', '/api/v1/tenants', { id: 'gamma', name: 'Again' })).status).toBe(409);
      const list = await call('GET', '/api/v1/tenants?sort=id&page[size]=2');
      expect(list.body.meta).toMatchObject({ page: 1, perPage: 2 });
      expect(list.body.meta.total).toBeGreaterThanOrEqual(4);
      expect(list.body.data.map((t: { id: string }) => t.id)).toEqual(['acme', 'beta']);
      expect((await call('PATCH', '/api/v1/tenants/gamma', { name: 'Gamma Inc' })).body.data.name).toBe('Gamma Inc');
      expect((await call('GET', '/api/v1/tenants?search=gamma%20inc')).body.data.map((t: { id: string }) => t.id)).toEqual(['gamma']);
      expect((await call('DELETE', '/api/v1/tenants/acme')).status).toBe(409);
      expect((await call('DELETE', '/api/v1/tenants/default')).status).toBe(409);
      expect((await call('DELETE', '/api/v1/tenants/gamma')).status).toBe(204);
      expect((await call('GET', '/api/v1/tenants/gamma')).status).toBe(404);
    });

    it('lets only a platform admin act in another tenant with the Tenant header', async () => {
      const asAdmin = await call('GET', '/api/v1/me', undefined, hub.adminToken, { tenant: 'acme' });
      expect(asAdmin.body.data).toMatchObject({ tenant: 'acme', homeTenant: 'default' });
      const users = await call('GET', '/api/v1/users', undefined, hub.adminToken, { tenant: 'beta' });
      expect(users.body.data.map((u: { username: string }) => u.username)).toEqual(['beta-admin']);
      const refused = await call('GET', '/api/v1/users', undefined, acmeAdmin, { tenant: 'beta' });
      expect(refused.status).toBe(403);
      expect(refused.body.errors[0].code).toBe('TENANT_FORBIDDEN');
      expect((await call('GET', '/api/v1/me', undefined, acmeAdmin, { tenant: 'acme' })).status).toBe(200);
      expect((await call('GET', '/api/v1/me', undefined, hub.adminToken, { tenant: 'nope' })).status).toBe(404);
      expect((await call('GET', '/api/v1/me', undefined, hub.adminToken, { tenant: 'Not A Tenant!' })).status).toBe(404);
    });
  });

  // ------------------------------------------------------------------ users

  describe('users', () => {
    it('lets a tenant admin create users in its tenant with non-restricted permissions only', async () => {
      const dev = await call('POST', '/api/v1/users', { username: 'acme-dev', password: PASSWORDS.dev, permissions: ['flows.read', 'flows.write'] }, acmeAdmin);
      expect(dev.status).toBe(201);
      expect(dev.body.data).toMatchObject({ username: 'acme-dev', tenant: 'acme', kind: 'user', permissions: ['flows.read', 'flows.write'] });
      expect(dev.body.data).not.toHaveProperty('password');
      ids.dev = dev.body.data.id;
      for (const forbidden of [['all'], ['iam.tenants.write'], ['iam.token.introspect'], ['flows.read', 'all']]) {
        const res = await call('POST', '/api/v1/users', { username: 'escalator', password: 'escalator-pass', permissions: forbidden }, acmeAdmin);
        expect(res.status, forbidden.join()).toBe(403);
      }
      const otherTenant = await call('POST', '/api/v1/users', { username: 'escalator', password: 'escalator-pass', tenant: 'beta' }, acmeAdmin);
      expect(otherTenant.status).toBe(404);
      expect((await call('POST', '/api/v1/users', { username: 'ACME-DEV', password: 'another-pass' }, acmeAdmin)).status).toBe(409);
    });

    it('lets someone with tenant.users.write grant only what it holds', async () => {
      await createUser({ username: 'acme-hr', password: PASSWORDS.hr, permissions: ['tenant.users.write', 'flows.read'] }, acmeAdmin);
      const hr = await hub.login('acme-hr', PASSWORDS.hr, 'acme');
      expect((await call('POST', '/api/v1/users', { username: 'hr-made-1', password: 'hr-made-pass', permissions: ['flows.read'] }, hr)).status).toBe(201);
      expect((await call('POST', '/api/v1/users', { username: 'hr-made-2', password: 'hr-made-pass', permissions: ['flows.write'] }, hr)).status).toBe(403);
      expect((await call('POST', '/api/v1/users', { username: 'hr-made-3', password: 'hr-made-pass', permissions: ['tenant.all'] }, hr)).status).toBe(403);
      // And cannot take over an account that holds more than it could grant.
      expect((await call('PATCH', `/api/v1/users/${ids.acmeAdmin}`, { password: 'taken-over-pass' }, hr)).status).toBe(403);
    });

    it('keeps a tenant admin from taking over the platform admin of its own tenant', async () => {
      await createUser({ username: 'default-tadmin', password: PASSWORDS.tadmin, permissions: ['tenant.all'] });
      const tadmin = await hub.login('default-tadmin', PASSWORDS.tadmin);
      const admin = (await call('GET', '/api/v1/users?search=admin&sort=username', undefined, tadmin)).body.data.find((u: { username: string }) => u.username === 'admin');
      expect(admin).toBeDefined();
      expect((await call('PATCH', `/api/v1/users/${admin.id}`, { password: 'taken-over-pass' }, tadmin)).status).toBe(403);
      expect((await call('DELETE', `/api/v1/users/${admin.id}`, undefined, tadmin)).status).toBe(403);
      expect((await call('PATCH', `/api/v1/users/${admin.id}`, { permissions: [] }, tadmin)).status).toBe(403);
      expect((await hub.login('admin', TEST_ADMIN_PASSWORD)).length).toBeGreaterThan(10);
    });

    it('ends other sessions when a password changes', async () => {
      const before = await hub.login('acme-dev', PASSWORDS.dev, 'acme');
      const changed = await call('PATCH', `/api/v1/users/${ids.dev}`, { password: PASSWORDS.devNew }, acmeAdmin);
      expect(changed.status).toBe(200);
      expect((await call('GET', '/api/v1/me', undefined, before)).status).toBe(401);
      expect((await loginFrom('acme-dev', PASSWORDS.dev, '10.9.2.1')).status).toBe(401);
      expect((await loginFrom('acme-dev', PASSWORDS.devNew, '10.9.2.1')).status).toBe(200);
    });

    it('lists a tenant’s users only, and hides other tenants’ users as missing', async () => {
      const list = await call('GET', '/api/v1/users?filter[kind]=user&sort=-username&page[size]=100', undefined, acmeAdmin);
      expect(list.status).toBe(200);
      expect(list.body.data.every((u: { tenant: string }) => u.tenant === 'acme')).toBe(true);
      expect(list.body.data.map((u: { username: string }) => u.username)).toContain('acme-dev');
      expect(list.body.data.map((u: { username: string }) => u.username)).not.toContain('acme-bot');
      expect((await call('GET', `/api/v1/users/${ids.dev}`, undefined, betaAdmin)).status).toBe(404);
      expect((await call('GET', `/api/v1/users/${ids.betaAdmin}`, undefined, acmeAdmin)).status).toBe(404);
      expect((await call('GET', '/api/v1/users/00000000-0000-4000-8000-000000000000', undefined, acmeAdmin)).status).toBe(404);
    });

    it('deletes a user with its tokens, but never the caller itself', async () => {
      const token = await hub.login('acme-dev', PASSWORDS.devNew, 'acme');
      expect((await call('DELETE', `/api/v1/users/${ids.dev}`, undefined, acmeAdmin)).status).toBe(204);
      expect((await call('GET', '/api/v1/me', undefined, token)).status).toBe(401);
      expect((await call('GET', `/api/v1/users/${ids.dev}`, undefined, acmeAdmin)).status).toBe(404);
      expect((await call('DELETE', `/api/v1/users/${ids.acmeAdmin}`, undefined, acmeAdmin)).status).toBe(409);
    });
  });

  // ------------------------------------------------------------------ roles

  describe('roles', () => {
    it('grants a role’s permissions to its holders and follows changes to the role', async () => {
      const role = await call('POST', '/api/v1/roles', { name: 'flow-operators', permissions: ['flows.read', 'flows.control'] }, acmeAdmin);
      expect(role.status).toBe(201);
      ids.role = role.body.data.id;
      expect((await call('POST', '/api/v1/roles', { name: 'flow-operators' }, acmeAdmin)).status).toBe(409);
      expect((await call('POST', '/api/v1/roles', { name: 'root', permissions: ['all'] }, acmeAdmin)).status).toBe(403);
      await createUser({ username: 'acme-op', password: PASSWORDS.op, roles: [ids.role] }, acmeAdmin);
      const op = await hub.login('acme-op', PASSWORDS.op, 'acme');
      expect((await call('GET', '/api/v1/me', undefined, op)).body.data).toMatchObject({ roles: ['flow-operators'], permissions: expect.arrayContaining(['flows.read', 'flows.control']) });
      expect((await call('PATCH', `/api/v1/roles/${ids.role}`, { permissions: ['flows.read'] }, acmeAdmin)).status).toBe(200);
      expect((await call('GET', '/api/v1/me', undefined, op)).body.data.permissions).toEqual(['flows.read']);
      expect((await call('GET', `/api/v1/roles/${ids.role}`, undefined, betaAdmin)).status).toBe(404);
      const foreignRole = await call('POST', '/api/v1/users', { username: 'beta-op', password: 'beta-op-pass', roles: [ids.role] }, betaAdmin);
      expect(foreignRole.status).toBe(400);
      expect(foreignRole.body.errors[0].message).toContain('body.roles');
      expect((await call('GET', '/api/v1/roles', undefined, acmeAdmin)).body.data.map((r: { name: string }) => r.name)).toEqual(['flow-operators']);
      expect((await call('GET', '/api/v1/roles', undefined, betaAdmin)).body.meta.total).toBe(0);
      expect((await call('DELETE', `/api/v1/roles/${ids.role}`, undefined, acmeAdmin)).status).toBe(204);
      expect((await call('GET', '/api/v1/me', undefined, op)).body.data).toMatchObject({ roles: [], permissions: [] });
    });
  });

  // ------------------------------------------------------------------ permission matrix

  describe('permission matrix', () => {
    const someId = '00000000-0000-4000-8000-000000000001';
    const routes: { method: Method; url: string; body?: unknown; permission: string }[] = [
      { method: 'POST', url: '/api/v1/tokens/introspect', body: { token: 'x' }, permission: 'iam.token.introspect' },
      { method: 'GET', url: '/api/v1/tokens', permission: 'tenant.tokens.read' },
      { method: 'GET', url: `/api/v1/tokens/${someId}`, permission: 'tenant.tokens.read' },
      { method: 'POST', url: '/api/v1/tokens', body: {}, permission: 'tenant.tokens.write' },
      { method: 'DELETE', url: `/api/v1/tokens/${someId}`, permission: 'tenant.tokens.write' },
      { method: 'GET', url: '/api/v1/tenants', permission: 'iam.tenants.read' },
      { method: 'GET', url: '/api/v1/tenants/acme', permission: 'iam.tenants.read' },
      { method: 'POST', url: '/api/v1/tenants', body: { id: 'x', name: 'x' }, permission: 'iam.tenants.write' },
      { method: 'PATCH', url: '/api/v1/tenants/acme', body: { name: 'x' }, permission: 'iam.tenants.write' },
      { method: 'DELETE', url: '/api/v1/tenants/acme', permission: 'iam.tenants.write' },
      { method: 'GET', url: '/api/v1/users', permission: 'tenant.users.read' },
      { method: 'GET', url: `/api/v1/users/${someId}`, permission: 'tenant.users.read' },
      { method: 'POST', url: '/api/v1/users', body: { username: 'x', password: 'xxxxxxxx' }, permission: 'tenant.users.write' },
      { method: 'PATCH', url: `/api/v1/users/${someId}`, body: {}, permission: 'tenant.users.write' },
      { method: 'DELETE', url: `/api/v1/users/${someId}`, permission: 'tenant.users.write' },
      { method: 'GET', url: '/api/v1/roles', permission: 'tenant.roles.read' },
      { method: 'GET', url: `/api/v1/roles/${someId}`, permission: 'tenant.roles.read' },
      { method: 'POST', url: '/api/v1/roles', body: { name: 'x' }, permission: 'tenant.roles.write' },
      { method: 'PATCH', url: `/api/v1/roles/${someId}`, body: {}, permission: 'tenant.roles.write' },
      { method: 'DELETE', url: `/api/v1/roles/${someId}`, permission: 'tenant.roles.write' },
    ];

    it('answers 403 on every route to a caller without its permission', async () => {
      for (const r of routes) {
        const res = await call(r.method, r.url, r.body, nobody);
        expect(res.status, `${r.method} ${r.url}`).toBe(403);
        expect(res.body.errors[0].message).toContain(r.permission);
      }
      // Tenant admins hold tenant.* but not the platform's iam.*.
      for (const r of routes.filter((x) => x.permission.startsWith('iam.'))) {
        expect((await call(r.method, r.url, r.body, acmeAdmin)).status, `${r.method} ${r.url}`).toBe(403);
      }
    });

    it('answers 401 on every route without a valid token', async () => {
      for (const r of routes) expect((await call(r.method, r.url, r.body, 'plx_forged')).status, `${r.method} ${r.url}`).toBe(401);
    });

    it('answers 404 for another tenant’s objects on every item route', async () => {
      const op = await call('POST', '/api/v1/users', { username: 'matrix-user', password: 'matrix-pass-1' }, acmeAdmin);
      const role = await call('POST', '/api/v1/roles', { name: 'matrix-role' }, acmeAdmin);
      const token = await call('POST', '/api/v1/tokens', { description: 'matrix' }, acmeAdmin);
      const acmeObjects = [
        { method: 'GET', url: `/api/v1/users/${op.body.data.id}` },
        { method: 'PATCH', url: `/api/v1/users/${op.body.data.id}`, body: { permissions: [] } },
        { method: 'DELETE', url: `/api/v1/users/${op.body.data.id}` },
        { method: 'GET', url: `/api/v1/roles/${role.body.data.id}` },
        { method: 'PATCH', url: `/api/v1/roles/${role.body.data.id}`, body: { name: 'renamed' } },
        { method: 'DELETE', url: `/api/v1/roles/${role.body.data.id}` },
        { method: 'GET', url: `/api/v1/tokens/${token.body.data.id}` },
        { method: 'DELETE', url: `/api/v1/tokens/${token.body.data.id}` },
      ] as const;
      for (const r of acmeObjects) {
        const foreign = await call(r.method, r.url, 'body' in r ? r.body : undefined, betaAdmin);
        const missing = await call(r.method, r.url.replace(/[0-9a-f-]{36}$/, someId), 'body' in r ? r.body : undefined, betaAdmin);
        expect(foreign.status, `${r.method} ${r.url}`).toBe(404);
        expect(foreign.body.errors[0].code).toBe(missing.body.errors[0].code);
      }
      // Still there for their own tenant.
      expect((await call('GET', `/api/v1/users/${op.body.data.id}`, undefined, acmeAdmin)).status).toBe(200);
      expect((await call('GET', `/api/v1/tokens/${token.body.data.id}`, undefined, acmeAdmin)).status).toBe(200);
    });
  });

  // ------------------------------------------------------------------ bad input

  describe('bad input', () => {
    const cases: { name: string; method: Method; url: string; body?: unknown; field: string }[] = [
      { name: 'unknown field', method: 'POST', url: '/api/v1/users', body: { username: 'u1', password: 'password-1', isAdmin: true }, field: 'isAdmin' },
      { name: 'wrong type', method: 'POST', url: '/api/v1/users', body: { username: 42, password: 'password-1' }, field: 'body.username' },
      { name: 'over-long username', method: 'POST', url: '/api/v1/users', body: { username: 'u'.repeat(101), password: 'password-1' }, field: 'body.username' },
      { name: 'short password', method: 'POST', url: '/api/v1/users', body: { username: 'u2', password: 'short' }, field: 'body.password' },
      { name: 'user without password', method: 'POST', url: '/api/v1/users', body: { username: 'u3' }, field: 'body.password' },
      { name: 'service account with password', method: 'POST', url: '/api/v1/users', body: { username: 'u4', kind: 'service', password: 'password-1' }, field: 'body.password' },
      { name: 'unknown permission', method: 'POST', url: '/api/v1/users', body: { username: 'u5', password: 'password-1', permissions: ['flows.reed'] }, field: 'flows.reed' },
      { name: 'malformed role id', method: 'POST', url: '/api/v1/users', body: { username: 'u6', password: 'password-1', roles: ['r1'] }, field: 'body.roles.0' },
      { name: 'malformed user id', method: 'GET', url: '/api/v1/users/not-a-uuid', field: 'params.id' },
      { name: 'malformed token id', method: 'DELETE', url: '/api/v1/tokens/123', field: 'params.id' },
      { name: 'page too large', method: 'GET', url: '/api/v1/users?page[size]=1000', field: 'page[size]' },
      { name: 'unknown filter', method: 'GET', url: '/api/v1/users?filter[password]=x', field: 'filter[password]' },
      { name: 'bad sort', method: 'GET', url: '/api/v1/users?sort=password', field: 'querystring.sort' },
      { name: 'bad tenant id', method: 'POST', url: '/api/v1/tenants', body: { id: 'Acme Corp', name: 'Acme' }, field: 'body.id' },
      { name: 'over-long tenant name', method: 'POST', url: '/api/v1/tenants', body: { id: 'ok', name: 'n'.repeat(201) }, field: 'body.name' },
      { name: 'bad tenant path', method: 'GET', url: '/api/v1/tenants/Not_A_Slug', field: 'params.id' },
      { name: 'login username type', method: 'POST', url: '/api/v1/login', body: { username: ['admin'], password: 'x' }, field: 'body.username' },
      { name: 'login extra field', method: 'POST', url: '/api/v1/login', body: { username: 'admin', password: 'x', realm: 'acme' }, field: 'realm' },
      { name: 'introspect without token', method: 'POST', url: '/api/v1/tokens/introspect', body: {}, field: 'body.token' },
      { name: 'role name too long', method: 'POST', url: '/api/v1/roles', body: { name: 'r'.repeat(101) }, field: 'body.name' },
    ];
    for (const c of cases) {
      it(`answers 400 naming the field: ${c.name}`, async () => {
        const res = await call(c.method, c.url, c.body);
        expect(res.status, JSON.stringify(res.body)).toBe(400);
        expect(res.body.errors[0].code).toBe('VALIDATION_FAILED');
        expect(res.body.errors[0].message).toContain(c.field);
      });
    }

    it('answers 400 for a body that is not JSON', async () => {
      const res = await hub.app.inject({ method: 'POST', url: '/api/v1/login', headers: { 'content-type': 'application/json' }, payload: '{"username":' });
      expect(res.statusCode).toBe(400);
    });
  });

  it('never shows a password in any response', () => {
    expect(seen.length).toBeGreaterThan(100);
    const all = seen.join('\n');
    for (const p of [...Object.values(PASSWORDS), TEST_ADMIN_PASSWORD]) expect(all, p).not.toContain(p);
    expect(all).not.toMatch(/password_hash|scrypt\$/);
  });
});

describe.each(dbTargets)('IAM logging on %s', (target) => {
  it('never writes a password or a token into the log', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-log-'));
    const config = loadConfig({ PLEXUS_DATA_DIR: dataDir, PLEXUS_HTTP_PORT: '0', PLEXUS_GRPC_PORT: '0', PLEXUS_MTLS_PORT: '0', PLEXUS_LOG_LEVEL: 'trace' });
    const logger = createLogger('trace', sink);
    const testDb = await openTestDb(target);
    const bus = await createBus({ db: testDb.db, serviceName: 'log-test', logger, maxAttempts: 3, leaseMs: 2_000 });
    const hub = await createHub(config, { logger, db: testDb.db, bus });
    let isStopped = false;
    try {
      const adminPassword = hub.iam.bootstrapCredentials!.password;
      const inject = async (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object, token?: string) =>
        hub.app.inject({ method, url, payload, headers: token ? { authorization: `Bearer ${token}` } : {} });
      const admin = (await inject('POST', '/api/v1/login', { username: 'admin', password: adminPassword })).json().token as string;
      await inject('POST', '/api/v1/login', { username: 'admin', password: 'wrong-admin-password' });
      const user = (await inject('POST', '/api/v1/users', { username: 'logged-user', password: 'logged-user-password' }, admin)).json().data.id as string;
      await inject('PATCH', `/api/v1/users/${user}`, { password: 'logged-user-password-2' }, admin);
      const userToken = (await inject('POST', '/api/v1/login', { username: 'logged-user', password: 'logged-user-password-2' })).json().token as string;
      const pat = (await inject('POST', '/api/v1/tokens', {}, admin)).json().data.token as string;
      await inject('GET', '/api/v1/me', undefined, userToken);
      await inject('GET', '/api/v1/me', undefined, `${pat}-forged`);
      await inject('POST', '/api/v1/secrets', { name: 's', type: 'basic', value: { username: 'u', password: 'logged-secret-password' } }, admin);
      await inject('POST', '/api/v1/logout', undefined, userToken);
      // Stopping the hub ends its work and flushes its log: every line is in by then.
      await hub.stop();
      isStopped = true;
      const log = lines.join('');
      expect(log).toContain('bootstrap admin created');
      for (const s of [adminPassword, 'wrong-admin-password', 'logged-user-password', 'logged-secret-password', admin, userToken, pat]) {
        expect(log, 'a secret was logged').not.toContain(s);
      }
    } finally {
      if (!isStopped) await hub.stop();
      await bus.close();
      await testDb.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
