/**
 * The Director: applications and runtimes of a tenant, their API / event definitions, documents
 * and webhooks, labels and scenarios, API credentials per runtime, system auths, and the
 * notifications runtimes' changes cause. Every change is audited (`audit.director.<action>`)
 * in its own transaction; notifications and spec fetches are enqueued in that transaction too,
 * so a change is notified exactly once, by the process that made it.
 */
import { randomUUID } from 'node:crypto';
import type { AuditPublisher, AuditRecordInput } from '../../platform/audit.js';
import { Batcher, flushResults } from '../../platform/batcher.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { authSecretValue, authView, authFromSecret, MASK, type AuthView } from './director.auths.js';
import {
  APIDefinitionInput,
  ApplicationRegisterInput,
  ApplicationUpdateInput,
  AuthInput,
  DirectorSettingsInput,
  DocumentInput,
  EventDefinitionInput,
  LabelDefinitionInput,
  LabelFilterInput,
  Labels,
  parseInput,
  RuntimeInput,
  WebhookInput,
  type FetchRequestInput,
} from './director.inputs.js';
import {
  allowedScenarios,
  checkScenariosDefinition,
  DEFAULT_SCENARIO,
  LabelSchemas,
  NAME_KEY,
  parseJsonSchemaScalar,
  parseLabelFilters,
  SCENARIOS_KEY,
  scenariosSchema,
  scenariosOf,
} from './director.labels.js';
import type { Caller, CredentialStore, IdentityIssuer, IssuedOneTimeToken, OneTimeTokenStatus, Pairing } from './director.ports.js';
import * as repo from './director.repo.js';
import type { SpecValidation, SpecValidator } from './director.specs.js';

export const FETCH_QUEUE = 'director.spec-fetches';
export const DELIVERY_QUEUE = 'director.webhook-deliveries';
export const MAX_PAGE = 100;

export interface FetchJob {
  tenantId: string;
  target: 'definition' | 'document';
  id: string;
}

export interface DeliveryJob {
  tenantId: string;
  deliveryId: string;
}

export interface Page<T> {
  data: T[];
  pageInfo: { startCursor: string; endCursor: string; hasNextPage: boolean };
  totalCount: () => Promise<number>;
}

const CURSOR_PREFIX = 'plx1:';

export function encodeCursor(id: string): string {
  return Buffer.from(CURSOR_PREFIX + id).toString('base64url');
}

/** '' or absent: the first page. Anything not made by encodeCursor is a 22. */
export function decodeCursor(after: string | null | undefined): string {
  if (after === null || after === undefined || after === '') return '';
  const text = Buffer.from(after, 'base64url').toString();
  if (!text.startsWith(CURSOR_PREFIX) || encodeCursor(text.slice(CURSOR_PREFIX.length)) !== after) {
    throw AppError.invalid('after: is not a cursor this API returned (pass a page\'s endCursor, or "" for the first page)');
  }
  return text.slice(CURSOR_PREFIX.length);
}

export function pageSize(first: number | null | undefined): number {
  const n = first ?? MAX_PAGE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw AppError.invalid(`first: must be between 1 and ${MAX_PAGE}`);
  return n;
}

function toPage<T extends { id: string }>(rows: T[], limit: number, after: string, count: () => Promise<number>): Page<T> {
  const hasNextPage = rows.length > limit;
  const data = hasNextPage ? rows.slice(0, limit) : rows;
  return {
    data,
    pageInfo: { startCursor: after ? encodeCursor(after) : '', endCursor: hasNextPage ? encodeCursor(data[data.length - 1]!.id) : '', hasNextPage },
    totalCount: count,
  };
}

type Action = string;

/**
 * Nested pages for several parents in one statement per distinct arguments. `extra` gives the
 * arguments beyond first/after that the statement needs; `list` returns, for the parents' ids,
 * each parent's first `limit` rows after the cursor with its total.
 */
async function pagesOf<T extends { id: string; application_id: string; total: number }, R extends { app: { id: string }; first: number | null | undefined; after: string | null | undefined }>(
  requests: readonly R[],
  extra: (r: R) => unknown[],
  list: (appIds: string[], extra: unknown[], afterId: string, limit: number) => Promise<T[]>,
  /** A parent's total when no row of it comes after the cursor (its rows carry none then). */
  count: (appId: string, extra: unknown[]) => Promise<number>,
): Promise<Array<Page<Omit<T, 'total'>> | AppError>> {
  const out: Array<Page<Omit<T, 'total'>> | AppError> = new Array(requests.length);
  const groups = new Map<string, { extra: unknown[]; afterId: string; limit: number; indexes: number[] }>();
  requests.forEach((r, i) => {
    try {
      const limit = pageSize(r.first);
      const afterId = decodeCursor(r.after);
      const e = extra(r);
      const key = JSON.stringify([e, afterId, limit]);
      const g = groups.get(key) ?? { extra: e, afterId, limit, indexes: [] };
      g.indexes.push(i);
      groups.set(key, g);
    } catch (err) {
      out[i] = err instanceof AppError ? err : AppError.invalid(String(err));
    }
  });
  for (const g of groups.values()) {
    const ids = [...new Set(g.indexes.map((i) => requests[i]!.app.id))];
    const rows = await list(ids, g.extra, g.afterId, g.limit + 1);
    const byApp = new Map<string, T[]>();
    for (const row of rows) byApp.set(row.application_id, [...(byApp.get(row.application_id) ?? []), row]);
    for (const i of g.indexes) {
      const appId = requests[i]!.app.id;
      const mine = byApp.get(appId) ?? [];
      const total = mine[0]?.total;
      const totalCount = total !== undefined ? async () => total : g.afterId === '' ? async () => 0 : () => count(appId, g.extra);
      out[i] = toPage(mine.map(({ total: _t, ...row }) => row), g.limit, g.afterId, totalCount);
    }
  }
  return out;
}

/** A registration ready to be stored: validated, its specs checked and its credentials saved. */
interface Registration {
  caller: Caller;
  tenant: string;
  id: string;
  input: ApplicationRegisterInput;
  labels: Record<string, unknown>;
  definitions: Array<{ id: string; kind: 'api' | 'event'; write: repo.DefinitionWrite }>;
  webhooks: Array<{ write: Omit<Parameters<typeof repo.insertWebhook>[1], 'tenantId' | 'applicationId'> }>;
  docs: Array<{ write: Parameters<typeof repo.insertDocument>[4] }>;
}

type RegistrationOutcome = { row: repo.ApplicationRow } | { error: unknown };

export interface DirectorConfig {
  /** The installation's default (a tenant may choose otherwise): `strict` refuses a spec its parser rejects (22); `lenient` stores it with its problems. */
  specValidation: 'lenient' | 'strict';
  /** Base URL of the hub (shown in credentials; '' when unknown). */
  publicUrl: string;
}

export interface DirectorServiceDeps {
  db: Db;
  bus: Bus;
  audit: AuditPublisher;
  logger: Logger;
  credentials: CredentialStore;
  identities: IdentityIssuer;
  /** One-time tokens and client certificates (the Connector); undefined: not on this process. */
  pairing?: Pairing | undefined;
  specs: SpecValidator;
  config: DirectorConfig;
}

/** Permissions the IAM account standing for an application or runtime holds. */
const OBJECT_PERMISSIONS = {
  application: ['application:read', 'application:write'],
  runtime: ['runtime:read', 'runtime:write', 'application:read'],
} as const;

export class DirectorService {
  private readonly db: Db;
  private readonly schemas = new LabelSchemas();
  /** Tenants whose scenarios definition this process has made sure exists. */
  private readonly scenariosEnsured = new Set<string>();
  /** Concurrent registrations, stored together (storeRegistrations). */
  private readonly registrations: Batcher<Registration, RegistrationOutcome>;

  constructor(private readonly deps: DirectorServiceDeps) {
    this.db = deps.db;
    // PGlite runs one statement at a time: one batch in flight lets the next one grow meanwhile.
    this.registrations = new Batcher({ maxBatch: 64, maxInFlight: deps.db.dialect === 'pglite' ? 1 : 3, flush: flushResults((items) => this.storeRegistrations(items)) });
  }

  // ---------------------------------------------------------------- access

  /** Audits a refusal and throws it (23). */
  async deny(caller: Caller, action: Action, reason: string, target?: { type: string; id?: string }): Promise<never> {
    await this.record(undefined, caller, 'denied', { type: target?.type ?? 'operation', id: target?.id, name: action }, 'denied', { reason });
    throw new AppError('FORBIDDEN', reason);
  }

  /**
   * The applications a caller that is an application may see and change: itself, and for a
   * SERVICE-level application every application whose `managedBy` label names it. Undefined:
   * no restriction (a user).
   */
  private async applicationScope(caller: Caller): Promise<string[] | undefined> {
    const o = caller.object;
    if (!o) return undefined;
    if (o.type === 'application') {
      const self = await repo.findApplication(this.db, caller.principal.tenantId, o.id);
      if (!self) return [];
      if (self.integration_level !== 'SERVICE') return [self.id];
      return [self.id, ...(await repo.applicationsManagedBy(this.db, self.tenant_id, { id: self.id, name: self.name }))];
    }
    const rt = await repo.findRuntime(this.db, caller.principal.tenantId, o.id);
    const scenarios = rt ? scenariosOf(rt.labels) : [];
    return (await repo.applicationsInScenarios(this.db, caller.principal.tenantId, scenarios)).map((a) => a.id);
  }

  /** The application, if the caller may see it; 20 otherwise (another tenant's or out of reach). */
  async application(caller: Caller, id: string, forWrite = false): Promise<repo.ApplicationRow> {
    const row = await repo.findApplication(this.db, caller.principal.tenantId, id);
    if (!row) throw AppError.notFound(`application ${id}`);
    const scope = await this.applicationScope(caller);
    if (scope && !scope.includes(id)) throw AppError.notFound(`application ${id}`);
    if (forWrite && caller.object?.type === 'runtime') await this.deny(caller, 'application.write', 'a runtime may not change applications', { type: 'application', id });
    if (forWrite && caller.object?.type === 'application' && row.integration_level === 'BASIC') {
      await this.deny(caller, 'application.write', 'a BASIC application is managed by an administrator only', { type: 'application', id });
    }
    return row;
  }

