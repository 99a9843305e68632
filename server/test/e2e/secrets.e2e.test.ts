/**
 * Secrets through their public HTTP surface: encrypted at rest, masked on read, raw only with
 * secrets.readRaw (and audited), oauth2 tokens refreshed against a real token endpoint on
 * loopback, tenant isolation, the permission matrix and bad input.
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
  const ids: Record<string, string> = {};

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

  it('stores a basic secret encrypted and answers it masked', async () => {
    const res = await call('POST', '/api/v1/secrets', { name: 'warehouse-db', type: 'basic', value: { username: PLAINTEXT.dbUser, password: PLAINTEXT.password } }, writer);
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ name: 'warehouse-db', type: 'basic', value: { username: PLAINTEXT.dbUser, password: '***' } });
    ids.basic = res.body.data.id;
    const rows = await hub.db.query('SELECT * FROM secrets WHERE id = $1', [ids.basic]);
    expect(rows.rows).toHaveLength(1);
    const row = JSON.stringify(rows.rows[0]);
    expect(row).not.toContain(PLAINTEXT.password);
    expect(row).not.toContain(PLAINTEXT.dbUser);
    expect(rows.rows[0]).toMatchObject({ tenant_id: 'acme', type: 'basic', key_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const list = await call('GET', '/api/v1/secrets', undefined, reader);
    expect(list.body.meta.total).toBe(1);
    expect(list.body.data[0].value).toEqual({ username: PLAINTEXT.dbUser, password: '***' });
    expect((await call('GET', `/api/v1/secrets/${ids.basic}`, undefined, reader)).body.data.value.password).toBe('***');
  });

  it('masks apiKey and every field of mixed secrets', async () => {
    const api = await call('POST', '/api/v1/secrets', { name: 'crm-key', type: 'apiKey', value: { key: PLAINTEXT.apiKey, headerName: 'X-Api-Key' } }, writer);
    expect(api.body.data.value).toEqual({ key: '***', headerName: 'X-Api-Key' });
    ids.apiKey = api.body.data.id;
    const mixed = await call('POST', '/api/v1/secrets', { name: 'legacy', type: 'mixed', value: { token: PLAINTEXT.mixedToken, port: 8443, tls: true } }, writer);
    expect(mixed.body.data.value).toEqual({ token: '***', port: '***', tls: '***' });
    ids.mixed = mixed.body.data.id;
    const filtered = await call('GET', '/api/v1/secrets?filter[type]=apiKey', undefined, reader);
    expect(filtered.body.data.map((s: { name: string }) => s.name)).toEqual(['crm-key']);
    expect((await call('GET', '/api/v1/secrets?search=LEG&sort=-name', undefined, reader)).body.data.map((s: { name: string }) => s.name)).toEqual(['legacy']);
  });

  it('answers the raw value only with secrets.readRaw, and audits every raw read', async () => {
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
    const current = (await call('GET', `/api/v1/secrets/${ids.basic}`, undefined, writer)).body.data;
    const res = await call('PATCH', `/api/v1/secrets/${ids.basic}`, { name: 'warehouse', value: { ...current.value, username: 'new-user' } }, writer);
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ name: 'warehouse', value: { username: 'new-user', password: '***' } });
    const raw = await hub.api('GET', `/api/v1/secrets/${ids.basic}/raw`, undefined, acmeAdmin);
    expect(raw.body.data.value).toEqual({ username: 'new-user', password: PLAINTEXT.password });
    expect((await call('PATCH', `/api/v1/secrets/${ids.basic}`, { name: 'crm-key' }, writer)).status).toBe(409);
    expect((await call('POST', '/api/v1/secrets', { name: 'warehouse', type: 'apiKey', value: { key: 'k' } }, writer)).status).toBe(409);
  });

  it('fetches and refreshes oauth2 tokens against the token endpoint', async () => {
    tokens.requests.length = 0;
    const created = await call(
      'POST',
      '/api/v1/secrets',
      { name: 'partner-api', type: 'oauth2', value: { grantType: 'client_credentials', tokenUrl: tokens.url, clientId: 'plexus', clientSecret: PLAINTEXT.clientSecret, scope: 'orders' } },
      writer,
    );
    expect(created.status).toBe(201);
    ids.oauth2 = created.body.data.id;
    expect(created.body.data.value).toMatchObject({ clientSecret: '***', clientId: 'plexus' });
    expect(tokens.requests).toHaveLength(0);
    const raws = await Promise.all([1, 2, 3].map(() => hub.api('GET', `/api/v1/secrets/${ids.oauth2}/raw`, undefined, acmeAdmin)));
    expect(tokens.requests).toHaveLength(1);
    for (const r of raws) expect(r.body.data.value).toMatchObject({ accessToken: 'access-1', clientSecret: PLAINTEXT.clientSecret });
    const masked = await call('GET', `/api/v1/secrets/${ids.oauth2}`, undefined, reader);
    expect(masked.body.data.value.accessToken).toBe('***');
    expect(Date.parse(masked.body.data.tokenExpiresAt)).toBeGreaterThan(Date.now());
    expect(masked.body.data.lastRefreshedAt).not.toBeNull();
    const forced = await call('POST', `/api/v1/secrets/${ids.oauth2}/refresh`, undefined, writer);
    expect(forced.status).toBe(200);
    expect(tokens.requests).toHaveLength(2);
    expect((await hub.api('GET', `/api/v1/secrets/${ids.oauth2}/raw`, undefined, acmeAdmin)).body.data.value.accessToken).toBe('access-2');
  });

  it('reports a refused grant as 502 and records the reason on the secret', async () => {
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
    const id = ids.apiKey!;
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
    expect((await call('DELETE', `/api/v1/secrets/${ids.mixed}`, undefined, writer)).status).toBe(204);
    expect((await call('GET', `/api/v1/secrets/${ids.mixed}`, undefined, writer)).status).toBe(404);
    expect((await call('DELETE', `/api/v1/secrets/${ids.mixed}`, undefined, writer)).status).toBe(404);
  });

  it('never shows a plaintext value outside the raw route', () => {
    expect(seen.length).toBeGreaterThan(50);
    const all = seen.join('\n');
    for (const p of [PLAINTEXT.password, PLAINTEXT.apiKey, PLAINTEXT.mixedToken, PLAINTEXT.clientSecret, 'access-1', 'access-2']) expect(all, p).not.toContain(p);
  });
});
