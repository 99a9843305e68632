/**
 * Access tokens for applications' APIs called from flows (API credentials flow, seed 001): when
 * the credentials an application set for a runtime (`setAPIAuth`, Compass `credential.oauth
 * {clientId, clientSecret, url}`) are OAuth client credentials, the hub asks the token endpoint
 * (client_credentials, through the outbound guard like every call a tenant configures), keeps the
 * token until shortly before it expires, and the step calls the API with `Authorization: Bearer`.
 * Tokens live in this process's memory only; a failure names the application, never the secret.
 */
import { createHash } from 'node:crypto';
import { AppError } from '../../platform/errors.js';
import type { Outbound } from '../../platform/outbound/index.js';
import { requestToken } from '../secrets/index.js';

/** A token is fetched again this long before it expires (or at half its life when shorter). */
const REFRESH_MARGIN_MS = 60_000;
const MAX_TOKENS = 10_000;

export interface OAuthClient {
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Who the credentials belong to, for errors: `application erp (API orders, runtime local)`. */
  label: string;
}

interface Held {
  token: string;
  refreshAt: number;
}

export class ApiTokenCache {
  private readonly tokens = new Map<string, Held>();
  /** Concurrent steps of the same credentials share one token request. */
  private readonly pending = new Map<string, Promise<Held>>();

  constructor(
    private readonly outbound: Outbound,
    private readonly now: () => number = Date.now,
  ) {}

  /** The access token for these client credentials, fetched when none is held or it is due. */
  async bearer(tenant: string, client: OAuthClient): Promise<string> {
    // The secret is part of the key (hashed), so changed credentials never reuse an old token.
    const key = createHash('sha256').update([tenant, client.tokenUrl, client.clientId, client.clientSecret].join('\n')).digest('base64url');
    const held = this.tokens.get(key);
    if (held && held.refreshAt > this.now()) return held.token;
    let request = this.pending.get(key);
    if (!request) {
      request = this.fetch(client).finally(() => this.pending.delete(key));
      this.pending.set(key, request);
    }
    const fresh = await request;
    if (this.tokens.size >= MAX_TOKENS) this.tokens.clear();
    this.tokens.set(key, fresh);
    return fresh.token;
  }

  private async fetch(client: OAuthClient): Promise<Held> {
    const started = this.now();
    try {
      const value = await requestToken(this.outbound, { grantType: 'client_credentials', tokenUrl: client.tokenUrl, clientId: client.clientId, clientSecret: client.clientSecret }, this.now);
      const lifetime = Date.parse(value.expiresAt!) - started;
      return { token: value.accessToken!, refreshAt: started + lifetime - Math.min(REFRESH_MARGIN_MS, lifetime / 2) };
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('UPSTREAM_FAILED', (err as Error).message, 'transient');
      // requestToken's messages name the endpoint and its answer, never the client secret.
      throw new AppError(e.code, `api: could not get an OAuth access token for ${client.label}: ${e.message}`, e.kind, undefined, { cause: err });
    }
  }
}
