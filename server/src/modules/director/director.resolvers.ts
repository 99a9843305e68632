/**
 * GraphQL resolvers: the SDL's names mapped onto the service. Every root field checks its scope
 * from `director.scopes.ts` before it runs; nested fields read the row they belong to.
 */
import DataLoader from 'dataloader';
import { GraphQLScalarType, Kind, valueFromASTUntyped, type ValueNode } from 'graphql';
import { AppError } from '../../platform/errors.js';
import { hasPermission } from '../../platform/http/index.js';
import type { AuthView } from './director.auths.js';
import type { Caller, IssuedOneTimeToken, OneTimeTokenStatus, TenantLister } from './director.ports.js';
import type * as repo from './director.repo.js';
import { OPERATION_SCOPES } from './director.scopes.js';
import type { DirectorService, Page } from './director.service.js';

export interface DirectorContext {
  caller: Caller;
  /** Batched nested lists of this request. */
  loaders: RequestLoaders;
  /** Signing secrets of webhooks created by this request: shown once, in this answer. */
  signingSecrets: Map<string, string>;
}

type Args = Record<string, unknown>;

function oneTimeTokenView(t: IssuedOneTimeToken): Record<string, unknown> {
  return { token: t.token, connectorURL: t.connectorURL, expiresAt: t.expiresAt.toISOString(), used: t.used };
}

function tokenStatusView(t: OneTimeTokenStatus | null): Record<string, unknown> | null {
  if (!t) return null;
  return {
    createdAt: t.createdAt.toISOString(),
    expiresAt: t.expiresAt.toISOString(),
    used: t.used,
    usedAt: t.usedAt?.toISOString() ?? null,
    invalidated: t.invalidated,
    expired: !t.used && t.expiresAt.getTime() <= Date.now(),
  };
}
type Resolver<P = unknown> = (parent: P, args: Args, ctx: DirectorContext) => unknown;

const str = (v: unknown): string => v as string;
const optStr = (v: unknown): string | null | undefined => v as string | null | undefined;
const optNum = (v: unknown): number | null | undefined => v as number | null | undefined;

function jsonScalar(name: string, description: string): GraphQLScalarType {
  return new GraphQLScalarType({
    name,
    description,
    serialize: (v) => v,
    parseValue: (v) => v,
    parseLiteral: (ast: ValueNode, vars) => valueFromASTUntyped(ast, vars ?? undefined),
  });
}

function stringScalar(name: string): GraphQLScalarType {
  return new GraphQLScalarType({
    name,
    serialize: (v) => (v instanceof Date ? v.toISOString() : v),
    parseValue: (v) => {
      if (typeof v !== 'string') throw AppError.invalid(`${name} must be a string`);
      return v;
    },
    parseLiteral: (ast) => {
      if (ast.kind !== Kind.STRING) throw AppError.invalid(`${name} must be a string`);
      return ast.value;
    },
  });
}

/** JSONSchema: Compass sends and answers a JSON-encoded string; an object is accepted too. */
const JSONSchemaScalar = new GraphQLScalarType({
  name: 'JSONSchema',
  serialize: (v) => (v === null || v === undefined ? null : JSON.stringify(v)),
  parseValue: (v) => v,
  parseLiteral: (ast, vars) => valueFromASTUntyped(ast, vars ?? undefined),
});

function page<T>(p: Page<T>): Page<T> {
  return p;
}

function status(condition: string, timestamp: Date): { condition: string; timestamp: string } {
  return { condition, timestamp: timestamp.toISOString() };
}

function fetchRequestView(r: { fetch_request: repo.FetchRequestJson | null; fetch_status: string | null; fetch_message: string | null; fetch_timestamp: Date | null }): unknown {
  if (!r.fetch_request) return null;
  return {
    url: r.fetch_request.url,
    mode: r.fetch_request.mode,
    filter: r.fetch_request.filter,
    auth: r.fetch_request.auth,
    status: { condition: r.fetch_status ?? 'INITIAL', timestamp: (r.fetch_timestamp ?? new Date()).toISOString(), message: r.fetch_message },
  };
}

function specView(r: repo.DefinitionRow): unknown {
  if (!r.spec) return null;
  return { data: r.spec_data, type: r.spec.type, format: r.spec.format, fetchRequest: fetchRequestView(r), validation: r.spec_validation };
}

function bearerAuth(token: string): AuthView {
  return { credential: { token }, additionalHeaders: null, additionalQueryParams: null, requestAuth: null };
}

