/**
 * The Director's GraphQL API (`POST /director/graphql`) as a small typed client: each operation
 * is a fixed document with the TypeScript types of its variables and of exactly the fields it
 * selects. `director.test.ts` validates every document against `director.schema.graphql`, so a
 * field the schema does not have, or a wrong argument type, fails the unit tests rather than a
 * screen. No GraphQL framework: the cockpit needs no normalised cache — a page reads what it
 * shows and reads it again after a change, as the REST pages do.
 *
 * Errors become the same `ApiError` the REST client throws, named by the Director's
 * `extensions.code` (NOT_FOUND, CONFLICT, VALIDATION_FAILED, FORBIDDEN…) with its message, and a
 * 401 on a call that carried the session's token ends the session.
 */
import { ApiError, authHeaders, reportUnauthorized } from './client';

/** A GraphQL document with the types of its variables and its answer (phantom fields). */
export interface Operation<Vars, Result> {
  readonly document: string;
  readonly name: string;
  /** Never set: carries the types only. */
  readonly _types?: { vars: Vars; result: Result };
}

function op<Vars, Result>(name: string, document: string): Operation<Vars, Result> {
  return { name, document };
}

/** The status each `error_code` stands for (the Director answers 200 with errors, as GraphQL does). */
const STATUS_BY_CODE: Record<number, number> = { 10: 500, 20: 404, 21: 409, 22: 400, 23: 403, 24: 400, 25: 404, 26: 401, 27: 409 };
/** Names for codes that arrive without `extensions.code` (a Compass-era error). */
const NAME_BY_CODE: Record<number, string> = {
  10: 'INTERNAL',
  20: 'NOT_FOUND',
  21: 'NOT_UNIQUE',
  22: 'INVALID_DATA',
  23: 'INSUFFICIENT_SCOPES',
  24: 'TENANT_REQUIRED',
  25: 'TENANT_NOT_FOUND',
  26: 'UNAUTHORIZED',
  27: 'INVALID_OPERATION',
};

interface GraphqlError {
  message?: string;
  path?: Array<string | number>;
  extensions?: { error_code?: number; code?: string };
}

export function graphqlError(httpStatus: number, errors: GraphqlError[] | undefined): ApiError {
  const first = errors?.[0];
  const num = first?.extensions?.error_code;
  const status = httpStatus >= 400 ? httpStatus : ((num !== undefined ? STATUS_BY_CODE[num] : undefined) ?? 400);
  const code = first?.extensions?.code ?? (num !== undefined ? NAME_BY_CODE[num] : undefined) ?? `HTTP_${httpStatus}`;
  const message = first?.message ?? `request failed with status ${httpStatus}`;
  const more = (errors ?? []).slice(1).map((e) => e.message ?? '');
  return new ApiError(status, code, message, more.length ? { problems: [message, ...more] } : undefined);
}

/** Runs one operation; resolves with its data, or throws an ApiError naming what the Director said. */
export async function gql<V, R>(operation: Operation<V, R>, variables: V): Promise<R> {
  const headers = authHeaders();
  const res = await fetch('/director/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query: operation.document, variables, operationName: operation.name }),
  });
  if (res.status === 401 && headers.authorization) reportUnauthorized();
  let body: { data?: R | null; errors?: GraphqlError[] } | undefined;
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError(res.status, `HTTP_${res.status}`, `the Director answered ${res.status} without JSON`);
  }
  if (!res.ok || body?.errors?.length || !body?.data) throw graphqlError(res.status, body?.errors);
  return body.data;
}

// ------------------------------------------------------------------------------ types

export type Labels = Record<string, unknown>;
export interface LabelFilter {
  key: string;
  query?: string;
}
export interface PageInfo {
  endCursor: string;
  hasNextPage: boolean;
}
export interface Status {
  condition: string;
  timestamp: string;
}
export type IntegrationLevel = 'BASIC' | 'APPLICATION' | 'PROXY' | 'SERVICE';
export const INTEGRATION_LEVELS: readonly IntegrationLevel[] = ['BASIC', 'APPLICATION', 'PROXY', 'SERVICE'];
export const RUNTIME_CONDITIONS = ['INITIAL', 'PROVISIONING', 'CONNECTED', 'READY', 'FAILED'] as const;
export type RuntimeCondition = (typeof RUNTIME_CONDITIONS)[number];
export type SpecFormat = 'YAML' | 'JSON' | 'XML';

