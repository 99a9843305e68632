import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditPublisher } from '../../platform/audit.js';
import { createBus, type Bus } from '../../platform/bus/index.js';
import { loadConfig } from '../../platform/config.js';
import { createLogger } from '../../platform/logger.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { IamService } from './iam.service.js';

const logger = createLogger('silent');

describe.each(dbTargets)('IAM sessions on %s', (target) => {
  let t: TestDb;
  let bus: Bus;
  let iam: IamService;
  const config = loadConfig({ PLEXUS_ADMIN_PASSWORD: 'admin-password-1', PLEXUS_SESSION_TTL: '2h', PLEXUS_DATA_DIR: '/tmp/plexus-iam-test-unused' });

  beforeAll(async () => {
    t = await openTestDb(target);
    bus = await createBus({ db: t.db, serviceName: 'test', logger, maxAttempts: 3, leaseMs: 2_000 });
    iam = new IamService(t.db, bus, config, logger, createAuditPublisher(bus, 'iam', logger));
    expect(await iam.bootstrap()).toMatchObject({ username: 'admin' });
    // A second boot on the same database creates nothing and reveals nothing.
    expect(await iam.bootstrap()).toBeUndefined();
  });
  afterAll(async () => {
    await bus.close();
    await t.drop();
  });

  const expiryOf = async (tokenId: string): Promise<number> => {
    const res = await t.db.query<{ expires_at: Date }>('SELECT expires_at FROM iam_tokens WHERE id = $1', [tokenId]);
    return res.rows[0]!.expires_at.getTime();
  };

  it('slides a session forward when it is used', async () => {
    const { token } = await iam.login({ tenant: 'default', username: 'admin', password: 'admin-password-1', ip: '10.1.1.1' });
    const { principal } = (await iam.resolveToken(token))!;
    // The first use is recorded in the background; let it land before rewinding the clock.
    await expect.poll(async () => (await t.db.query('SELECT 1 FROM iam_tokens WHERE id = $1 AND last_used_at IS NOT NULL', [principal.tokenId])).rows.length).toBe(1);
    // As if last used long ago and about to expire.
    await t.db.query("UPDATE iam_tokens SET last_used_at = now() - interval '1 hour', expires_at = now() + interval '1 minute' WHERE id = $1", [principal.tokenId]);
    const resolved = await iam.resolveToken(token);
    expect(resolved?.expiresAtMs).toBeGreaterThan(Date.now() + 7_000_000);
    await expect.poll(() => expiryOf(principal.tokenId)).toBeGreaterThan(Date.now() + 7_000_000);
  });

  it('lets a session lapse once it is idle past its expiry', async () => {
    const { token } = await iam.login({ tenant: 'default', username: 'admin', password: 'admin-password-1', ip: '10.1.1.1' });
    const { principal } = (await iam.resolveToken(token))!;
    // That use slides the session in the background; let it land before the clock "passes" expiry.
    await waitFor('the recorded use', async () => (await t.db.query('SELECT 1 FROM iam_tokens WHERE id = $1 AND last_used_at IS NOT NULL', [principal.tokenId])).rows.length > 0);
    await t.db.query("UPDATE iam_tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [principal.tokenId]);
    expect(await iam.resolveToken(token)).toBeUndefined();
  });

  it('refuses tokens that were never issued without asking the database', async () => {
    expect(await iam.resolveToken('not-a-token')).toBeUndefined();
    expect(await iam.resolveToken(`plx_${'A'.repeat(43)}`)).toBeUndefined();
  });
});

describe.each(dbTargets)('IAM housekeeping on %s', (target) => {
  it('purges login failures past the window and tokens dead for a day', async () => {
    const t = await openTestDb(target);
    const bus = await createBus({ db: t.db, serviceName: 'test', logger, maxAttempts: 3, leaseMs: 2_000 });
    try {
      const config = loadConfig({ PLEXUS_ADMIN_PASSWORD: 'admin-password-1', PLEXUS_LOGIN_WINDOW: '10m', PLEXUS_DATA_DIR: '/tmp/plexus-iam-test-unused' });
      const iam = new IamService(t.db, bus, config, logger, createAuditPublisher(bus, 'iam', logger));
      await iam.bootstrap();
      await expect(iam.login({ tenant: 'default', username: 'someone-else', password: 'wrong-password', ip: '10.0.0.1' })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
      const { token } = await iam.login({ tenant: 'default', username: 'admin', password: 'admin-password-1', ip: '10.0.0.2' });
      const live = (await iam.resolveToken(token))!.principal.tokenId;
      const { token: old } = await iam.login({ tenant: 'default', username: 'admin', password: 'admin-password-1', ip: '10.0.0.2' });
      const dead = (await iam.resolveToken(old))!.principal.tokenId;
      await t.db.query("UPDATE iam_tokens SET revoked_at = now() - interval '2 days' WHERE id = $1", [dead]);
      await t.db.query("INSERT INTO iam_login_failures (scope, key_hash, at) VALUES ('source', 'old', now() - interval '1 hour')");
      await t.db.query("INSERT INTO iam_login_sources (key_hash, last_success_at) VALUES ('stale', now() - interval '31 days')");
      await iam.purgeExpired();
      const failures = await t.db.query<{ key_hash: string }>('SELECT key_hash FROM iam_login_failures');
      // The recent failure (per account, source, and both) stays; the one past the window goes.
      expect(failures.rows.map((r) => r.key_hash)).not.toContain('old');
      expect(failures.rows).toHaveLength(3);
      // So does a source the account has not logged in from for 30 days; the admin's fresh one stays.
      const sources = await t.db.query<{ key_hash: string }>('SELECT key_hash FROM iam_login_sources');
      expect(sources.rows.map((r) => r.key_hash)).not.toContain('stale');
      expect(sources.rows).toHaveLength(1);
      const tokens = await t.db.query<{ id: string }>('SELECT id FROM iam_tokens');
      expect(tokens.rows.map((r) => r.id)).toContain(live);
      expect(tokens.rows.map((r) => r.id)).not.toContain(dead);
    } finally {
      await bus.close();
      await t.drop();
    }
  });
});
