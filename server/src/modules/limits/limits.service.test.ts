/**
 * The limits service on a real database and bus: defaults, overrides, their events, and a second
 * process (a second service on the same PostgreSQL schema) seeing a change within a second.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { hasPostgres } from '../../../test/helpers/services.js';
import type { TenantLimits } from '../../contracts/limits.js';
import { createAuditPublisher, type AuditPayload } from '../../platform/audit.js';
import { createBus, type Bus, type Consumer } from '../../platform/bus/index.js';
import { openDb, type Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Principal } from '../../platform/http/index.js';
import { createLogger } from '../../platform/logger.js';
import { LIMITS_EVENTS } from './limits.events.js';
import { LimitsService, type CallContext } from './limits.service.js';

const DEFAULTS: TenantLimits = {
  webhookRequestsPerSecond: 200,
  webhookBytesPerSecond: 20 * 1024 * 1024,
  webhookInFlightBytes: 32 * 1024 * 1024,
  concurrentExecutions: 100,
  messagesPerExecution: 10_000,
  codeSlots: 1,
};
const TENANTS = new Set(['default', 'acme', 'globex']);
const logger = createLogger('silent');

const admin: Principal = { accountId: 'a1', username: 'admin', tenantId: 'default', homeTenantId: 'default', kind: 'user', roles: [], permissions: ['all'], tokenId: 't1' };
const ctx: CallContext = { principal: admin, ip: '127.0.0.1' };

function serviceOn(db: Db, bus: Bus): LimitsService {
  return new LimitsService(db, bus, createAuditPublisher(bus, 'limits', logger), logger, DEFAULTS, async (tenant) => {
    if (!TENANTS.has(tenant)) throw new AppError('TENANT_NOT_FOUND', `tenant ${tenant} not found`);
  });
}

async function waitUntil(probe: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!probe()) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

describe.each(dbTargets)('limits service on %s', (target) => {
  let t: TestDb;
  let bus: Bus;
  let service: LimitsService;
  let stopWatching: () => Promise<void>;
  let events: Consumer;
  const seen: Array<{ name: string; payload: unknown }> = [];

  beforeAll(async () => {
    t = await openTestDb(target);
    bus = await createBus({ db: t.db, serviceName: 'limits-test', logger, maxAttempts: 3, leaseMs: 5_000 });
    events = await bus.subscribe('>', 'limits-test-observer', async (e) => void seen.push({ name: e.headers.name, payload: e.payload }));
    service = serviceOn(t.db, bus);
    stopWatching = await service.watch();
  });
  afterAll(async () => {
    await stopWatching?.();
    await events?.stop();
    await bus?.close();
    await t?.drop();
  });

  it('gives every tenant the configured defaults until an override is set', async () => {
    expect(service.forTenant('acme')).toEqual(DEFAULTS);
    expect(service.codeSlotsFor('acme')).toBe(1);
    const view = await service.view('acme');
    expect(view).toMatchObject({ tenant: 'acme', limits: DEFAULTS, overrides: {}, defaults: DEFAULTS, updatedAt: null });
  });

  it('applies overrides over the defaults, publishes limits.changed and audits the change', async () => {
    const before = service.forTenant('acme');
    expect(service.forTenant('acme')).toBe(before);
    const view = await service.update(ctx, 'acme', { messagesPerExecution: 50, codeSlots: 3 });
    expect(view.limits).toEqual({ ...DEFAULTS, messagesPerExecution: 50, codeSlots: 3 });
    expect(view.overrides).toEqual({ messagesPerExecution: 50, codeSlots: 3 });
    expect(view.updatedAt).not.toBeNull();
    // This process at once, as a new object (the ingress notices a change by identity).
    expect(service.forTenant('acme')).not.toBe(before);
    expect(service.forTenant('acme').messagesPerExecution).toBe(50);
    expect(service.codeSlotsFor('acme')).toBe(3);
    // Others keep theirs.
    expect(service.forTenant('globex')).toEqual(DEFAULTS);
    expect((await service.view('acme')).overrides).toEqual({ messagesPerExecution: 50, codeSlots: 3 });

    await waitUntil(() => seen.some((e) => e.name === 'audit.limits.updated') && seen.some((e) => e.name === LIMITS_EVENTS.changed), 5_000);
    expect(seen.find((e) => e.name === LIMITS_EVENTS.changed)!.payload).toEqual({ tenant: 'acme' });
    const audit = seen.find((e) => e.name === 'audit.limits.updated')!.payload as AuditPayload;
    expect(audit).toMatchObject({ module: 'limits', tenantId: 'acme', target: { type: 'tenant', id: 'acme' }, result: 'success', details: { overrides: { messagesPerExecution: 50, codeSlots: 3 } } });
  });

  it('puts every limit back to its default on {}', async () => {
    await service.update(ctx, 'globex', { concurrentExecutions: 2 });
    expect(service.forTenant('globex').concurrentExecutions).toBe(2);
    const view = await service.update(ctx, 'globex', {});
    expect(view).toMatchObject({ limits: DEFAULTS, overrides: {}, updatedAt: null });
    expect(service.forTenant('globex')).toEqual(DEFAULTS);
    await waitUntil(() => seen.some((e) => e.name === 'audit.limits.reset'), 5_000);
  });

  it('answers 404 for a tenant that does not exist', async () => {
    await expect(service.view('nope')).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
    await expect(service.update(ctx, 'nope', { codeSlots: 2 })).rejects.toMatchObject({ code: 'TENANT_NOT_FOUND' });
  });

  it("drops a deleted tenant's overrides", async () => {
    await service.update(ctx, 'default', { codeSlots: 4 });
    await service.forgetTenant('default');
    expect(service.forTenant('default')).toEqual(DEFAULTS);
    expect((await service.view('default')).overrides).toEqual({});
  });
});

describe.runIf(hasPostgres)('limits across processes (PostgreSQL)', () => {
  let t: TestDb;
  let db2: Db;
  let bus1: Bus;
  let bus2: Bus;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    t = await openTestDb('postgres');
    db2 = await openDb({ url: t.url!, schema: t.schema!, poolSize: 2 });
    bus1 = await createBus({ db: t.db, serviceName: 'limits-1', logger, maxAttempts: 3, leaseMs: 5_000 });
    bus2 = await createBus({ db: db2, serviceName: 'limits-2', logger, maxAttempts: 3, leaseMs: 5_000 });
  });
  afterAll(async () => {
    for (const stop of stops) await stop();
    await bus1?.close();
    await bus2?.close();
    await db2?.close();
    await t?.drop();
  });

  it('a change made by one process is in force in another within a second', async () => {
    const one = serviceOn(t.db, bus1);
    const two = serviceOn(db2, bus2);
    stops.push(await one.watch(), await two.watch());
    expect(two.forTenant('acme').webhookRequestsPerSecond).toBe(200);
    await one.update(ctx, 'acme', { webhookRequestsPerSecond: 7 });
    const tookMs = await waitUntil(() => two.forTenant('acme').webhookRequestsPerSecond === 7, 1_000);
    expect(tookMs).toBeLessThan(1_000);
    await one.update(ctx, 'acme', {});
    await waitUntil(() => two.forTenant('acme').webhookRequestsPerSecond === 200, 1_000);
  });
});
