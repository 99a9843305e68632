/**
 * Secrets through their public HTTP surface: encrypted at rest, masked on read, raw only with
 * secrets.readRaw (and audited), oauth2 tokens refreshed against a real token endpoint on
 * loopback, tenant isolation, the permission matrix and bad input.
 * Each test creates the secrets it needs (names unique per test), so any one runs alone or in
 * any order (`vitest --sequence.shuffle`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { startTokenServer, type TokenServer } from '../helpers/oauth2.js';

type Api = TestHub['api'];
type Method = Parameters<Api>[0];

const PLAINTEXT = {
  password: 'db-password-plaintext',
  apiKey: 'api-key-plaintext-123',
  mixedToken: 'mixed-field-plaintext',
  clientSecret: 'oauth-client-secret-plaintext',
  dbUser: 'db-user-plaintext',
};

describe.each(dbTargets)('secrets over HTTP on %s', (target) => {
  let hub: TestHub;
  let tokens: TokenServer;
  let acmeAdmin: string;
  let reader: string;
  let writer: string;
  let betaAdmin: string;
  let nobody: string;
  /** Responses that must never hold plaintext (everything but /raw). */
  const seen: string[] = [];
  let call: Api;
  let seq = 0;
  /** A name no other test uses. */
  const unique = (name: string): string => `${name}-${++seq}`;

  const createSecret = async (name: string, type: string, value: unknown): Promise<string> => {
    const res = await call('POST', '/api/v1/secrets', { name, type, value }, writer);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data.id as string;
  };
  const createBasic = (name = unique('warehouse-db')): Promise<string> => createSecret(name, 'basic', { username: PLAINTEXT.dbUser, password: PLAINTEXT.password });
  const createApiKey = (name = unique('crm-key')): Promise<string> => createSecret(name, 'apiKey', { key: PLAINTEXT.apiKey, headerName: 'X-Api-Key' });
  const createOauth2 = (name = unique('partner-api')): Promise<string> =>
    createSecret(name, 'oauth2', { grantType: 'client_credentials', tokenUrl: tokens.url, clientId: 'plexus', clientSecret: PLAINTEXT.clientSecret, scope: 'orders' });

  const createUser = async (username: string, tenant: string, permissions: string[]): Promise<string> => {
    const res = await hub.api('POST', '/api/v1/users', { username, password: `${username}-password`, tenant, permissions });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return hub.login(username, `${username}-password`, tenant);
  };

  beforeAll(async () => {
    hub = await createTestHub({ target });
    tokens = await startTokenServer();
    call = async (...args) => {
      const res = await hub.api(...args);
      if (!args[1].endsWith('/raw')) seen.push(JSON.stringify(res.body ?? ''));
      return res;
    };
    for (const id of ['acme', 'beta']) expect((await hub.api('POST', '/api/v1/tenants', { id, name: id })).status).toBe(201);
    acmeAdmin = await createUser('acme-admin', 'acme', ['tenant.all']);
    reader = await createUser('acme-reader', 'acme', ['secrets.read']);
    writer = await createUser('acme-writer', 'acme', ['secrets.read', 'secrets.write']);
    betaAdmin = await createUser('beta-admin', 'beta', ['tenant.all']);
    nobody = await createUser('acme-nobody', 'acme', []);
  });
  afterAll(async () => {
    await hub?.close();
    await tokens?.close();
  });

  /** No plaintext in any response of a test (the raw route aside). */
  const expectNoPlaintext = (responses: readonly string[]): void => {
    const all = responses.join('\n');
    for (const p of [PLAINTEXT.password, PLAINTEXT.apiKey, PLAINTEXT.mixedToken, PLAINTEXT.clientSecret]) expect(all, p).not.toContain(p);
    // Access tokens the test endpoint issued (access-<n>).
    expect(all).not.toMatch(/access-\d+/);
  };

  it('stores a basic secret encrypted and answers it masked', async () => {
    const name = unique('warehouse-db');
    const res = await call('POST', '/api/v1/secrets', { name, type: 'basic', value: { username: PLAINTEXT.dbUser, password: PLAINTEXT.password } }, writer);
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ name, type: 'basic', value: { username: PLAINTEXT.dbUser, password: '***' } });
    const id = res.body.data.id as string;
    const rows = await hub.db.query('SELECT * FROM secrets WHERE id = $1', [id]);
    expect(rows.rows).toHaveLength(1);
    const row = JSON.stringify(rows.rows[0]);
    expect(row).not.toContain(PLAINTEXT.password);
    expect(row).not.toContain(PLAINTEXT.dbUser);
    expect(rows.rows[0]).toMatchObject({ tenant_id: 'acme', type: 'basic', key_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const list = await call('GET', `/api/v1/secrets?search=${name}`, undefined, reader);
    expect(list.body.meta.total).toBe(1);
    expect(list.body.data[0].value).toEqual({ username: PLAINTEXT.dbUser, password: '***' });
    expect((await call('GET', `/api/v1/secrets/${id}`, undefined, reader)).body.data.value.password).toBe('***');
  });

  it('masks apiKey and every field of mixed secrets', async () => {
    const keyName = unique('masking-crm-key');
    const api = await call('POST', '/api/v1/secrets', { name: keyName, type: 'apiKey', value: { key: PLAINTEXT.apiKey, headerName: 'X-Api-Key' } }, writer);
    expect(api.body.data.value).toEqual({ key: '***', headerName: 'X-Api-Key' });
    const legacyName = unique('masking-legacy');
    const mixed = await call('POST', '/api/v1/secrets', { name: legacyName, type: 'mixed', value: { token: PLAINTEXT.mixedToken, port: 8443, tls: true } }, writer);
    expect(mixed.body.data.value).toEqual({ token: '***', port: '***', tls: '***' });
    const filtered = await call('GET', '/api/v1/secrets?filter[type]=apiKey&search=masking-', undefined, reader);
    expect(filtered.body.data.map((s: { name: string }) => s.name)).toEqual([keyName]);
    expect((await call('GET', '/api/v1/secrets?search=MASKING-LEG&sort=-name', undefined, reader)).body.data.map((s: { name: string }) => s.name)).toEqual([legacyName]);
  });

  it('answers the raw value only with secrets.readRaw, and audits every raw read', async () => {
    const ids = { basic: await createBasic() };
    expect((await call('GET', `/api/v1/secrets/${ids.basic}/raw`, undefined, reader)).status).toBe(403);
    expect((await call('GET', `/api/v1/secrets/${ids.basic}/raw`, undefined, writer)).status).toBe(403);
    const raw = await hub.api('GET', `/api/v1/secrets/${ids.basic}/raw`, undefined, acmeAdmin);
    expect(raw.status).toBe(200);
    expect(raw.body.data.value).toEqual({ username: PLAINTEXT.dbUser, password: PLAINTEXT.password });
    await expect
      .poll(async () => {
        const res = await hub.api('GET', '/api/v1/audit?filter[name]=audit.secrets.secret.read-raw', undefined, acmeAdmin);
        return res.body.data.map((e: { actor: { username: string }; target: { id: string } }) => `${e.actor.username}:${e.target.id}`);
      })
      .toContain(`acme-admin:${ids.basic}`);
    await expect
      .poll(async () => (await hub.api('GET', '/api/v1/audit?filter[name]=audit.secrets.denied&filter[user]=acme-reader', undefined, acmeAdmin)).body.meta.total)
      .toBeGreaterThanOrEqual(1);
  });

  it('updates by merging fields, keeps fields sent back masked, and renames', async () => {
    const taken = unique('crm-key');
    const ids = { basic: await createBasic() };
    await createApiKey(taken);
    const renamed = unique('warehouse');
    const current = (await call('GET', `/api/v1/secrets/${ids.basic}`, undefined, writer)).body.data;
    const res = await call('PATCH', `/api/v1/secrets/${ids.basic}`, { name: renamed, value: { ...current.value, username: 'new-user' } }, writer);
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ name: renamed, value: { username: 'new-user', password: '***' } });
    const raw = await hub.api('GET', `/api/v1/secrets/${ids.basic}/raw`, undefined, acmeAdmin);
    expect(raw.body.data.value).toEqual({ username: 'new-user', password: PLAINTEXT.password });
    expect((await call('PATCH', `/api/v1/secrets/${ids.basic}`, { name: taken }, writer)).status).toBe(409);
    expect((await call('POST', '/api/v1/secrets', { name: renamed, type: 'apiKey', value: { key: 'k' } }, writer)).status).toBe(409);
  });

  it('fetches and refreshes oauth2 tokens against the token endpoint', async () => {
    tokens.requests.length = 0;
    const created = await call(
      'POST',
      '/api/v1/secrets',
      { name: unique('partner-api'), type: 'oauth2', value: { grantType: 'client_credentials', tokenUrl: tokens.url, clientId: 'plexus', clientSecret: PLAINTEXT.clientSecret, scope: 'orders' } },
      writer,
    );
    expect(created.status).toBe(201);
    const ids = { oauth2: created.body.data.id as string };
    expect(created.body.data.value).toMatchObject({ clientSecret: '***', clientId: 'plexus' });
    expect(tokens.requests).toHaveLength(0);
    const raws = await Promise.all([1, 2, 3].map(() => hub.api('GET', `/api/v1/secrets/${ids.oauth2}/raw`, undefined, acmeAdmin)));
    expect(tokens.requests).toHaveLength(1);
    // The token server numbers the tokens it issues over the whole file: this secret's first one.
    const first = raws[0]!.body.data.value.accessToken as string;
    expect(first).toMatch(/^access-\d+$/);
    for (const r of raws) expect(r.body.data.value).toMatchObject({ accessToken: first, clientSecret: PLAINTEXT.clientSecret });
    const masked = await call('GET', `/api/v1/secrets/${ids.oauth2}`, undefined, reader);
    expect(masked.body.data.value.accessToken).toBe('***');
    expect(Date.parse(masked.body.data.tokenExpiresAt)).toBeGreaterThan(Date.now());
    expect(masked.body.data.lastRefreshedAt).not.toBeNull();
    const forced = await call('POST', `/api/v1/secrets/${ids.oauth2}/refresh`, undefined, writer);
    expect(forced.status).toBe(200);
    expect(tokens.requests).toHaveLength(2);
    const second = (await hub.api('GET', `/api/v1/secrets/${ids.oauth2}/raw`, undefined, acmeAdmin)).body.data.value.accessToken as string;
    expect(second).toMatch(/^access-\d+$/);
    expect(second).not.toBe(first);
  });

  it('reports a refused grant as 502 and records the reason on the secret', async () => {
    const ids = { oauth2: await createOauth2(), basic: await createBasic() };
    tokens.refuseWith = 'invalid_client';
    try {
      const res = await call('POST', `/api/v1/secrets/${ids.oauth2}/refresh`, undefined, writer);
      expect(res.status).toBe(502);
      expect(res.body.errors[0]).toMatchObject({ code: 'UPSTREAM_FAILED', message: expect.stringContaining('invalid_client') });
      expect((await call('GET', `/api/v1/secrets/${ids.oauth2}`, undefined, reader)).body.data.lastError).toContain('invalid_client');
    } finally {
      tokens.refuseWith = undefined;
    }
    expect((await call('POST', `/api/v1/secrets/${ids.basic}/refresh`, undefined, writer)).status).toBe(409);
  });

  it('answers 404 for another tenant’s secret on every route, exactly as for a missing one', async () => {
    const ids = { oauth2: await createOauth2() };
    const missing = '00000000-0000-4000-8000-000000000009';
    const routes: { method: Method; suffix: string; body?: unknown }[] = [
      { method: 'GET', suffix: '' },
      { method: 'GET', suffix: '/raw' },
      { method: 'PATCH', suffix: '', body: { name: 'stolen' } },
      { method: 'POST', suffix: '/refresh' },
      { method: 'DELETE', suffix: '' },
    ];
    for (const r of routes) {
      const foreign = await call(r.method, `/api/v1/secrets/${ids.oauth2}${r.suffix}`, r.body, betaAdmin);
      const absent = await call(r.method, `/api/v1/secrets/${missing}${r.suffix}`, r.body, betaAdmin);
      expect(foreign.status, `${r.method} ${r.suffix}`).toBe(404);
      expect(foreign.body.errors[0].code).toBe(absent.body.errors[0].code);
    }
    expect((await call('GET', '/api/v1/secrets', undefined, betaAdmin)).body.meta.total).toBe(0);
    expect((await call('GET', `/api/v1/secrets/${ids.oauth2}`, undefined, reader)).status).toBe(200);
    // A platform admin reaches it by acting in the tenant.
    expect((await call('GET', `/api/v1/secrets/${ids.oauth2}`, undefined, hub.adminToken, { tenant: 'acme' })).status).toBe(200);
    expect((await call('GET', `/api/v1/secrets/${ids.oauth2}`, undefined, hub.adminToken)).status).toBe(404);
  });

  it('answers 403 on every route to a caller without its permission, and 401 without a token', async () => {
    const id = await createApiKey();
    const routes: { method: Method; url: string; body?: unknown; permission: string; reader: boolean }[] = [
      { method: 'GET', url: '/api/v1/secrets', permission: 'secrets.read', reader: true },
      { method: 'GET', url: `/api/v1/secrets/${id}`, permission: 'secrets.read', reader: true },
      { method: 'GET', url: `/api/v1/secrets/${id}/raw`, permission: 'secrets.readRaw', reader: false },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'x', type: 'apiKey', value: { key: 'k' } }, permission: 'secrets.write', reader: false },
      { method: 'PATCH', url: `/api/v1/secrets/${id}`, body: { name: 'y' }, permission: 'secrets.write', reader: false },
      { method: 'POST', url: `/api/v1/secrets/${id}/refresh`, permission: 'secrets.write', reader: false },
      { method: 'DELETE', url: `/api/v1/secrets/${id}`, permission: 'secrets.write', reader: false },
    ];
    for (const r of routes) {
      const denied = await call(r.method, r.url, r.body, nobody);
      expect(denied.status, `${r.method} ${r.url}`).toBe(403);
      expect(denied.body.errors[0].message).toContain(r.permission);
      expect((await call(r.method, r.url, r.body, 'plx_forged')).status).toBe(401);
      if (!r.reader) expect((await call(r.method, r.url, r.body, reader)).status, `${r.method} ${r.url} as reader`).toBe(403);
    }
    expect((await call('GET', `/api/v1/secrets/${id}`, undefined, nobody)).body.errors[0].code).toBe('FORBIDDEN');
  });

  it('answers 400 naming the field for bad input', async () => {
    const ids = { apiKey: await createApiKey() };
    const cases: { method: Method; url: string; body?: unknown; field: string }[] = [
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'ssh', value: {} }, field: 'body.type' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'basic', value: { username: 'u' } }, field: 'body.value.password' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'basic', value: { username: 'u', password: 'p', note: 'x' } }, field: 'note' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'apiKey', value: { key: 'k' }, owner: 'me' }, field: 'owner' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'n'.repeat(201), type: 'apiKey', value: { key: 'k' } }, field: 'body.name' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'apiKey', value: { key: 'k'.repeat(4097) } }, field: 'body.value.key' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'apiKey', value: { key: 42 } }, field: 'body.value.key' },
      { method: 'POST', url: '/api/v1/secrets', body: { name: 'a', type: 'mixed', value: {} }, field: 'body.value' },
      {
        method: 'POST',
        url: '/api/v1/secrets',
        body: { name: 'a', type: 'oauth2', value: { grantType: 'client_credentials', tokenUrl: 'file:///etc/passwd', clientId: 'c', clientSecret: 's' } },
        field: 'body.value.tokenUrl',
      },
      {
        method: 'POST',
        url: '/api/v1/secrets',
        body: { name: 'a', type: 'oauth2', value: { grantType: 'refresh_token', tokenUrl: 'https://idp.example/token', clientId: 'c' } },
        field: 'body.value.refreshToken',
      },
      { method: 'GET', url: '/api/v1/secrets/not-a-uuid', field: 'params.id' },
      { method: 'GET', url: '/api/v1/secrets?filter[type]=ssh', field: 'filter[type]' },
      { method: 'GET', url: '/api/v1/secrets?filter[value]=x', field: 'filter[value]' },
      { method: 'PATCH', url: `/api/v1/secrets/${ids.apiKey}`, body: {}, field: 'body' },
      { method: 'PATCH', url: `/api/v1/secrets/${ids.apiKey}`, body: { value: { key: '' } }, field: 'body.value.key' },
      { method: 'PATCH', url: `/api/v1/secrets/${ids.apiKey}`, body: { value: { secret: 'x' } }, field: 'body.value' },
      { method: 'PATCH', url: `/api/v1/secrets/${ids.apiKey}`, body: { type: 'basic' }, field: 'type' },
    ];
    for (const c of cases) {
      const res = await call(c.method, c.url, c.body, acmeAdmin);
      expect(res.status, `${c.method} ${c.url} ${JSON.stringify(c.body)} → ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.errors[0].code).toBe('VALIDATION_FAILED');
      expect(res.body.errors[0].message, JSON.stringify(c.body)).toContain(c.field);
    }
  });

  it('deletes a secret', async () => {
    const ids = { mixed: await createSecret(unique('legacy'), 'mixed', { token: PLAINTEXT.mixedToken }) };
    expect((await call('DELETE', `/api/v1/secrets/${ids.mixed}`, undefined, writer)).status).toBe(204);
    expect((await call('GET', `/api/v1/secrets/${ids.mixed}`, undefined, writer)).status).toBe(404);
    expect((await call('DELETE', `/api/v1/secrets/${ids.mixed}`, undefined, writer)).status).toBe(404);
  });

  it('never shows a plaintext value outside the raw route', async () => {
    // Its own round of every kind through every non-raw route, checked by itself …
    const from = seen.length;
    tokens.refuseWith = undefined;
    const basic = await createBasic();
    const apiKey = await createApiKey();
    const mixed = await createSecret(unique('legacy'), 'mixed', { token: PLAINTEXT.mixedToken, port: 8443 });
    const oauth2 = await createOauth2();
    // A fetched token (raw route, not checked) must not show on the others either.
    expect((await hub.api('GET', `/api/v1/secrets/${oauth2}/raw`, undefined, acmeAdmin)).status).toBe(200);
    for (const id of [basic, apiKey, mixed, oauth2]) {
      await call('GET', `/api/v1/secrets/${id}`, undefined, reader);
      await call('PATCH', `/api/v1/secrets/${id}`, { name: unique('renamed') }, writer);
    }
    await call('POST', `/api/v1/secrets/${oauth2}/refresh`, undefined, writer);
    await call('GET', '/api/v1/secrets?page[size]=100', undefined, reader);
    const mine = seen.slice(from);
    expect(mine.length).toBeGreaterThanOrEqual(14);
    expectNoPlaintext(mine);
    // … and every response any test here has seen so far.
    expectNoPlaintext(seen);
  });
});