/**
 * Nested lists of a page of parents, batched per request: one statement for the
 * `apiDefinitions` of all 100 applications of a page instead of one (and a count) per
 * application. A DataLoader per field and arguments, keyed by the parent row itself (Mercurius's
 * own loaders key each parent by serialising it: 20 % of the CPU of a page with three nested
 * lists, measured here). A parent's result may be its own error (a bad `first` or `after`).
 */
export class RequestLoaders {
  private readonly loaders = new Map<string, DataLoader<repo.ApplicationRow, unknown>>();

  constructor(
    private readonly service: DirectorService,
    private readonly caller: Caller,
  ) {}

  apiDefinitions(app: repo.ApplicationRow, a: Args): Promise<unknown> {
    return this.load(`api:${JSON.stringify([a.group, a.first, a.after])}`, app, (apps) =>
      this.service.definitionPagesOf(this.caller, 'api', apps.map((r) => ({ app: r, group: optStr(a.group), first: optNum(a.first), after: optStr(a.after) }))),
    );
  }

  eventDefinitions(app: repo.ApplicationRow, a: Args): Promise<unknown> {
    return this.load(`event:${JSON.stringify([a.group, a.first, a.after])}`, app, (apps) =>
      this.service.definitionPagesOf(this.caller, 'event', apps.map((r) => ({ app: r, group: optStr(a.group), first: optNum(a.first), after: optStr(a.after) }))),
    );
  }

  documents(app: repo.ApplicationRow, a: Args): Promise<unknown> {
    return this.load(`documents:${JSON.stringify([a.first, a.after])}`, app, (apps) =>
      this.service.documentPagesOf(this.caller, apps.map((r) => ({ app: r, first: optNum(a.first), after: optStr(a.after) }))),
    );
  }

  webhooks(app: repo.ApplicationRow): Promise<unknown> {
    return this.load('webhooks', app, (apps) => this.service.webhooksOfApplications(this.caller, apps.map((r) => r.id)));
  }

  private load(key: string, app: repo.ApplicationRow, batch: (apps: readonly repo.ApplicationRow[]) => Promise<unknown[]>): Promise<unknown> {
    let loader = this.loaders.get(key);
    if (!loader) {
      loader = new DataLoader(batch);
      this.loaders.set(key, loader);
    }
    return loader.load(app);
  }
}

