/**
 * Accounts, logins and tokens. Tokens are opaque random strings stored only as sha256 hashes;
 * session tokens slide, persistent tokens (service accounts) live until revoked.
 * Authentication of each request goes through a short cache so an authorised request costs
 * a map lookup, not a query.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import { isPlatformAdmin, type Principal } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import { DUMMY_PASSWORD_HASH, hashPassword, hashToken, newPassword, newToken, verifyPassword } from './iam.crypto.js';
import * as repo from './iam.repo.js';

export const DEFAULT_TENANT = 'default';
export const ADMIN_USERNAME = 'admin';
const SESSION_TTL_MS = 12 * 3_600_000;
/** Slide a session's expiry at most this often (one write per token per minute, not per request). */
const SESSION_TOUCH_INTERVAL_MS = 60_000;
const CACHE_TTL_MS = 5_000;
const CACHE_MAX = 10_000;

export interface BootstrapCredentials {
  username: string;
  password: string;
  passwordFile: string | undefined;
}

interface CachedPrincipal {
  principal: Principal;
  cachedUntil: number;
  /** ms epoch; undefined for persistent tokens. */
  tokenExpiresAt: number | undefined;
  touchedAt: number;
}

export class IamService {
  private readonly cache = new Map<string, CachedPrincipal>();

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  /**
   * First start on an empty database: tenant `default` and user `admin` holding `all`.
   * Returns the credentials only to the process that created them (several may boot at once).
   */
  async bootstrap(): Promise<BootstrapCredentials | undefined> {
    if ((await repo.countTenants(this.db)) > 0) return undefined;
    const password = this.config.iam.adminPassword ?? newPassword();
    const passwordHash = await hashPassword(password);
    const created = await this.db.transaction(async (tx) => {
      await repo.insertTenantIfMissing(tx, DEFAULT_TENANT, 'Default tenant');
      return repo.insertAccountIfMissing(tx, {
        id: randomUUID(),
        tenantId: DEFAULT_TENANT,
        username: ADMIN_USERNAME,
        kind: 'user',
        passwordHash,
        permissions: ['all'],
        roleIds: [],
      });
    });
    if (!created) return undefined;
    let passwordFile: string | undefined;
    if (!this.config.iam.adminPassword) {
      passwordFile = path.join(this.config.dataDir, 'admin-password');
      try {
        fs.mkdirSync(this.config.dataDir, { recursive: true });
        fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, passwordFile }, 'could not write the admin password file');
        passwordFile = undefined;
      }
    }
    this.logger.info({ username: ADMIN_USERNAME, tenant: DEFAULT_TENANT }, 'bootstrap admin created');
    return { username: ADMIN_USERNAME, password: this.config.iam.adminPassword ? '(from PLEXUS_ADMIN_PASSWORD)' : password, passwordFile };
  }

  /** One answer for every failure: an unknown user and a wrong password look the same. */
  async login(username: string, password: string): Promise<{ token: string; expiresAt: Date; account: repo.AccountRow }> {
    const account = await repo.findAccountByUsername(this.db, username);
    const ok = await verifyPassword(password, account?.password_hash ?? DUMMY_PASSWORD_HASH);
    if (!account || !account.password_hash || !ok) throw new AppError('UNAUTHENTICATED', 'invalid username or password');
    const token = newToken();
    const expiresAt = new Date(Date.now() + SESSION_TTL_MS);
    await repo.insertToken(this.db, { id: randomUUID(), accountId: account.id, tokenHash: hashToken(token), kind: 'session', description: null, expiresAt });
    return { token, expiresAt, account };
  }

  async logout(principal: Principal): Promise<void> {
    const hash = await repo.revokeToken(this.db, principal.tokenId);
    if (hash) this.cache.delete(hash);
  }

  /** Drops cached principals of a token (after revocation anywhere). */
  forgetTokenHash(tokenHash: string): void {
    this.cache.delete(tokenHash);
  }

  /** Drops every cached principal (after a change to accounts or roles). */
  forgetAll(): void {
    this.cache.clear();
  }

  /** Resolves a bearer token to its principal in its home tenant; undefined when not live. */
  async resolveToken(token: string): Promise<Principal | undefined> {
    const tokenHash = hashToken(token);
    const now = Date.now();
    const hit = this.cache.get(tokenHash);
    if (hit && hit.cachedUntil > now && (hit.tokenExpiresAt === undefined || hit.tokenExpiresAt > now)) {
      if (hit.tokenExpiresAt !== undefined && now - hit.touchedAt > SESSION_TOUCH_INTERVAL_MS) {
        hit.touchedAt = now;
        hit.tokenExpiresAt = now + SESSION_TTL_MS;
        void repo.touchSessionToken(this.db, hit.principal.tokenId, new Date(hit.tokenExpiresAt)).catch(() => {});
      }
      return hit.principal;
    }
    const row = await repo.findLiveTokenPrincipal(this.db, tokenHash);
    if (!row) {
      this.cache.delete(tokenHash);
      return undefined;
    }
    const principal: Principal = {
      accountId: row.account_id,
      username: row.username,
      tenantId: row.tenant_id,
      homeTenantId: row.tenant_id,
      permissions: [...new Set([...row.permissions, ...row.role_permissions])],
      roles: row.role_names,
      kind: row.account_kind,
      tokenId: row.token_id,
    };
    let tokenExpiresAt = row.expires_at?.getTime();
    if (row.token_kind === 'session') {
      tokenExpiresAt = now + SESSION_TTL_MS;
      void repo.touchSessionToken(this.db, row.token_id, new Date(tokenExpiresAt)).catch(() => {});
    }
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(tokenHash, { principal, cachedUntil: now + CACHE_TTL_MS, tokenExpiresAt, touchedAt: now });
    return principal;
  }

  /** The Authenticator of the HTTP layer: Bearer token, then the `Tenant` header. */
  readonly authenticate = async (req: FastifyRequest): Promise<Principal> => {
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw new AppError('UNAUTHENTICATED', header ? 'Authorization header must be "Bearer <token>"' : 'missing Authorization: Bearer <token>');
    const principal = await this.resolveToken(m[1]!);
    if (!principal) throw new AppError('UNAUTHENTICATED', 'token is invalid, expired or revoked');
    const tenantHeader = req.headers.tenant;
    const wanted = Array.isArray(tenantHeader) ? tenantHeader[0] : tenantHeader;
    if (!wanted || wanted === principal.homeTenantId) return principal;
    if (!isPlatformAdmin(principal)) throw new AppError('FORBIDDEN', 'only a platform admin may act in another tenant (Tenant header)');
    if (!(await repo.tenantExists(this.db, wanted))) throw new AppError('TENANT_NOT_FOUND', `tenant ${wanted} not found`);
    return { ...principal, tenantId: wanted };
  };
}
