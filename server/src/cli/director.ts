/**
 * The Director's GraphQL API (`POST /director/graphql`) as typed calls: each operation is a
 * fixed document with variables, and each answer is parsed with a zod schema of exactly the
 * fields it selects. Errors become `ApiError` with the status their `error_code` stands for.
 */
import { z } from 'zod';
import { ApiError, CliError, STATUS_BY_GRAPHQL_CODE } from './errors.js';

const Labels = z.record(z.string(), z.unknown()).nullable();
const Status = z.object({ condition: z.string(), timestamp: z.string() });
const PageInfo = z.object({ endCursor: z.string(), hasNextPage: z.boolean() });
const Webhook = z.object({ id: z.string(), type: z.string(), url: z.string() });
const DefinitionSummary = z.object({ id: z.string(), name: z.string() });
const Count = <T extends z.ZodType>(item: T) => z.object({ totalCount: z.number().int(), data: z.array(item) }).nullable();

export const Application = z.object({
  id: z.string(),
  name: z.string(),
  providerName: z.string().nullable(),
  description: z.string().nullable(),
  integrationLevel: z.string(),
  labels: Labels,
  status: Status,
  healthCheckURL: z.string().nullable(),
  webhooks: z.array(Webhook).nullable(),
  apiDefinitions: Count(DefinitionSummary),
  eventDefinitions: Count(DefinitionSummary),
});
export type Application = z.infer<typeof Application>;

export const Runtime = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  labels: Labels,
  status: Status,
  metadata: z.object({ creationTimestamp: z.string() }),
  eventingConfiguration: z.object({ defaultURL: z.string() }).nullable(),
  applicationsWaitingForCredentials: z.array(z.string()),
});
export type Runtime = z.infer<typeof Runtime>;

/** A credential standing for an application or runtime: a bearer token, shown once. */
export const SystemAuth = z.object({ id: z.string(), auth: z.object({ credential: z.object({ token: z.string() }) }) });
export type SystemAuth = z.infer<typeof SystemAuth>;

/** A pairing token for the Connector (`Connector-Token` header at `connectorURL`): shown once. */
export const OneTimeToken = z.object({ token: z.string(), connectorURL: z.string(), expiresAt: z.string(), used: z.boolean() });
export type OneTimeToken = z.infer<typeof OneTimeToken>;

const APPLICATION_FIELDS = `id name providerName description integrationLevel labels status { condition timestamp } healthCheckURL
  webhooks { id type url } apiDefinitions { totalCount data { id name } } eventDefinitions { totalCount data { id name } }`;
const RUNTIME_FIELDS = `id name description labels status { condition timestamp } metadata { creationTimestamp }
  eventingConfiguration { defaultURL } applicationsWaitingForCredentials`;
const Label = z.object({ key: z.string(), value: z.unknown() });

export interface LabelFilter {
  key: string;
  query?: string;
}

export interface Page<T> {
  data: T[];
  totalCount: number;
}

const LabelDefinitionAnswer = z.object({ key: z.string(), schema: z.unknown() });
export interface LabelDefinition {
  key: string;
  schema: Record<string, unknown> | undefined;
}

function schemaObject(schema: unknown): Record<string, unknown> | undefined {
  let value = schema;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value) as unknown;
    } catch {
      return undefined;
    }
  }
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

const GraphqlAnswer = z.object({
  data: z.record(z.string(), z.unknown()).nullable().optional(),
  errors: z.array(z.object({ message: z.string(), extensions: z.object({ error_code: z.number().optional(), code: z.string().optional() }).passthrough().optional() })).optional(),
});

export class DirectorClient {
  constructor(private readonly opts: { url: string; token: string; timeoutMs?: number }) {}

  // ---------------------------------------------------------------- applications

  async listApplications(filter: LabelFilter[]): Promise<Page<Application>> {
    return this.allPages('applications', Application, `query($filter: [LabelFilter!], $after: PageCursor) {
      result: applications(filter: $filter, first: 100, after: $after) { totalCount pageInfo { endCursor hasNextPage } data { ${APPLICATION_FIELDS} } } }`, { filter });
  }

