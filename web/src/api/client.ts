/**
 * The one API client: typed from the hub's OpenAPI document (`npm run api` writes schema.d.ts
 * from the routes in this tree), so no route has a hand-written fetch. A middleware adds the
 * session's bearer token and the tenant a platform admin picked, and reports a 401 so the app
 * can send the user back to sign-in.
 */
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';

export type { paths };

/** An API error as the hub answers it: `{errors:[{code, message, details?}]}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: { problems?: string[] } & Record<string, unknown>,
  ) {
    super(message);
  }
}

interface ErrorBody {
  errors?: Array<{ code?: string; message?: string; details?: ApiError['details'] }>;
}

export function toApiError(status: number, body: unknown): ApiError {
  const first = (body as ErrorBody | undefined)?.errors?.[0];
  return new ApiError(status, first?.code ?? 'HTTP_' + status, first?.message ?? `request failed with status ${status}`, first?.details);
}

/** What the client asks of the session on every request. */
export interface SessionHooks {
  token(): string | undefined;
  tenant(): string | undefined;
  /** A request with a token was refused 401: the session is over. */
  expired(): void;
}

let hooks: SessionHooks = { token: () => undefined, tenant: () => undefined, expired: () => undefined };

export function bindSession(h: SessionHooks): void {
  hooks = h;
}

/** The headers every authenticated call carries (also used by the event stream). */
export function authHeaders(): Record<string, string> {
  const out: Record<string, string> = {};
  const token = hooks.token();
  const tenant = hooks.tenant();
  if (token) out.authorization = `Bearer ${token}`;
  if (tenant) out.tenant = tenant;
  return out;
}

/** Tells the session a 401 came back for a request that carried a token. */
export function reportUnauthorized(): void {
  hooks.expired();
}

const session: Middleware = {
  onRequest({ request }) {
    for (const [k, v] of Object.entries(authHeaders())) request.headers.set(k, v);
    return request;
  },
  onResponse({ request, response }) {
    if (response.status === 401 && request.headers.has('authorization')) reportUnauthorized();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: '' });
api.use(session);

/** The data of a typed call, or an ApiError naming what the hub said. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw toApiError(response.status, error);
  return data as T;
}
