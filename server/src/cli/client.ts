/**
 * The typed HTTP client of the REST API the commands use: one method per route, each answer
 * parsed with the server's own zod contracts (server/src/contracts), so a command never handles
 * untyped JSON and an incompatible hub is named as such instead of printing nonsense. Error
 * answers become `ApiError` with the hub's code, message and listed problems.
 */
import { EventSourceParserStream } from 'eventsource-parser/stream';
import { z } from 'zod';
import { AuditEntry, type AuditListQuery } from '../contracts/audit.js';
import { Execution, ExecutionWithSteps, RetriedExecution, type ExecutionStatus } from '../contracts/executions.js';
import { Flow, FlowStatus } from '../contracts/flows.js';
import { AccountInfo, LoginResponse } from '../contracts/iam.js';
import { listOf, MAX_PAGE_SIZE, type ListMeta } from '../contracts/list.js';
import { Secret, type CreateSecretBody, type SecretListQuery, type UpdateSecretBody } from '../contracts/secrets.js';
import { ApiError, CliError } from './errors.js';

export interface Page<T> {
  data: T[];
  meta: ListMeta;
}

export interface Paging {
  page?: number;
  pageSize?: number;
}

export interface LoginRequest {
  username: string;
  password: string;
  /** The account's tenant, for hubs where usernames are unique per tenant only. */
  tenant?: string;
}

export interface FlowListOptions extends Paging {
  status?: FlowStatus;
  search?: string;
  sort?: string;
}

export interface ExecutionListOptions extends Paging {
  flowId?: string;
  status?: ExecutionStatus;
  /** Started at or after / before (ISO 8601 date-times). */
  from?: string;
  to?: string;
  sort?: 'startedAt' | '-startedAt';
}

/** What a flow file holds: the server validates it and lists every problem. */
export type FlowBody = Record<string, unknown>;

const USER_AGENT = 'plexus-cli';

type Query = Record<string, string | number | undefined>;
type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

const FlowStatusAnswer = z.object({ data: z.object({ id: z.string(), status: FlowStatus }) });
const one = <T extends z.ZodType>(item: T) => z.object({ data: item });
const ErrorBody = z.object({
  errors: z.array(z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() })).min(1),
});

/** One server-sent event: its name (`ready`, `execution`, …) and its data. */
export interface LiveEvent {
  event: string;
  data: string;
}

export interface ClientOptions {
  url: string;
  token?: string;
  /** Bound on each request, so an unreachable hub never hangs a script. */
  timeoutMs?: number;
}

export class PlexusClient {
  readonly url: string;
  constructor(private readonly opts: ClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
  }

  /** The bearer token this client sends (for the Director's client, which shares it). */
  get token(): string {
    if (!this.opts.token) throw new CliError('not logged in');
    return this.opts.token;
  }

  // ---------------------------------------------------------------- iam

  login(body: LoginRequest): Promise<z.infer<typeof LoginResponse>> {
    return this.request('POST', '/api/v1/login', LoginResponse, { body, anonymous: true });
  }

  logout(): Promise<void> {
    return this.request('POST', '/api/v1/logout', undefined, {});
  }

  async me(): Promise<AccountInfo> {
    return (await this.request('GET', '/api/v1/me', one(AccountInfo), {})).data;
  }

  // ---------------------------------------------------------------- flows

  listFlows(o: FlowListOptions = {}): Promise<Page<Flow>> {
    return this.request('GET', '/api/v1/flows', listOf(Flow), { query: { ...paging(o), 'filter[status]': o.status, search: o.search, sort: o.sort } });
  }

  async getFlow(id: string): Promise<Flow> {
    return (await this.request('GET', `/api/v1/flows/${seg(id)}`, one(Flow), {})).data;
  }

  async createFlow(body: FlowBody): Promise<Flow> {
    return (await this.request('POST', '/api/v1/flows', one(Flow), { body })).data;
  }

  async updateFlow(id: string, body: FlowBody): Promise<Flow> {
    return (await this.request('PATCH', `/api/v1/flows/${seg(id)}`, one(Flow), { body })).data;
  }

  deleteFlow(id: string): Promise<void> {
    return this.request('DELETE', `/api/v1/flows/${seg(id)}`, undefined, {});
  }

  async startFlow(id: string): Promise<{ id: string; status: FlowStatus }> {
    return (await this.request('POST', `/api/v1/flows/${seg(id)}/start`, FlowStatusAnswer, {})).data;
  }

  async stopFlow(id: string): Promise<{ id: string; status: FlowStatus }> {
    return (await this.request('POST', `/api/v1/flows/${seg(id)}/stop`, FlowStatusAnswer, {})).data;
  }

  // ---------------------------------------------------------------- executions

  listExecutions(o: ExecutionListOptions = {}): Promise<Page<Execution>> {
    return this.request('GET', '/api/v1/executions', listOf(Execution), {
      query: { ...paging(o), 'filter[flowId]': o.flowId, 'filter[status]': o.status, 'filter[from]': o.from, 'filter[to]': o.to, sort: o.sort },
    });
  }

  async getExecution(id: string): Promise<ExecutionWithSteps> {
    return (await this.request('GET', `/api/v1/executions/${seg(id)}`, one(ExecutionWithSteps), {})).data;
  }

  async retryExecution(id: string): Promise<RetriedExecution> {
    return (await this.request('POST', `/api/v1/executions/${seg(id)}/retry`, one(RetriedExecution), {})).data;
  }

