import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditPublisher } from '../../platform/audit.js';
import { createBus, type Bus } from '../../platform/bus/index.js';
import type { Principal } from '../../platform/http/index.js';
import { createLogger } from '../../platform/logger.js';
import { createOutbound } from '../../platform/outbound/index.js';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { startTokenServer, type TokenServer } from '../../../test/helpers/oauth2.js';
import type { OAuth2Value } from '../../contracts/secrets.js';
import { createKeyring, keyIdOf } from './secrets.crypto.js';
import { SecretsService, type CallContext } from './secrets.service.js';

const logger = createLogger('silent');
const TENANT = 'acme';
const principal: Principal = { accountId: 'acc-1', username: 'ann', tenantId: TENANT, homeTenantId: TENANT, permissions: ['tenant.all'], roles: [], kind: 'user', tokenId: 'tok-1' };
const ctx: CallContext = { principal, ip: '127.0.0.1' };
// The default policy (no private networks), with the loopback token endpoint allowed.
const outbound = createOutbound({ allowPrivateNetwork: false, allowedHosts: ['127.0.0.1'] });

describe.each(dbTargets)('secrets service on %s', (target) => {
  let t: TestDb;
  let bus: Bus;
  let tokens: TokenServer;
  const key = randomBytes(32);
  const service = (keyring = createKeyring(key)): SecretsService => new SecretsService(t.db, keyring, createAuditPublisher(bus, 'secrets', logger), logger, outbound);

  beforeAll(async () => {
    t = await openTestDb(target);
    bus = await createBus({ db: t.db, serviceName: 'test', logger, maxAttempts: 3, leaseMs: 2_000 });
    tokens = await startTokenServer();
  });
  afterAll(async () => {
    await tokens.close();
    await bus.close();
    await t.drop();
  });

  const oauth2 = (over: Partial<OAuth2Value> = {}): OAuth2Value => ({
    grantType: 'client_credentials',
    tokenUrl: tokens.url,
    clientId: 'client one',
    clientSecret: 'client-secret-value',
    scope: 'read write',
    ...over,
  });

  it('keeps no plaintext in the database row', async () => {
    const s = service();
    const created = await s.create(ctx, { name: 'db-creds', type: 'basic', value: { username: 'dbuser', password: 'p4ss-w0rd-in-clear' } });
    expect(created.value).toEqual({ username: 'dbuser', password: '***' });
    const rows = await t.db.query('SELECT * FROM secrets WHERE id = $1', [created.id]);
    const stored = JSON.stringify(rows.rows);
    expect(stored).not.toContain('p4ss-w0rd-in-clear');
    expect(stored).not.toContain('dbuser');
    expect(rows.rows[0]).toMatchObject({ key_id: keyIdOf(key) });
    expect(await s.resolveForStep(TENANT, created.id)).toEqual({ type: 'basic', value: { username: 'dbuser', password: 'p4ss-w0rd-in-clear' } });
  });

  it('answers 404 for another tenant’s secret, as for a missing one', async () => {
    const s = service();
    const created = await s.create(ctx, { name: 'api', type: 'apiKey', value: { key: 'k-123456' } });
    await expect(s.resolveForStep('other', created.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(s.get({ ...ctx, principal: { ...principal, tenantId: 'other' } }, created.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('fetches a client-credentials token once for many concurrent readers in one process', async () => {
    tokens.requests.length = 0;
    tokens.delayMs = 150;
    const s = service();
    const { id } = await s.create(ctx, { name: 'cc-1', type: 'oauth2', value: oauth2() });
    const results = await Promise.all(Array.from({ length: 12 }, () => s.resolveForStep(TENANT, id, { flowId: 'f1' })));
    expect(tokens.requests).toHaveLength(1);
    for (const r of results) expect(r).toMatchObject({ type: 'oauth2', value: { accessToken: 'access-1' } });
    const req = tokens.requests[0]!;
    expect(req.form).toMatchObject({ grant_type: 'client_credentials', scope: 'read write' });
    expect(Buffer.from(req.authorization!.replace(/^Basic /, ''), 'base64').toString()).toBe('client+one:client-secret-value');
    // Fresh now: the next read does not call the endpoint.
    await s.resolveForStep(TENANT, id);
    expect(tokens.requests).toHaveLength(1);
  });

  it('refreshes once when readers in two processes need it at the same moment', async () => {
    tokens.requests.length = 0;
    tokens.delayMs = 200;
    const [a, b] = [service(), service()];
    const { id } = await a.create(ctx, { name: 'cc-2', type: 'oauth2', value: oauth2({ clientAuth: 'body' }) });
    const results = await Promise.all([...Array.from({ length: 5 }, () => a.resolveForStep(TENANT, id)), ...Array.from({ length: 5 }, () => b.resolveForStep(TENANT, id))]);
    expect(tokens.requests).toHaveLength(1);
    expect(new Set(results.map((r) => (r.value as OAuth2Value).accessToken)).size).toBe(1);
    expect(tokens.requests[0]!.form).toMatchObject({ client_id: 'client one', client_secret: 'client-secret-value' });
    expect(tokens.requests[0]!.authorization).toBeUndefined();
  });

  it('refreshes an access token shortly before it expires, keeping a rotated refresh token', async () => {
    tokens.requests.length = 0;
    tokens.delayMs = 0;
    const s = service();
    const soon = new Date(Date.now() + 10_000).toISOString();
    const { id } = await s.create(ctx, {
      name: 'rt-1',
      type: 'oauth2',
      value: oauth2({ grantType: 'refresh_token', clientSecret: undefined, refreshToken: 'refresh-original', accessToken: 'access-old', expiresAt: soon }),
    });
    const first = (await s.resolveForStep(TENANT, id)).value as OAuth2Value;
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0]!.form).toMatchObject({ grant_type: 'refresh_token', refresh_token: 'refresh-original', client_id: 'client one' });
    expect(first.accessToken).toBe('access-1');
    expect(first.refreshToken).toBe('refresh-1');
    expect(Date.parse(first.expiresAt!)).toBeGreaterThan(Date.now() + 3_500_000);
    // Another process reads the stored (rotated) tokens without calling the endpoint.
    const other = (await service().resolveForStep(TENANT, id)).value as OAuth2Value;
    expect(other).toMatchObject({ accessToken: 'access-1', refreshToken: 'refresh-1' });
    expect(tokens.requests).toHaveLength(1);
    const masked = await s.get(ctx, id);
    expect(masked.value).toMatchObject({ accessToken: '***', refreshToken: '***', clientId: 'client one' });
    expect(masked.tokenExpiresAt).toBe(first.expiresAt);
  });

  it('does not refresh a token that is still valid', async () => {
    tokens.requests.length = 0;
    const s = service();
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const { id } = await s.create(ctx, { name: 'valid', type: 'oauth2', value: oauth2({ accessToken: 'still-good', expiresAt: later }) });
    expect(((await s.resolveForStep(TENANT, id)).value as OAuth2Value).accessToken).toBe('still-good');
    expect(tokens.requests).toHaveLength(0);
  });

  it('reports a refused grant to every waiting reader after one attempt, and records why', async () => {
    tokens.requests.length = 0;
    tokens.delayMs = 100;
    tokens.refuseWith = 'invalid_client';
    try {
      const [a, b] = [service(), service()];
      const { id } = await a.create(ctx, { name: 'bad-grant', type: 'oauth2', value: oauth2() });
      const outcomes = await Promise.allSettled([a.resolveForStep(TENANT, id), a.resolveForStep(TENANT, id), b.resolveForStep(TENANT, id)]);
      expect(tokens.requests).toHaveLength(1);
      for (const o of outcomes) {
        expect(o.status).toBe('rejected');
        expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'UPSTREAM_FAILED' });
      }
      expect((await a.get(ctx, id)).lastError).toMatch(/invalid_client/);
    } finally {
      tokens.refuseWith = undefined;
    }
  });

  it('treats an unreachable token endpoint as transient', async () => {
    const s = service();
    const { id } = await s.create(ctx, { name: 'down', type: 'oauth2', value: oauth2({ tokenUrl: 'http://127.0.0.1:9/token' }) });
    await expect(s.resolveForStep(TENANT, id)).rejects.toMatchObject({ code: 'UNAVAILABLE', kind: 'transient' });
  });

  it('merges an update, keeps fields sent back masked, and drops a token issued for old credentials', async () => {
    tokens.requests.length = 0;
    tokens.delayMs = 0;
    const s = service();
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const { id } = await s.create(ctx, { name: 'upd', type: 'oauth2', value: oauth2({ accessToken: 'old-token', expiresAt: later }) });
    const read = await s.get(ctx, id);
    await s.update(ctx, id, { value: { ...read.value, scope: 'admin' } });
    const raw = (await s.resolveForStep(TENANT, id)).value as OAuth2Value;
    expect(raw.clientSecret).toBe('client-secret-value');
    expect(raw.scope).toBe('admin');
    expect(raw.accessToken).toBe('access-1');
    expect(tokens.requests[0]!.form.scope).toBe('admin');
    await expect(s.update(ctx, id, { value: { tokenUrl: 'ftp://x' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('body.value.tokenUrl') });
  });

  it('re-seals secrets of a previous key under the current one', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = service(createKeyring(oldKey));
    const { id } = await before.create(ctx, { name: 'rotate-me', type: 'mixed', value: { a: 'one', b: 2 } });
    const after = service(createKeyring(newKey, [oldKey]));
    expect(await after.rotateKeys()).toBeGreaterThanOrEqual(1);
    const row = await t.db.query<{ key_id: string }>('SELECT key_id FROM secrets WHERE id = $1', [id]);
    expect(row.rows[0]!.key_id).toBe(keyIdOf(newKey));
    // Only the new key is needed from now on.
    expect(await service(createKeyring(newKey)).resolveForStep(TENANT, id)).toEqual({ type: 'mixed', value: { a: 'one', b: 2 } });
  });
});