export function createResolvers(service: DirectorService, listTenants: TenantLister): Record<string, unknown> {
  /** Wraps a root resolver with its scope check (denials audited). */
  const guard = (type: 'Query' | 'Mutation', field: string, fn: Resolver): Resolver => {
    const scope = (OPERATION_SCOPES[type] as Record<string, string>)[field];
    if (!scope) throw new AppError('INTERNAL', `${type}.${field} has no scope in director.scopes.ts`, 'bug');
    return async (parent, args, ctx) => {
      if (scope !== 'authenticated' && !hasPermission(ctx.caller.principal, scope)) {
        await service.deny(ctx.caller, field, `insufficient scopes: ${field} needs ${scope}`);
      }
      return fn(parent, args, ctx);
    };
  };

  const Query: Record<string, Resolver> = {
    applications: (_p, a, c) => service.listApplications(c.caller, a.filter, optNum(a.first), optStr(a.after)).then(page),
    application: async (_p, a, c) => {
      try {
        return await service.application(c.caller, str(a.id));
      } catch (err) {
        // Compass answers null for an application that does not exist.
        if (err instanceof AppError && err.code === 'NOT_FOUND') return null;
        throw err;
      }
    },
    applicationsForRuntime: (_p, a, c) => service.applicationsForRuntime(c.caller, str(a.runtimeID), optNum(a.first), optStr(a.after)).then(page),
    runtimes: (_p, a, c) => service.listRuntimes(c.caller, a.filter, optNum(a.first), optStr(a.after)).then(page),
    runtime: async (_p, a, c) => {
      try {
        return await service.runtime(c.caller, str(a.id));
      } catch (err) {
        if (err instanceof AppError && err.code === 'NOT_FOUND') return null;
        throw err;
      }
    },
    labelDefinitions: (_p, _a, c) => service.labelDefinitions(c.caller),
    labelDefinition: (_p, a, c) => service.labelDefinition(c.caller, str(a.key)),
    healthChecks: () => ({ data: [], pageInfo: { startCursor: '', endCursor: '', hasNextPage: false }, totalCount: async () => 0 }),
    viewer: (_p, _a, c) => {
      const o = c.caller.object;
      return o ? { id: o.id, type: o.type === 'application' ? 'APPLICATION' : 'RUNTIME' } : { id: c.caller.principal.accountId, type: 'USER' };
    },
    tenants: (_p, _a, c) => listTenants(c.caller.principal),
    applicationConfiguration: async (_p, a, c) => {
      const cfg = await service.applicationConfiguration(c.caller, optStr(a.applicationID));
      return {
        application: cfg.app,
        runtimes: cfg.runtimes.map((r) => ({
          id: r.rt.id,
          name: r.rt.name,
          status: status(r.rt.status_condition, r.rt.status_timestamp),
          eventingConfiguration: { defaultURL: typeof r.rt.labels['runtime/event_service_url'] === 'string' ? r.rt.labels['runtime/event_service_url'] : '' },
          eventURL: r.eventURL,
          apisWaitingForCredentials: r.waiting,
        })),
      };
    },
    directorSettings: (_p, _a, c) => service.settings(c.caller),
    webhookDeliveries: (_p, a, c) => service.deliveries(c.caller, str(a.applicationID), optNum(a.first), optStr(a.after)).then(page),
  };

  const Mutation: Record<string, Resolver> = {
    setDirectorSettings: (_p, a, c) => service.setSettings(c.caller, a.in),
    registerApplication: async (_p, a, c) => {
      const { row, signingSecrets } = await service.registerApplication(c.caller, a.in);
      for (const [k, v] of signingSecrets) c.signingSecrets.set(k, v);
      return row;
    },
    updateApplication: (_p, a, c) => service.updateApplication(c.caller, str(a.id), a.in),
    unregisterApplication: (_p, a, c) => service.unregisterApplication(c.caller, str(a.id)),
    registerRuntime: (_p, a, c) => service.registerRuntime(c.caller, a.in),
    updateRuntime: (_p, a, c) => service.updateRuntime(c.caller, str(a.id), a.in),
    setRuntimeStatus: (_p, a, c) => service.setRuntimeStatus(c.caller, str(a.id), str(a.condition)),
    unregisterRuntime: (_p, a, c) => service.unregisterRuntime(c.caller, str(a.id)),
    addWebhook: async (_p, a, c) => {
      const { row, signingSecret } = await service.addWebhook(c.caller, str(a.applicationID), a.in);
      c.signingSecrets.set(row.id, signingSecret);
      return row;
    },
    updateWebhook: (_p, a, c) => service.updateWebhook(c.caller, str(a.webhookID), a.in),
    deleteWebhook: (_p, a, c) => service.deleteWebhook(c.caller, str(a.webhookID)),
    addAPIDefinition: (_p, a, c) => service.addDefinition(c.caller, 'api', str(a.applicationID), a.in),
    updateAPIDefinition: (_p, a, c) => service.updateDefinition(c.caller, 'api', str(a.id), a.in),
    deleteAPIDefinition: (_p, a, c) => service.deleteDefinition(c.caller, 'api', str(a.id)),
    refetchAPISpec: async (_p, a, c) => specView(await service.refetchSpec(c.caller, 'api', str(a.apiID))),
    addEventDefinition: (_p, a, c) => service.addDefinition(c.caller, 'event', str(a.applicationID), a.in),
    updateEventDefinition: (_p, a, c) => service.updateDefinition(c.caller, 'event', str(a.id), a.in),
    deleteEventDefinition: (_p, a, c) => service.deleteDefinition(c.caller, 'event', str(a.id)),
    refetchEventDefinitionSpec: async (_p, a, c) => specView(await service.refetchSpec(c.caller, 'event', str(a.eventID))),
    setAPIAuth: async (_p, a, c) => {
      const { api } = await service.setApiAuth(c.caller, str(a.apiID), str(a.runtimeID), a.in);
      return service.apiAuthFor(c.caller, api, str(a.runtimeID));
    },
    deleteAPIAuth: async (_p, a, c) => {
      const row = await service.deleteApiAuth(c.caller, str(a.apiID), str(a.runtimeID));
      return { runtimeID: row.runtime_id, auth: row.auth, status: 'SET' };
    },
    addDocument: (_p, a, c) => service.addDocument(c.caller, str(a.applicationID), a.in),
    deleteDocument: (_p, a, c) => service.deleteDocument(c.caller, str(a.id)),
    createLabelDefinition: (_p, a, c) => service.createLabelDefinition(c.caller, a.in),
    updateLabelDefinition: (_p, a, c) => service.updateLabelDefinition(c.caller, a.in),
    deleteLabelDefinition: (_p, a, c) => service.deleteLabelDefinition(c.caller, str(a.key), a.deleteRelatedLabels === true),
    setApplicationLabel: (_p, a, c) => service.setApplicationLabel(c.caller, str(a.applicationID), str(a.key), a.value),
    deleteApplicationLabel: (_p, a, c) => service.deleteApplicationLabel(c.caller, str(a.applicationID), str(a.key)),
    setRuntimeLabel: (_p, a, c) => service.setRuntimeLabel(c.caller, str(a.runtimeID), str(a.key), a.value),
    deleteRuntimeLabel: (_p, a, c) => service.deleteRuntimeLabel(c.caller, str(a.runtimeID), str(a.key)),
    setDefaultEventingForApplication: async (_p, a, c) => ({ defaultURL: await service.setDefaultEventing(c.caller, str(a.appID), str(a.runtimeID)) }),
    deleteDefaultEventingForApplication: async (_p, a, c) => ({ defaultURL: await service.deleteDefaultEventing(c.caller, str(a.appID)) }),
    requestClientCredentialsForApplication: async (_p, a, c) => {
      const issued = await service.requestClientCredentials(c.caller, 'application', str(a.id));
      return { id: issued.id, auth: bearerAuth(issued.token) };
    },
    requestClientCredentialsForRuntime: async (_p, a, c) => {
      const issued = await service.requestClientCredentials(c.caller, 'runtime', str(a.id));
      return { id: issued.id, auth: bearerAuth(issued.token) };
    },
    deleteSystemAuthForApplication: async (_p, a, c) => ({ id: (await service.deleteSystemAuth(c.caller, 'application', str(a.authID))).id, auth: null }),
    deleteSystemAuthForRuntime: async (_p, a, c) => ({ id: (await service.deleteSystemAuth(c.caller, 'runtime', str(a.authID))).id, auth: null }),
    requestOneTimeTokenForApplication: async (_p, a, c) => oneTimeTokenView(await service.requestOneTimeToken(c.caller, 'application', str(a.id))),
    requestOneTimeTokenForRuntime: async (_p, a, c) => oneTimeTokenView(await service.requestOneTimeToken(c.caller, 'runtime', str(a.id))),
    revokeApplicationCertificates: (_p, a, c) => service.revokeCertificates(c.caller, 'application', str(a.id)),
    revokeRuntimeCertificates: (_p, a, c) => service.revokeCertificates(c.caller, 'runtime', str(a.id)),
  };

  const pageType = { totalCount: (p: Page<unknown>) => p.totalCount() };
  const labelsField = (labels: Record<string, unknown>, key: unknown) => (typeof key === 'string' ? (key in labels ? { [key]: labels[key] } : {}) : labels);

  return {
    Any: jsonScalar('Any', 'Any JSON value'),
    Labels: jsonScalar('Labels', 'Labels'),
    HttpHeaders: jsonScalar('HttpHeaders', 'HTTP headers'),
    QueryParams: jsonScalar('QueryParams', 'Query parameters'),
    JSONSchema: JSONSchemaScalar,
    CLOB: stringScalar('CLOB'),
    PageCursor: stringScalar('PageCursor'),
    Timestamp: stringScalar('Timestamp'),
    Query: Object.fromEntries(Object.entries(Query).map(([k, fn]) => [k, guard('Query', k, fn)])),
    Mutation: Object.fromEntries(Object.entries(Mutation).map(([k, fn]) => [k, guard('Mutation', k, fn)])),
    CredentialData: {
      resolveType: (v: Record<string, unknown>) => ('username' in v ? 'BasicCredentialData' : 'clientId' in v ? 'OAuthCredentialData' : 'BearerTokenCredentialData'),
    },
    ApplicationPage: pageType,
    RuntimePage: pageType,
    APIDefinitionPage: pageType,
    EventDefinitionPage: pageType,
    DocumentPage: pageType,
    HealthCheckPage: pageType,
    WebhookDeliveryPage: pageType,
    Application: {
      providerName: (r: repo.ApplicationRow) => r.provider_name,
      integrationSystemID: () => null,
      integrationLevel: (r: repo.ApplicationRow) => r.integration_level,
      labels: (r: repo.ApplicationRow, a: Args) => labelsField(r.labels, a.key),
      status: (r: repo.ApplicationRow) => status(r.status_condition, r.status_timestamp),
      healthCheckURL: (r: repo.ApplicationRow) => r.health_check_url,
      webhooks: (r: repo.ApplicationRow, _a: Args, c: DirectorContext) => c.loaders.webhooks(r),
      apiDefinitions: (r: repo.ApplicationRow, a: Args, c: DirectorContext) => c.loaders.apiDefinitions(r, a),
      eventDefinitions: (r: repo.ApplicationRow, a: Args, c: DirectorContext) => c.loaders.eventDefinitions(r, a),
      documents: (r: repo.ApplicationRow, a: Args, c: DirectorContext) => c.loaders.documents(r, a),
      apiDefinition: (r: repo.ApplicationRow, a: Args, c: DirectorContext) => service.definitionOfApplication(c.caller, r, 'api', str(a.id)),
      eventDefinition: (r: repo.ApplicationRow, a: Args, c: DirectorContext) => service.definitionOfApplication(c.caller, r, 'event', str(a.id)),
      auths: async (r: repo.ApplicationRow, _a: Args, c: DirectorContext) => (await service.systemAuths(c.caller, 'application', r.id)).map((s) => ({ id: s.id, auth: null })),
      eventingConfiguration: async (r: repo.ApplicationRow, _a: Args, c: DirectorContext) => ({ defaultURL: await service.applicationEventingUrl(c.caller.principal.tenantId, r) }),
      oneTimeToken: async (r: repo.ApplicationRow, _a: Args, c: DirectorContext) => tokenStatusView(await service.oneTimeTokenStatus(c.caller, 'application', r.id)),
    },
    APIDefinition: {
      applicationID: (r: repo.DefinitionRow) => r.application_id,
      targetURL: (r: repo.DefinitionRow) => r.target_url,
      group: (r: repo.DefinitionRow) => r.group_name,
      spec: (r: repo.DefinitionRow) => specView(r),
      version: (r: repo.DefinitionRow) => r.version,
      auth: (r: repo.DefinitionRow, a: Args, c: DirectorContext) => service.apiAuthFor(c.caller, r, str(a.runtimeID)),
      auths: (r: repo.DefinitionRow, _a: Args, c: DirectorContext) => service.apiAuths(c.caller, r),
      defaultAuth: (r: repo.DefinitionRow, _a: Args, c: DirectorContext) => service.defaultAuthOf(c.caller, r),
    },
    EventDefinition: {
      applicationID: (r: repo.DefinitionRow) => r.application_id,
      group: (r: repo.DefinitionRow) => r.group_name,
      spec: (r: repo.DefinitionRow) => specView(r),
      version: (r: repo.DefinitionRow) => r.version,
    },
    Document: {
      applicationID: (r: repo.DocumentRow) => r.application_id,
      displayName: (r: repo.DocumentRow) => r.display_name,
      fetchRequest: (r: repo.DocumentRow) => fetchRequestView(r),
    },
    Webhook: {
      applicationID: (r: repo.WebhookRow) => r.application_id,
      signingSecret: (r: repo.WebhookRow, _a: Args, c: DirectorContext) => c.signingSecrets.get(r.id) ?? null,
    },
    WebhookDelivery: {
      webhookID: (r: repo.DeliveryRow) => r.webhook_id,
      applicationID: (r: repo.DeliveryRow) => r.application_id,
      messageID: (r: repo.DeliveryRow) => r.message_id,
      runtimeID: (r: repo.DeliveryRow) => r.runtime_id,
      httpStatus: (r: repo.DeliveryRow) => r.http_status,
      nextAttemptAt: (r: repo.DeliveryRow) => r.next_attempt_at?.toISOString() ?? null,
      createdAt: (r: repo.DeliveryRow) => r.created_at.toISOString(),
      updatedAt: (r: repo.DeliveryRow) => r.updated_at.toISOString(),
    },
    Runtime: {
      metadata: (r: repo.RuntimeRow) => ({ creationTimestamp: r.created_at.toISOString() }),
      labels: (r: repo.RuntimeRow, a: Args) => labelsField(r.labels, a.key),
      status: (r: repo.RuntimeRow) => status(r.status_condition, r.status_timestamp),
      auths: async (r: repo.RuntimeRow, _a: Args, c: DirectorContext) => (await service.systemAuths(c.caller, 'runtime', r.id)).map((s) => ({ id: s.id, auth: null })),
      eventingConfiguration: async (r: repo.RuntimeRow) => ({ defaultURL: await service.runtimeEventingUrl(r) }),
      applicationsWaitingForCredentials: (r: repo.RuntimeRow, _a: Args, c: DirectorContext) => service.applicationsWaitingForCredentials(c.caller, r),
      oneTimeToken: async (r: repo.RuntimeRow, _a: Args, c: DirectorContext) => tokenStatusView(await service.oneTimeTokenStatus(c.caller, 'runtime', r.id)),
    },
  };
}