  async runtime(caller: Caller, id: string, forWrite = false): Promise<repo.RuntimeRow> {
    const row = await repo.findRuntime(this.db, caller.principal.tenantId, id);
    if (!row) throw AppError.notFound(`runtime ${id}`);
    if (caller.object && !(caller.object.type === 'runtime' && caller.object.id === id)) {
      if (forWrite || caller.object.type === 'runtime') throw AppError.notFound(`runtime ${id}`);
      // An application sees the runtimes it shares a scenario with (its configuration).
      const app = await repo.findApplication(this.db, caller.principal.tenantId, caller.object.id);
      const shared = app ? scenariosOf(row.labels).some((s) => scenariosOf(app.labels).includes(s)) : false;
      if (!shared) throw AppError.notFound(`runtime ${id}`);
    }
    return row;
  }

  // ---------------------------------------------------------------- tenant settings

  /** How the tenant's specs are checked: its own setting, else the installation's default. */
  private async specValidationOf(tenant: string): Promise<'lenient' | 'strict'> {
    return (await repo.findTenantSettings(this.db, tenant)).spec_validation ?? this.deps.config.specValidation;
  }

  async settings(caller: Caller): Promise<{ specValidation: 'LENIENT' | 'STRICT'; specValidationOverride: 'LENIENT' | 'STRICT' | null }> {
    const own = (await repo.findTenantSettings(this.db, caller.principal.tenantId)).spec_validation;
    const mode = (v: 'lenient' | 'strict') => (v === 'strict' ? 'STRICT' : 'LENIENT');
    return { specValidation: mode(own ?? this.deps.config.specValidation), specValidationOverride: own ? mode(own) : null };
  }

  async setSettings(caller: Caller, raw: unknown): Promise<Awaited<ReturnType<DirectorService['settings']>>> {
    if (caller.object) await this.deny(caller, 'settings.updated', 'applications and runtimes may not change the tenant settings');
    const input = parseInput(DirectorSettingsInput, raw, 'in');
    const specValidation = input.specValidation ? (input.specValidation === 'STRICT' ? 'strict' : 'lenient') : null;
    await this.db.transaction(async (tx) => {
      await repo.saveTenantSettings(tx, caller.principal.tenantId, { specValidation });
      await this.record(tx, caller, 'settings.updated', { type: 'tenant', id: caller.principal.tenantId }, 'success', { specValidation });
    });
    return this.settings(caller);
  }

  /** The tenant's Director version (raised by every change; director.cache.ts). */
  async tenantVersion(tenantId: string): Promise<number> {
    return (await repo.tenantVersion(this.db, tenantId)).version;
  }

  // ---------------------------------------------------------------- applications

  async listApplications(caller: Caller, filter: unknown, first: number | null | undefined, after: string | null | undefined): Promise<Page<repo.ApplicationRow>> {
    const filters = parseLabelFilters(parseInput(LabelFilterInput, filter ?? [], 'filter'));
    const limit = pageSize(first);
    const afterId = decodeCursor(after);
    const scope: repo.ObjectScope = { filters, ids: await this.applicationScope(caller) };
    const tenant = caller.principal.tenantId;
    const rows = await repo.listApplications(this.db, tenant, scope, afterId, limit + 1);
    return toPage(rows, limit, afterId, () => repo.countApplications(this.db, tenant, scope));
  }

  async applicationsForRuntime(caller: Caller, runtimeId: string, first: number | null | undefined, after: string | null | undefined): Promise<Page<repo.ApplicationRow>> {
    if (caller.object?.type === 'application') throw AppError.notFound(`runtime ${runtimeId}`);
    const rt = await this.runtime(caller, runtimeId);
    const limit = pageSize(first);
    const afterId = decodeCursor(after);
    const scenarios = scenariosOf(rt.labels);
    const tenant = caller.principal.tenantId;
    if (scenarios.length === 0) return toPage([], limit, afterId, async () => 0);
    const scope: repo.ObjectScope = { filters: [], scenarios };
    const rows = await repo.listApplications(this.db, tenant, scope, afterId, limit + 1);
    return toPage(rows, limit, afterId, () => repo.countApplications(this.db, tenant, scope));
  }

  async registerApplication(caller: Caller, raw: unknown): Promise<{ row: repo.ApplicationRow; signingSecrets: Map<string, string> }> {
    if (caller.object) await this.deny(caller, 'application.registered', 'applications and runtimes may not register applications');
    const input = parseInput(ApplicationRegisterInput, raw, 'in');
    const tenant = caller.principal.tenantId;
    const labels: Record<string, unknown> = { ...(input.labels ?? {}) };
    if (!(SCENARIOS_KEY in labels)) labels[SCENARIOS_KEY] = [DEFAULT_SCENARIO];
    labels[NAME_KEY] = input.name;
    parseInput(Labels, labels, 'labels');
    await this.ensureScenarios(this.db, tenant);
    // Specs are validated and credentials stored before the transaction: both are slow or
    // live in another module. A failed registration removes the credentials again.
    const apis = await Promise.all((input.apiDefinitions ?? []).map((a, i) => this.prepareDefinition(caller, 'api', a, `in.apiDefinitions.${i}`, randomUUID())));
    const events = await Promise.all((input.eventDefinitions ?? []).map((e, i) => this.prepareDefinition(caller, 'event', e, `in.eventDefinitions.${i}`, randomUUID())));
    const secretIds = [...apis, ...events].flatMap((d) => d.secretIds);
    try {
      const webhooks = await Promise.all((input.webhooks ?? []).map((w) => this.prepareWebhook(caller, w, randomUUID())));
      secretIds.push(...webhooks.flatMap((w) => w.secretIds));
      const docs = await Promise.all((input.documents ?? []).map((d) => this.prepareDocument(caller, d)));
      secretIds.push(...docs.flatMap((d) => d.secretIds));
      const outcome = await this.registrations.add({ caller, tenant, id: randomUUID(), input, labels, definitions: [...apis, ...events], webhooks, docs });
      if ('error' in outcome) throw outcome.error;
      return { row: outcome.row, signingSecrets: new Map(webhooks.map((w) => [w.write.id, w.signingSecret])) };
    } catch (err) {
      await this.removeSecrets(caller, secretIds);
      throw err;
    }
  }

  /**
   * Stores registrations made at the same time in one transaction (group commit): with 20
   * concurrent clients a registration then costs a share of one BEGIN/COMMIT and of one
   * statement per table instead of eight statements of its own. A batch that fails as a whole
   * is tried again one registration at a time, so each caller gets its own answer.
   */
  private async storeRegistrations(items: readonly Registration[]): Promise<RegistrationOutcome[]> {
    try {
      return await this.db.transaction((tx) => this.writeRegistrations(tx, items));
    } catch (err) {
      if (items.length === 1) return [{ error: err }];
      const outcomes: RegistrationOutcome[] = [];
      for (const item of items) outcomes.push(...(await this.storeRegistrations([item])));
      return outcomes;
    }
  }

  private async writeRegistrations(tx: Queryable, items: readonly Registration[]): Promise<RegistrationOutcome[]> {
    const outcomes = new Map<Registration, RegistrationOutcome>();
    for (const tenant of new Set(items.map((i) => i.tenant))) {
      const group = items.filter((i) => i.tenant === tenant);
      const keys = [...new Set(group.flatMap((i) => Object.keys(i.labels)))];
      const defs = await repo.findLabelDefinitions(tx, tenant, keys);
      const valid: Registration[] = [];
      for (const item of group) {
        try {
          for (const d of defs) if (d.key in item.labels) this.schemas.check(d.key, item.labels[d.key], d.schema, `application ${item.input.name}`);
          valid.push(item);
        } catch (err) {
          outcomes.set(item, { error: err });
        }
      }
      const created = new Map(
        (
          await repo.insertApplications(
            tx,
            tenant,
            valid.map((i) => ({
              id: i.id,
              name: i.input.name,
              providerName: i.input.providerName ?? null,
              description: i.input.description ?? null,
              integrationLevel: i.input.integrationLevel ?? 'APPLICATION',
              healthCheckUrl: i.input.healthCheckURL ?? null,
              labels: i.labels,
            })),
          )
        ).map((r) => [r.id, r]),
      );
      const stored: Array<{ item: Registration; row: repo.ApplicationRow }> = [];
      for (const item of valid) {
        const row = created.get(item.id);
        if (row) stored.push({ item, row });
        else outcomes.set(item, { error: new AppError('ALREADY_EXISTS', `an application named ${item.input.name} already exists in this tenant: the name is not unique`) });
      }
      if (stored.length === 0) continue;
      const known = new Set(defs.map((d) => d.key));
      await this.ensureLabelKeys(tx, tenant, [...new Set(stored.flatMap((s) => Object.keys(s.item.labels)))].filter((k) => !known.has(k)));
      await repo.insertDefinitions(tx, tenant, stored.flatMap((s) => s.item.definitions.map((d) => ({ id: d.id, applicationId: s.row.id, kind: d.kind, write: d.write }))));
      const jobs: FetchJob[] = stored.flatMap((s) => s.item.definitions.filter((d) => d.write.fetchRequest).map((d) => ({ tenantId: tenant, target: 'definition' as const, id: d.id })));
      for (const { item, row } of stored) {
        for (const d of item.docs) {
          const docId = randomUUID();
          await repo.insertDocument(tx, tenant, docId, row.id, d.write);
          if (d.write.fetchRequest) jobs.push({ tenantId: tenant, target: 'document', id: docId });
        }
        for (const w of item.webhooks) await repo.insertWebhook(tx, { ...w.write, tenantId: tenant, applicationId: row.id });
      }
      if (jobs.length) await this.deps.bus.enqueueMany(FETCH_QUEUE, jobs, { tx });
      // One write for the batch's audit events.
      await this.deps.audit.recordMany(
        stored.map(({ item, row }) =>
          auditRecord(item.caller, 'application.registered', { type: 'application', id: row.id, name: row.name }, 'success', {
            apis: item.definitions.filter((d) => d.kind === 'api').length,
            events: item.definitions.filter((d) => d.kind === 'event').length,
            documents: item.docs.length,
            webhooks: item.webhooks.length,
          }),
        ),
        { tx },
      );
      // New applications hear about the READY runtimes of their scenarios.
      const scenarios = [...new Set(stored.flatMap((s) => scenariosOf(s.item.labels)))];
      for (const rt of (await repo.runtimesInScenarios(tx, tenant, scenarios)).filter((r) => r.status_condition === 'READY')) {
        const shared = stored.filter((s) => scenariosOf(rt.labels).some((x) => scenariosOf(s.item.labels).includes(x))).map((s) => s.row);
        await this.enqueueNotifications(tx, rt, shared, 'application.registered');
      }
      for (const { item, row } of stored) outcomes.set(item, { row });
    }
    return items.map((i) => outcomes.get(i)!);
  }