export interface ApplicationSummary {
  id: string;
  name: string;
  providerName: string | null;
  description: string | null;
  integrationLevel: IntegrationLevel;
  labels: Labels | null;
  status: Status;
  apiDefinitions: { totalCount: number } | null;
  eventDefinitions: { totalCount: number } | null;
}

export interface FetchRequest {
  url: string;
  mode: string;
  filter: string | null;
  status: { condition: string; timestamp: string; message: string | null };
}

export interface Spec {
  data: string | null;
  type: string;
  format: SpecFormat;
  fetchRequest: FetchRequest | null;
  validation: { valid: boolean; problems: Array<{ message: string; path: string }> } | null;
}

export interface Version {
  value: string;
  deprecated: boolean | null;
  deprecatedSince: string | null;
  forRemoval: boolean | null;
}

export interface APIDefinition {
  id: string;
  name: string;
  description: string | null;
  targetURL: string;
  group: string | null;
  version: Version | null;
  spec: Spec | null;
  /** Masked for everyone but a runtime: only who / where is shown. */
  defaultAuth: { credential: { username?: string; clientId?: string; url?: string } } | null;
}

export interface EventDefinition {
  id: string;
  name: string;
  description: string | null;
  group: string | null;
  version: Version | null;
  spec: Spec | null;
}

export interface Document {
  id: string;
  title: string;
  displayName: string;
  description: string;
  format: string;
  kind: string | null;
  data: string | null;
  fetchRequest: FetchRequest | null;
}

export interface Webhook {
  id: string;
  type: string;
  url: string;
  signingSecret: string | null;
}

export interface Application extends ApplicationSummary {
  healthCheckURL: string | null;
  eventingConfiguration: { defaultURL: string } | null;
  webhooks: Webhook[] | null;
  apiDefinitions: { totalCount: number; data: APIDefinition[] } | null;
  eventDefinitions: { totalCount: number; data: EventDefinition[] } | null;
  documents: { totalCount: number; data: Document[] } | null;
  auths: Array<{ id: string }> | null;
  oneTimeToken: OneTimeTokenStatus | null;
}

export interface WebhookDelivery {
  id: string;
  webhookID: string;
  messageID: string;
  runtimeID: string | null;
  status: 'PENDING' | 'SUCCEEDED' | 'FAILED';
  attempts: number;
  httpStatus: number | null;
  error: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
}

export interface RuntimeSummary {
  id: string;
  name: string;
  description: string | null;
  labels: Labels | null;
  status: Status;
  metadata: { creationTimestamp: string };
}

export interface Runtime extends RuntimeSummary {
  eventingConfiguration: { defaultURL: string } | null;
  applicationsWaitingForCredentials: string[];
  auths: Array<{ id: string }> | null;
  oneTimeToken: OneTimeTokenStatus | null;
}

/** A pairing token as requested: the token itself is in this answer only. */
export interface OneTimeToken {
  token: string;
  connectorURL: string;
  expiresAt: string;
  used: boolean;
}

/** The newest pairing token of an object, as anyone who may see the object sees it later (never the token). */
export interface OneTimeTokenStatus {
  createdAt: string;
  expiresAt: string;
  used: boolean;
  usedAt: string | null;
  invalidated: boolean;
  expired: boolean;
}

export interface LabelDefinition {
  key: string;
  /** A JSON Schema (object) or a JSON-encoded one (Compass clients send strings). */
  schema: unknown;
}

/** A credential standing for an application or runtime, as issued: its bearer token, shown once. */
export interface IssuedAuth {
  id: string;
  auth: { credential: { token?: string } } | null;
}

export interface Label {
  key: string;
  value: unknown;
}

export interface ApplicationInput {
  name: string;
  providerName?: string;
  description?: string;
  healthCheckURL?: string;
  integrationLevel?: IntegrationLevel;
  labels?: Labels;
}

export interface SpecInput {
  type: string;
  format: SpecFormat;
  data?: string;
  fetchRequest?: { url: string };
}

export interface AuthInput {
  credential: { basic?: { username: string; password: string }; oauth?: { clientId: string; clientSecret: string; url: string } };
}

export interface APIDefinitionInput {
  defaultAuth?: AuthInput;
  name: string;
  description?: string;
  targetURL: string;
  group?: string;
  version?: { value: string };
  spec?: SpecInput;
}

export interface EventDefinitionInput {
  name: string;
  description?: string;
  group?: string;
  version?: { value: string };
  spec?: SpecInput;
}

