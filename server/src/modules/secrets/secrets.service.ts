/**
 * Secrets: create, read masked, read raw (audited), update, delete; resolve a step's
 * credential for the execution engine. OAuth2 access tokens are refreshed before they expire,
 * under a lease in the secret's row so that concurrent readers — in this process or any
 * other — cause one call to the token endpoint, not one each.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditPublisher, AuditRecordInput } from '../../platform/audit.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Principal } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { Outbound } from '../../platform/outbound/index.js';
import { listMeta, parseSort, type ListMeta } from '../../contracts/list.js';
import {
  MASK,
  MIN_SIGNING_SECRET_LENGTH,
  SECRET_VALUE_SCHEMAS,
  SENSITIVE_FIELDS,
  type OAuth2Value,
  type SecretResolver,
  type SecretType,
  type SecretUse,
  type SecretValue,
} from '../../contracts/secrets.js';
import type { Keyring } from './secrets.crypto.js';
import { isRefreshDue, requestToken } from './secrets.oauth2.js';
import * as repo from './secrets.repo.js';
import type { CreateSecretBody, Secret, SecretListQuery, UpdateSecretBody } from './secrets.schemas.js';

/** How long one refresher holds the lease (longer than the token request's own timeout). */
const REFRESH_LEASE_MS = 30_000;
/** How long a reader waits for another's refresh before giving up (transient: retried later). */
const REFRESH_WAIT_MS = 20_000;
/** A step's use of a secret is audited at most this often per secret and flow. */
const STEP_READ_AUDIT_INTERVAL_MS = 60_000;
/** oauth2 fields that identify the grant: changing one makes the stored access token meaningless. */
const OAUTH2_GRANT_FIELDS = ['grantType', 'tokenUrl', 'clientId', 'clientSecret', 'scope', 'audience', 'refreshToken'] as const;

export interface CallContext {
  principal: Principal;
  ip: string;
}

/** A secret another module keeps for something it owns (see `storeOwned`). */
export interface OwnedSecretInput {
  tenantId: string;
  /** What the secret belongs to, e.g. `flow:<id>`. */
  owner: string;
  /** The name it gets in the tenant's secrets list. */
  name: string;
  /** The signing key. */
  value: string;
  /** The secret the owner refers to now: re-sealed in place when the owner holds it. */
  replaceId?: string | undefined;
  /** Who asked (for the audit record); none for start-up migrations. */
  actor?: Principal | undefined;
}

function aad(tenantId: string, id: string): string {
  return `plexus-secret:${tenantId}:${id}`;
}

export function maskValue(v: SecretValue): Record<string, unknown> {
  if (v.type === 'mixed') return Object.fromEntries(Object.keys(v.value).map((k) => [k, MASK]));
  const sensitive = SENSITIVE_FIELDS[v.type];
  return Object.fromEntries(Object.entries(v.value).map(([k, x]) => [k, sensitive.includes(k) ? MASK : x]));
}

function tokenExpiry(v: SecretValue): Date | null {
  return v.type === 'oauth2' && v.value.expiresAt ? new Date(v.value.expiresAt) : null;
}