  async updateApplication(caller: Caller, id: string, raw: unknown): Promise<repo.ApplicationRow> {
    const input = parseInput(ApplicationUpdateInput, raw, 'in');
    const current = await this.application(caller, id, true);
    if (input.integrationLevel && input.integrationLevel !== current.integration_level && caller.object) {
      await this.deny(caller, 'application.updated', 'only an administrator changes an integration level', { type: 'application', id });
    }
    const tenant = caller.principal.tenantId;
    return this.db.transaction(async (tx) => {
      const labels = { ...current.labels, [NAME_KEY]: input.name };
      const row = await repo.updateApplication(tx, tenant, id, {
        name: input.name,
        providerName: input.providerName ?? null,
        description: input.description ?? null,
        healthCheckUrl: input.healthCheckURL ?? null,
        integrationLevel: input.integrationLevel ?? current.integration_level,
        labels,
      });
      if (row === undefined) throw AppError.notFound(`application ${id}`);
      if (row === null) throw new AppError('ALREADY_EXISTS', `an application named ${input.name} already exists in this tenant: the name is not unique`);
      await this.record(tx, caller, 'application.updated', { type: 'application', id, name: row.name }, 'success');
      return row;
    });
  }

  async unregisterApplication(caller: Caller, id: string): Promise<repo.ApplicationRow> {
    const current = await this.application(caller, id, true);
    if (caller.object?.type === 'application' && caller.object.id !== id) {
      await this.deny(caller, 'application.unregistered', 'an application may unregister only itself', { type: 'application', id });
    }
    const tenant = caller.principal.tenantId;
    const secretIds = await repo.secretIdsOfApplication(this.db, tenant, id);
    const auths = await this.db.transaction(async (tx) => {
      const row = await repo.deleteApplication(tx, tenant, id);
      if (!row) throw AppError.notFound(`application ${id}`);
      const removed = await repo.deleteSystemAuthsOf(tx, tenant, 'application', id);
      await this.record(tx, caller, 'application.unregistered', { type: 'application', id, name: current.name }, 'success');
      return removed;
    });
    for (const a of auths) if (a.account_id) await this.deps.identities.revoke(caller, a.account_id).catch((err: unknown) => this.deps.logger.warn({ err }, 'could not revoke an application credential'));
    await this.revokeCertificatesOf(caller, tenant, auths, 'application unregistered');
    await this.removeSecrets(caller, secretIds);
    return current;
  }

  // ---------------------------------------------------------------- labels

  /** Checks labels against their definitions (scenarios against its enum). */
  private async checkLabels(tenant: string, labels: Record<string, unknown>, what: string): Promise<void> {
    parseInput(Labels, labels, 'labels');
    const keys = Object.keys(labels);
    if (keys.includes(SCENARIOS_KEY)) await this.ensureScenarios(this.db, tenant);
    const defs = keys.length ? await repo.findLabelDefinitions(this.db, tenant, keys) : [];
    for (const d of defs) this.schemas.check(d.key, labels[d.key], d.schema, what);
  }

  private async ensureScenarios(db: Queryable, tenant: string): Promise<void> {
    if (this.scenariosEnsured.has(tenant)) return;
    await repo.ensureLabelDefinitions(db, tenant, [{ key: SCENARIOS_KEY, schema: scenariosSchema() }]);
    this.scenariosEnsured.add(tenant);
  }

  /** Label keys without a definition get one without a schema (Compass). */
  private async ensureLabelKeys(tx: Queryable, tenant: string, keys: string[]): Promise<void> {
    const others = keys.filter((k) => k !== SCENARIOS_KEY);
    if (others.length) await repo.ensureLabelDefinitions(tx, tenant, others.map((key) => ({ key, schema: null })));
  }

  async setApplicationLabel(caller: Caller, appId: string, key: string, value: unknown): Promise<{ key: string; value: unknown }> {
    const app = await this.application(caller, appId, true);
    if (key === NAME_KEY) throw new AppError('INVALID_STATE', 'the name label follows the application name; change it with updateApplication');
    const tenant = caller.principal.tenantId;
    await this.checkLabels(tenant, { [key]: value }, `application ${app.name}`);
    await this.db.transaction(async (tx) => {
      const current = await repo.findApplication(tx, tenant, appId);
      if (!current) throw AppError.notFound(`application ${appId}`);
      await repo.setApplicationLabels(tx, tenant, appId, { ...current.labels, [key]: value });
      await this.ensureLabelKeys(tx, tenant, [key]);
      await this.record(tx, caller, 'application.label.set', { type: 'application', id: appId, name: app.name }, 'success', { key });
      if (key === SCENARIOS_KEY) await this.notifyApplicationScenarios(tx, current, scenariosOf(current.labels), scenariosOf({ [key]: value }), 'application.scenarios.changed');
    });
    return { key, value };
  }

  async deleteApplicationLabel(caller: Caller, appId: string, key: string): Promise<{ key: string; value: unknown }> {
    const app = await this.application(caller, appId, true);
    if (key === SCENARIOS_KEY) throw new AppError('INVALID_STATE', 'scenarios label can not be deleted from application');
    if (key === NAME_KEY) throw new AppError('INVALID_STATE', 'the name label can not be deleted from application');
    if (!(key in app.labels)) throw AppError.notFound(`label ${key} of application ${appId}`);
    const tenant = caller.principal.tenantId;
    await this.db.transaction(async (tx) => {
      const current = await repo.findApplication(tx, tenant, appId);
      if (!current) throw AppError.notFound(`application ${appId}`);
      const { [key]: _gone, ...rest } = current.labels;
      await repo.setApplicationLabels(tx, tenant, appId, rest);
      await this.record(tx, caller, 'application.label.deleted', { type: 'application', id: appId, name: app.name }, 'success', { key });
    });
    return { key, value: app.labels[key] };
  }

  async setRuntimeLabel(caller: Caller, runtimeId: string, key: string, value: unknown): Promise<{ key: string; value: unknown }> {
    const rt = await this.runtime(caller, runtimeId, true);
    const tenant = caller.principal.tenantId;
    await this.checkLabels(tenant, { [key]: value }, `runtime ${rt.name}`);
    await this.changeRuntime(caller, runtimeId, 'runtime.label.set', { key }, (labels) => ({ ...labels, [key]: value }));
    return { key, value };
  }

  async deleteRuntimeLabel(caller: Caller, runtimeId: string, key: string): Promise<{ key: string; value: unknown }> {
    const rt = await this.runtime(caller, runtimeId, true);
    if (!(key in rt.labels)) throw AppError.notFound(`label ${key} of runtime ${runtimeId}`);
    await this.changeRuntime(caller, runtimeId, 'runtime.label.deleted', { key }, (labels) => {
      const { [key]: _gone, ...rest } = labels;
      return rest;
    });
    return { key, value: rt.labels[key] };
  }

  async labelDefinitions(caller: Caller): Promise<repo.LabelDefinitionRow[]> {
    await this.ensureScenarios(this.db, caller.principal.tenantId);
    return repo.listLabelDefinitions(this.db, caller.principal.tenantId);
  }

  async labelDefinition(caller: Caller, key: string): Promise<repo.LabelDefinitionRow | null> {
    if (key === SCENARIOS_KEY) await this.ensureScenarios(this.db, caller.principal.tenantId);
    return (await repo.findLabelDefinitions(this.db, caller.principal.tenantId, [key]))[0] ?? null;
  }

  async createLabelDefinition(caller: Caller, raw: unknown): Promise<repo.LabelDefinitionRow> {
    const input = parseInput(LabelDefinitionInput, raw, 'in');
    const schema = input.schema == null ? null : parseJsonSchemaScalar(input.schema);
    if (schema !== null) this.schemas.compile(schema, 'in.schema');
    if (input.key === SCENARIOS_KEY) checkScenariosDefinition(schema);
    const tenant = caller.principal.tenantId;
    if (input.key === SCENARIOS_KEY) await this.ensureScenarios(this.db, tenant);
    return this.db.transaction(async (tx) => {
      const row = await repo.insertLabelDefinition(tx, tenant, input.key, schema);
      if (!row) throw new AppError('ALREADY_EXISTS', `label definition ${input.key} already exists: the key is not unique`);
      await this.checkExistingLabels(tx, tenant, input.key, schema);
      await this.record(tx, caller, 'label_definition.created', { type: 'label_definition', name: input.key }, 'success');
      return row;
    });
  }

  async updateLabelDefinition(caller: Caller, raw: unknown): Promise<repo.LabelDefinitionRow> {
    const input = parseInput(LabelDefinitionInput, raw, 'in');
    const schema = input.schema == null ? null : parseJsonSchemaScalar(input.schema);
    if (schema !== null) this.schemas.compile(schema, 'in.schema');
    const tenant = caller.principal.tenantId;
    if (input.key === SCENARIOS_KEY) {
      checkScenariosDefinition(schema);
      await this.ensureScenarios(this.db, tenant);
    }
    return this.db.transaction(async (tx) => {
      const current = await repo.lockLabelDefinition(tx, tenant, input.key);
      if (!current) throw AppError.notFound(`label definition ${input.key}`);
      await this.checkExistingLabels(tx, tenant, input.key, schema);
      await repo.updateLabelDefinition(tx, tenant, input.key, schema);
      await this.record(tx, caller, 'label_definition.updated', { type: 'label_definition', name: input.key }, 'success');
      return { ...current, schema };
    });
  }

  /** Every existing label of `key` must match the new schema; the first that does not is named. */
  private async checkExistingLabels(tx: Queryable, tenant: string, key: string, schema: unknown): Promise<void> {
    if (schema === null) return;
    for (const l of await repo.labelValues(tx, tenant, key)) {
      try {
        this.schemas.check(key, l.value, schema, `${l.object_type} ${l.id}`);
      } catch (err) {
        throw AppError.invalid(`label with key ${JSON.stringify(key)} is not valid against the new schema for ${l.object_type} with ID ${JSON.stringify(l.id)}: ${(err as Error).message}`);
      }
    }
  }

