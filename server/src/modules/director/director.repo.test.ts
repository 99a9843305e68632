/**
 * The tenant version and application count that migration 0041's triggers keep: exact per
 * tenant, raised by a change to any Director table, untouched by a statement that changes no
 * row or a transaction that rolls back. The response cache and `totalCount` rely on both.
 * And the plan a lookup by id keeps (migration 0043).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import * as repo from './director.repo.js';

describe.each(dbTargets)('director tenant versions on %s', (target) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(target);
  });
  afterAll(async () => {
    await t.drop();
  });

  const app = (tenantId: string, name: string) =>
    repo.insertApplication(t.db, { tenantId, id: randomUUID(), name, providerName: null, description: null, integrationLevel: 'APPLICATION', healthCheckUrl: null, labels: { scenarios: ['DEFAULT'] } });

  it('counts applications per tenant exactly, through inserts, deletes and cascades', async () => {
    const a1 = (await app('ta', 'a1'))!;
    await app('ta', 'a2');
    await app('ta', 'a3');
    await app('tb', 'b1');
    // A name taken already inserts nothing (ON CONFLICT DO NOTHING): the count stays.
    expect(await app('ta', 'a2')).toBeUndefined();
    expect((await repo.tenantVersion(t.db, 'ta')).applications).toBe(3);
    expect(await repo.countApplications(t.db, 'ta', { filters: [] })).toBe(3);
    await repo.insertWebhook(t.db, { tenantId: 'ta', id: randomUUID(), applicationId: a1.id, type: 'CONFIGURATION_CHANGED', url: 'https://x.example', auth: null, authSecretId: null, signingSecretId: 's' });
    await repo.deleteApplication(t.db, 'ta', a1.id);
    expect((await repo.tenantVersion(t.db, 'ta')).applications).toBe(2);
    expect((await repo.tenantVersion(t.db, 'tb')).applications).toBe(1);
    expect((await repo.tenantVersion(t.db, 'nobody')).applications).toBe(0);
    const scanned = await t.db.query<{ n: number }>("SELECT count(*)::int AS n FROM director_applications WHERE tenant_id = 'ta'");
    expect(scanned.rows[0]!.n).toBe(2);
  });

  it('every change to a Director table raises the version; no change and a rollback do not', async () => {
    const version = async () => (await repo.tenantVersion(t.db, 'tv')).version;
    const rises = async (what: string, change: () => Promise<unknown>) => {
      const before = await version();
      await change();
      expect(await version(), what).toBeGreaterThan(before);
    };
    const stays = async (what: string, change: () => Promise<unknown>) => {
      const before = await version();
      await change().catch(() => undefined);
      expect(await version(), what).toBe(before);
    };
    let appId = '';
    await rises('application inserted', async () => (appId = (await app('tv', 'v1'))!.id));
    await rises('application status', () => t.db.query("UPDATE director_applications SET status_condition = 'CONNECTED' WHERE tenant_id = 'tv'"));
    await stays('an update of no row', () => repo.setApplicationStatus(t.db, 'tv', appId, 'CONNECTED'));
    const rtId = randomUUID();
    await rises('runtime', () => repo.insertRuntime(t.db, { tenantId: 'tv', id: rtId, name: 'r', description: null, labels: {} }));
    await rises('label definition', () => repo.insertLabelDefinition(t.db, 'tv', 'k', null));
    await rises('definition', () => t.db.query("INSERT INTO director_definitions (tenant_id, id, application_id, kind, name) VALUES ('tv', 'd1', $1, 'api', 'd')", [appId]));
    await rises('document', () => t.db.query("INSERT INTO director_documents (tenant_id, id, application_id, title, display_name, description, format) VALUES ('tv', 'doc1', $1, 't', 't', 't', 'MARKDOWN')", [appId]));
    await rises('api runtime auth', () => repo.upsertApiRuntimeAuth(t.db, 'tv', 'd1', rtId, {}, 's'));
    await rises('system auth', () => repo.insertSystemAuth(t.db, { tenantId: 'tv', id: 'sa1', objectType: 'runtime', objectId: rtId, kind: 'iam-token', accountId: `acc-${randomUUID()}` }));
    await rises('delivery', () => t.db.query("INSERT INTO director_webhook_deliveries (tenant_id, id, webhook_id, application_id, message_id, type, payload) VALUES ('tv', 'dl1', 'w', $1, 'm', 'CONFIGURATION_CHANGED', '{}')", [appId]));
    await rises('delivery attempt', () => repo.recordDeliveryAttempt(t.db, 'tv', 'dl1', { status: 'SUCCEEDED', httpStatus: 204, error: null, nextAttemptAt: null }));
    await rises('tenant settings', () => repo.saveTenantSettings(t.db, 'tv', { specValidation: 'strict' }));
    await rises('runtime deleted', () => repo.deleteRuntime(t.db, 'tv', rtId));
    await stays('a rolled-back transaction', () =>
      t.db.transaction(async (tx) => {
        await tx.query("UPDATE director_applications SET description = 'x' WHERE tenant_id = 'tv'");
        throw new Error('roll back');
      }),
    );
    expect((await repo.tenantVersion(t.db, 'ta')).version).toBeGreaterThan(0);
  });

  it('a cached generic plan for a lookup by id reads the primary key, not the tenant rows through the name index', async () => {
    // What a foreign-key check runs (and findApplication, findDefinition, recordDeliveryAttempt…):
    // planned once while the table is small and kept as it grows. Before migration 0043 another
    // index starting with tenant_id (the unique names, the per-application indexes) won with
    // `tenant_id` alone as its condition, so each lookup read all of the tenant's rows.
    for (const table of ['director_applications', 'director_runtimes', 'director_definitions', 'director_documents', 'director_webhooks', 'director_webhook_deliveries']) {
      const name = `plan_probe_${table}`;
      const plan = await t.db.transaction(async (tx) => {
        await tx.query("SET LOCAL plan_cache_mode = 'force_generic_plan'");
        await tx.query(`PREPARE ${name} (text, text) AS SELECT 1 FROM ONLY ${table} x WHERE tenant_id = $1 AND id = $2 FOR KEY SHARE OF x`);
        try {
          const res = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE ${name} ('ta', 'some-id')`);
          return res.rows.map((r) => r['QUERY PLAN']).join('\n');
        } finally {
          await tx.query(`DEALLOCATE ${name}`);
        }
      });
      expect(plan, table).toContain(`${table}_pkey`);
    }
  });
});