export interface DocumentInput {
  title: string;
  displayName: string;
  description: string;
  format: 'MARKDOWN';
  kind?: string;
  data?: string;
  fetchRequest?: { url: string };
}

interface Paged<T> {
  totalCount: number;
  pageInfo: PageInfo;
  data: T[];
}

// ------------------------------------------------------------------------------ fields

const SPEC = `data type format validation { valid problems { message path } }
  fetchRequest { url mode filter status { condition timestamp message } }`;
const VERSION = `version { value deprecated deprecatedSince forRemoval }`;
const APP_SUMMARY = `id name providerName description integrationLevel labels status { condition timestamp }
  apiDefinitions(first: 1) { totalCount } eventDefinitions(first: 1) { totalCount }`;
const TOKEN_STATUS = `oneTimeToken { createdAt expiresAt used usedAt invalidated expired }`;
const APP_DETAIL = `id name providerName description integrationLevel labels status { condition timestamp }
  healthCheckURL eventingConfiguration { defaultURL } auths { id } ${TOKEN_STATUS}
  webhooks { id type url signingSecret }
  apiDefinitions(first: 100) { totalCount data { id name description targetURL group ${VERSION} spec { ${SPEC} }
    defaultAuth { credential { ... on BasicCredentialData { username } ... on OAuthCredentialData { clientId url } } } } }
  eventDefinitions(first: 100) { totalCount data { id name description group ${VERSION} spec { ${SPEC} } } }
  documents(first: 100) { totalCount data { id title displayName description format kind data
    fetchRequest { url mode filter status { condition timestamp message } } } }`;
const RUNTIME_SUMMARY = `id name description labels status { condition timestamp } metadata { creationTimestamp }`;
const RUNTIME_DETAIL = `${RUNTIME_SUMMARY} eventingConfiguration { defaultURL } applicationsWaitingForCredentials auths { id } ${TOKEN_STATUS}`;

// ------------------------------------------------------------------------------ operations

export const Q = {
  applications: op<{ filter: LabelFilter[]; first: number; after: string }, { applications: Paged<ApplicationSummary> }>(
    'CockpitApplications',
    `query CockpitApplications($filter: [LabelFilter!], $first: Int, $after: PageCursor) {
      applications(filter: $filter, first: $first, after: $after) { totalCount pageInfo { endCursor hasNextPage } data { ${APP_SUMMARY} } } }`,
  ),
  application: op<{ id: string }, { application: Application | null }>(
    'CockpitApplication',
    `query CockpitApplication($id: ID!) { application(id: $id) { ${APP_DETAIL} } }`,
  ),
  webhookDeliveries: op<{ applicationID: string; first: number }, { webhookDeliveries: Paged<WebhookDelivery> }>(
    'CockpitWebhookDeliveries',
    `query CockpitWebhookDeliveries($applicationID: ID!, $first: Int) {
      webhookDeliveries(applicationID: $applicationID, first: $first) { totalCount pageInfo { endCursor hasNextPage }
        data { id webhookID messageID runtimeID status attempts httpStatus error nextAttemptAt createdAt } } }`,
  ),
  runtimes: op<{ filter: LabelFilter[]; first: number; after: string }, { runtimes: Paged<RuntimeSummary> }>(
    'CockpitRuntimes',
    `query CockpitRuntimes($filter: [LabelFilter!], $first: Int, $after: PageCursor) {
      runtimes(filter: $filter, first: $first, after: $after) { totalCount pageInfo { endCursor hasNextPage } data { ${RUNTIME_SUMMARY} } } }`,
  ),
  runtime: op<{ id: string }, { runtime: Runtime | null }>('CockpitRuntime', `query CockpitRuntime($id: ID!) { runtime(id: $id) { ${RUNTIME_DETAIL} } }`),
  applicationsForRuntime: op<{ runtimeID: string }, { applicationsForRuntime: Paged<ApplicationSummary> }>(
    'CockpitApplicationsForRuntime',
    `query CockpitApplicationsForRuntime($runtimeID: ID!) {
      applicationsForRuntime(runtimeID: $runtimeID, first: 100) { totalCount pageInfo { endCursor hasNextPage } data { ${APP_SUMMARY} } } }`,
  ),
  labelDefinitions: op<Record<string, never>, { labelDefinitions: LabelDefinition[] }>(
    'CockpitLabelDefinitions',
    `query CockpitLabelDefinitions { labelDefinitions { key schema } }`,
  ),
  scenarios: op<Record<string, never>, { labelDefinition: LabelDefinition | null }>(
    'CockpitScenarios',
    `query CockpitScenarios { labelDefinition(key: "scenarios") { key schema } }`,
  ),
  directorSettings: op<Record<string, never>, { directorSettings: { specValidation: 'LENIENT' | 'STRICT'; specValidationOverride: 'LENIENT' | 'STRICT' | null } }>(
    'CockpitDirectorSettings',
    `query CockpitDirectorSettings { directorSettings { specValidation specValidationOverride } }`,
  ),
} as const;

