/**
 * The flow repository: definitions (validated against the component registry), their
 * versions, and the status a flow moves through. Status changes are event-driven: the service
 * publishes `flow.starting` / `flow.stopping` in the same transaction as the status, and the
 * orchestrator's answers (flows.events.ts) finish the move.
 */
import { randomUUID } from 'node:crypto';
import { FLOW_EVENTS, SECRET_MASK, signingSecretOwner, type ComponentCatalog, type Flow, type FlowStatus } from '../../contracts/flows.js';
import { listMeta, type ListMeta } from '../../contracts/list.js';
import type { AuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Principal } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import { FLOW_CHANGED, type FlowChanged, type FlowsAuditAction } from './flows.events.js';
import * as repo from './flows.repo.js';
import { isCredentialName, validateFlowBody, type EventTriggerCheck, type FlowDefinition } from './flows.validation.js';

export interface FlowListQuery {
  page: number;
  perPage: number;
  status?: FlowStatus | undefined;
  search?: string | undefined;
  sort: { field: repo.FlowSortField; desc: boolean };
}

export interface FlowVersion {
  version: number;
  current: boolean;
  name: string;
  description?: string | undefined;
  cron?: string | undefined;
  timezone?: string | undefined;
  graph: Flow['graph'];
  flowSettings: Record<string, unknown>;
  createdBy?: string | undefined;
  createdAt: string;
}

/**
 * What the flows module asks of the secrets module: webhook signing secrets are sealed there as
 * secrets the flow owns (`flow:<id>`), and the flow keeps only their id.
 */
export interface FlowSecrets {
  /** Seals `value` for `owner`, re-sealing `replaceId` when the owner holds it; returns the secret's id. */
  storeOwned(
    tx: Queryable,
    input: { tenantId: string; owner: string; name: string; value: string; replaceId?: string | undefined; actor?: Principal | undefined },
  ): Promise<string>;
  deleteOwned(tx: Queryable, tenantId: string, owner: string, actor?: Principal): Promise<void>;
  signingSecretProblem(tenantId: string, id: string): Promise<string | undefined>;
}

export interface FlowsServiceDeps {
  db: Db;
  bus: Bus;
  catalog: ComponentCatalog;
  secrets: FlowSecrets;
  audit: AuditPublisher;
  logger: Logger;
  /** Event triggers: whether the tenant has the application and event definition (the Director); undefined: none accepted. */
  eventTriggerProblem?: EventTriggerCheck | undefined;
}


export class FlowsService {
  private readonly db: Db;
  private readonly bus: Bus;
  private readonly log: Logger;

  constructor(private readonly deps: FlowsServiceDeps) {
    this.db = deps.db;
    this.bus = deps.bus;
    this.log = deps.logger;
  }

  async list(principal: Principal, q: FlowListQuery): Promise<{ data: Flow[]; meta: ListMeta }> {
    const filter = { status: q.status, search: q.search };
    const [total, rows] = await Promise.all([
      repo.countFlows(this.db, principal.tenantId, filter),
      repo.listFlows(this.db, principal.tenantId, filter, q.sort, { limit: q.perPage, offset: (q.page - 1) * q.perPage }),
    ]);
    return { data: rows.map((r) => toFlow(r, true)), meta: listMeta(total, q.page, q.perPage) };
  }

  async get(principal: Principal, id: string): Promise<Flow> {
    return toFlow(await this.findOwn(this.db, principal, id), true);
  }

  async create(principal: Principal, body: unknown): Promise<Flow> {
    const validated = await this.validate(principal, body, undefined);
    if (validated.owners.length === 0) validated.owners = [{ id: principal.accountId, type: principal.kind }];
    const id = randomUUID();
    const row = await this.db.transaction(async (tx) => {
      const def = await this.sealSigningSecret(tx, principal, id, validated, undefined);
      const created = await repo.insertFlow(tx, id, principal.tenantId, def);
      await repo.insertFlowVersion(tx, created, principal.accountId);
      await this.record(tx, principal, 'flow.created', created);
      return created;
    });
    return toFlow(row, true);
  }