  async getApplication(id: string): Promise<Application | null> {
    return this.call(`query($id: ID!) { result: application(id: $id) { ${APPLICATION_FIELDS} } }`, { id }, Application.nullable());
  }

  registerApplication(input: Record<string, unknown>): Promise<Application> {
    return this.call(`mutation($in: ApplicationRegisterInput!) { result: registerApplication(in: $in) { ${APPLICATION_FIELDS} } }`, { in: input }, Application);
  }

  unregisterApplication(id: string): Promise<Application> {
    return this.call(`mutation($id: ID!) { result: unregisterApplication(id: $id) { ${APPLICATION_FIELDS} } }`, { id }, Application);
  }

  setApplicationLabel(id: string, key: string, value: unknown): Promise<z.infer<typeof Label>> {
    return this.call(`mutation($id: ID!, $key: String!, $value: Any!) { result: setApplicationLabel(applicationID: $id, key: $key, value: $value) { key value } }`, { id, key, value }, Label);
  }

  deleteApplicationLabel(id: string, key: string): Promise<z.infer<typeof Label>> {
    return this.call(`mutation($id: ID!, $key: String!) { result: deleteApplicationLabel(applicationID: $id, key: $key) { key value } }`, { id, key }, Label);
  }

  requestApplicationCredentials(id: string): Promise<SystemAuth> {
    return this.call(`mutation($id: ID!) { result: requestClientCredentialsForApplication(id: $id) { id auth { credential { ... on BearerTokenCredentialData { token } } } } }`, { id }, SystemAuth);
  }

  /** A one-time token pairing the application or runtime; any earlier unused one stops working. */
  requestOneTimeToken(type: 'application' | 'runtime', id: string): Promise<OneTimeToken> {
    const field = type === 'application' ? 'requestOneTimeTokenForApplication' : 'requestOneTimeTokenForRuntime';
    return this.call(`mutation($id: ID!) { result: ${field}(id: $id) { token connectorURL expiresAt used } }`, { id }, OneTimeToken);
  }

  // ---------------------------------------------------------------- runtimes

  async listRuntimes(filter: LabelFilter[]): Promise<Page<Runtime>> {
    return this.allPages('runtimes', Runtime, `query($filter: [LabelFilter!], $after: PageCursor) {
      result: runtimes(filter: $filter, first: 100, after: $after) { totalCount pageInfo { endCursor hasNextPage } data { ${RUNTIME_FIELDS} } } }`, { filter });
  }

  getRuntime(id: string): Promise<Runtime | null> {
    return this.call(`query($id: ID!) { result: runtime(id: $id) { ${RUNTIME_FIELDS} } }`, { id }, Runtime.nullable());
  }

  registerRuntime(input: { name: string; description?: string; labels?: Record<string, unknown> }): Promise<Runtime> {
    return this.call(`mutation($in: RuntimeInput!) { result: registerRuntime(in: $in) { ${RUNTIME_FIELDS} } }`, { in: input }, Runtime);
  }

  unregisterRuntime(id: string): Promise<Runtime> {
    return this.call(`mutation($id: ID!) { result: unregisterRuntime(id: $id) { ${RUNTIME_FIELDS} } }`, { id }, Runtime);
  }

  setRuntimeLabel(id: string, key: string, value: unknown): Promise<z.infer<typeof Label>> {
    return this.call(`mutation($id: ID!, $key: String!, $value: Any!) { result: setRuntimeLabel(runtimeID: $id, key: $key, value: $value) { key value } }`, { id, key, value }, Label);
  }

  deleteRuntimeLabel(id: string, key: string): Promise<z.infer<typeof Label>> {
    return this.call(`mutation($id: ID!, $key: String!) { result: deleteRuntimeLabel(runtimeID: $id, key: $key) { key value } }`, { id, key }, Label);
  }