export const M = {
  registerApplication: op<{ in: ApplicationInput }, { registerApplication: { id: string; name: string } }>(
    'CockpitRegisterApplication',
    `mutation CockpitRegisterApplication($in: ApplicationRegisterInput!) { registerApplication(in: $in) { id name } }`,
  ),
  updateApplication: op<{ id: string; in: Omit<ApplicationInput, 'labels'> }, { updateApplication: { id: string } }>(
    'CockpitUpdateApplication',
    `mutation CockpitUpdateApplication($id: ID!, $in: ApplicationUpdateInput!) { updateApplication(id: $id, in: $in) { id } }`,
  ),
  unregisterApplication: op<{ id: string }, { unregisterApplication: { id: string; name: string } }>(
    'CockpitUnregisterApplication',
    `mutation CockpitUnregisterApplication($id: ID!) { unregisterApplication(id: $id) { id name } }`,
  ),
  setApplicationLabel: op<{ id: string; key: string; value: unknown }, { setApplicationLabel: Label }>(
    'CockpitSetApplicationLabel',
    `mutation CockpitSetApplicationLabel($id: ID!, $key: String!, $value: Any!) { setApplicationLabel(applicationID: $id, key: $key, value: $value) { key value } }`,
  ),
  deleteApplicationLabel: op<{ id: string; key: string }, { deleteApplicationLabel: Label }>(
    'CockpitDeleteApplicationLabel',
    `mutation CockpitDeleteApplicationLabel($id: ID!, $key: String!) { deleteApplicationLabel(applicationID: $id, key: $key) { key value } }`,
  ),
  addAPIDefinition: op<{ id: string; in: APIDefinitionInput }, { addAPIDefinition: { id: string } }>(
    'CockpitAddAPIDefinition',
    `mutation CockpitAddAPIDefinition($id: ID!, $in: APIDefinitionInput!) { addAPIDefinition(applicationID: $id, in: $in) { id } }`,
  ),
  deleteAPIDefinition: op<{ id: string }, { deleteAPIDefinition: { id: string } }>(
    'CockpitDeleteAPIDefinition',
    `mutation CockpitDeleteAPIDefinition($id: ID!) { deleteAPIDefinition(id: $id) { id } }`,
  ),
  refetchAPISpec: op<{ id: string }, { refetchAPISpec: { type: string } }>(
    'CockpitRefetchAPISpec',
    `mutation CockpitRefetchAPISpec($id: ID!) { refetchAPISpec(apiID: $id) { type } }`,
  ),
  addEventDefinition: op<{ id: string; in: EventDefinitionInput }, { addEventDefinition: { id: string } }>(
    'CockpitAddEventDefinition',
    `mutation CockpitAddEventDefinition($id: ID!, $in: EventDefinitionInput!) { addEventDefinition(applicationID: $id, in: $in) { id } }`,
  ),
  deleteEventDefinition: op<{ id: string }, { deleteEventDefinition: { id: string } }>(
    'CockpitDeleteEventDefinition',
    `mutation CockpitDeleteEventDefinition($id: ID!) { deleteEventDefinition(id: $id) { id } }`,
  ),
  refetchEventDefinitionSpec: op<{ id: string }, { refetchEventDefinitionSpec: { type: string } }>(
    'CockpitRefetchEventSpec',
    `mutation CockpitRefetchEventSpec($id: ID!) { refetchEventDefinitionSpec(eventID: $id) { type } }`,
  ),
  addDocument: op<{ id: string; in: DocumentInput }, { addDocument: { id: string } }>(
    'CockpitAddDocument',
    `mutation CockpitAddDocument($id: ID!, $in: DocumentInput!) { addDocument(applicationID: $id, in: $in) { id } }`,
  ),
  deleteDocument: op<{ id: string }, { deleteDocument: { id: string } }>(
    'CockpitDeleteDocument',
    `mutation CockpitDeleteDocument($id: ID!) { deleteDocument(id: $id) { id } }`,
  ),
  addWebhook: op<{ id: string; url: string }, { addWebhook: Webhook }>(
    'CockpitAddWebhook',
    `mutation CockpitAddWebhook($id: ID!, $url: String!) { addWebhook(applicationID: $id, in: {type: CONFIGURATION_CHANGED, url: $url}) { id type url signingSecret } }`,
  ),
  deleteWebhook: op<{ id: string }, { deleteWebhook: { id: string } }>(
    'CockpitDeleteWebhook',
    `mutation CockpitDeleteWebhook($id: ID!) { deleteWebhook(webhookID: $id) { id } }`,
  ),
  registerRuntime: op<{ in: { name: string; description?: string; labels?: Labels } }, { registerRuntime: { id: string; name: string } }>(
    'CockpitRegisterRuntime',
    `mutation CockpitRegisterRuntime($in: RuntimeInput!) { registerRuntime(in: $in) { id name } }`,
  ),
  // Compass semantics: the input replaces the runtime's labels too, so the caller sends them back.
  updateRuntime: op<{ id: string; in: { name: string; description?: string; labels?: Labels } }, { updateRuntime: { id: string } }>(
    'CockpitUpdateRuntime',
    `mutation CockpitUpdateRuntime($id: ID!, $in: RuntimeInput!) { updateRuntime(id: $id, in: $in) { id } }`,
  ),
  setDirectorSettings: op<{ specValidation: 'LENIENT' | 'STRICT' | null }, { setDirectorSettings: { specValidation: string } }>(
    'CockpitSetDirectorSettings',
    `mutation CockpitSetDirectorSettings($specValidation: SpecValidationMode) { setDirectorSettings(in: {specValidation: $specValidation}) { specValidation } }`,
  ),
  requestRuntimeCredentials: op<{ id: string }, { requestClientCredentialsForRuntime: IssuedAuth }>(
    'CockpitRequestRuntimeCredentials',
    `mutation CockpitRequestRuntimeCredentials($id: ID!) { requestClientCredentialsForRuntime(id: $id) { id auth { credential { ... on BearerTokenCredentialData { token } } } } }`,
  ),
  deleteRuntimeAuth: op<{ id: string }, { deleteSystemAuthForRuntime: { id: string } }>(
    'CockpitDeleteRuntimeAuth',
    `mutation CockpitDeleteRuntimeAuth($id: ID!) { deleteSystemAuthForRuntime(authID: $id) { id } }`,
  ),
  requestApplicationCredentials: op<{ id: string }, { requestClientCredentialsForApplication: IssuedAuth }>(
    'CockpitRequestApplicationCredentials',
    `mutation CockpitRequestApplicationCredentials($id: ID!) { requestClientCredentialsForApplication(id: $id) { id auth { credential { ... on BearerTokenCredentialData { token } } } } }`,
  ),
  deleteApplicationAuth: op<{ id: string }, { deleteSystemAuthForApplication: { id: string } }>(
    'CockpitDeleteApplicationAuth',
    `mutation CockpitDeleteApplicationAuth($id: ID!) { deleteSystemAuthForApplication(authID: $id) { id } }`,
  ),
  requestApplicationToken: op<{ id: string }, { requestOneTimeTokenForApplication: OneTimeToken }>(
    'CockpitRequestApplicationToken',
    `mutation CockpitRequestApplicationToken($id: ID!) { requestOneTimeTokenForApplication(id: $id) { token connectorURL expiresAt used } }`,
  ),
  requestRuntimeToken: op<{ id: string }, { requestOneTimeTokenForRuntime: OneTimeToken }>(
    'CockpitRequestRuntimeToken',
    `mutation CockpitRequestRuntimeToken($id: ID!) { requestOneTimeTokenForRuntime(id: $id) { token connectorURL expiresAt used } }`,
  ),
  unregisterRuntime: op<{ id: string }, { unregisterRuntime: { id: string; name: string } }>(
    'CockpitUnregisterRuntime',
    `mutation CockpitUnregisterRuntime($id: ID!) { unregisterRuntime(id: $id) { id name } }`,
  ),
  setRuntimeStatus: op<{ id: string; condition: RuntimeCondition }, { setRuntimeStatus: { id: string } }>(
    'CockpitSetRuntimeStatus',
    `mutation CockpitSetRuntimeStatus($id: ID!, $condition: RuntimeStatusCondition!) { setRuntimeStatus(id: $id, condition: $condition) { id } }`,
  ),
  setRuntimeLabel: op<{ id: string; key: string; value: unknown }, { setRuntimeLabel: Label }>(
    'CockpitSetRuntimeLabel',
    `mutation CockpitSetRuntimeLabel($id: ID!, $key: String!, $value: Any!) { setRuntimeLabel(runtimeID: $id, key: $key, value: $value) { key value } }`,
  ),
  deleteRuntimeLabel: op<{ id: string; key: string }, { deleteRuntimeLabel: Label }>(
    'CockpitDeleteRuntimeLabel',
    `mutation CockpitDeleteRuntimeLabel($id: ID!, $key: String!) { deleteRuntimeLabel(runtimeID: $id, key: $key) { key value } }`,
  ),
  createLabelDefinition: op<{ key: string; schema: unknown }, { createLabelDefinition: LabelDefinition }>(
    'CockpitCreateLabelDefinition',
    `mutation CockpitCreateLabelDefinition($key: String!, $schema: JSONSchema) { createLabelDefinition(in: {key: $key, schema: $schema}) { key schema } }`,
  ),
  updateLabelDefinition: op<{ key: string; schema: unknown }, { updateLabelDefinition: LabelDefinition }>(
    'CockpitUpdateLabelDefinition',
    `mutation CockpitUpdateLabelDefinition($key: String!, $schema: JSONSchema) { updateLabelDefinition(in: {key: $key, schema: $schema}) { key schema } }`,
  ),
  deleteLabelDefinition: op<{ key: string; deleteRelatedLabels: boolean }, { deleteLabelDefinition: LabelDefinition }>(
    'CockpitDeleteLabelDefinition',
    `mutation CockpitDeleteLabelDefinition($key: String!, $deleteRelatedLabels: Boolean) { deleteLabelDefinition(key: $key, deleteRelatedLabels: $deleteRelatedLabels) { key schema } }`,
  ),
} as const;