  async update(principal: Principal, id: string, body: unknown): Promise<Flow> {
    const current = await this.findOwn(this.db, principal, id);
    assertInactive(current, 'changed');
    const base = definitionOf(current);
    const validated = await this.validate(principal, keepMaskedSecret(body, base), base);
    const row = await this.db.transaction(async (tx) => {
      const def = await this.sealSigningSecret(tx, principal, id, validated, base.flowSettings.webhooks?.secretId);
      const updated = await repo.updateInactiveFlow(tx, principal.tenantId, id, current.version, def);
      if (!updated) {
        // Someone started, changed or deleted it since we read it.
        const now = await this.findOwn(tx, principal, id);
        assertInactive(now, 'changed');
        throw new AppError('CONFLICT', `flow ${id} was changed by someone else (now version ${now.version}); read it again and retry`);
      }
      await repo.insertFlowVersion(tx, updated, principal.accountId);
      await this.record(tx, principal, 'flow.updated', updated, { version: updated.version });
      return updated;
    });
    return toFlow(row, true);
  }

  async remove(principal: Principal, id: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const current = await this.findOwn(tx, principal, id);
      assertInactive(current, 'deleted');
      if (!(await repo.deleteInactiveFlow(tx, principal.tenantId, id))) {
        assertInactive(await this.findOwn(tx, principal, id), 'deleted');
      }
      await this.deps.secrets.deleteOwned(tx, principal.tenantId, signingSecretOwner(id), principal);
      await this.record(tx, principal, 'flow.deleted', current);
    });
  }

  async listVersions(principal: Principal, id: string, page: { page: number; perPage: number }): Promise<{ data: FlowVersion[]; meta: ListMeta }> {
    const flow = await this.findOwn(this.db, principal, id);
    const [total, rows] = await Promise.all([
      repo.countFlowVersions(this.db, id),
      repo.listFlowVersions(this.db, id, { limit: page.perPage, offset: (page.page - 1) * page.perPage }),
    ]);
    const data = rows.map((v) => ({
      version: v.version,
      current: v.version === flow.version,
      name: v.name,
      description: v.description ?? undefined,
      cron: v.cron ?? undefined,
      timezone: v.timezone ?? undefined,
      ...(v.trigger ? { trigger: v.trigger } : {}),
      graph: v.graph,
      flowSettings: maskSettings(v.flow_settings),
      createdBy: v.created_by ?? undefined,
      createdAt: v.created_at.toISOString(),
    }));
    return { data, meta: listMeta(total, page.page, page.perPage) };
  }

  /**
   * inactive → starting, publishing `flow.starting` in the same transaction. Starting a flow
   * that is starting or active already changes nothing; one that is stopping must finish first.
   */
  async start(principal: Principal, id: string): Promise<{ id: string; status: FlowStatus }> {
    const result = await this.db.transaction(async (tx) => {
      const row = await repo.transitionFlow(tx, id, principal.tenantId, ['inactive'], 'starting', { reason: null });
      if (row) {
        await this.bus.publish(FLOW_EVENTS.starting, toFlow(row, false), { tx });
        await this.record(tx, principal, 'flow.start', row);
        return { id, status: row.status };
      }
      const current = await this.findOwn(tx, principal, id);
      if (current.status === 'stopping') throw AppError.conflict(`flow ${id} is stopping; start it again once it is inactive`);
      return { id, status: current.status };
    });
    this.announce(id, principal.tenantId, result.status);
    return result;
  }

  /**
   * Any state but inactive → stopping, publishing `flow.stopping`. Stopping a flow that is
   * stopping already publishes again, so a lost answer can be retried; nothing stays stuck.
   */
  async stop(principal: Principal, id: string): Promise<{ id: string; status: FlowStatus }> {
    const result = await this.db.transaction(async (tx) => {
      const row = await repo.transitionFlow(tx, id, principal.tenantId, ['starting', 'active', 'stopping'], 'stopping');
      if (row) {
        await this.bus.publish(FLOW_EVENTS.stopping, toFlow(row, false), { tx });
        await this.record(tx, principal, 'flow.stop', row);
        return { id, status: row.status };
      }
      const current = await this.findOwn(tx, principal, id);
      return { id, status: current.status };
    });
    this.announce(id, principal.tenantId, result.status);
    return result;
  }

  /**
   * Tells watchers (the cockpit's event stream) a flow's status now, after the change committed.
   * A live event: not stored, nobody waits for it.
   */
  private announce(id: string, tenant: string, status: FlowStatus): void {
    this.bus.live.publish<FlowChanged>(FLOW_CHANGED, { id, tenant, status }).catch((err: unknown) => this.log.warn({ err, flowId: id }, 'flows: live event not sent'));
  }

  /** `flow.started`: starting → active. Late answers for a flow stopped meanwhile are ignored. */
  async markStarted(id: string): Promise<void> {
    const row = await repo.transitionFlow(this.db, id, undefined, ['starting'], 'active');
    if (row) this.announce(id, row.tenant_id, row.status);
    if (!row) this.log.debug({ flowId: id }, 'flows: flow.started for a flow that is not starting; ignored');
  }

  /** `flow.stopped`: stopping → inactive. */
  async markStopped(id: string): Promise<void> {
    const row = await repo.transitionFlow(this.db, id, undefined, ['stopping'], 'inactive');
    if (row) this.announce(id, row.tenant_id, row.status);
    if (!row) this.log.debug({ flowId: id }, 'flows: flow.stopped for a flow that is not stopping; ignored');
  }

  /**
   * `flow.failed`: a start that failed ends `inactive` at once with the reason — nothing was
   * placed, and webhooks and the scheduler drop the flow on `flow.failed` themselves — so it can
   * be fixed (PATCH) and started again right away. An active flow that fails goes through
   * `stopping` and `flow.stopping`, so everyone lets go of it.
   */
  async markFailed(id: string, reason: string): Promise<void> {
    const why = reason.slice(0, 2000);
    const changed = await this.db.transaction(async (tx) => {
      let row = await repo.transitionFlow(tx, id, undefined, ['starting'], 'inactive', { reason: why });
      if (!row) {
        row = await repo.transitionFlow(tx, id, undefined, ['active'], 'stopping', { reason: why });
        if (!row) {
          await repo.setFlowStatusReason(tx, id, why);
          return undefined;
        }
        await this.bus.publish(FLOW_EVENTS.stopping, toFlow(row, false), { tx });
      }
      await this.deps.audit.record(
        { action: 'flow.failed' satisfies FlowsAuditAction, tenantId: row.tenant_id, target: { type: 'flow', id, name: row.name }, result: 'failure', details: { reason } },
        { tx },
      );
      return row;
    });
    if (changed) this.announce(id, changed.tenant_id, changed.status);
    this.log.warn({ flowId: id, reason }, 'flow failed');
  }

  /**
   * A signing secret handed in clear (`webhooks.secret`) goes to the secrets module as a secret
   * the flow owns — the one it refers to now, `currentId`, re-sealed when the flow owns it — and
   * the definition keeps only its id. Runs inside the transaction that stores the flow.
   */
  private async sealSigningSecret(tx: Queryable, principal: Principal, flowId: string, def: FlowDefinition, currentId: string | undefined): Promise<FlowDefinition> {
    const hooks = def.flowSettings.webhooks;
    if (!hooks?.secret) return def;
    const { secret, ...rest } = hooks;
    const secretId = await this.deps.secrets.storeOwned(tx, {
      tenantId: principal.tenantId,
      owner: signingSecretOwner(flowId),
      name: `webhook signing secret of flow ${flowId}`,
      value: secret,
      replaceId: currentId,
      actor: principal,
    });
    return { ...def, flowSettings: { ...def.flowSettings, webhooks: { ...rest, secretId } } };
  }

  /**
   * Start-up step for installs from before signing secrets moved to the secrets module: every
   * clear `webhooks.secret` in flows and their versions becomes a secret the flow owns (one per
   * distinct value), referred to by id. Rows are locked (SKIP LOCKED), so processes starting
   * together share the work. Returns how many flows it moved.
   */
  async moveClearSigningSecrets(): Promise<number> {
    let moved = 0;
    let after = '';
    for (;;) {
      const batch = await this.db.transaction(async (tx) => {
        const flows = await repo.lockFlowsWithClearSigningSecrets(tx, after, 50);
        for (const f of flows) {
          after = f.id;
          const owner = signingSecretOwner(f.id);
          const store = (value: string) =>
            this.deps.secrets.storeOwned(tx, { tenantId: f.tenant_id, owner, name: `webhook signing secret of flow ${f.id}`, value });
          const current = (f.flow_settings.webhooks as { secret?: unknown } | undefined)?.secret;
          if (typeof current === 'string') await repo.setFlowSigningSecretId(tx, f.id, await store(current));
          for (const v of await repo.listVersionsWithClearSigningSecrets(tx, f.id)) {
            await repo.setVersionSigningSecretId(tx, f.id, v.version, await store(v.secret));
          }
        }
        return flows.length;
      });
      moved += batch;
      if (batch === 0) return moved;
    }
  }

  private async validate(principal: Principal, body: unknown, base: FlowDefinition | undefined): Promise<FlowDefinition> {
    const result = await validateFlowBody(principal.tenantId, body, base, this.deps.catalog, (tenant, id) => this.deps.secrets.signingSecretProblem(tenant, id), this.deps.eventTriggerProblem);
    if (!result.ok) {
      throw new AppError('INVALID_FLOW', `the flow is invalid: ${result.problems.join('; ')}`, 'user', { problems: result.problems });
    }
    return result.value;
  }

  /** Another tenant's flow answers exactly like a missing one. */
  private async findOwn(db: Queryable, principal: Principal, id: string): Promise<repo.FlowRow> {
    const row = await repo.findFlow(db, principal.tenantId, id);
    if (!row) throw AppError.notFound(`flow ${id}`);
    return row;
  }

  private async record(tx: Queryable, principal: Principal, action: FlowsAuditAction, row: repo.FlowRow, details?: Record<string, unknown>): Promise<void> {
    await this.deps.audit.record({ action, actor: principal, target: { type: 'flow', id: row.id, name: row.name }, result: 'success', details }, { tx });
  }
}

