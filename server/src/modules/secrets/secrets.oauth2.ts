/**
 * The OAuth2 token endpoint client (RFC 6749 §4.4 client credentials, §6 refresh token) and
 * the rule for when a stored access token is due for refresh.
 */
import { z } from 'zod';
import type { OAuth2Value } from '../../contracts/secrets.js';
import { AppError } from '../../platform/errors.js';
import type { Outbound, OutboundResponse } from '../../platform/outbound/index.js';

/** Refresh this long before expiry (or at half-life for tokens that live shorter than twice this). */
export const REFRESH_MARGIN_MS = 60_000;
/** Assumed lifetime when the token endpoint does not say (`expires_in` is only RECOMMENDED). */
export const DEFAULT_TOKEN_LIFETIME_MS = 3_600_000;
const TOKEN_REQUEST_TIMEOUT_MS = 10_000;
/** A token response is a small JSON object; anything this size is not one. */
const TOKEN_RESPONSE_MAX_BYTES = 1024 * 1024;

export function isRefreshDue(value: OAuth2Value, lastRefreshedAt: Date | null, now: number): boolean {
  if (!value.accessToken || !value.expiresAt) return true;
  const expiresAt = Date.parse(value.expiresAt);
  const lifetime = lastRefreshedAt ? expiresAt - lastRefreshedAt.getTime() : Number.POSITIVE_INFINITY;
  const margin = Math.min(REFRESH_MARGIN_MS, Math.max(0, lifetime / 2));
  return expiresAt - now <= margin;
}

const TokenResponse = z.looseObject({
  access_token: z.string().min(1),
  expires_in: z.coerce.number().positive().optional(),
  refresh_token: z.string().min(1).optional(),
  scope: z.string().optional(),
});

const ErrorResponse = z.looseObject({ error: z.string(), error_description: z.string().optional() });

/** Form-encodes per RFC 6749 Appendix B before Basic encoding (§2.3.1). */
function basicAuth(clientId: string, clientSecret: string): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
}

/**
 * Asks the token endpoint for a new access token; returns the value with the new tokens. The URL
 * is a tenant's, so the call goes through the operator's outbound policy like any step's.
 */
export async function requestToken(outbound: Outbound, value: OAuth2Value, now: () => number = Date.now): Promise<OAuth2Value> {
  const form = new URLSearchParams({ grant_type: value.grantType });
  if (value.grantType === 'refresh_token') form.set('refresh_token', value.refreshToken ?? '');
  if (value.scope) form.set('scope', value.scope);
  if (value.audience) form.set('audience', value.audience);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (value.clientSecret && (value.clientAuth ?? 'basic') === 'basic') {
    headers.authorization = basicAuth(value.clientId, value.clientSecret);
  } else {
    form.set('client_id', value.clientId);
    if (value.clientSecret) form.set('client_secret', value.clientSecret);
  }

  let res: OutboundResponse;
  try {
    // No redirects: a token endpoint that moves is misconfigured, and the client secret stays put.
    res = await outbound.request({ url: value.tokenUrl, method: 'POST', headers, body: form.toString(), timeoutMs: TOKEN_REQUEST_TIMEOUT_MS, maxResponseBytes: TOKEN_RESPONSE_MAX_BYTES, maxRedirects: 0 });
  } catch (err) {
    // A refused or malformed token URL stays refused: the secret needs fixing, not a retry.
    if (err instanceof AppError && err.kind === 'user') throw new AppError(err.code, `token endpoint ${value.tokenUrl}: ${err.message}`, 'user', undefined, { cause: err });
    throw new AppError('UNAVAILABLE', `token endpoint ${value.tokenUrl} does not answer: ${(err as Error).message}`, 'transient', undefined, { cause: err });
  }
  const text = res.body.toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const ok = res.status >= 200 && res.status < 300;
  if (!ok) {
    const e = ErrorResponse.safeParse(body);
    const reason = e.success ? `${e.data.error}${e.data.error_description ? `: ${e.data.error_description.slice(0, 300)}` : ''}` : `HTTP ${res.status}`;
    if (res.status >= 500 || res.status === 429) throw new AppError('UNAVAILABLE', `token endpoint failed (${res.status}): ${reason}`, 'transient');
    // A refused grant will be refused again: not worth retrying until someone fixes the secret.
    throw new AppError('UPSTREAM_FAILED', `token endpoint refused the grant (${res.status}): ${reason}`, 'user');
  }
  const parsed = TokenResponse.safeParse(body);
  if (!parsed.success) throw new AppError('UPSTREAM_FAILED', `token endpoint answered ${res.status} without an access_token`, 'user');
  const t = parsed.data;
  const lifetimeMs = t.expires_in !== undefined ? t.expires_in * 1000 : DEFAULT_TOKEN_LIFETIME_MS;
  return {
    ...value,
    accessToken: t.access_token,
    expiresAt: new Date(now() + lifetimeMs).toISOString(),
    // Servers may rotate refresh tokens; keep the old one when they do not send a new one.
    ...(t.refresh_token ? { refreshToken: t.refresh_token } : {}),
  };
}