  async deleteLabelDefinition(caller: Caller, key: string, deleteRelatedLabels: boolean): Promise<repo.LabelDefinitionRow> {
    if (key === SCENARIOS_KEY) throw new AppError('INVALID_STATE', 'the scenarios label definition can not be deleted');
    const tenant = caller.principal.tenantId;
    return this.db.transaction(async (tx) => {
      const current = await repo.lockLabelDefinition(tx, tenant, key);
      if (!current) throw AppError.notFound(`label definition ${key}`);
      const used = await repo.labelValues(tx, tenant, key);
      if (used.length > 0 && !deleteRelatedLabels) throw new AppError('INVALID_STATE', 'could not delete label definition, it is already used by at least one label');
      if (used.length > 0) await repo.removeLabelEverywhere(tx, tenant, key);
      await repo.deleteLabelDefinition(tx, tenant, key);
      await this.record(tx, caller, 'label_definition.deleted', { type: 'label_definition', name: key }, 'success', { removedLabels: used.length });
      return current;
    });
  }

  // ---------------------------------------------------------------- runtimes

  async listRuntimes(caller: Caller, filter: unknown, first: number | null | undefined, after: string | null | undefined): Promise<Page<repo.RuntimeRow>> {
    const filters = parseLabelFilters(parseInput(LabelFilterInput, filter ?? [], 'filter'));
    const limit = pageSize(first);
    const afterId = decodeCursor(after);
    const tenant = caller.principal.tenantId;
    let ids: string[] | undefined;
    if (caller.object?.type === 'runtime') ids = [caller.object.id];
    if (caller.object?.type === 'application') {
      const app = await repo.findApplication(this.db, tenant, caller.object.id);
      ids = (await repo.runtimesInScenarios(this.db, tenant, app ? scenariosOf(app.labels) : [])).map((r) => r.id);
    }
    const scope: repo.ObjectScope = { filters, ids };
    const rows = await repo.listRuntimes(this.db, tenant, scope, afterId, limit + 1);
    return toPage(rows, limit, afterId, () => repo.countRuntimes(this.db, tenant, scope));
  }

  async registerRuntime(caller: Caller, raw: unknown): Promise<repo.RuntimeRow> {
    if (caller.object) await this.deny(caller, 'runtime.registered', 'applications and runtimes may not register runtimes');
    const input = parseInput(RuntimeInput, raw, 'in');
    const tenant = caller.principal.tenantId;
    const labels: Record<string, unknown> = { ...(input.labels ?? {}) };
    if (!(SCENARIOS_KEY in labels)) labels[SCENARIOS_KEY] = [DEFAULT_SCENARIO];
    await this.checkLabels(tenant, labels, `runtime ${input.name}`);
    return this.db.transaction(async (tx) => {
      const row = await repo.insertRuntime(tx, { tenantId: tenant, id: randomUUID(), name: input.name, description: input.description ?? null, labels });
      if (!row) throw new AppError('ALREADY_EXISTS', `a runtime named ${input.name} already exists in this tenant: the name is not unique`);
      await this.ensureLabelKeys(tx, tenant, Object.keys(labels));
      await this.record(tx, caller, 'runtime.registered', { type: 'runtime', id: row.id, name: row.name }, 'success');
      return row;
    });
  }

  async updateRuntime(caller: Caller, id: string, raw: unknown): Promise<repo.RuntimeRow> {
    const input = parseInput(RuntimeInput, raw, 'in');
    await this.runtime(caller, id, true);
    const tenant = caller.principal.tenantId;
    const labels: Record<string, unknown> = { ...(input.labels ?? {}) };
    if (!(SCENARIOS_KEY in labels)) labels[SCENARIOS_KEY] = [DEFAULT_SCENARIO];
    await this.checkLabels(tenant, labels, `runtime ${input.name}`);
    return this.db.transaction(async (tx) => {
      const before = await repo.lockRuntime(tx, tenant, id);
      if (!before) throw AppError.notFound(`runtime ${id}`);
      const row = await repo.updateRuntime(tx, tenant, id, { name: input.name, description: input.description ?? null, labels });
      if (row === undefined) throw AppError.notFound(`runtime ${id}`);
      if (row === null) throw new AppError('ALREADY_EXISTS', `a runtime named ${input.name} already exists in this tenant: the name is not unique`);
      await this.ensureLabelKeys(tx, tenant, Object.keys(labels));
      await this.record(tx, caller, 'runtime.updated', { type: 'runtime', id, name: row.name }, 'success');
      await this.notifyRuntimeChange(tx, before, row, 'runtime.updated');
      return row;
    });
  }

  /** The partial status update Compass users asked for; READY notifies the runtime's applications. */
  async setRuntimeStatus(caller: Caller, id: string, condition: string): Promise<repo.RuntimeRow> {
    await this.runtime(caller, id, true);
    const tenant = caller.principal.tenantId;
    return this.db.transaction(async (tx) => {
      const before = await repo.lockRuntime(tx, tenant, id);
      if (!before) throw AppError.notFound(`runtime ${id}`);
      const row = (await repo.setRuntimeStatus(tx, tenant, id, condition))!;
      await this.record(tx, caller, 'runtime.status.set', { type: 'runtime', id, name: row.name }, 'success', { from: before.status_condition, to: condition });
      await this.notifyRuntimeChange(tx, before, row, 'runtime.status.set');
      return row;
    });
  }