// ------------------------------------------------------------------------------ helpers

/** A label definition's schema as an object (Compass clients store JSON-encoded strings). */
export function schemaObject(schema: unknown): Record<string, unknown> | undefined {
  if (typeof schema === 'string') {
    try {
      const parsed: unknown = JSON.parse(schema);
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
  return schema && typeof schema === 'object' ? (schema as Record<string, unknown>) : undefined;
}

/** The scenarios a tenant has: the enum of the `scenarios` label definition (DEFAULT always). */
export function scenariosOf(definition: LabelDefinition | null | undefined): string[] {
  const s = schemaObject(definition?.schema);
  const items = s?.items as { enum?: unknown } | undefined;
  const list = Array.isArray(items?.enum) ? items.enum : Array.isArray(s?.enum) ? s.enum : ['DEFAULT'];
  return list.filter((x): x is string => typeof x === 'string');
}

/** The scenarios schema with `scenarios` as its enum (keeping everything else the definition says). */
export function withScenarios(definition: LabelDefinition | null | undefined, scenarios: string[]): Record<string, unknown> {
  const s = schemaObject(definition?.schema) ?? { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string' } };
  const items = (s.items && typeof s.items === 'object' ? s.items : { type: 'string' }) as Record<string, unknown>;
  return { ...s, items: { ...items, enum: scenarios } };
}

/** The scenarios label of an object. */
export function scenarioLabel(labels: Labels | null | undefined): string[] {
  const v = labels?.scenarios;
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * A label filter from what a person types: `key` alone (has the label), `key=value` (the label
 * is or contains the value: a JSON value as written, otherwise the text as a string).
 */
export function parseLabelFilter(text: string): LabelFilter | undefined {
  const t = text.trim();
  if (!t) return undefined;
  const eq = t.indexOf('=');
  if (eq < 0) return { key: t };
  const key = t.slice(0, eq).trim();
  const raw = t.slice(eq + 1).trim();
  if (!key) return undefined;
  if (!raw) return { key };
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    /* plain text: a string */
  }
  return { key, query: JSON.stringify(value) };
}

/** A label value from a form field: JSON when it parses as JSON, else the text itself. */
export function parseLabelValue(text: string): unknown {
  const t = text.trim();
  try {
    return JSON.parse(t);
  } catch {
    return t;
  }
}