  /**
   * The hub's server-sent events about the tenant's executions (`ready`, then `execution {id,
   * flowId}` whenever one changes), ended by `signal`. Undefined when the hub has no such
   * stream (an older hub): the caller reads the execution again instead.
   */
  async executionEvents(filter: { executionId?: string; flowId?: string }, signal: AbortSignal): Promise<AsyncIterable<LiveEvent> | undefined> {
    const url = new URL(`${this.url}/api/v1/executions/live`);
    if (filter.executionId) url.searchParams.set('filter[executionId]', filter.executionId);
    if (filter.flowId) url.searchParams.set('filter[flowId]', filter.flowId);
    let res: Response;
    try {
      res = await fetch(url, { headers: { accept: 'text/event-stream', 'user-agent': USER_AGENT, ...this.authHeaders() }, signal });
    } catch (err) {
      if (signal.aborted) throw err;
      throw new CliError(`cannot reach ${this.url}: ${networkReason(err)}`);
    }
    if (!res.ok) {
      const json: unknown = await res.json().catch(() => undefined);
      // An older hub has no such route (or reads `live` as an execution id): 404 either way.
      if (res.status === 404) return undefined;
      throw toApiError(res, json, 'GET', url.pathname);
    }
    if (!res.body) throw new CliError(`${this.url} answered the event stream without a body`);
    const stream = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    return (async function* () {
      for await (const message of stream) yield { event: message.event ?? 'message', data: message.data };
    })();
  }

  // ---------------------------------------------------------------- secrets

  listSecrets(q: Partial<Omit<SecretListQuery, 'page[size]' | 'page[number]'>> & Paging = {}): Promise<Page<Secret>> {
    const { page, pageSize, ...filters } = q;
    return this.request('GET', '/api/v1/secrets', listOf(Secret), { query: { ...paging({ page, pageSize }), ...filters } });
  }

  async getSecret(id: string, opts: { raw?: boolean } = {}): Promise<Secret> {
    return (await this.request('GET', `/api/v1/secrets/${seg(id)}${opts.raw ? '/raw' : ''}`, one(Secret), {})).data;
  }

  async createSecret(body: CreateSecretBody): Promise<Secret> {
    return (await this.request('POST', '/api/v1/secrets', one(Secret), { body })).data;
  }

  async updateSecret(id: string, body: UpdateSecretBody): Promise<Secret> {
    return (await this.request('PATCH', `/api/v1/secrets/${seg(id)}`, one(Secret), { body })).data;
  }

  async refreshSecret(id: string): Promise<Secret> {
    return (await this.request('POST', `/api/v1/secrets/${seg(id)}/refresh`, one(Secret), {})).data;
  }

  deleteSecret(id: string): Promise<void> {
    return this.request('DELETE', `/api/v1/secrets/${seg(id)}`, undefined, {});
  }

  // ---------------------------------------------------------------- audit

  listAudit(q: Partial<Omit<AuditListQuery, 'page[size]' | 'page[number]'>> & Paging = {}): Promise<Page<AuditEntry>> {
    const { page, pageSize, ...filters } = q;
    return this.request('GET', '/api/v1/audit', listOf(AuditEntry), { query: { ...paging({ page, pageSize }), ...filters } });
  }

  async getAudit(id: string): Promise<AuditEntry> {
    return (await this.request('GET', `/api/v1/audit/${seg(id)}`, one(AuditEntry), {})).data;
  }

  // ---------------------------------------------------------------- transport

  private authHeaders(): Record<string, string> {
    return this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {};
  }

  private async request<S extends z.ZodType>(method: Method, path: string, schema: S, o: { query?: Query; body?: unknown; anonymous?: boolean }): Promise<z.infer<S>>;
  private async request(method: Method, path: string, schema: undefined, o: { query?: Query; body?: unknown; anonymous?: boolean }): Promise<void>;
  private async request(method: Method, path: string, schema: z.ZodType | undefined, o: { query?: Query; body?: unknown; anonymous?: boolean }): Promise<unknown> {
    const url = new URL(`${this.url}${path}`);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT, ...(o.anonymous ? {} : this.authHeaders()) };
    if (o.body !== undefined) headers['content-type'] = 'application/json';

    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new CliError(`cannot reach ${this.url}: ${networkReason(err)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) throw toApiError(res, json, method, path);
    if (!schema) return undefined;
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new CliError(
        `unexpected answer from ${this.url} to ${method} ${path} (is it a Plexus hub of this version?)${first ? `: ${first.path.join('.') || 'body'} ${first.message}` : ''}`,
      );
    }
    return parsed.data;
  }
}

/** Every page of a list, for `--all` and for `apply`, which must know every flow. */
export async function fetchAll<T>(fetchPage: (p: Paging) => Promise<Page<T>>): Promise<T[]> {
  const all: T[] = [];
  for (let page = 1; ; page++) {
    const res = await fetchPage({ page, pageSize: MAX_PAGE_SIZE });
    all.push(...res.data);
    if (page >= res.meta.totalPages || res.data.length === 0) return all;
  }
}

function paging(p: Paging): Query {
  return { 'page[number]': p.page, 'page[size]': p.pageSize };
}

/** A path segment: ids come from users and files, so they are escaped, never spliced raw. */
function seg(id: string): string {
  return encodeURIComponent(id);
}

function toApiError(res: Response, json: unknown, method: Method, path: string): ApiError {
  const retryAfter = Number(res.headers.get('retry-after'));
  const parsed = ErrorBody.safeParse(json);
  if (!parsed.success) return new ApiError(res.status, `HTTP_${res.status}`, `${method} ${path} answered ${res.status} ${res.statusText}`);
  const e = parsed.data.errors[0]!;
  const problems = Array.isArray(e.details?.problems) ? e.details.problems.filter((p): p is string => typeof p === 'string') : [];
  return new ApiError(res.status, e.code, e.message, problems, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined);
}

function networkReason(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return 'no answer in time';
  const cause = err instanceof Error ? (err.cause as { code?: string; message?: string } | undefined) : undefined;
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
}