  private async changeRuntime(caller: Caller, id: string, action: Action, details: Record<string, unknown>, change: (labels: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
    const tenant = caller.principal.tenantId;
    await this.db.transaction(async (tx) => {
      const before = await repo.lockRuntime(tx, tenant, id);
      if (!before) throw AppError.notFound(`runtime ${id}`);
      const labels = change(before.labels);
      await repo.setRuntimeLabels(tx, tenant, id, labels);
      await this.ensureLabelKeys(tx, tenant, Object.keys(labels));
      await this.record(tx, caller, action, { type: 'runtime', id, name: before.name }, 'success', details);
      await this.notifyRuntimeChange(tx, before, { ...before, labels }, action);
    });
  }

  async unregisterRuntime(caller: Caller, id: string): Promise<repo.RuntimeRow> {
    const current = await this.runtime(caller, id, true);
    const tenant = caller.principal.tenantId;
    const secretIds = await repo.secretIdsOfRuntime(this.db, tenant, id);
    const auths = await this.db.transaction(async (tx) => {
      const before = await repo.lockRuntime(tx, tenant, id);
      if (!before) throw AppError.notFound(`runtime ${id}`);
      await repo.clearDefaultEventingForRuntime(tx, tenant, id);
      await repo.deleteRuntime(tx, tenant, id);
      const removed = await repo.deleteSystemAuthsOf(tx, tenant, 'runtime', id);
      await this.record(tx, caller, 'runtime.unregistered', { type: 'runtime', id, name: before.name }, 'success');
      await this.notifyRuntimeChange(tx, before, undefined, 'runtime.unregistered');
      return removed;
    });
    for (const a of auths) if (a.account_id) await this.deps.identities.revoke(caller, a.account_id).catch((err: unknown) => this.deps.logger.warn({ err }, 'could not revoke a runtime credential'));
    await this.revokeCertificatesOf(caller, tenant, auths, 'runtime unregistered');
    await this.removeSecrets(caller, secretIds);
    return current;
  }

  // ---------------------------------------------------------------- API / event definitions

  private async prepareFetchRequest(caller: Caller, f: FetchRequestInput | null | undefined, name: string): Promise<{ json: repo.FetchRequestJson | null; secretIds: string[] }> {
    if (!f) return { json: null, secretIds: [] };
    const secretId = f.auth ? await this.deps.credentials.save(caller, name, authSecretValue(f.auth)) : null;
    return {
      json: { url: f.url, mode: f.mode ?? 'SINGLE', filter: f.filter ?? null, auth: f.auth ? authView(f.auth, true) : null, authSecretId: secretId },
      secretIds: secretId ? [secretId] : [],
    };
  }

  /** Validates a definition's input and spec, stores its credentials; nothing is written yet. */
  private async prepareDefinition(
    caller: Caller,
    kind: 'api' | 'event',
    raw: unknown,
    where: string,
    id: string,
  ): Promise<{ id: string; kind: 'api' | 'event'; write: repo.DefinitionWrite; secretIds: string[] }> {
    const input = kind === 'api' ? parseInput(APIDefinitionInput, raw, where) : parseInput(EventDefinitionInput, raw, where);
    const spec = input.spec ?? null;
    let validation: SpecValidation | null = null;
    if (spec?.data != null) {
      validation = await this.deps.specs.validate({ type: spec.type, format: spec.format, data: spec.data });
      if (!validation.valid && (await this.specValidationOf(caller.principal.tenantId)) === 'strict') {
        const problems = validation.problems.map((p) => `${p.path || '(document)'}: ${p.message}`);
        throw AppError.invalid(`${where}.spec.data: the ${spec.type} parser refused the spec: ${problems.join('; ')}`, { problems: validation.problems });
      }
    }
    const secretIds: string[] = [];
    const fetch = await this.prepareFetchRequest(caller, spec?.fetchRequest, `director/${kind}/${id}/fetch-auth`);
    secretIds.push(...fetch.secretIds);
    const defaultAuth = 'defaultAuth' in input ? input.defaultAuth : null;
    let defaultAuthSecretId: string | null = null;
    try {
      if (defaultAuth) {
        defaultAuthSecretId = await this.deps.credentials.save(caller, `director/api/${id}/default-auth`, authSecretValue(defaultAuth));
        secretIds.push(defaultAuthSecretId);
      }
    } catch (err) {
      await this.removeSecrets(caller, secretIds);
      throw err;
    }
    const v = input.version;
    return {
      id,
      kind,
      secretIds,
      write: {
        name: input.name,
        description: input.description ?? null,
        targetUrl: 'targetURL' in input ? input.targetURL : null,
        group: input.group ?? null,
        spec: spec ? { type: spec.type, format: spec.format } : null,
        specData: spec?.data ?? null,
        specValidation: validation,
        fetchRequest: fetch.json,
        fetchStatus: fetch.json ? 'INITIAL' : null,
        version: v ? { value: v.value, deprecated: v.deprecated ?? false, deprecatedSince: v.deprecatedSince ?? null, forRemoval: v.forRemoval ?? false } : null,
        defaultAuth: defaultAuth ? authView(defaultAuth, true) : null,
        defaultAuthSecretId,
      },
    };
  }

  async addDefinition(caller: Caller, kind: 'api' | 'event', appId: string, raw: unknown): Promise<repo.DefinitionRow> {
    const tenant = caller.principal.tenantId;
    if (!(await repo.findApplication(this.db, tenant, appId))) throw AppError.notFound(`Cannot add ${kind === 'api' ? 'API' : 'Event Definition'} to not existing Application ${appId}`);
    const app = await this.application(caller, appId, true);
    const d = await this.prepareDefinition(caller, kind, raw, 'in', randomUUID());
    try {
      return await this.db.transaction(async (tx) => {
        const row = await repo.insertDefinition(tx, tenant, d.id, app.id, kind, d.write);
        if (d.write.fetchRequest) await this.deps.bus.enqueue(FETCH_QUEUE, { tenantId: tenant, target: 'definition', id: d.id } satisfies FetchJob, { tx });
        await this.record(tx, caller, `${kind}_definition.added`, { type: `${kind}_definition`, id: d.id, name: row.name }, 'success', { applicationId: appId });
        return row;
      });
    } catch (err) {
      await this.removeSecrets(caller, d.secretIds);
      throw err;
    }
  }

  async definition(caller: Caller, kind: 'api' | 'event', id: string): Promise<repo.DefinitionRow> {
    const row = await repo.findDefinition(this.db, caller.principal.tenantId, id, kind);
    if (!row) throw AppError.notFound(`${kind === 'api' ? 'API' : 'event'} definition ${id}`);
    await this.application(caller, row.application_id);
    return row;
  }

  async updateDefinition(caller: Caller, kind: 'api' | 'event', id: string, raw: unknown): Promise<repo.DefinitionRow> {
    const current = await this.definition(caller, kind, id);
    await this.application(caller, current.application_id, true);
    const d = await this.prepareDefinition(caller, kind, raw, 'in', id);
    const tenant = caller.principal.tenantId;
    const row = await this.db.transaction(async (tx) => {
      const updated = await repo.updateDefinition(tx, tenant, id, kind, d.write);
      if (!updated) throw AppError.notFound(`${kind} definition ${id}`);
      if (d.write.fetchRequest) await this.deps.bus.enqueue(FETCH_QUEUE, { tenantId: tenant, target: 'definition', id } satisfies FetchJob, { tx });
      await this.record(tx, caller, `${kind}_definition.updated`, { type: `${kind}_definition`, id, name: updated.name }, 'success');
      return updated;
    });
    const stale = [current.default_auth_secret_id, current.fetch_request?.authSecretId].filter((s): s is string => Boolean(s));
    await this.removeSecrets(caller, stale);
    return row;
  }

  async deleteDefinition(caller: Caller, kind: 'api' | 'event', id: string): Promise<repo.DefinitionRow> {
    const current = await this.definition(caller, kind, id);
    await this.application(caller, current.application_id, true);
    const tenant = caller.principal.tenantId;
    const runtimeAuths = kind === 'api' ? await repo.listApiRuntimeAuths(this.db, tenant, [id]) : [];
    await this.db.transaction(async (tx) => {
      if (!(await repo.deleteDefinition(tx, tenant, id, kind))) throw AppError.notFound(`${kind} definition ${id}`);
      await this.record(tx, caller, `${kind}_definition.deleted`, { type: `${kind}_definition`, id, name: current.name }, 'success');
    });
    const stale = [current.default_auth_secret_id, current.fetch_request?.authSecretId, ...runtimeAuths.map((a) => a.secret_id)].filter((s): s is string => Boolean(s));
    await this.removeSecrets(caller, stale);
    return current;
  }

  async refetchSpec(caller: Caller, kind: 'api' | 'event', id: string): Promise<repo.DefinitionRow> {
    const current = await this.definition(caller, kind, id);
    await this.application(caller, current.application_id, true);
    if (!current.fetch_request) throw new AppError('INVALID_STATE', `${kind === 'api' ? 'API' : 'event'} definition ${id} has no fetch request to refetch`);
    const tenant = caller.principal.tenantId;
    await this.db.transaction(async (tx) => {
      await repo.resetDefinitionFetch(tx, tenant, id);
      await this.deps.bus.enqueue(FETCH_QUEUE, { tenantId: tenant, target: 'definition', id } satisfies FetchJob, { tx });
      await this.record(tx, caller, `${kind}_definition.refetch`, { type: `${kind}_definition`, id, name: current.name }, 'success');
    });
    return (await repo.findDefinition(this.db, tenant, id, kind))!;
  }


  /**
   * The nested definition pages of several applications (one per request item, in order), one
   * statement per distinct (group, first, after). A bad `first` or `after` is that item's error.
   */
  async definitionPagesOf(
    caller: Caller,
    kind: 'api' | 'event',
    requests: ReadonlyArray<{ app: repo.ApplicationRow; group: string | null | undefined; first: number | null | undefined; after: string | null | undefined }>,
  ): Promise<Array<Page<repo.DefinitionRow> | AppError>> {
    const tenant = caller.principal.tenantId;
    return pagesOf(
      requests,
      (r) => [r.group ?? null],
      (ids, [group], afterId, limit) => repo.listDefinitionsOfApplications(this.db, tenant, ids, kind, group as string | null, afterId, limit),
      (id, [group]) => repo.countDefinitions(this.db, tenant, id, kind, group as string | null),
    );
  }

  /** The nested document pages of several applications (as definitionPagesOf). */
  async documentPagesOf(
    caller: Caller,
    requests: ReadonlyArray<{ app: repo.ApplicationRow; first: number | null | undefined; after: string | null | undefined }>,
  ): Promise<Array<Page<repo.DocumentRow> | AppError>> {
    const tenant = caller.principal.tenantId;
    return pagesOf(
      requests,
      () => [],
      (ids, _extra, afterId, limit) => repo.listDocumentsOfApplications(this.db, tenant, ids, afterId, limit),
      (id) => repo.countDocuments(this.db, tenant, id),
    );
  }

  /** The webhooks of several applications, one list per application id, in order; one statement. */
  async webhooksOfApplications(caller: Caller, appIds: readonly string[]): Promise<repo.WebhookRow[][]> {
    const rows = await repo.listWebhooks(this.db, caller.principal.tenantId, [...new Set(appIds)]);
    return appIds.map((id) => rows.filter((w) => w.application_id === id));
  }

  async definitionOfApplication(caller: Caller, app: repo.ApplicationRow, kind: 'api' | 'event', id: string): Promise<repo.DefinitionRow | null> {
    const row = await repo.findDefinition(this.db, caller.principal.tenantId, id, kind);
    return row && row.application_id === app.id ? row : null;
  }

  // ---------------------------------------------------------------- documents

  private async prepareDocument(caller: Caller, raw: unknown): Promise<{ write: Parameters<typeof repo.insertDocument>[4]; secretIds: string[] }> {
    const input = parseInput(DocumentInput, raw, 'in');
    const fetch = await this.prepareFetchRequest(caller, input.fetchRequest, `director/document/${randomUUID()}/fetch-auth`);
    return {
      secretIds: fetch.secretIds,
      write: { title: input.title, displayName: input.displayName, description: input.description, format: input.format, kind: input.kind ?? null, data: input.data ?? null, fetchRequest: fetch.json },
    };
  }

  async addDocument(caller: Caller, appId: string, raw: unknown): Promise<repo.DocumentRow> {
    const tenant = caller.principal.tenantId;
    if (!(await repo.findApplication(this.db, tenant, appId))) throw AppError.notFound(`Cannot add Document to not existing Application ${appId}`);
    await this.application(caller, appId, true);
    const d = await this.prepareDocument(caller, raw);
    try {
      return await this.db.transaction(async (tx) => {
        const id = randomUUID();
        const row = await repo.insertDocument(tx, tenant, id, appId, d.write);
        if (d.write.fetchRequest) await this.deps.bus.enqueue(FETCH_QUEUE, { tenantId: tenant, target: 'document', id } satisfies FetchJob, { tx });
        await this.record(tx, caller, 'document.added', { type: 'document', id, name: row.title }, 'success', { applicationId: appId });
        return row;
      });
    } catch (err) {
      await this.removeSecrets(caller, d.secretIds);
      throw err;
    }
  }

  async deleteDocument(caller: Caller, id: string): Promise<repo.DocumentRow> {
    const tenant = caller.principal.tenantId;
    const current = await repo.findDocument(this.db, tenant, id);
    if (!current) throw AppError.notFound(`document ${id}`);
    await this.application(caller, current.application_id, true);
    await this.db.transaction(async (tx) => {
      await repo.deleteDocument(tx, tenant, id);
      await this.record(tx, caller, 'document.deleted', { type: 'document', id, name: current.title }, 'success');
    });
    if (current.fetch_request?.authSecretId) await this.removeSecrets(caller, [current.fetch_request.authSecretId]);
    return current;
  }


  // ---------------------------------------------------------------- webhooks

  private async prepareWebhook(caller: Caller, raw: unknown, id: string): Promise<{ write: Omit<Parameters<typeof repo.insertWebhook>[1], 'tenantId' | 'applicationId'>; secretIds: string[]; signingSecret: string }> {
    const input = parseInput(WebhookInput, raw, 'in');
    const signingSecret = `whsec_${Buffer.from(randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, ''), 'hex').toString('base64')}`;
    const signingSecretId = await this.deps.credentials.save(caller, `director/webhook/${id}/signing-key`, { signingSecret });
    const secretIds = [signingSecretId];
    try {
      const authSecretId = input.auth ? await this.deps.credentials.save(caller, `director/webhook/${id}/auth`, authSecretValue(input.auth)) : null;
      if (authSecretId) secretIds.push(authSecretId);
      return { secretIds, signingSecret, write: { id, type: input.type, url: input.url, auth: input.auth ? authView(input.auth, true) : null, authSecretId, signingSecretId } };
    } catch (err) {
      await this.removeSecrets(caller, secretIds);
      throw err;
    }
  }

  async addWebhook(caller: Caller, appId: string, raw: unknown): Promise<{ row: repo.WebhookRow; signingSecret: string }> {
    const tenant = caller.principal.tenantId;
    if (!(await repo.findApplication(this.db, tenant, appId))) throw AppError.notFound(`Cannot add Webhook to not existing Application ${appId}`);
    const app = await this.application(caller, appId, true);
    if (app.integration_level === 'BASIC') throw new AppError('INVALID_STATE', `application ${app.name} is BASIC: the Director never calls its webhooks; change its integrationLevel first`);
    const id = randomUUID();
    const w = await this.prepareWebhook(caller, raw, id);
    try {
      const row = await this.db.transaction(async (tx) => {
        const created = await repo.insertWebhook(tx, { ...w.write, tenantId: tenant, applicationId: appId });
        await this.record(tx, caller, 'webhook.added', { type: 'webhook', id }, 'success', { applicationId: appId });
        return created;
      });
      return { row, signingSecret: w.signingSecret };
    } catch (err) {
      await this.removeSecrets(caller, w.secretIds);
      throw err;
    }
  }

  async webhook(caller: Caller, id: string, forWrite: boolean): Promise<repo.WebhookRow> {
    const row = await repo.findWebhook(this.db, caller.principal.tenantId, id);
    if (!row) throw AppError.notFound(`webhook ${id}`);
    await this.application(caller, row.application_id, forWrite);
    return row;
  }

  async updateWebhook(caller: Caller, id: string, raw: unknown): Promise<repo.WebhookRow> {
    const current = await this.webhook(caller, id, true);
    const input = parseInput(WebhookInput, raw, 'in');
    const authSecretId = input.auth ? await this.deps.credentials.save(caller, `director/webhook/${id}/auth-${randomUUID().slice(0, 8)}`, authSecretValue(input.auth)) : null;
    const row = await this.db.transaction(async (tx) => {
      const updated = await repo.updateWebhook(tx, caller.principal.tenantId, id, { type: input.type, url: input.url, auth: input.auth ? authView(input.auth, true) : null, authSecretId });
      if (!updated) throw AppError.notFound(`webhook ${id}`);
      await this.record(tx, caller, 'webhook.updated', { type: 'webhook', id }, 'success');
      return updated;
    });
    if (current.auth_secret_id) await this.removeSecrets(caller, [current.auth_secret_id]);
    return row;
  }

  async deleteWebhook(caller: Caller, id: string): Promise<repo.WebhookRow> {
    const current = await this.webhook(caller, id, true);
    await this.db.transaction(async (tx) => {
      await repo.deleteWebhook(tx, caller.principal.tenantId, id);
      await this.record(tx, caller, 'webhook.deleted', { type: 'webhook', id }, 'success');
    });
    await this.removeSecrets(caller, [current.signing_secret_id, current.auth_secret_id].filter((s): s is string => Boolean(s)));
    return current;
  }


  async deliveries(caller: Caller, appId: string, first: number | null | undefined, after: string | null | undefined): Promise<Page<repo.DeliveryRow>> {
    await this.application(caller, appId);
    const limit = pageSize(first);
    const afterId = decodeCursor(after);
    const tenant = caller.principal.tenantId;
    const anchor = afterId ? await repo.findDelivery(this.db, tenant, afterId) : undefined;
    if (afterId && !anchor) throw AppError.invalid('after: the delivery it names no longer exists; start from the first page');
    const rows = await repo.listDeliveries(this.db, tenant, appId, anchor ? { createdAt: anchor.created_at, id: anchor.id } : undefined, limit + 1);
    return toPage(rows, limit, afterId, () => repo.countDeliveries(this.db, tenant, appId));
  }

  // ---------------------------------------------------------------- API credentials per runtime

  async setApiAuth(caller: Caller, apiId: string, runtimeId: string, raw: unknown): Promise<{ api: repo.DefinitionRow; row: repo.ApiRuntimeAuthRow }> {
    const api = await this.definition(caller, 'api', apiId);
    await this.application(caller, api.application_id, true);
    const rt = await repo.findRuntime(this.db, caller.principal.tenantId, runtimeId);
    if (!rt) throw AppError.notFound(`runtime ${runtimeId}`);
    const input = parseInput(AuthInput, raw, 'in');
    const tenant = caller.principal.tenantId;
    const previous = await repo.findApiRuntimeAuth(this.db, tenant, apiId, runtimeId);
    const secretId = await this.deps.credentials.save(caller, `director/api/${apiId}/runtime/${runtimeId}/${randomUUID().slice(0, 8)}`, authSecretValue(input));
    try {
      const row = await this.db.transaction(async (tx) => {
        const saved = await repo.upsertApiRuntimeAuth(tx, tenant, apiId, runtimeId, authView(input, true), secretId);
        await this.record(tx, caller, 'api_auth.set', { type: 'api_definition', id: apiId, name: api.name }, 'success', { runtimeId });
        return saved;
      });
      if (previous) await this.removeSecrets(caller, [previous.secret_id]);
      return { api, row };
    } catch (err) {
      await this.removeSecrets(caller, [secretId]);
      throw err;
    }
  }

  async deleteApiAuth(caller: Caller, apiId: string, runtimeId: string): Promise<repo.ApiRuntimeAuthRow> {
    const api = await this.definition(caller, 'api', apiId);
    await this.application(caller, api.application_id, true);
    const tenant = caller.principal.tenantId;
    const row = await this.db.transaction(async (tx) => {
      const removed = await repo.deleteApiRuntimeAuth(tx, tenant, apiId, runtimeId);
      if (!removed) throw AppError.notFound(`credentials of API ${apiId} for runtime ${runtimeId}`);
      await this.record(tx, caller, 'api_auth.deleted', { type: 'api_definition', id: apiId, name: api.name }, 'success', { runtimeId });
      return removed;
    });
    await this.removeSecrets(caller, [row.secret_id]);
    return row;
  }

  /** `APIDefinition.auth(runtimeID)`: in clear only for that runtime itself. */
  async apiAuthFor(caller: Caller, api: repo.DefinitionRow, runtimeId: string): Promise<{ runtimeID: string; auth: AuthView | null; status: 'SET' | 'DEFAULT' | 'WAITING' }> {
    const tenant = caller.principal.tenantId;
    if (!(await repo.findRuntime(this.db, tenant, runtimeId))) throw AppError.notFound(`runtime ${runtimeId}`);
    if (caller.object?.type === 'runtime' && caller.object.id !== runtimeId) throw AppError.notFound(`runtime ${runtimeId}`);
    const own = caller.object?.type === 'runtime' && caller.object.id === runtimeId;
    const set = await repo.findApiRuntimeAuth(this.db, tenant, api.id, runtimeId);
    if (set) return { runtimeID: runtimeId, auth: own ? await this.clearAuth(caller, set.secret_id) : (set.auth as AuthView), status: 'SET' };
    if (api.default_auth_secret_id) {
      return { runtimeID: runtimeId, auth: own ? await this.clearAuth(caller, api.default_auth_secret_id) : (api.default_auth as AuthView), status: 'DEFAULT' };
    }
    return { runtimeID: runtimeId, auth: null, status: 'WAITING' };
  }

  /** `APIDefinition.auths`: every runtime of the tenant (a runtime caller: only itself). */
  async apiAuths(caller: Caller, api: repo.DefinitionRow): Promise<Array<{ runtimeID: string; auth: AuthView | null; status: 'SET' | 'DEFAULT' | 'WAITING' }>> {
    const tenant = caller.principal.tenantId;
    const runtimeIds = caller.object?.type === 'runtime' ? [caller.object.id] : await repo.listAllRuntimeIds(this.db, tenant);
    return Promise.all(runtimeIds.map((r) => this.apiAuthFor(caller, api, r)));
  }

  defaultAuthOf(caller: Caller, api: repo.DefinitionRow): Promise<AuthView | null> | AuthView | null {
    if (!api.default_auth_secret_id) return null;
    // A runtime that may call the API gets the default credentials in clear; everyone else masked.
    if (caller.object?.type === 'runtime') return this.clearAuth(caller, api.default_auth_secret_id);
    return api.default_auth as AuthView;
  }

  private async clearAuth(caller: Caller, secretId: string): Promise<AuthView | null> {
    const value = await this.deps.credentials.read(caller.principal.tenantId, secretId, caller);
    const auth = authFromSecret(value);
    return auth ? authView(auth, false) : null;
  }

  /** APIs of `appIds` without credentials for the runtime (no SET, no default). */
  async apisWaitingForCredentials(tx: Queryable, tenant: string, appIds: readonly string[], runtimeId: string): Promise<Map<string, string[]>> {
    const apis = await repo.apisOfApplications(tx, tenant, appIds);
    const set = new Set((await repo.listApiRuntimeAuths(tx, tenant, apis.map((a) => a.id))).filter((a) => a.runtime_id === runtimeId).map((a) => a.api_id));
    const waiting = new Map<string, string[]>();
    for (const a of apis) {
      if (set.has(a.id) || a.default_auth_secret_id) continue;
      waiting.set(a.application_id, [...(waiting.get(a.application_id) ?? []), a.id]);
    }
    return waiting;
  }

  /** Applications in the runtime's scenarios that have not answered with credentials on every API. */
  async applicationsWaitingForCredentials(caller: Caller, rt: repo.RuntimeRow): Promise<string[]> {
    const apps = (await repo.applicationsInScenarios(this.db, caller.principal.tenantId, scenariosOf(rt.labels))).filter((a) => a.integration_level !== 'BASIC');
    const waiting = await this.apisWaitingForCredentials(this.db, caller.principal.tenantId, apps.map((a) => a.id), rt.id);
    return apps.filter((a) => waiting.has(a.id)).map((a) => a.id);
  }

  // ---------------------------------------------------------------- eventing and configuration

  /** The runtime's own eventing label, else (with the Connector) the hub's mTLS events URL for it. */
  async runtimeEventingUrl(rt: repo.RuntimeRow): Promise<string> {
    const v = rt.labels[EVENTING_URL_LABEL];
    if (typeof v === 'string') return v;
    return this.deps.pairing?.runtimeEventsUrl(rt.id) ?? '';
  }

  /** Compass: the runtime chosen with setDefaultEventingForApplication, else the oldest sharing a scenario. */
  async defaultEventingRuntime(tenant: string, app: repo.ApplicationRow): Promise<repo.RuntimeRow | undefined> {
    const candidates = await repo.runtimesInScenarios(this.db, tenant, scenariosOf(app.labels));
    return candidates.find((r) => r.id === app.default_eventing_runtime_id) ?? candidates[0];
  }

  async applicationEventingUrl(tenant: string, app: repo.ApplicationRow): Promise<string> {
    const rt = await this.defaultEventingRuntime(tenant, app);
    return rt ? applicationEventUrl(await this.runtimeEventingUrl(rt), app.name) : '';
  }

  async setDefaultEventing(caller: Caller, appId: string, runtimeId: string): Promise<string> {
    const app = await this.application(caller, appId, true);
    const tenant = caller.principal.tenantId;
    const rt = (await repo.runtimesInScenarios(this.db, tenant, scenariosOf(app.labels))).find((r) => r.id === runtimeId);
    if (!rt) throw AppError.notFound(`runtime ${runtimeId} assigned to the scenarios of application ${appId}`);
    await this.db.transaction(async (tx) => {
      await repo.setDefaultEventingRuntime(tx, tenant, appId, runtimeId);
      await this.record(tx, caller, 'application.eventing.set', { type: 'application', id: appId, name: app.name }, 'success', { runtimeId });
    });
    return applicationEventUrl(await this.runtimeEventingUrl(rt), app.name);
  }

  async deleteDefaultEventing(caller: Caller, appId: string): Promise<string> {
    const app = await this.application(caller, appId, true);
    const tenant = caller.principal.tenantId;
    const before = await this.applicationEventingUrl(tenant, app);
    await this.db.transaction(async (tx) => {
      await repo.setDefaultEventingRuntime(tx, tenant, appId, null);
      await this.record(tx, caller, 'application.eventing.deleted', { type: 'application', id: appId, name: app.name }, 'success');
    });
    return before;
  }

  /** `applicationConfiguration`: the runtimes an application shares a scenario with. */
  async applicationConfiguration(caller: Caller, appId: string | null | undefined): Promise<{ app: repo.ApplicationRow; runtimes: Array<{ rt: repo.RuntimeRow; eventURL: string; waiting: string[] }> }> {
    const id = appId ?? (caller.object?.type === 'application' ? caller.object.id : undefined);
    if (!id) throw AppError.invalid('applicationID: is required unless the caller is an application');
    const app = await this.application(caller, id);
    const tenant = caller.principal.tenantId;
    const runtimes = await repo.runtimesInScenarios(this.db, tenant, scenariosOf(app.labels));
    const out = [];
    for (const rt of runtimes) {
      const waiting = (await this.apisWaitingForCredentials(this.db, tenant, [app.id], rt.id)).get(app.id) ?? [];
      out.push({ rt, eventURL: applicationEventUrl(await this.runtimeEventingUrl(rt), app.name), waiting });
    }
    return { app, runtimes: out };
  }

  // ---------------------------------------------------------------- system auths

  async requestClientCredentials(caller: Caller, type: 'application' | 'runtime', id: string): Promise<{ id: string; token: string }> {
    if (caller.object) await this.deny(caller, `${type}.credentials.issued`, 'applications and runtimes may not issue credentials', { type, id });
    const obj = type === 'application' ? await this.application(caller, id) : await this.runtime(caller, id);
    if (type === 'application' && (obj as repo.ApplicationRow).integration_level === 'BASIC') {
      throw new AppError('INVALID_STATE', `application ${obj.name} is BASIC: it is registered with static metadata and is not paired; change its integrationLevel first`);
    }
    const tenant = caller.principal.tenantId;
    const issued = await this.deps.identities.issue(caller, { type, id, tenantId: tenant, permissions: OBJECT_PERMISSIONS[type] });
    const authId = randomUUID();
    try {
      await this.db.transaction(async (tx) => {
        await repo.insertSystemAuth(tx, { tenantId: tenant, id: authId, objectType: type, objectId: id, kind: issued.kind, accountId: issued.accountId });
        await this.record(tx, caller, `${type}.credentials.issued`, { type, id, name: obj.name }, 'success', { systemAuthId: authId });
      });
    } catch (err) {
      await this.deps.identities.revoke(caller, issued.accountId);
      throw err;
    }
    return { id: authId, token: issued.token };
  }

  async systemAuths(caller: Caller, type: 'application' | 'runtime', id: string): Promise<repo.SystemAuthRow[]> {
    return repo.listSystemAuths(this.db, caller.principal.tenantId, type, id);
  }

  async deleteSystemAuth(caller: Caller, type: 'application' | 'runtime', authId: string): Promise<repo.SystemAuthRow> {
    if (caller.object) await this.deny(caller, `${type}.credentials.revoked`, 'applications and runtimes may not revoke credentials');
    const tenant = caller.principal.tenantId;
    const current = await repo.findSystemAuth(this.db, tenant, authId);
    if (!current || current.object_type !== type) throw AppError.notFound(`system auth ${authId}`);
    await this.db.transaction(async (tx) => {
      await repo.deleteSystemAuth(tx, tenant, authId);
      await this.record(tx, caller, `${type}.credentials.revoked`, { type, id: current.object_id }, 'success', { systemAuthId: authId });
    });
    if (current.account_id) await this.deps.identities.revoke(caller, current.account_id);
    await this.revokeCertificatesOf(caller, tenant, [current], 'system auth deleted');
    return current;
  }

  // ---------------------------------------------------------------- pairing (Connector)

  private pairing(): Pairing {
    if (!this.deps.pairing) throw new AppError('INVALID_STATE', 'pairing with one-time tokens needs the connector, which this process does not run');
    return this.deps.pairing;
  }

  /** Certificates of removed system auths stop working at once (they would anyway: their CN names nothing). */
  private async revokeCertificatesOf(caller: Caller, tenant: string, auths: readonly repo.SystemAuthRow[], reason: string): Promise<void> {
    const ids = auths.filter((a) => a.kind === CERTIFICATE_AUTH_KIND).map((a) => a.id);
    if (ids.length === 0 || !this.deps.pairing) return;
    await this.deps.pairing.revokeCertificates(caller, tenant, { systemAuthIds: ids }, reason).catch((err: unknown) => this.deps.logger.error({ err }, 'could not revoke certificates'));
  }

  /**
   * `requestOneTimeTokenFor…`: a single-use token the application or runtime redeems at the
   * Connector. Its certificates will stand for the object's one certificate system auth
   * (created with the first token), so renewals keep the same CN.
   */
  async requestOneTimeToken(caller: Caller, type: 'application' | 'runtime', id: string): Promise<IssuedOneTimeToken> {
    if (caller.object) await this.deny(caller, `${type}.one-time-token.issued`, 'applications and runtimes may not issue one-time tokens', { type, id });
    const obj = type === 'application' ? await this.application(caller, id) : await this.runtime(caller, id);
    if (type === 'application' && (obj as repo.ApplicationRow).integration_level === 'BASIC') {
      throw new AppError('INVALID_STATE', `application ${obj.name} is BASIC: it is registered with static metadata and is not paired; change its integrationLevel first`);
    }
    const pairing = this.pairing();
    const tenant = caller.principal.tenantId;
    const existing = (await repo.listSystemAuths(this.db, tenant, type, id)).find((a) => a.kind === CERTIFICATE_AUTH_KIND);
    const systemAuthId = existing?.id ?? randomUUID();
    if (!existing) {
      await this.db.transaction(async (tx) => {
        await repo.insertSystemAuth(tx, { tenantId: tenant, id: systemAuthId, objectType: type, objectId: id, kind: CERTIFICATE_AUTH_KIND, accountId: null });
        await this.record(tx, caller, `${type}.credentials.issued`, { type, id, name: obj.name }, 'success', { systemAuthId, kind: CERTIFICATE_AUTH_KIND });
      });
    }
    return pairing.issueOneTimeToken(caller, { type, id, tenantId: tenant, systemAuthId }, (expiresAt) =>
      this.deps.audit.event(auditRecord(caller, `${type}.one-time-token.issued`, { type, id, name: obj.name }, 'success', { systemAuthId, expiresAt: expiresAt.toISOString() })),
    );
  }

  /** The status of the object's newest one-time token (expiry, use), for whoever may see the object. */
  async oneTimeTokenStatus(caller: Caller, type: 'application' | 'runtime', id: string): Promise<OneTimeTokenStatus | null> {
    if (caller.object || !this.deps.pairing) return null;
    return (await this.deps.pairing.oneTimeTokenStatus(caller.principal.tenantId, type, id)) ?? null;
  }

  /** Plexus: the event definitions of an application (events it may send through the hub; flows triggered by them). */
  async eventDefinitionsOf(tenantId: string, applicationId: string): Promise<Array<{ id: string; name: string; specData: string | null; specType: string | null; version: number }>> {
    const rows = await repo.listDefinitionsOfApplications(this.db, tenantId, [applicationId], 'event', null, '', 1000);
    const version = await this.tenantVersion(tenantId);
    return rows.map((r) => ({ id: r.id, name: r.name, specData: r.spec_data, specType: r.spec?.type ?? null, version }));
  }

  /** Plexus: whether the tenant has the application (by id or name) with the event definition (flows check their event triggers). */
  async findEventDefinition(tenantId: string, application: string, event: string): Promise<{ applicationId: string; eventDefinitionId: string } | { problem: string }> {
    const app = (await repo.findApplication(this.db, tenantId, application)) ?? (await repo.findApplicationByName(this.db, tenantId, application));
    if (!app) return { problem: `application ${JSON.stringify(application)} is not registered in this tenant` };
    const defs = await repo.listDefinitionsOfApplications(this.db, tenantId, [app.id], 'event', null, '', 1000);
    const def = defs.find((d) => d.name === event || d.id === event);
    if (!def) return { problem: `application ${app.name} has no event definition ${JSON.stringify(event)}${defs.length ? ` (it has: ${defs.map((d) => d.name).join(', ')})` : ' (it has none)'}` };
    return { applicationId: app.id, eventDefinitionId: def.id };
  }

  /**
   * Plexus: an application's API as a flow step on runtime `runtime` (by id or name) calls it: its
   * targetURL and the credentials the application set for that runtime (`setAPIAuth`), else the
   * API's default. `{problem}` names what is missing (the step fails with it).
   */
  async resolveApiForRuntime(
    tenantId: string,
    application: string,
    apiDefinition: string,
    runtime: string,
  ): Promise<
    | {
        url: string;
        credentials?: Record<string, unknown>;
        credentialsType?: string;
        /** OAuth client credentials: the caller fetches (and caches) the token; `label` names the application for its errors. */
        oauth?: { tokenUrl: string; clientId: string; clientSecret: string; label: string };
        headers?: Record<string, string>;
        query?: Record<string, string>;
      }
    | { problem: string }
  > {
    const app = (await repo.findApplication(this.db, tenantId, application)) ?? (await repo.findApplicationByName(this.db, tenantId, application));
    if (!app) return { problem: `api: application ${JSON.stringify(application)} is not registered in this tenant` };
    const apis = await repo.listDefinitionsOfApplications(this.db, tenantId, [app.id], 'api', null, '', 1000);
    const api = apis.find((a) => a.id === apiDefinition) ?? apis.find((a) => a.name === apiDefinition);
    if (!api) return { problem: `api: application ${app.name} has no API definition ${JSON.stringify(apiDefinition)}${apis.length ? ` (it has: ${apis.map((a) => a.name).join(', ')})` : ''}` };
    if (!api.target_url) return { problem: `api: API ${api.name} of application ${app.name} has no targetURL` };
    const rt = (await repo.findRuntime(this.db, tenantId, runtime)) ?? (await repo.findRuntimeByName(this.db, tenantId, runtime));
    const set = rt ? await repo.findApiRuntimeAuth(this.db, tenantId, api.id, rt.id) : undefined;
    const secretId = set?.secret_id ?? api.default_auth_secret_id;
    if (!secretId) {
      return {
        problem: rt
          ? `api: application ${app.name} has set no credentials for runtime ${rt.name} on API ${api.name} (setAPIAuth), and the API has no default`
          : `api: no runtime ${JSON.stringify(runtime)} is registered in this tenant, so application ${app.name} cannot have set credentials for it on API ${api.name} (setAPIAuth), and the API has no default`,
      };
    }
    const auth = authFromSecret(await this.deps.credentials.read(tenantId, secretId));
    if (!auth) return { problem: `api: the credentials of API ${api.name} for runtime ${runtime} cannot be read` };
    const headers = Object.fromEntries(Object.entries(auth.additionalHeaders ?? {}).map(([k, v]) => [k, v.join(', ')]));
    const query = Object.fromEntries(Object.entries(auth.additionalQueryParams ?? {}).flatMap(([k, v]) => (v[0] === undefined ? [] : [[k, v[0]]])));
    if (auth.credential.basic) return { url: api.target_url, credentials: { ...auth.credential.basic }, credentialsType: 'basic', headers, query };
    const o = auth.credential.oauth;
    if (o) {
      const label = `application ${app.name} (API ${api.name}, runtime ${rt?.name ?? runtime})`;
      return { url: api.target_url, oauth: { tokenUrl: o.url, clientId: o.clientId, clientSecret: o.clientSecret, label }, headers, query };
    }
    return { problem: `api: the credentials of API ${api.name} for runtime ${runtime} are neither basic nor OAuth` };
  }

  /** Why the tenant has no runtime `runtime` (by id or name), or undefined when it has one. */
  async runtimeProblem(tenantId: string, runtime: string): Promise<string | undefined> {
    const rt = (await repo.findRuntime(this.db, tenantId, runtime)) ?? (await repo.findRuntimeByName(this.db, tenantId, runtime));
    return rt ? undefined : `no runtime ${JSON.stringify(runtime)} is registered in this tenant (register it, or leave credentialsRuntime out for local)`;
  }

  /** `revokeApplicationCertificates` / `revokeRuntimeCertificates`: an administrator's revocation. */
  async revokeCertificates(caller: Caller, type: 'application' | 'runtime', id: string): Promise<number> {
    if (caller.object) await this.deny(caller, `${type}.certificates.revoked`, 'applications and runtimes revoke their own certificate with the connector\'s revokeCertificate', { type, id });
    const obj = type === 'application' ? await this.application(caller, id) : await this.runtime(caller, id);
    const n = await this.pairing().revokeCertificates(caller, caller.principal.tenantId, { type, id }, 'revoked by an administrator');
    await this.record(undefined, caller, `${type}.certificates.revoked`, { type, id, name: obj.name }, 'success', { certificates: n });
    return n;
  }

  /**
   * The caller a client certificate stands for: its CN names a certificate system auth of the
   * tenant. Undefined when that system auth is gone. An application's first call marks it CONNECTED.
   */
  async certificateCaller(tenantId: string, systemAuthId: string, ip: string, certificateId: string): Promise<Caller | undefined> {
    const row = await repo.findSystemAuth(this.db, tenantId, systemAuthId);
    if (!row || row.kind !== CERTIFICATE_AUTH_KIND) return undefined;
    if (row.object_type === 'application') {
      // Read first: the identity is looked up again every half second per certificate.
      const app = await repo.findApplication(this.db, tenantId, row.object_id);
      if (!app) return undefined;
      if (app.status_condition !== 'CONNECTED') await repo.setApplicationStatus(this.db, tenantId, row.object_id, 'CONNECTED');
    }
    return {
      principal: {
        accountId: `system-auth:${row.id}`,
        username: `${row.object_type}:${row.object_id}`,
        tenantId,
        homeTenantId: tenantId,
        permissions: OBJECT_PERMISSIONS[row.object_type],
        roles: [],
        kind: 'service',
        tokenId: `certificate:${certificateId}`,
      },
      ip,
      object: { type: row.object_type, id: row.object_id },
    };
  }

  /** The object a caller's account stands for; the first call of a paired application marks it CONNECTED. */
  async callerObject(accountId: string, tenantId: string): Promise<Caller['object']> {
    const row = await repo.findSystemAuthByAccount(this.db, accountId);
    if (!row || row.tenant_id !== tenantId) return undefined;
    if (row.object_type === 'application') await repo.setApplicationStatus(this.db, tenantId, row.object_id, 'CONNECTED');
    return { type: row.object_type, id: row.object_id };
  }

  // ---------------------------------------------------------------- notifications

  /**
   * A runtime changed: its READY status, labels (eventing URL), or scenarios. Applications in
   * the scenarios it shares (before or after) are told through their CONFIGURATION_CHANGED
   * webhooks, when the runtime is READY. BASIC applications are never called.
   */
  private async notifyRuntimeChange(tx: Queryable, before: repo.RuntimeRow, after: repo.RuntimeRow | undefined, reason: string): Promise<void> {
    const wasReady = before.status_condition === 'READY';
    const isReady = after?.status_condition === 'READY';
    const becameReady = !wasReady && isReady;
    const labelsChanged = after !== undefined && JSON.stringify(before.labels) !== JSON.stringify(after.labels);
    if (!becameReady && !(isReady && labelsChanged) && !(wasReady && after === undefined)) return;
    const scenarios = [...new Set([...scenariosOf(before.labels), ...(after ? scenariosOf(after.labels) : [])])];
    const apps = await repo.applicationsInScenarios(tx, before.tenant_id, scenarios);
    await this.enqueueNotifications(tx, after ?? before, apps, reason);
  }

  /** An application joined or left scenarios: it hears about the READY runtimes that changed for it. */
  private async notifyApplicationScenarios(tx: Queryable, app: repo.ApplicationRow, before: string[], after: string[], reason: string): Promise<void> {
    const changed = [...after.filter((s) => !before.includes(s)), ...before.filter((s) => !after.includes(s))];
    if (changed.length === 0) return;
    const runtimes = (await repo.runtimesInScenarios(tx, app.tenant_id, changed)).filter((r) => r.status_condition === 'READY');
    for (const rt of runtimes) await this.enqueueNotifications(tx, rt, [app], reason);
  }

  private async enqueueNotifications(tx: Queryable, rt: repo.RuntimeRow, apps: repo.ApplicationRow[], reason: string): Promise<void> {
    const targets = apps.filter((a) => a.integration_level !== 'BASIC');
    if (targets.length === 0) return;
    const webhooks = (await repo.listWebhooks(tx, rt.tenant_id, targets.map((a) => a.id))).filter((w) => w.type === 'CONFIGURATION_CHANGED');
    if (webhooks.length === 0) return;
    const waiting = await this.apisWaitingForCredentials(tx, rt.tenant_id, targets.map((a) => a.id), rt.id);
    const runtime = { id: rt.id, name: rt.name, status: rt.status_condition, eventingConfiguration: { defaultURL: await this.runtimeEventingUrl(rt) } };
    const rows = webhooks.map((w) => ({
      tenantId: rt.tenant_id,
      id: randomUUID(),
      webhookId: w.id,
      applicationId: w.application_id,
      runtimeId: rt.id,
      messageId: `msg_${randomUUID().replace(/-/g, '')}`,
      type: 'CONFIGURATION_CHANGED',
      payload: {
        type: 'CONFIGURATION_CHANGED',
        reason,
        runtime,
        application: { id: w.application_id },
        // The API credentials flow (seed 001): the APIs this runtime still needs credentials for.
        credentialsRequested: { runtimeID: rt.id, apiIDs: waiting.get(w.application_id) ?? [] },
      },
    }));
    await repo.insertDeliveries(tx, rows);
    await this.deps.bus.enqueueMany(DELIVERY_QUEUE, rows.map((r) => ({ tenantId: r.tenantId, deliveryId: r.id }) satisfies DeliveryJob), { tx });
  }

  // ---------------------------------------------------------------- helpers

  private async removeSecrets(caller: Caller, ids: readonly string[]): Promise<void> {
    for (const id of ids) await this.deps.credentials.remove(caller, id).catch((err: unknown) => this.deps.logger.warn({ err, secretId: id }, 'could not remove a Director credential'));
  }

  private record(
    tx: Queryable | undefined,
    caller: Caller,
    action: Action,
    target: { type: string; id?: string | undefined; name?: string | undefined },
    result: 'success' | 'denied',
    details?: Record<string, unknown>,
  ): Promise<void> {
    return this.deps.audit.record(auditRecord(caller, action, target, result, details), tx ? { tx } : undefined);
  }

  get masked(): string {
    return MASK;
  }
}

/** The audit record of a caller's action (`audit.director.<action>`). */
function auditRecord(
  caller: Caller,
  action: Action,
  target: { type: string; id?: string | undefined; name?: string | undefined },
  result: 'success' | 'denied',
  details?: Record<string, unknown>,
): AuditRecordInput {
  const p = caller.principal;
  return {
    action,
    actor: { accountId: p.accountId, username: p.username, tenantId: p.tenantId },
    target,
    result,
    sourceIp: caller.ip,
    details: caller.object ? { ...details, as: caller.object } : details,
  };
}

export const EVENTING_URL_LABEL = 'runtime/event_service_url';
/** System auths whose client certificates (CN = the system auth's id) the Connector issues. */
export const CERTIFICATE_AUTH_KIND = 'certificate';

/** Compass: `<runtime eventing URL>/<application name>/v1/events`; '' without one. */
export function applicationEventUrl(runtimeUrl: string, appName: string): string {
  if (!runtimeUrl) return '';
  return `${runtimeUrl.replace(/\/+$/, '')}/${encodeURIComponent(appName)}/v1/events`;
}

export { allowedScenarios };
