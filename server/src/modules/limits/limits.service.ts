/**
 * Limits of each tenant: the defaults from configuration merged with the overrides a platform
 * admin set. Every process holds all overrides in memory (one row per tenant that has any), so a
 * limit check never queries. A change is written, audited, published (`limits.changed`) and
 * NOTIFYed in one transaction; every process on the database reloads on the notice, and every 30 s
 * anyway in case a notice was lost (a reconnecting PostgreSQL listener).
 */
import { LIMIT_NAMES, LimitOverrides, type TenantLimits, type TenantLimitsView } from '../../contracts/limits.js';
import type { AuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import type { Principal } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import { LIMITS_EVENTS, type LimitsAuditAction, type LimitsChangedEvent } from './limits.events.js';
import { actorOf } from '../iam/index.js';
import * as repo from './limits.repo.js';

/** Upper bound on how stale a process's limits are when a change notice is lost. */
const RELOAD_EVERY_MS = 30_000;

export interface CallContext {
  principal: Principal;
  ip: string;
}

export class LimitsService {
  private overrides = new Map<string, { overrides: LimitOverrides; updatedAt: Date }>();
  /** Merged limits per tenant, one frozen object until they change (WebhookIngress relies on it). */
  private readonly merged = new Map<string, TenantLimits>();
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly audit: AuditPublisher,
    private readonly logger: Logger,
    readonly defaults: Readonly<TenantLimits>,
    /** Throws 404 TENANT_NOT_FOUND for a tenant that does not exist (the IAM module's). */
    private readonly requireTenant: (tenant: string) => Promise<void>,
  ) {}

  /** The limits in force for a tenant, from memory. */
  forTenant(tenant: string): TenantLimits {
    let limits = this.merged.get(tenant);
    if (!limits) {
      limits = Object.freeze({ ...this.defaults, ...this.overrides.get(tenant)?.overrides });
      this.merged.set(tenant, limits);
    }
    return limits;
  }

  /** Code-step sandbox slots the tenant may hold at once (the sandbox pool's `slotsFor`). */
  readonly codeSlotsFor = (tenant: string): number => this.forTenant(tenant).codeSlots;

  /** Reads every tenant's overrides into memory; concurrent calls share one read, and a call during a read causes one more. */
  async reload(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        const rows = await repo.listTenantLimits(this.db);
        const next = new Map<string, { overrides: LimitOverrides; updatedAt: Date }>();
        for (const row of rows) next.set(row.tenant_id, { overrides: readOverrides(row, this.logger), updatedAt: row.updated_at });
        this.apply(next);
      } while (this.reloadAgain);
    })().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  /** Keeps this process's limits current: a notice from any process reloads them. Returns the way to stop. */
  async watch(): Promise<() => Promise<void>> {
    await this.reload();
    const reload = (): void => void this.reload().catch((err: unknown) => this.logger.warn({ err }, 'limits: reloading failed; the last known limits stay in force'));
    const unlisten = await this.db.listen(await repo.changesChannel(this.db), reload);
    const timer = setInterval(reload, RELOAD_EVERY_MS);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await unlisten();
    };
  }

  async view(tenant: string): Promise<TenantLimitsView> {
    await this.requireTenant(tenant);
    const row = await repo.findTenantLimits(this.db, tenant);
    return this.toView(tenant, row ? readOverrides(row, this.logger) : {}, row?.updated_at);
  }

  /** Replaces the tenant's overrides (`{}` puts every limit back to its default). */
  async update(ctx: CallContext, tenant: string, overrides: LimitOverrides): Promise<TenantLimitsView> {
    await this.requireTenant(tenant);
    const set = pickSet(overrides);
    const action: LimitsAuditAction = Object.keys(set).length > 0 ? 'updated' : 'reset';
    const updatedAt = await this.db.transaction(async (tx) => {
      let at: Date | undefined;
      if (action === 'updated') at = (await repo.upsertTenantLimits(tx, tenant, set)).updated_at;
      else await repo.deleteTenantLimits(tx, tenant);
      await this.bus.publish<LimitsChangedEvent>(LIMITS_EVENTS.changed, { tenant }, { tx });
      await this.audit.record(
        { action, actor: actorOf(ctx.principal), tenantId: tenant, target: { type: 'tenant', id: tenant }, result: 'success', sourceIp: ctx.ip, details: { overrides: set } },
        { tx },
      );
      await repo.notifyChange(tx, tenant);
      return at;
    });
    // This process at once; the others on the notice.
    const next = new Map(this.overrides);
    if (updatedAt) next.set(tenant, { overrides: set, updatedAt });
    else next.delete(tenant);
    this.apply(next);
    this.logger.info({ tenant, overrides: set }, 'limits: tenant limits changed');
    return this.toView(tenant, set, updatedAt);
  }

  /** `iam.tenant.deleted`: its overrides go too. */
  async forgetTenant(tenant: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      if (!(await repo.deleteTenantLimits(tx, tenant))) return;
      await this.bus.publish<LimitsChangedEvent>(LIMITS_EVENTS.changed, { tenant }, { tx });
      await repo.notifyChange(tx, tenant);
    });
    await this.reload();
  }

  private apply(next: Map<string, { overrides: LimitOverrides; updatedAt: Date }>): void {
    for (const tenant of new Set([...this.overrides.keys(), ...next.keys()])) {
      if (!sameOverrides(this.overrides.get(tenant)?.overrides, next.get(tenant)?.overrides)) this.merged.delete(tenant);
    }
    this.overrides = next;
  }

  private toView(tenant: string, overrides: LimitOverrides, updatedAt: Date | undefined): TenantLimitsView {
    return { tenant, limits: { ...this.defaults, ...overrides }, overrides, defaults: { ...this.defaults }, updatedAt: updatedAt?.toISOString() ?? null };
  }
}

/** Only the limits that are set, in a stable order. */
function pickSet(o: LimitOverrides): LimitOverrides {
  const out: Record<string, number> = {};
  for (const name of LIMIT_NAMES) if (o[name] !== undefined) out[name] = o[name];
  return out as LimitOverrides;
}

function sameOverrides(a: LimitOverrides | undefined, b: LimitOverrides | undefined): boolean {
  return LIMIT_NAMES.every((name) => a?.[name] === b?.[name]);
}

/** A stored row the current code cannot read keeps only the overrides it can (and says so). */
function readOverrides(row: repo.TenantLimitsRow, logger: Logger): LimitOverrides {
  const parsed = LimitOverrides.safeParse(row.overrides);
  if (parsed.success) return pickSet(parsed.data);
  logger.warn({ tenant: row.tenant_id, issues: parsed.error.issues.slice(0, 3) }, 'limits: stored overrides are not all readable; the unreadable ones take their defaults');
  const kept: Record<string, unknown> = {};
  for (const name of LIMIT_NAMES) if (LimitOverrides.shape[name].safeParse(row.overrides[name]).success) kept[name] = row.overrides[name];
  return pickSet(LimitOverrides.parse(kept));
}
