/**
 * Tenants, accounts, roles and tokens. Tokens are opaque random strings stored only as sha256
 * hashes; session tokens slide, persistent tokens live until they expire or are revoked.
 * Every change and every refused change is audited (`audit.iam.*`), inside the change's own
 * transaction where there is one, so the record exists exactly when the change does.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AuditActor, AuditPublisher, AuditRecordInput } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/bus.js';
import type { Config } from '../../platform/config.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import { hasPermission, isPlatformAdmin, type Principal } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import { listMeta, parseSort, type ListMeta } from '../../contracts/list.js';
import { DUMMY_PASSWORD_HASH, hashPassword, hashToken, isWellFormedToken, newPassword, newToken, verifyPassword } from './iam.crypto.js';
import { IAM_EVENTS, type IamAuditAction, type TenantDeletedEvent, type UserDeletedEvent } from './iam.events.js';
import { canManage, effectivePermissions, ungrantable } from './iam.grants.js';
import { blockedUntil, loginKeysOf, type LoginScope } from './iam.ratelimit.js';
import * as repo from './iam.repo.js';
import type {
  CreateRoleBody,
  CreateTenantBody,
  CreateTokenBody,
  CreateUserBody,
  IssuedToken,
  Role,
  RoleListQuery,
  Tenant,
  TenantListQuery,
  TokenInfo,
  TokenListQuery,
  UpdateRoleBody,
  UpdateTenantBody,
  UpdateUserBody,
  User,
  UserListQuery,
} from './iam.schemas.js';

export const DEFAULT_TENANT = 'default';
export const ADMIN_USERNAME = 'admin';

/** A source the account logged in from is exempt from the per-account limit this long. */
const KNOWN_SOURCE_MS = 30 * 86_400_000;
/** How `login.locked` names what a lockout holds. */
const LOCK_SCOPE_NAMES: Record<LoginScope, string> = { account_source: 'user+address', source: 'address', account: 'user' };

/** A login: the tenant (`default` unless named), username, password, and the caller's address. */
export interface LoginInput {
  tenant: string;
  username: string;
  password: string;
  ip: string;
}

export interface BootstrapCredentials {
  username: string;
  password: string;
  passwordFile: string | undefined;
}

/** Who asks, from where: every service call that changes something carries one. */
export interface CallContext {
  principal: Principal;
  ip: string;
}

export interface List<T> {
  data: T[];
  meta: ListMeta;
}

/** A resolved token: the principal in the tenant asked for, and until when the token lives. */
export interface ResolvedToken {
  principal: Principal;
  /** ms epoch; undefined for a token that never expires. */
  expiresAtMs: number | undefined;
  /**
   * Set when the token is live but may not act in the tenant asked for (TENANT_FORBIDDEN or
   * TENANT_NOT_FOUND); `principal` is then the caller in its home tenant, for the audit record.
   */
  tenantRefusal?: AppError;
}

/** Told which cached principals are stale: some token hashes, or all of them. */
export type CacheInvalidation = (stale: readonly string[] | 'all') => void;

export function actorOf(principal: Principal): AuditActor {
  return { accountId: principal.accountId, username: principal.username, tenantId: principal.tenantId };
}

function page(q: { 'page[size]': number; 'page[number]': number }): repo.Page {
  return { limit: q['page[size]'], offset: (q['page[number]'] - 1) * q['page[size]'] };
}

function toTenant(r: repo.TenantRow): Tenant {
  return { id: r.id, name: r.name, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() };
}