function assertInactive(row: repo.FlowRow, verb: string): void {
  if (row.status !== 'inactive') throw AppError.conflict(`flow ${row.id} is ${row.status}; only an inactive flow can be ${verb} (stop it first)`);
}

function definitionOf(row: repo.FlowRow): FlowDefinition {
  return {
    name: row.name,
    description: row.description,
    cron: row.cron,
    timezone: row.timezone,
    trigger: row.trigger,
    graph: row.graph,
    flowSettings: row.flow_settings,
    owners: row.owners,
  };
}

/**
 * A PATCH that sends the mask back (as read from GET) keeps the stored signing secret: the
 * mask goes, and the stored reference stays unless the body names another.
 */
function keepMaskedSecret(body: unknown, base: FlowDefinition): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const settings = (body as { flowSettings?: unknown }).flowSettings;
  if (typeof settings !== 'object' || settings === null) return body;
  const hooks = (settings as { webhooks?: unknown }).webhooks;
  if (typeof hooks !== 'object' || hooks === null || (hooks as { secret?: unknown }).secret !== SECRET_MASK) return body;
  const stored = base.flowSettings.webhooks;
  const { secret: _mask, ...webhooks } = hooks as Record<string, unknown>;
  if (webhooks.secretId === undefined && stored?.secretId) webhooks.secretId = stored.secretId;
  // A flow stored before secrets moved out, not yet moved: keep its clear secret (stored on save).
  else if (webhooks.secretId === undefined && stored?.secret) webhooks.secret = stored.secret;
  return { ...body, flowSettings: { ...settings, webhooks } };
}