/** Validates a value for its type; problems name the field under `where`. */
function parseValue(type: SecretType, value: unknown, where: string): SecretValue {
  const parsed = SECRET_VALUE_SCHEMAS[type].safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`);
    throw AppError.invalid(problems.join('; '), { problems });
  }
  return { type, value: parsed.data } as SecretValue;
}

export class SecretsService implements SecretResolver {
  /** Refreshes in flight in this process, by secret: concurrent readers share one. */
  private readonly refreshing = new Map<string, Promise<{ value: SecretValue; row: repo.SecretRow }>>();
  private readonly stepReadsAuditedAt = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly keyring: Keyring,
    private readonly audit: AuditPublisher,
    private readonly logger: Logger,
    /** The OAuth2 token endpoint is called through it. */
    private readonly outbound: Outbound,
  ) {}

  private open(row: repo.SecretRow): SecretValue {
    const json = this.keyring.open({ keyId: row.key_id, ciphertext: row.ciphertext }, aad(row.tenant_id, row.id));
    return { type: row.type, value: JSON.parse(json) } as SecretValue;
  }

  private seal(tenantId: string, id: string, v: SecretValue): { keyId: string; ciphertext: string } {
    return this.keyring.seal(JSON.stringify(v.value), aad(tenantId, id));
  }

  private toSecret(row: repo.SecretRow, value: Record<string, unknown>): Secret {
    return {
      id: row.id,
      name: row.name,
      type: row.type,
      value,
      createdBy: row.created_by,
      owner: row.owner,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
      tokenExpiresAt: row.token_expires_at?.toISOString() ?? null,
      lastRefreshedAt: row.last_refreshed_at?.toISOString() ?? null,
      lastError: row.last_error,
    };
  }

  /** Audits an action on a secret; with `tx`, as part of the caller's transaction. */
  private record(
    ctx: { principal: Principal; ip?: string | undefined } | undefined,
    action: string,
    tenantId: string,
    input: Omit<AuditRecordInput, 'action' | 'actor' | 'sourceIp' | 'tenantId'>,
    tx?: Queryable,
  ): Promise<void> {
    const actor = ctx ? { accountId: ctx.principal.accountId, username: ctx.principal.username, tenantId: ctx.principal.tenantId } : undefined;
    return this.audit.record({ action, actor, sourceIp: ctx?.ip, tenantId, ...input }, tx ? { tx } : undefined);
  }

  private async find(tenantId: string, id: string): Promise<repo.SecretRow> {
    const row = await repo.findSecret(this.db, tenantId, id);
    if (!row) throw AppError.notFound(`secret ${id}`);
    return row;
  }

  // ---------------------------------------------------------------- API

  async list(ctx: CallContext, q: SecretListQuery): Promise<{ data: Secret[]; meta: ListMeta }> {
    const f: repo.SecretFilter = { tenantId: ctx.principal.tenantId, type: q['filter[type]'], name: q['filter[name]'], search: q.search };
    const size = q['page[size]'];
    const [total, rows] = await Promise.all([
      repo.countSecrets(this.db, f),
      repo.listSecrets(this.db, f, parseSort(q.sort, 'name'), { limit: size, offset: (q['page[number]'] - 1) * size }),
    ]);
    return { data: rows.map((r) => this.toSecret(r, maskValue(this.open(r)))), meta: listMeta(total, q['page[number]'], size) };
  }

  async get(ctx: CallContext, id: string): Promise<Secret> {
    const row = await this.find(ctx.principal.tenantId, id);
    return this.toSecret(row, maskValue(this.open(row)));
  }

  /** The unmasked value (oauth2 refreshed first when due). Every such read is audited. */
  async getRaw(ctx: CallContext, id: string): Promise<Secret> {
    const tenantId = ctx.principal.tenantId;
    const { value, row } = await this.current(await this.find(tenantId, id), false);
    await this.record(ctx, 'secret.read-raw', tenantId, { result: 'success', target: { type: 'secret', id, name: row.name } });
    return this.toSecret(row, value.value);
  }

  async create(ctx: CallContext, body: CreateSecretBody): Promise<Secret> {
    const tenantId = ctx.principal.tenantId;
    const id = randomUUID();
    const value = { type: body.type, value: body.value } as SecretValue;
    const sealed = this.seal(tenantId, id, value);
    const row = await this.db.transaction(async (tx) => {
      const r = await repo.insertSecret(tx, { id, tenantId, name: body.name, type: body.type, ...sealed, createdBy: ctx.principal.accountId, tokenExpiresAt: tokenExpiry(value) });
      if (r) {
        await this.record(ctx, 'secret.created', tenantId, { result: 'success', target: { type: 'secret', id, name: r.name }, details: { type: r.type, fields: Object.keys(body.value) } }, tx);
      }
      return r;
    });
    if (!row) throw new AppError('ALREADY_EXISTS', `a secret named ${body.name} already exists`);
    return this.toSecret(row, maskValue(value));
  }

  async update(ctx: CallContext, id: string, body: UpdateSecretBody): Promise<Secret> {
    const tenantId = ctx.principal.tenantId;
    const row = await this.find(tenantId, id);
    let next: SecretValue | undefined;
    let changed: string[] = [];
    if (body.value) {
      const current = this.open(row);
      const merged: Record<string, unknown> = { ...current.value };
      for (const [k, v] of Object.entries(body.value)) {
        if (v === MASK) continue;
        if (v === null && row.type !== 'mixed') delete merged[k];
        else merged[k] = v;
        changed.push(k);
      }
      if (row.type === 'oauth2' && changed.some((k) => (OAUTH2_GRANT_FIELDS as readonly string[]).includes(k)) && !changed.includes('accessToken')) {
        // The stored access token was issued for the old grant.
        delete merged.accessToken;
        delete merged.expiresAt;
      }
      next = parseValue(row.type, merged, 'body.value');
      changed = [...new Set(changed)];
    }
    const sealed = next ? this.seal(tenantId, id, next) : undefined;
    const updated = await this.db.transaction(async (tx) => {
      const r = await repo.updateSecret(tx, tenantId, id, {
        name: body.name,
        keyId: sealed?.keyId,
        ciphertext: sealed?.ciphertext,
        tokenExpiresAt: next ? tokenExpiry(next) : undefined,
      });
      if (r === null) throw new AppError('ALREADY_EXISTS', `a secret named ${body.name} already exists`);
      if (!r) throw AppError.notFound(`secret ${id}`);
      await this.record(ctx, 'secret.updated', tenantId, { result: 'success', target: { type: 'secret', id, name: r.name }, details: { renamed: body.name !== undefined && body.name !== row.name, fields: changed } }, tx);
      return r;
    });
    return this.toSecret(updated, maskValue(next ?? this.open(updated)));
  }

  async delete(ctx: CallContext, id: string): Promise<void> {
    const tenantId = ctx.principal.tenantId;
    await this.db.transaction(async (tx) => {
      const r = await repo.deleteSecret(tx, tenantId, id);
      if (!r) throw AppError.notFound(`secret ${id}`);
      await this.record(ctx, 'secret.deleted', tenantId, { result: 'success', target: { type: 'secret', id, name: r.name } }, tx);
    });
  }

  /** Refreshes an oauth2 secret now (to test its grant); answers the masked secret. */
  async refresh(ctx: CallContext, id: string): Promise<Secret> {
    const row = await this.find(ctx.principal.tenantId, id);
    if (row.type !== 'oauth2') throw AppError.conflict(`secret ${id} is of type ${row.type}; only oauth2 secrets refresh`);
    const { value, row: after } = await this.current(row, true);
    return this.toSecret(after, maskValue(value));
  }

  // ---------------------------------------------------------------- secrets other modules own

  /**
   * Seals `value` as an `apiKey` secret owned by `owner` (a flow's webhook signing secret) and
   * returns its id, inside the caller's transaction: `replaceId` re-sealed in place when
   * `owner` holds it; else the one `owner` already holds with this value; else a new one.
   */
  async storeOwned(tx: Queryable, input: OwnedSecretInput): Promise<string> {
    const { tenantId, owner } = input;
    const value: SecretValue = { type: 'apiKey', value: { key: input.value } };
    const details = { type: 'apiKey', owner, fields: ['key'] };
    const ctx = input.actor ? { principal: input.actor } : undefined;
    const replacing = input.replaceId ? await repo.findSecret(tx, tenantId, input.replaceId) : undefined;
    if (replacing && replacing.owner === owner) {
      const r = await repo.updateSecret(tx, tenantId, replacing.id, this.seal(tenantId, replacing.id, value));
      await this.record(ctx, 'secret.updated', tenantId, { result: 'success', target: { type: 'secret', id: replacing.id, name: r?.name }, details }, tx);
      return replacing.id;
    }
    for (const row of await repo.listOwnedSecrets(tx, tenantId, owner)) {
      const held = this.open(row);
      if (held.type === 'apiKey' && held.value.key === input.value) return row.id;
    }
    const id = randomUUID();
    const sealed = this.seal(tenantId, id, value);
    const base = { id, tenantId, type: 'apiKey' as const, ...sealed, createdBy: input.actor?.accountId ?? null, tokenExpiresAt: null, owner };
    // Names are unique per tenant; one the tenant took already gets the id's start appended.
    const row = (await repo.insertSecret(tx, { ...base, name: input.name })) ?? (await repo.insertSecret(tx, { ...base, name: `${input.name} (${id.slice(0, 8)})` }));
    if (!row) throw new AppError('ALREADY_EXISTS', `a secret named ${input.name} already exists`);
    await this.record(ctx, 'secret.created', tenantId, { result: 'success', target: { type: 'secret', id, name: row.name }, details }, tx);
    return id;
  }

  /** Deletes the secrets `owner` holds (its flow is deleted), inside the caller's transaction. */
  async deleteOwned(tx: Queryable, tenantId: string, owner: string, actor?: Principal): Promise<void> {
    const ctx = actor ? { principal: actor } : undefined;
    for (const r of await repo.deleteOwnedSecrets(tx, tenantId, owner)) {
      await this.record(ctx, 'secret.deleted', tenantId, { result: 'success', target: { type: 'secret', id: r.id, name: r.name }, details: { owner } }, tx);
    }
  }

  /** Why secret `id` of `tenantId` cannot sign webhooks, or undefined when it can. */
  async signingSecretProblem(tenantId: string, id: string): Promise<string | undefined> {
    const row = await repo.findSecret(this.db, tenantId, id);
    if (!row) return `no secret ${id}`;
    const v = this.open(row);
    if (v.type !== 'apiKey') return `secret ${id} is of type ${v.type}; a signing secret is an apiKey secret (its key signs)`;
    if (v.value.key.length < MIN_SIGNING_SECRET_LENGTH) return `the key of secret ${id} is shorter than ${MIN_SIGNING_SECRET_LENGTH} characters`;
    return undefined;
  }

  // ---------------------------------------------------------------- the engine's view

  async resolveForStep(tenantId: string, secretId: string, use: SecretUse = {}): Promise<SecretValue> {
    const { value, row } = await this.current(await this.find(tenantId, secretId), false);
    const auditKey = `${tenantId}/${secretId}/${use.flowId ?? ''}`;
    const now = Date.now();
    if (now - (this.stepReadsAuditedAt.get(auditKey) ?? 0) >= STEP_READ_AUDIT_INTERVAL_MS) {
      if (this.stepReadsAuditedAt.size > 10_000) this.stepReadsAuditedAt.clear();
      this.stepReadsAuditedAt.set(auditKey, now);
      await this.record(undefined, 'secret.read-raw', tenantId, {
        result: 'success',
        target: { type: 'secret', id: secretId, name: row.name },
        details: { by: 'step', ...use, auditedAtMostEveryMs: STEP_READ_AUDIT_INTERVAL_MS },
      });
    }
    return value;
  }

  /**
   * A step's update of its own credential (an OIH component's `updateKeys`): oauth2 tokens in the
   * token endpoint's names (`access_token`, `refresh_token`, `expires_in` seconds) or this
   * type's own field names, merged into the stored value, validated, audited as by the step.
   */
  async updateForStep(tenantId: string, secretId: string, keys: Record<string, unknown>, use: SecretUse = {}): Promise<void> {
    const row = await this.find(tenantId, secretId);
    const current = this.open(row);
    const patch: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(keys)) {
      if (current.type === 'oauth2' && k === 'access_token') patch.accessToken = v;
      else if (current.type === 'oauth2' && k === 'refresh_token') patch.refreshToken = v;
      else if (current.type === 'oauth2' && k === 'expires_in' && typeof v === 'number') patch.expiresAt = new Date(Date.now() + v * 1000).toISOString();
      else if (current.type === 'mixed' || k in current.value) patch[k] = v;
    }
    const changed = Object.keys(patch);
    if (changed.length === 0) return;
    const next = parseValue(row.type, { ...current.value, ...patch }, 'updateKeys');
    const sealed = this.seal(tenantId, secretId, next);
    await this.db.transaction(async (tx) => {
      const r = await repo.updateSecret(tx, tenantId, secretId, { keyId: sealed.keyId, ciphertext: sealed.ciphertext, tokenExpiresAt: tokenExpiry(next) });
      if (!r) throw AppError.notFound(`secret ${secretId}`);
      await this.record(undefined, 'secret.updated', tenantId, { result: 'success', target: { type: 'secret', id: secretId, name: r.name }, details: { by: 'step', ...use, fields: changed } }, tx);
    });
  }

  // ---------------------------------------------------------------- oauth2 refresh

  /** The secret's value, refreshed first when it is an oauth2 token that is due (or `force`). */
  private async current(row: repo.SecretRow, force: boolean): Promise<{ value: SecretValue; row: repo.SecretRow }> {
    const value = this.open(row);
    if (value.type !== 'oauth2') return { value, row };
    if (!force && !isRefreshDue(value.value, row.last_refreshed_at, Date.now())) return { value, row };
    const key = `${row.tenant_id}/${row.id}`;
    let pending = this.refreshing.get(key);
    if (!pending) {
      pending = this.refreshOnce(row.tenant_id, row.id, force ? row.version : undefined).finally(() => this.refreshing.delete(key));
      this.refreshing.set(key, pending);
    }
    return pending;
  }

  /**
   * Takes the row's refresh lease and refreshes, or — when another holds it — waits for that
   * refresh to land and uses its result. `forcedAtVersion`: refresh unless the row changed
   * since that version (someone refreshed meanwhile).
   */
  private async refreshOnce(tenantId: string, id: string, forcedAtVersion: number | undefined): Promise<{ value: SecretValue; row: repo.SecretRow }> {
    const owner = randomUUID();
    const deadline = Date.now() + REFRESH_WAIT_MS;
    const isStillDue = (r: repo.SecretRow, v: OAuth2Value): boolean =>
      forcedAtVersion !== undefined ? r.version === forcedAtVersion : isRefreshDue(v, r.last_refreshed_at, Date.now());
    let waitMs = 25;
    for (;;) {
      const locked = await repo.acquireRefreshLock(this.db, tenantId, id, owner, new Date(Date.now() + REFRESH_LEASE_MS));
      if (locked) {
        const current = this.open(locked) as { type: 'oauth2'; value: OAuth2Value };
        if (!isStillDue(locked, current.value)) {
          await repo.releaseRefreshLock(this.db, tenantId, id, owner);
          return { value: current, row: locked };
        }
        let refreshed: OAuth2Value;
        try {
          refreshed = await requestToken(this.outbound, current.value);
        } catch (err) {
          const message = err instanceof Error ? err.message.slice(0, 500) : 'refresh failed';
          await repo.failRefresh(this.db, tenantId, id, owner, message);
          await this.record(undefined, 'secret.refreshed', tenantId, { result: 'failure', target: { type: 'secret', id, name: locked.name }, details: { reason: message } });
          throw err;
        }
        const next: SecretValue = { type: 'oauth2', value: refreshed };
        const stored = await repo.completeRefresh(this.db, tenantId, id, owner, { ...this.seal(tenantId, id, next), tokenExpiresAt: tokenExpiry(next) });
        if (!stored) this.logger.warn({ secretId: id }, 'oauth2 refresh outlived its lease; the token obtained is used but may not be the stored one');
        await this.record(undefined, 'secret.refreshed', tenantId, { result: 'success', target: { type: 'secret', id, name: locked.name }, details: { expiresAt: refreshed.expiresAt } });
        return { value: next, row: stored ?? locked };
      }
      // Another reader holds the lease: wait for its result rather than calling the endpoint too.
      if (Date.now() > deadline) throw new AppError('UNAVAILABLE', `timed out waiting for the refresh of secret ${id}`, 'transient');
      await sleep(waitMs);
      waitMs = Math.min(waitMs * 2, 500);
      const row = await this.find(tenantId, id);
      const leaseFree = !row.refresh_locked_until || row.refresh_locked_until.getTime() < Date.now();
      if (!leaseFree) continue;
      const v = this.open(row) as { type: 'oauth2'; value: OAuth2Value };
      if (!isStillDue(row, v.value)) return { value: v, row };
      // The holder finished without a fresh token: it failed, and says why.
      if (row.last_error) throw new AppError('UPSTREAM_FAILED', `token refresh failed: ${row.last_error}`, 'user');
    }
  }

  // ---------------------------------------------------------------- key rotation

  /** Re-seals every secret still sealed with a previous key under the current one; returns how many. */
  async rotateKeys(): Promise<number> {
    let after = '';
    let resealed = 0;
    for (;;) {
      const batch = await repo.listSealedWithOtherKey(this.db, this.keyring.currentKeyId, after, 100);
      if (!batch.length) return resealed;
      for (const row of batch) {
        after = row.id;
        let value: SecretValue;
        try {
          value = this.open(row);
        } catch (err) {
          this.logger.error({ secretId: row.id, keyId: row.key_id, err: (err as Error).message }, 'cannot re-seal a secret: its key is not configured');
          continue;
        }
        if (await repo.resealSecret(this.db, row.id, row.version, this.seal(row.tenant_id, row.id, value))) resealed++;
      }
    }
  }
}