function toUser(r: repo.AccountRow): User {
  return {
    id: r.id,
    username: r.username,
    tenant: r.tenant_id,
    kind: r.kind,
    permissions: r.permissions,
    roles: r.role_ids,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

function toRole(r: repo.RoleRow): Role {
  return { id: r.id, tenant: r.tenant_id, name: r.name, permissions: r.permissions, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString() };
}

function toToken(r: repo.TokenRow): TokenInfo {
  return {
    id: r.id,
    accountId: r.account_id,
    username: r.username,
    kind: r.kind,
    description: r.description,
    permissions: r.permissions,
    expiresAt: r.expires_at?.toISOString() ?? null,
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
    createdAt: r.created_at.toISOString(),
  };
}

export class IamService {
  private readonly invalidationListeners = new Set<CacheInvalidation>();
  /** Logins being checked right now per rate-limit key: parallel guesses count before they fail. */
  private readonly loginsInFlight = new Map<string, number>();
  private readonly sessionTtlMs: number;
  /** Record token use (and slide sessions) at most this often per token. */
  private readonly touchIntervalMs: number;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly audit: AuditPublisher,
  ) {
    this.sessionTtlMs = config.iam.sessionTtlMs;
    this.touchIntervalMs = Math.min(60_000, Math.floor(this.sessionTtlMs / 10));
  }

  /** Caches of resolved tokens subscribe here to drop stale principals. */
  onInvalidate(listener: CacheInvalidation): () => void {
    this.invalidationListeners.add(listener);
    return () => this.invalidationListeners.delete(listener);
  }

  /**
   * Drops stale principals from this process's caches and tells every other process on the
   * database (NOTIFY), whose caches would otherwise keep a revoked token working for their TTL.
   * Called after the change commits; a failed NOTIFY is logged, not thrown: the change stands.
   */
  private async invalidate(stale: readonly string[] | 'all'): Promise<void> {
    for (const l of this.invalidationListeners) l(stale);
    const payload = stale === 'all' ? 'all' : stale.join(',');
    if (payload === '') return;
    try {
      // NOTIFY payloads are capped at 8000 bytes.
      await repo.notifyInvalidation(this.db, payload.length > 7_000 ? 'all' : payload);
    } catch (err) {
      this.logger.warn({ err }, 'iam: could not tell other processes about stale tokens; their caches let go within 5 s');
    }
  }

  private record(ctx: CallContext | undefined, action: IamAuditAction, input: Omit<AuditRecordInput, 'action' | 'actor' | 'sourceIp'>, tx?: Queryable): Promise<void> {
    return this.audit.record({ action, actor: ctx ? actorOf(ctx.principal) : undefined, sourceIp: ctx?.ip, ...input }, tx ? { tx } : undefined);
  }

  /** Audits a refused change and throws 403. */
  private async deny(ctx: CallContext, action: IamAuditAction, target: AuditRecordInput['target'], message: string, tenantId?: string): Promise<never> {
    await this.record(ctx, action, { result: 'denied', target, tenantId, details: { reason: message } });
    throw new AppError('FORBIDDEN', message);
  }

  // ---------------------------------------------------------------- bootstrap

  /**
   * First start on an empty database: tenant `default` and user `admin` holding `all`.
   * Returns the credentials only to the process that created them (several may boot at once).
   */
  async bootstrap(): Promise<BootstrapCredentials | undefined> {
    if ((await repo.countAllTenants(this.db)) > 0) return undefined;
    const password = this.config.iam.adminPassword ?? newPassword();
    const passwordHash = await hashPassword(password);
    const created = await this.db.transaction(async (tx) => {
      await repo.insertTenantIfMissing(tx, DEFAULT_TENANT, 'Default tenant');
      return repo.insertAccount(tx, {
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

  // ---------------------------------------------------------------- login, logout, tokens

  /**
   * One answer for every failed login: an unknown tenant or user and a wrong password look the
   * same, and take the same time (a dummy hash is compared). Failures are counted in a sliding
   * window per account and source, per source, and per account from every source (sources the
   * account logged in from recently are exempt from that one, iam.ratelimit.ts). Past a limit
   * the answer is 429 with Retry-After, whatever the password, without checking it; the
   * failure that reaches a limit is audited as `login.locked`.
   */
  async login(input: LoginInput): Promise<{ token: string; expiresAt: Date }> {
    const { tenant, username, ip } = input;
    const { maxPerUserAddress, maxPerAddress, maxPerUser, windowMs } = this.config.iam.login;
    const keys = loginKeysOf(tenant, username, ip);
    const limits: Array<{ scope: LoginScope; key: string; max: number }> = [
      { scope: 'account_source', key: keys.accountSource, max: maxPerUserAddress },
      { scope: 'source', key: keys.source, max: maxPerAddress },
      { scope: 'account', key: keys.account, max: maxPerUser },
    ];
    const inFlight = (k: string): number => this.loginsInFlight.get(k) ?? 0;
    const now = Date.now();
    const since = new Date(now - windowMs);
    const [failures, isKnownSource] = await Promise.all([
      Promise.all(limits.map((l) => repo.listRecentLoginFailures(this.db, l.scope, l.key, since, l.max))),
      repo.isKnownLoginSource(this.db, keys.knownSource, new Date(now - KNOWN_SOURCE_MS)),
    ]);
    // Failures elsewhere do not hold the account where it logged in before.
    const applies = limits.map((l) => l.scope !== 'account' || !isKnownSource);
    const retryAtMs = Math.max(...limits.map((l, i) => (applies[i] ? blockedUntil(failures[i]!, l.max - inFlight(l.key), windowMs, now) : 0)));
    if (retryAtMs > now) {
      const retryAfterSeconds = Math.max(1, Math.ceil((retryAtMs - now) / 1000));
      await this.audit.record({ action: 'login', result: 'denied', sourceIp: ip, details: { reason: 'rate limited', retryAfterSeconds } });
      throw new AppError('RATE_LIMITED', `too many failed logins; try again in ${retryAfterSeconds} s`, 'user', { retryAfterSeconds });
    }

    for (const l of limits) this.loginsInFlight.set(l.key, inFlight(l.key) + 1);
    try {
      const account = await repo.findAccountByUsername(this.db, tenant, username);
      const ok = await verifyPassword(input.password, account?.password_hash ?? DUMMY_PASSWORD_HASH);
      if (!account || !account.password_hash || !ok) {
        const at = new Date();
        for (const l of limits) await repo.insertLoginFailure(this.db, l.scope, l.key, at);
        // A username nobody has is not recorded: people type passwords into the username field.
        const actor = account ? { accountId: account.id, username: account.username, tenantId: account.tenant_id } : undefined;
        await this.audit.record({ action: 'login', result: 'failure', sourceIp: ip, actor, details: { reason: 'invalid username or password' } });
        // The failure that reaches a limit locks: say so once, with what it holds and how long.
        for (const [i, l] of limits.entries()) {
          if (!applies[i] || failures[i]!.length >= l.max || failures[i]!.length + 1 < l.max) continue;
          await this.audit.record({
            action: 'login.locked',
            result: 'denied',
            sourceIp: ip,
            actor: l.scope === 'source' ? undefined : actor,
            details: { scope: LOCK_SCOPE_NAMES[l.scope], failures: l.max, lockedForSeconds: Math.ceil(windowMs / 1000) },
          });
        }
        throw new AppError('UNAUTHENTICATED', 'invalid username or password');
      }
      const token = newToken();
      const expiresAt = new Date(Date.now() + this.sessionTtlMs);
      const tokenId = randomUUID();
      await this.db.transaction(async (tx) => {
        await repo.insertToken(tx, { id: tokenId, accountId: account.id, tokenHash: hashToken(token), kind: 'session', description: null, permissions: null, expiresAt });
        // Only this account's count from this source is cleared: one good password must neither
        // unlock guessing other accounts from here nor reset the guessing from elsewhere.
        await repo.deleteLoginFailures(tx, 'account_source', keys.accountSource);
        await repo.recordLoginSource(tx, keys.knownSource, new Date());
        await this.audit.record(
          {
            action: 'login',
            result: 'success',
            sourceIp: ip,
            actor: { accountId: account.id, username: account.username, tenantId: account.tenant_id },
            target: { type: 'token', id: tokenId },
          },
          { tx },
        );
      });
      return { token, expiresAt };
    } finally {
      for (const l of limits) {
        const n = inFlight(l.key) - 1;
        if (n > 0) this.loginsInFlight.set(l.key, n);
        else this.loginsInFlight.delete(l.key);
      }
    }
  }

  async logout(ctx: CallContext): Promise<void> {
    const hash = await this.db.transaction(async (tx) => {
      const h = await repo.revokeToken(tx, ctx.principal.tokenId);
      await this.record(ctx, 'logout', { result: 'success', target: { type: 'token', id: ctx.principal.tokenId } }, tx);
      return h;
    });
    if (hash) await this.invalidate([hash]);
  }

  /**
   * The principal a bearer token stands for, acting in `tenant` when given (platform admins
   * only); undefined when the token is not live. Slides session expiry.
   */
  async resolveToken(token: string, tenant?: string): Promise<ResolvedToken | undefined> {
    if (!isWellFormedToken(token)) return undefined;
    const row = await repo.findLiveTokenPrincipal(this.db, hashToken(token));
    if (!row) return undefined;
    const now = Date.now();
    let expiresAtMs = row.expires_at?.getTime();
    if (row.token_kind === 'session') expiresAtMs = now + this.sessionTtlMs;
    if (!row.last_used_at || now - row.last_used_at.getTime() >= this.touchIntervalMs) {
      const slideTo = row.token_kind === 'session' && expiresAtMs !== undefined ? new Date(expiresAtMs) : null;
      repo.touchToken(this.db, row.token_id, slideTo).catch((err: unknown) => this.logger.warn({ err }, 'could not record token use'));
    } else if (row.token_kind === 'session') {
      // Not written this time: the stored expiry is what holds until the next touch.
      expiresAtMs = row.expires_at?.getTime();
    }
    const accountPermissions = [...row.permissions, ...row.role_permissions];
    const principal: Principal = {
      accountId: row.account_id,
      username: row.username,
      tenantId: row.tenant_id,
      homeTenantId: row.tenant_id,
      permissions: effectivePermissions(accountPermissions, row.token_permissions),
      roles: row.role_names,
      kind: row.account_kind,
      tokenId: row.token_id,
    };
    if (tenant && tenant !== principal.homeTenantId) {
      if (!isPlatformAdmin(principal)) {
        return { principal, expiresAtMs, tenantRefusal: new AppError('TENANT_FORBIDDEN', 'only a platform admin may act in another tenant (Tenant header)') };
      }
      if (!(await repo.tenantExists(this.db, tenant))) return { principal, expiresAtMs, tenantRefusal: new AppError('TENANT_NOT_FOUND', `tenant ${tenant} not found`) };
      principal.tenantId = tenant;
    }
    return { principal, expiresAtMs };
  }

  async issueToken(ctx: CallContext, body: CreateTokenBody): Promise<IssuedToken> {
    const p = ctx.principal;
    const self = body.accountId === undefined || body.accountId === p.accountId;
    // Your own account lives in your home tenant, whichever tenant you act in.
    const account = await repo.findAccount(this.db, self ? p.homeTenantId : p.tenantId, body.accountId ?? p.accountId);
    if (!account) throw AppError.notFound(`account ${body.accountId}`);
    const accountPerms = await this.accountPermissions(this.db, account);
    if (!self && !canManage(p, accountPerms)) {
      await this.deny(ctx, 'token.issued', { type: 'user', id: account.id, name: account.username }, 'you may not issue tokens for an account that holds permissions you cannot grant', account.tenant_id);
    }
    if (body.permissions) {
      const beyond = body.permissions.filter((perm) => !hasPermission({ permissions: accountPerms }, perm));
      if (beyond.length) throw AppError.invalid(`body.permissions: the account does not hold ${beyond.join(', ')}`);
    }
    const token = newToken();
    const id = randomUUID();
    const expiresAt = body.expiresAt ? new Date(body.expiresAt) : null;
    await this.db.transaction(async (tx) => {
      await repo.insertToken(tx, {
        id,
        accountId: account.id,
        tokenHash: hashToken(token),
        kind: 'persistent',
        description: body.description ?? null,
        permissions: body.permissions ?? null,
        expiresAt,
      });
      await this.record(
        ctx,
        'token.issued',
        { result: 'success', tenantId: account.tenant_id, target: { type: 'token', id }, details: { accountId: account.id, expiresAt: expiresAt?.toISOString() ?? null } },
        tx,
      );
    });
    const row = await repo.findToken(this.db, account.tenant_id, id);
    if (!row) throw new AppError('INTERNAL', 'token vanished right after it was issued', 'bug');
    return { ...toToken(row), token };
  }

  async listTokens(ctx: CallContext, q: TokenListQuery): Promise<List<TokenInfo>> {
    const f: repo.TokenFilter = { tenantId: ctx.principal.tenantId, accountId: q['filter[accountId]'], kind: q['filter[kind]'] };
    const sort = parseSort(q.sort, '-createdAt');
    const [total, rows] = await Promise.all([repo.countTokens(this.db, f), repo.listTokens(this.db, f, sort, page(q))]);
    return { data: rows.map(toToken), meta: listMeta(total, q['page[number]'], q['page[size]']) };
  }

  async getToken(ctx: CallContext, id: string): Promise<TokenInfo> {
    const row = await repo.findToken(this.db, ctx.principal.tenantId, id);
    if (!row) throw AppError.notFound(`token ${id}`);
    return toToken(row);
  }

  async revokeToken(ctx: CallContext, id: string): Promise<void> {
    const p = ctx.principal;
    const row = (await repo.findToken(this.db, p.tenantId, id)) ?? (await this.findOwnToken(p, id));
    if (!row) throw AppError.notFound(`token ${id}`);
    if (row.account_id !== p.accountId) {
      const account = await repo.findAccount(this.db, row.tenant_id, row.account_id);
      if (account && !canManage(p, await this.accountPermissions(this.db, account))) {
        await this.deny(ctx, 'token.revoked', { type: 'token', id }, 'you may not revoke tokens of an account that holds permissions you cannot grant', row.tenant_id);
      }
    }
    const revoked = await this.db.transaction(async (tx) => {
      const r = await repo.revokeTokenInTenant(tx, row.tenant_id, id);
      if (r) await this.record(ctx, 'token.revoked', { result: 'success', tenantId: row.tenant_id, target: { type: 'token', id }, details: { accountId: r.account_id } }, tx);
      return r;
    });
    if (!revoked) throw AppError.notFound(`token ${id}`);
    await this.invalidate([revoked.token_hash]);
  }

  /** A platform admin acting in another tenant still owns its own tokens. */
  private async findOwnToken(p: Principal, id: string): Promise<repo.TokenRow | undefined> {
    if (p.tenantId === p.homeTenantId) return undefined;
    const row = await repo.findToken(this.db, p.homeTenantId, id);
    return row?.account_id === p.accountId ? row : undefined;
  }

  /** Everything an account holds: its own permissions and its roles'. */
  private async accountPermissions(db: Queryable, account: repo.AccountRow): Promise<string[]> {
    const roles = account.role_ids.length ? await repo.findRolesByIds(db, account.tenant_id, account.role_ids) : [];
    return [...new Set([...account.permissions, ...roles.flatMap((r) => r.permissions)])];
  }

  // ---------------------------------------------------------------- tenants

  async listTenants(q: TenantListQuery): Promise<List<Tenant>> {
    const f = { search: q.search };
    const [total, rows] = await Promise.all([repo.countTenants(this.db, f), repo.listTenants(this.db, f, parseSort(q.sort, 'id'), page(q))]);
    return { data: rows.map(toTenant), meta: listMeta(total, q['page[number]'], q['page[size]']) };
  }

  async getTenant(id: string): Promise<Tenant> {
    const row = await repo.findTenant(this.db, id);
    if (!row) throw new AppError('TENANT_NOT_FOUND', `tenant ${id} not found`);
    return toTenant(row);
  }

  async createTenant(ctx: CallContext, body: CreateTenantBody): Promise<Tenant> {
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.insertTenant(tx, body.id, body.name);
      if (r) await this.record(ctx, 'tenant.created', { result: 'success', tenantId: r.id, target: { type: 'tenant', id: r.id, name: r.name } }, tx);
      return r;
    });
    if (!row) throw new AppError('ALREADY_EXISTS', `tenant ${body.id} already exists`);
    return toTenant(row);
  }

  async updateTenant(ctx: CallContext, id: string, body: UpdateTenantBody): Promise<Tenant> {
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.updateTenantName(tx, id, body.name);
      if (r) await this.record(ctx, 'tenant.updated', { result: 'success', tenantId: id, target: { type: 'tenant', id, name: r.name } }, tx);
      return r;
    });
    if (!row) throw new AppError('TENANT_NOT_FOUND', `tenant ${id} not found`);
    return toTenant(row);
  }

  /** Only an empty tenant goes: deleting accounts must be a deliberate act of its own. */
  async deleteTenant(ctx: CallContext, id: string): Promise<void> {
    if (id === DEFAULT_TENANT) throw AppError.conflict(`tenant ${DEFAULT_TENANT} cannot be deleted`);
    await this.db.transaction(async (tx) => {
      if (!(await repo.findTenant(tx, id))) throw new AppError('TENANT_NOT_FOUND', `tenant ${id} not found`);
      const accounts = await repo.countAccountsInTenant(tx, id);
      if (accounts > 0) throw AppError.conflict(`tenant ${id} still has ${accounts} account(s); delete them first`);
      await repo.deleteTenant(tx, id);
      const event: TenantDeletedEvent = { id };
      await this.bus.publish(IAM_EVENTS.tenantDeleted, event, { tx });
      await this.record(ctx, 'tenant.deleted', { result: 'success', tenantId: id, target: { type: 'tenant', id } }, tx);
    });
  }

  // ---------------------------------------------------------------- users

  async listUsers(ctx: CallContext, q: UserListQuery): Promise<List<User>> {
    const f: repo.AccountFilter = { tenantId: ctx.principal.tenantId, kind: q['filter[kind]'], roleId: q['filter[role]'], search: q.search };
    const [total, rows] = await Promise.all([repo.countAccounts(this.db, f), repo.listAccounts(this.db, f, parseSort(q.sort, 'username'), page(q))]);
    return { data: rows.map(toUser), meta: listMeta(total, q['page[number]'], q['page[size]']) };
  }

  async getUser(ctx: CallContext, id: string): Promise<User> {
    const row = await repo.findAccount(this.db, ctx.principal.tenantId, id);
    if (!row) throw AppError.notFound(`user ${id}`);
    return toUser(row);
  }

  async createUser(ctx: CallContext, body: CreateUserBody): Promise<User> {
    const p = ctx.principal;
    const tenantId = body.tenant ?? p.tenantId;
    // Another tenant is as absent to a non-admin as a tenant that does not exist.
    if ((tenantId !== p.tenantId && !isPlatformAdmin(p)) || !(await repo.tenantExists(this.db, tenantId))) {
      throw new AppError('TENANT_NOT_FOUND', `tenant ${tenantId} not found`);
    }
    const roles = await this.rolesOf(tenantId, body.roles);
    const wanted = [...body.permissions, ...roles.flatMap((r) => r.permissions)];
    const refused = ungrantable(p, wanted);
    if (refused.length) {
      await this.deny(ctx, 'user.created', { type: 'user', name: body.username }, `you may not grant ${refused.join(', ')}`, tenantId);
    }
    const passwordHash = body.password === undefined ? null : await hashPassword(body.password);
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.insertAccount(tx, {
        id: randomUUID(),
        tenantId,
        username: body.username,
        kind: body.kind,
        passwordHash,
        permissions: [...new Set(body.permissions)],
        roleIds: [...new Set(body.roles)],
      });
      if (r) {
        await this.record(
          ctx,
          'user.created',
          { result: 'success', tenantId, target: { type: 'user', id: r.id, name: r.username }, details: { kind: r.kind, permissions: r.permissions, roles: r.role_ids } },
          tx,
        );
      }
      return r;
    });
    if (!row) throw new AppError('ALREADY_EXISTS', `username ${body.username} is taken in tenant ${tenantId}`);
    return toUser(row);
  }

  async updateUser(ctx: CallContext, id: string, body: UpdateUserBody): Promise<User> {
    const p = ctx.principal;
    const current = await repo.findAccount(this.db, p.tenantId, id);
    if (!current) throw AppError.notFound(`user ${id}`);
    const target = { type: 'user', id, name: current.username };
    if (!canManage(p, await this.accountPermissions(this.db, current))) {
      await this.deny(ctx, 'user.updated', target, 'you may not change an account that holds permissions you cannot grant', current.tenant_id);
    }
    const roles = body.roles ? await this.rolesOf(current.tenant_id, body.roles) : [];
    const refused = ungrantable(p, [...(body.permissions ?? []), ...roles.flatMap((r) => r.permissions)]);
    if (refused.length) await this.deny(ctx, 'user.updated', target, `you may not grant ${refused.join(', ')}`, current.tenant_id);
    if (body.password !== undefined && current.kind === 'service') {
      throw AppError.invalid('body.password: a service account has no password (issue it a token)');
    }
    const passwordHash = body.password === undefined ? undefined : await hashPassword(body.password);
    const { row, revoked } = await this.db.transaction(async (tx) => {
      const r = await repo.updateAccount(tx, current.tenant_id, id, {
        passwordHash,
        permissions: body.permissions ? [...new Set(body.permissions)] : undefined,
        roleIds: body.roles ? [...new Set(body.roles)] : undefined,
      });
      if (!r) throw AppError.notFound(`user ${id}`);
      // A new password ends the other sessions: whoever knew the old one is logged out.
      const hashes = passwordHash ? await repo.revokeSessionsOfAccount(tx, id, p.tokenId) : [];
      const changed = Object.keys(body).filter((k) => body[k as keyof UpdateUserBody] !== undefined);
      await this.record(
        ctx,
        'user.updated',
        { result: 'success', tenantId: r.tenant_id, target, details: { changed, permissions: r.permissions, roles: r.role_ids, sessionsRevoked: hashes.length } },
        tx,
      );
      return { row: r, revoked: hashes };
    });
    await this.invalidate('all');
    if (revoked.length) this.logger.info({ accountId: id, sessions: revoked.length }, 'password changed; sessions revoked');
    return toUser(row);
  }

  async deleteUser(ctx: CallContext, id: string): Promise<void> {
    const p = ctx.principal;
    if (id === p.accountId) throw AppError.conflict('you cannot delete your own account');
    const current = await repo.findAccount(this.db, p.tenantId, id);
    if (!current) throw AppError.notFound(`user ${id}`);
    const target = { type: 'user', id, name: current.username };
    if (!canManage(p, await this.accountPermissions(this.db, current))) {
      await this.deny(ctx, 'user.deleted', target, 'you may not delete an account that holds permissions you cannot grant', current.tenant_id);
    }
    const hashes = await this.db.transaction(async (tx) => {
      const h = await repo.listTokenHashesOfAccount(tx, id);
      if (!(await repo.deleteAccount(tx, current.tenant_id, id))) throw AppError.notFound(`user ${id}`);
      const event: UserDeletedEvent = { id, tenantId: current.tenant_id };
      await this.bus.publish(IAM_EVENTS.userDeleted, event, { tx });
      // The audit module anonymises this account's name in older records when it stores this one.
      await this.record(ctx, 'user.deleted', { result: 'success', tenantId: current.tenant_id, target }, tx);
      return h;
    });
    await this.invalidate(hashes);
  }

  private async rolesOf(tenantId: string, ids: readonly string[]): Promise<repo.RoleRow[]> {
    if (!ids.length) return [];
    const unique = [...new Set(ids)];
    const roles = await repo.findRolesByIds(this.db, tenantId, unique);
    const missing = unique.filter((id) => !roles.some((r) => r.id === id));
    if (missing.length) throw AppError.invalid(`body.roles: no role ${missing.join(', ')} in tenant ${tenantId}`);
    return roles;
  }

  // ---------------------------------------------------------------- roles

  async listRoles(ctx: CallContext, q: RoleListQuery): Promise<List<Role>> {
    const f = { tenantId: ctx.principal.tenantId, search: q.search };
    const [total, rows] = await Promise.all([repo.countRoles(this.db, f), repo.listRoles(this.db, f, parseSort(q.sort, 'name'), page(q))]);
    return { data: rows.map(toRole), meta: listMeta(total, q['page[number]'], q['page[size]']) };
  }

  async getRole(ctx: CallContext, id: string): Promise<Role> {
    const row = await repo.findRole(this.db, ctx.principal.tenantId, id);
    if (!row) throw AppError.notFound(`role ${id}`);
    return toRole(row);
  }

  async createRole(ctx: CallContext, body: CreateRoleBody): Promise<Role> {
    const tenantId = ctx.principal.tenantId;
    const refused = ungrantable(ctx.principal, body.permissions);
    if (refused.length) await this.deny(ctx, 'role.created', { type: 'role', name: body.name }, `you may not grant ${refused.join(', ')}`, tenantId);
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.insertRole(tx, { id: randomUUID(), tenantId, name: body.name, permissions: [...new Set(body.permissions)] });
      if (r) {
        await this.record(ctx, 'role.created', { result: 'success', tenantId, target: { type: 'role', id: r.id, name: r.name }, details: { permissions: r.permissions } }, tx);
      }
      return r;
    });
    if (!row) throw new AppError('ALREADY_EXISTS', `role ${body.name} already exists in tenant ${tenantId}`);
    return toRole(row);
  }

  async updateRole(ctx: CallContext, id: string, body: UpdateRoleBody): Promise<Role> {
    const tenantId = ctx.principal.tenantId;
    const current = await repo.findRole(this.db, tenantId, id);
    if (!current) throw AppError.notFound(`role ${id}`);
    const target = { type: 'role', id, name: current.name };
    const refused = ungrantable(ctx.principal, [...current.permissions, ...(body.permissions ?? [])]);
    if (refused.length) await this.deny(ctx, 'role.updated', target, `you may not grant ${refused.join(', ')}`, tenantId);
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.updateRole(tx, tenantId, id, { name: body.name, permissions: body.permissions ? [...new Set(body.permissions)] : undefined });
      if (r === null) throw new AppError('ALREADY_EXISTS', `role ${body.name} already exists in tenant ${tenantId}`);
      if (!r) throw AppError.notFound(`role ${id}`);
      await this.record(ctx, 'role.updated', { result: 'success', tenantId, target: { ...target, name: r.name }, details: { permissions: r.permissions } }, tx);
      return r;
    });
    await this.invalidate('all');
    return toRole(row);
  }

  async deleteRole(ctx: CallContext, id: string): Promise<void> {
    const tenantId = ctx.principal.tenantId;
    const current = await repo.findRole(this.db, tenantId, id);
    if (!current) throw AppError.notFound(`role ${id}`);
    const target = { type: 'role', id, name: current.name };
    const refused = ungrantable(ctx.principal, current.permissions);
    if (refused.length) await this.deny(ctx, 'role.deleted', target, `you may not revoke ${refused.join(', ')}`, tenantId);
    await this.db.transaction(async (tx) => {
      const holders = await repo.countAccountsWithRole(tx, tenantId, id);
      await repo.removeRoleFromAccounts(tx, tenantId, id);
      if (!(await repo.deleteRole(tx, tenantId, id))) throw AppError.notFound(`role ${id}`);
      await this.record(ctx, 'role.deleted', { result: 'success', tenantId, target, details: { removedFromAccounts: holders } }, tx);
    });
    await this.invalidate('all');
  }

  // ---------------------------------------------------------------- housekeeping

  /** Drops login failures older than the window, sources not used for 30 days, and tokens dead for a day. */
  async purgeExpired(): Promise<void> {
    const now = Date.now();
    await repo.deleteLoginFailuresBefore(this.db, new Date(now - this.config.iam.login.windowMs));
    await repo.deleteLoginSourcesBefore(this.db, new Date(now - KNOWN_SOURCE_MS));
    await repo.deleteDeadTokens(this.db, new Date(now - 86_400_000));
  }
}