/**
 * Settings as the API shows them: a configured signing secret as the mask, and any value under
 * a credential-like name (only flows stored before such names were refused have one) masked too.
 */
function maskSettings(settings: Record<string, unknown>): Record<string, unknown> {
  const maskDeep = (v: unknown, depth: number): unknown => {
    if (typeof v !== 'object' || v === null || depth > 20) return v;
    if (Array.isArray(v)) return v.map((x) => maskDeep(x, depth + 1));
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, isCredentialName(k) && x !== null && x !== '' ? SECRET_MASK : maskDeep(x, depth + 1)]));
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(settings)) {
    if (k !== 'webhooks') {
      out[k] = isCredentialName(k) ? SECRET_MASK : maskDeep(v, 0);
      continue;
    }
    const hooks = v as { secret?: unknown; secretId?: unknown } | null;
    out[k] = typeof hooks === 'object' && hooks !== null && (hooks.secret !== undefined || hooks.secretId !== undefined) ? { ...hooks, secret: SECRET_MASK } : hooks;
  }
  return out;
}

/** The API shape; `masked`: hide secrets (API answers) or not (the lifecycle events). */
export function toFlow(row: repo.FlowRow, masked: boolean): Flow {
  return {
    id: row.id,
    tenant: row.tenant_id,
    name: row.name,
    ...(row.description !== null ? { description: row.description } : {}),
    ...(row.cron !== null ? { cron: row.cron } : {}),
    ...(row.timezone !== null ? { timezone: row.timezone } : {}),
    ...(row.trigger ? { trigger: row.trigger } : {}),
    graph: row.graph,
    status: row.status,
    ...(row.status_reason !== null ? { statusReason: row.status_reason } : {}),
    owners: row.owners,
    flowSettings: masked ? maskSettings(row.flow_settings) : row.flow_settings,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
