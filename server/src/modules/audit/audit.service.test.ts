import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createAuditPublisher } from '../../platform/audit.js';
import { createBus } from '../../platform/bus/index.js';
import { eventQueueName } from '../../platform/bus/pattern.js';
import { createLogger } from '../../platform/logger.js';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { ANONYMISED_NAME } from './audit.repo.js';
import { AuditService } from './audit.service.js';
import type { AuditListQuery } from './audit.schemas.js';
import { AUDIT_GROUP, AUDIT_PATTERN, createAuditModule } from './index.js';

const query = (q: Partial<AuditListQuery> = {}): AuditListQuery => ({ 'page[size]': 50, 'page[number]': 1, ...q });

function event(name: string, payload: Record<string, unknown>, createdAt = new Date().toISOString()) {
  return { headers: { name, createdAt, serviceName: 'test' }, payload: { at: createdAt, ...payload } };
}

describe.each(dbTargets)('audit store on %s', (target) => {
  let t: TestDb;
  let audit: AuditService;
  beforeAll(async () => {
    t = await openTestDb(target);
    audit = new AuditService(t.db, createLogger('silent'));
  });
  afterAll(async () => t.drop());

  it('stores a redelivered event once', async () => {
    const e = event('audit.flows.flow.created', { result: 'success', tenantId: 'acme', actor: { accountId: 'u-1', username: 'ann' }, target: { type: 'flow', id: 'f1' } });
    await audit.store(e);
    await audit.store(structuredClone(e));
    const { data, meta } = await audit.list({ tenantId: 'acme' }, query({ 'filter[name]': 'audit.flows.flow.created' }));
    expect(meta.total).toBe(1);
    expect(data[0]).toMatchObject({ module: 'flows', action: 'flow.created', result: 'success', tenant: 'acme', actor: { id: 'u-1', username: 'ann' }, target: { type: 'flow', id: 'f1' } });
  });

  it('keeps an event of an unexpected shape instead of dropping it', async () => {
    await audit.store({ headers: { name: 'audit.legacy.thing', createdAt: new Date().toISOString(), serviceName: 'x' }, payload: 'just a string' });
    const { data } = await audit.list({ tenantId: undefined }, query({ 'filter[module]': 'legacy' }));
    expect(data).toHaveLength(1);
    expect(data[0]!.details).toMatchObject({ unparsed: 'just a string' });
  });

  it('filters by name prefix, user, result and time, and scopes to a tenant', async () => {
    const base = Date.parse('2030-01-01T00:00:00Z');
    const iso = (m: number): string => new Date(base + m * 60_000).toISOString();
    await audit.store(event('audit.iam.login', { result: 'success', actor: { accountId: 'u-2', username: 'bea', tenantId: 'beta' } }, iso(0)));
    await audit.store(event('audit.iam.login', { result: 'failure', actor: { accountId: 'u-2', username: 'bea', tenantId: 'beta' } }, iso(10)));
    await audit.store(event('audit.iam.user.created', { result: 'success', tenantId: 'beta', actor: { accountId: 'u-3', username: 'cid' } }, iso(20)));
    await audit.store(event('audit.iam.user.created', { result: 'success', tenantId: 'gamma', actor: { accountId: 'u-4', username: 'dee' } }, iso(30)));

    const beta = { tenantId: 'beta' };
    expect((await audit.list(beta, query({ 'filter[name]': 'audit.iam.*' }))).meta.total).toBe(3);
    expect((await audit.list(beta, query({ 'filter[user]': 'bea' }))).meta.total).toBe(2);
    expect((await audit.list(beta, query({ 'filter[user]': 'u-2', 'filter[result]': 'failure' }))).meta.total).toBe(1);
    const window = await audit.list(beta, query({ 'filter[from]': iso(5), 'filter[to]': iso(20) }));
    expect(window.data.map((r) => r.at)).toEqual([iso(10)]);
    // Another tenant's records are invisible, even when asked for by filter.
    expect((await audit.list(beta, query({ 'filter[user]': 'dee' }))).meta.total).toBe(0);
    expect((await audit.list(beta, query({ 'filter[tenant]': 'gamma' }))).meta.total).toBe(0);
    expect((await audit.list({ tenantId: undefined }, query({ 'filter[tenant]': 'gamma' }))).meta.total).toBe(1);
    // Newest first by default; oldest first on request.
    const newest = await audit.list(beta, query());
    expect(newest.data[0]!.at).toBe(iso(20));
    const oldest = await audit.list(beta, query({ sort: 'at' }));
    expect(oldest.data[0]!.at).toBe(iso(0));
    await expect(audit.get(beta, (await audit.list({ tenantId: 'gamma' }, query())).data[0]!.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('erases a deleted account name from old records and from records that arrive later', async () => {
    const actor = { accountId: 'u-9', username: 'zoe', tenantId: 'acme' };
    await audit.store(event('audit.iam.login', { result: 'success', actor }));
    await audit.store(event('audit.secrets.secret.created', { result: 'success', actor, target: { type: 'secret', id: 's1' } }));
    await audit.store(event('audit.iam.user.deleted', { result: 'success', tenantId: 'acme', actor: { accountId: 'u-1', username: 'ann' }, target: { type: 'user', id: 'u-9', name: 'zoe' } }));
    // Published before the deletion, delivered after it.
    await audit.store(event('audit.iam.logout', { result: 'success', actor }, new Date(Date.now() - 5_000).toISOString()));

    const all = await audit.list({ tenantId: undefined }, query({ 'page[size]': 100 }));
    expect(JSON.stringify(all.data)).not.toContain('zoe');
    const named = all.data.filter((r) => r.actor?.id === 'u-9' || r.target?.id === 'u-9');
    expect(named).toHaveLength(4);
    for (const r of named) expect(r.actor?.id === 'u-9' ? r.actor.username : r.target?.name).toBe(ANONYMISED_NAME);
    // The deleter stays named.
    expect(named.find((r) => r.name === 'audit.iam.user.deleted')!.actor).toEqual({ id: 'u-1', username: 'ann' });
  });

  it('stores events delivered together in one transaction, and a bad one does not take the others down', async () => {
    const batched = new AuditService(t.db, createLogger('silent'));
    const transactions = vi.spyOn(t.db, 'transaction');
    try {
      const good = Array.from({ length: 40 }, (_, i) => event('audit.batch.thing.created', { result: 'success', tenantId: 'batch', target: { type: 'thing', id: `t${i}` } }));
      await Promise.all(good.map((e) => batched.store(e)));
      expect(transactions).toHaveBeenCalledTimes(1);
      expect((await audit.list({ tenantId: 'batch' }, query({ 'page[size]': 100 }))).meta.total).toBe(40);

      // The database refuses one event's details (jsonb has no \u0000): the batch fails, its
      // events are then stored one by one, and only the bad one fails — with the database's
      // error, so the bus retries it as it would alone.
      transactions.mockClear();
      const more = Array.from({ length: 10 }, (_, i) => event('audit.batch.thing.updated', { result: 'success', tenantId: 'batch', target: { type: 'thing', id: `u${i}` } }));
      const bad = event('audit.batch.thing.updated', { result: 'success', tenantId: 'batch', details: { note: 'nul \u0000 here' } });
      const outcomes = await Promise.allSettled([...more.slice(0, 5), bad, ...more.slice(5)].map((e) => batched.store(e)));
      expect(outcomes.map((o) => o.status)).toEqual([...Array(5).fill('fulfilled'), 'rejected', ...Array(5).fill('fulfilled')]);
      expect((outcomes[5] as PromiseRejectedResult).reason).not.toMatchObject({ kind: 'user' });
      expect(transactions).toHaveBeenCalledTimes(1 + 11);
      expect((await audit.list({ tenantId: 'batch' }, query({ 'filter[name]': 'audit.batch.thing.updated' }))).meta.total).toBe(10);
    } finally {
      transactions.mockRestore();
    }
  });

  it('anonymises every record of a batch that holds the erasure of its account', async () => {
    const actor = { accountId: 'u-7', username: 'yan', tenantId: 'acme' };
    const stored = [
      event('audit.iam.login', { result: 'success', actor }),
      event('audit.iam.user.deleted', { result: 'success', tenantId: 'acme', actor: { accountId: 'u-1', username: 'ann' }, target: { type: 'user', id: 'u-7', name: 'yan' } }),
      event('audit.flows.flow.created', { result: 'success', actor, target: { type: 'flow', id: 'f7' } }),
      event('audit.iam.user.updated', { result: 'success', actor: { accountId: 'u-1', username: 'ann' }, target: { type: 'user', id: 'u-7', name: 'yan' } }),
      event('audit.iam.login', { result: 'success', actor: { accountId: 'u-8', username: 'xia', tenantId: 'acme' } }),
    ];
    await Promise.all(stored.map((e) => audit.store(e)));
    const all = await audit.list({ tenantId: undefined }, query({ 'page[size]': 100, 'filter[user]': 'u-7' }));
    expect(all.meta.total).toBe(2);
    const named = (await audit.list({ tenantId: undefined }, query({ 'page[size]': 100 }))).data.filter((r) => r.actor?.id === 'u-7' || r.target?.id === 'u-7');
    expect(named).toHaveLength(4);
    expect(JSON.stringify(named)).not.toContain('yan');
    // Others in the same batch keep their names.
    expect((await audit.list({ tenantId: undefined }, query({ 'filter[user]': 'xia' }))).meta.total).toBe(1);
  });

  it('refuses to update or delete a record, in the database itself', async () => {
    await expect(t.db.query('DELETE FROM audit_records')).rejects.toThrow(/append-only/);
    await expect(t.db.query("UPDATE audit_records SET result = 'success' WHERE result = 'failure'")).rejects.toThrow(/append-only/);
    await expect(t.db.query("UPDATE audit_records SET actor_name = 'someone else'")).rejects.toThrow(/append-only/);
    await expect(t.db.exec('TRUNCATE audit_records')).rejects.toThrow(/append-only/);
  });
});

describe.each(dbTargets)('audit module on %s', (target) => {
  it('keeps events published before any audit process ran, and stores them once one starts', async () => {
    const logger = createLogger('silent');
    const t = await openTestDb(target);
    const bus = await createBus({ db: t.db, serviceName: 'test', logger, maxAttempts: 3, leaseMs: 2_000 });
    try {
      // A process without the audit role wires the module but never starts it.
      const wiredOnly = await createAuditModule({ db: t.db, bus, logger });
      await createAuditPublisher(bus, 'flows', logger).record({ action: 'flow.created', result: 'success', tenantId: 'acme', target: { type: 'flow', id: 'f-early' } });
      await new Promise((r) => setTimeout(r, 300));
      expect((await wiredOnly.service.list({ tenantId: undefined }, query())).meta.total).toBe(0);
      // Later an audit process starts.
      const auditProcess = await createAuditModule({ db: t.db, bus, logger });
      await auditProcess.start!();
      await expect.poll(async () => (await auditProcess.service.list({ tenantId: 'acme' }, query())).data.map((r) => r.target?.id)).toEqual(['f-early']);
      await auditProcess.stop!();
    } finally {
      await bus.close();
      await t.drop();
    }
  });
  it('stores a backlog through the bus in batches, each event acked once stored', async () => {
    const logger = createLogger('silent');
    const t = await openTestDb(target);
    const bus = await createBus({ db: t.db, serviceName: 'test', logger, maxAttempts: 3, leaseMs: 5_000 });
    try {
      await createAuditModule({ db: t.db, bus, logger });
      const publisher = createAuditPublisher(bus, 'things', logger);
      await publisher.recordMany(Array.from({ length: 300 }, (_, i) => ({ action: 'thing.created', result: 'success' as const, tenantId: 'acme', target: { type: 'thing', id: `t${i}` } })));
      const transactions = vi.spyOn(t.db, 'transaction');
      const auditProcess = await createAuditModule({ db: t.db, bus, logger });
      await auditProcess.start!();
      await expect.poll(async () => (await auditProcess.service.list({ tenantId: 'acme' }, query())).meta.total).toBe(300);
      await expect.poll(async () => (await bus.stats(eventQueueName(AUDIT_GROUP, AUDIT_PATTERN))).depth).toBe(0);
      // The bus uses no transactions of its own here: these are the audit batches.
      expect(transactions.mock.calls.length).toBeLessThan(300);
      expect((await bus.stats(eventQueueName(AUDIT_GROUP, AUDIT_PATTERN))).deadLettered).toBe(0);
      await auditProcess.stop!();
    } finally {
      await bus.close();
      await t.drop();
    }
  });
});