  requestRuntimeCredentials(id: string): Promise<SystemAuth> {
    return this.call(`mutation($id: ID!) { result: requestClientCredentialsForRuntime(id: $id) { id auth { credential { ... on BearerTokenCredentialData { token } } } } }`, { id }, SystemAuth);
  }

  setRuntimeStatus(id: string, condition: string): Promise<Runtime> {
    return this.call(`mutation($id: ID!, $condition: RuntimeStatusCondition!) { result: setRuntimeStatus(id: $id, condition: $condition) { ${RUNTIME_FIELDS} } }`, { id, condition }, Runtime);
  }

  // ---------------------------------------------------------------- label definitions

  /** A label definition with its schema as an object (Compass answers JSON-encoded strings). */
  async getLabelDefinition(key: string): Promise<LabelDefinition | null> {
    const def = await this.call(`query($key: String!) { result: labelDefinition(key: $key) { key schema } }`, { key }, LabelDefinitionAnswer.nullable());
    return def && { key: def.key, schema: schemaObject(def.schema) };
  }

  async updateLabelDefinition(key: string, schema: Record<string, unknown>): Promise<LabelDefinition> {
    const def = await this.call(`mutation($key: String!, $schema: JSONSchema) { result: updateLabelDefinition(in: {key: $key, schema: $schema}) { key schema } }`, { key, schema }, LabelDefinitionAnswer);
    return { key: def.key, schema: schemaObject(def.schema) };
  }

  // ---------------------------------------------------------------- transport

  private async allPages<T extends z.ZodType>(what: string, item: T, query: string, variables: Record<string, unknown>): Promise<Page<z.infer<T>>> {
    const PageOf = z.object({ totalCount: z.number().int(), pageInfo: PageInfo, data: z.array(item) });
    const data: Array<z.infer<T>> = [];
    let after = '';
    for (;;) {
      const page = await this.call(query, { ...variables, after }, PageOf);
      data.push(...page.data);
      if (!page.pageInfo.hasNextPage || page.data.length === 0) return { data, totalCount: page.totalCount };
      if (page.pageInfo.endCursor === after) throw new CliError(`the Director repeated a page of ${what}`);
      after = page.pageInfo.endCursor;
    }
  }

  /** One operation; its answer is the field aliased `result`. */
  private async call<S extends z.ZodType>(query: string, variables: Record<string, unknown>, schema: S): Promise<z.infer<S>> {
    const base = this.opts.url.replace(/\/+$/, '');
    let res: Response;
    try {
      res = await fetch(`${base}/director/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'plexus-cli', authorization: `Bearer ${this.opts.token}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new CliError(`cannot reach ${base}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const json: unknown = await res.json().catch(() => undefined);
    const answer = GraphqlAnswer.safeParse(json);
    if (res.status === 404 && !answer.success) throw new CliError(`${base} has no Director (POST /director/graphql answered 404)`);
    if (!answer.success) throw new ApiError(res.status, `HTTP_${res.status}`, `the Director answered ${res.status} ${res.statusText}`);
    const error = answer.data.errors?.[0];
    if (error) {
      const code = error.extensions?.error_code;
      const status = code === undefined ? (res.ok ? 400 : res.status) : (STATUS_BY_GRAPHQL_CODE[code] ?? 500);
      // Named as the hub names it (ALREADY_EXISTS, NOT_FOUND…); a Compass-era error has only its number.
      const name = error.extensions?.code ?? (code === undefined ? 'GRAPHQL' : `DIRECTOR_${code}`);
      throw new ApiError(status, name, error.message, answer.data.errors!.length > 1 ? answer.data.errors!.map((e) => e.message) : []);
    }
    const parsed = schema.safeParse(answer.data.data?.result);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new CliError(`unexpected answer from the Director at ${base} (is it a Plexus hub of this version?)${first ? `: ${first.path.join('.') || 'result'} ${first.message}` : ''}`);
    }
    return parsed.data;
  }
}
