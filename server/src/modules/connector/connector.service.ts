/**
 * The Connector's service: one-time tokens (issued for the Director, redeemed here), the
 * certificate signing that pairing ends with, and the client-certificate identities the mTLS
 * listener serves, with revocation that takes effect on every process at once.
 *
 * Glossary: a *pairing* token comes from the Director (`requestOneTimeTokenFor…`) and is redeemed
 * by `configuration`, which hands out a *csr* token redeemed by `signCertificateSigningRequest`.
 * Both are single use. A certificate's CN is the id of a Director system auth of kind
 * `certificate`; the certificate row keeps the tenant and the object it stands for.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AuditEvent, AuditPublisher, AuditRecordInput } from '../../platform/audit.js';
import { Batcher, type BatchEntry } from '../../platform/batcher.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Caller, IssuedOneTimeToken, OneTimeTokenStatus, Pairing, PairingTarget } from '../director/index.js';
import type { CertificateAuthority, SignedCertificate } from './connector.ca.js';
import * as repo from './connector.repo.js';
import { CsrSigner } from './connector.signer.js';

/** Live event (every process) telling that certificates were revoked. */
export const REVOKED_EVENT = 'connector.certificates.revoked';
/**
 * How long a process trusts what it read about a certificate without asking again whether it was
 * revoked. The live event clears it at once; this bound holds even if that event were lost (it is
 * at most once).
 */
const IDENTITY_CACHE_MS = 900;
/**
 * How long an identity read from the database is kept while the revocation list is asked, at
 * most every IDENTITY_CACHE_MS, for what was revoked lately: one query for every certificate,
 * where reading each certificate again every 0.9 s cost three queries per certificate (with 50
 * senders, ~170 queries/s: at a low event rate that was most of the hub's CPU per event). Read
 * again after 10 s all the same, for what is not a revocation (a system auth row gone otherwise).
 */
const IDENTITY_KEEP_MS = 10_000;
/** Revocations of the last minute are asked for; a revoking transaction commits well within it. */
const RECENT_REVOCATIONS_S = 60;
const IDENTITY_CACHE_MAX = 10_000;
/** csr tokens remembered (below) at most; more are read from the database as any other. */
const CSR_TOKENS_MAX = 10_000;

/** What a csr token this process answered stands for, until it is first used. */
interface CsrTokenEntry {
  tenantId: string;
  objectType: repo.ObjectType;
  objectId: string;
  systemAuthId: string;
  /** By this process's clock (the database's decides when it is spent). */
  expiresAt: number;
}

interface IdentityEntry {
  identity: CertificateIdentity | undefined;
  refusal: string | undefined;
  /** Read from the database until then. */
  until: number;
  /** Trusted until then; later, after the revocation list was asked again. */
  checkedUntil: number;
}

export interface ConnectorUrls {
  /** Base of the HTTP port (connectorURL, directorURL). */
  publicUrl: string;
  /** Base of the mTLS port (certificateSecuredConnectorURL, events). */
  mtlsUrl: string;
}

/** A caller of the mTLS listener: the certificate it presented and whom it stands for. */
export interface CertificateIdentity {
  certificate: repo.CertificateRow;
  caller: Caller;
}

export interface ConfigurationResult {
  token: { token: string };
  certificateSigningRequestInfo: { subject: string; keyAlgorithm: string };
  managementPlaneInfo: { directorURL: string; certificateSecuredConnectorURL: string };
}

export interface CertificationResult {
  certificateChain: string;
  caCertificate: string;
  clientCertificate: string;
}

/**
 * A write of a pairing. The writes arriving together share one transaction (group commit) and
 * one publication of their audit events: under load most of a pairing's statements were the
 * BEGIN / COMMIT and the audit insert of each of its three transactions.
 */
type PairingWrite =
  /** A new pairing token (older ones invalidated); resolves to its row. */
  | { kind: 'issue'; token: Parameters<typeof repo.replaceTokens>[1]; record: AuditRecordInput; director: ((expiresAt: Date) => AuditEvent) | undefined }
  /** `configuration`: the pairing token redeemed, the csr token stored; resolves to the redeemed row or undefined. */
  | { kind: 'redeem'; hash: string; csrHash: string; ip: string }
  /** A signed certificate stored, its csr token (if any) spent; resolves to false when another redemption won. */
  | { kind: 'store'; hash: string | undefined; certificate: repo.NewCertificate; issued: AuditRecordInput; ip: string };

/** Pairing writes per transaction at most. */
const WRITE_BATCH = 64;

/** The one-time token as the client holds it: 256 random bits, base64url. */
function newToken(): string {
  return randomBytes(32).toString('base64url');
}

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

const b64 = (pem: string): string => Buffer.from(pem, 'utf8').toString('base64');

export interface ConnectorServiceDeps {
  db: Db;
  bus: Bus;
  audit: AuditPublisher;
  logger: Logger;
  ca: CertificateAuthority;
  config: Config['connector'];
  urls: () => ConnectorUrls;
}

/** What the Connector asks of the Director: the caller a certificate's system auth stands for. */
export type CertificateCallerResolver = (tenantId: string, systemAuthId: string, ip: string, certificateId: string) => Promise<Caller | undefined>;

export class ConnectorService implements Pairing {
  private readonly identities = new Map<string, IdentityEntry>();
  /** The last question to the revocation list (shared by every request that needs it). */
  private revocations: { at: number; done: Promise<boolean> } | undefined;
  private resolveCaller: CertificateCallerResolver | undefined;
  private readonly signer: CsrSigner;
  private readonly writes: Batcher<PairingWrite, unknown>;
  /**
   * csr tokens answered by `configuration` here, by hash: their signing needs not read the
   * token's row to learn the subject (one statement less per pairing). Taken at the first use. Only
   * a hint: the guarded UPDATE that spends the token in the certificate's transaction still
   * decides whether it is good (a token replaced or expired meanwhile is refused there, its
   * certificate dropped); tokens answered by another process are read as before.
   */
  private readonly csrTokens = new Map<string, CsrTokenEntry>();

  constructor(private readonly deps: ConnectorServiceDeps) {
    this.signer = new CsrSigner(deps.ca, deps.config.signerThreads, deps.logger);
    // PGlite runs one statement at a time: one transaction in flight, the next batch gathers meanwhile.
    this.writes = new Batcher({ maxBatch: WRITE_BATCH, maxInFlight: deps.db.dialect === 'pglite' ? 1 : 4, flush: (batch) => this.flushWrites(batch) });
  }

  /** Stops the signer threads (after the pairing writes under way). */
  async close(): Promise<void> {
    await this.writes.idle();
    await this.signer.close();
  }

  /**
   * Stores a batch of pairing writes in one transaction, their audit events in one publication
   * each (the Connector's, the Director's). When that transaction fails, each write is tried again
   * in a transaction of its own, so one failing write fails alone.
   */
  private async flushWrites(batch: ReadonlyArray<BatchEntry<PairingWrite, unknown>>): Promise<void> {
    try {
      const results = await this.deps.db.transaction((tx) => this.applyWrites(tx, batch.map((b) => b.item)));
      batch.forEach((b, i) => b.resolve(results[i]));
    } catch (err) {
      if (batch.length === 1) throw err;
      for (const b of batch) {
        try {
          b.resolve((await this.deps.db.transaction((tx) => this.applyWrites(tx, [b.item])))[0]);
        } catch (one) {
          b.reject(one);
        }
      }
    }
  }

  private async applyWrites(tx: Queryable, items: readonly PairingWrite[]): Promise<unknown[]> {
    const records: AuditRecordInput[] = [];
    const others: AuditEvent[] = [];
    const results: unknown[] = [];
    for (const w of items) {
      if (w.kind === 'issue') {
        const row = await repo.replaceTokens(tx, w.token);
        records.push({ ...w.record, details: { ...w.record.details, expiresAt: row.expires_at.toISOString() } });
        if (w.director) others.push(w.director(row.expires_at));
        results.push(row);
      } else if (w.kind === 'redeem') {
        const row = await repo.redeemForCsrToken(tx, w.hash, w.csrHash, { application: this.deps.config.appTokenTtlMs, runtime: this.deps.config.runtimeTokenTtlMs });
        if (row) records.push(this.tokenUsed(row, 'pairing', w.ip));
        results.push(row);
      } else if (w.hash) {
        const row = await repo.redeemForCertificate(tx, w.hash, w.certificate);
        if (row) records.push(this.tokenUsed(row, 'csr', w.ip), w.issued);
        results.push(row !== undefined);
      } else {
        await repo.insertCertificate(tx, w.certificate);
        records.push(w.issued);
        results.push(true);
      }
    }
    if (records.length > 0) await this.deps.audit.recordMany(records, { tx });
    if (others.length > 0) await this.deps.bus.publishMany(others, { tx });
    return results;
  }

  /** Wired by the module once the Director exists (the Director also holds this service as its Pairing port). */
  bindDirector(resolve: CertificateCallerResolver): void {
    this.resolveCaller = resolve;
  }

  get caPem(): string {
    return this.deps.ca.pem;
  }

  /** A fresh server key and certificate for this process's mTLS listener, and the CA clients must trust. */
  async serverCertificate(hosts: readonly string[]): Promise<{ certPem: string; keyPem: string; caPem: string }> {
    return { ...(await this.deps.ca.issueServerCertificate(hosts)), caPem: this.deps.ca.pem };
  }

  subjectFor(systemAuthId: string): string {
    return `${this.deps.config.subject},CN=${systemAuthId}`;
  }

  // ---------------------------------------------------------------- Pairing (the Director's port)

  async issueOneTimeToken(caller: Caller, target: PairingTarget, director?: (expiresAt: Date) => AuditEvent): Promise<IssuedOneTimeToken> {
    const token = newToken();
    const ttlMs = target.type === 'application' ? this.deps.config.appTokenTtlMs : this.deps.config.runtimeTokenTtlMs;
    const row = (await this.writes.add({
      kind: 'issue',
      token: {
        tokenHash: hashToken(token),
        tenantId: target.tenantId,
        objectType: target.type,
        objectId: target.id,
        systemAuthId: target.systemAuthId,
        createdBy: caller.principal.accountId,
        ttlMs,
      },
      // expiresAt is added once the row says it.
      record: {
        action: 'token.issued',
        actor: { accountId: caller.principal.accountId, username: caller.principal.username, tenantId: target.tenantId },
        target: { type: target.type, id: target.id },
        result: 'success',
        sourceIp: caller.ip,
        details: { purpose: 'pairing', systemAuthId: target.systemAuthId },
      },
      director,
    })) as repo.TokenRow;
    return { token, connectorURL: `${this.deps.urls().publicUrl}/connector/graphql`, expiresAt: row.expires_at, used: false };
  }

  async oneTimeTokenStatus(tenantId: string, type: 'application' | 'runtime', id: string): Promise<OneTimeTokenStatus | undefined> {
    const row = await repo.latestPairingToken(this.deps.db, tenantId, type, id);
    if (!row) return undefined;
    return { createdAt: row.created_at, expiresAt: row.expires_at, used: row.used_at !== null, usedAt: row.used_at, invalidated: row.invalidated_at !== null };
  }

  async revokeCertificates(caller: Caller, tenantId: string, target: { systemAuthIds: readonly string[] } | { type: 'application' | 'runtime'; id: string }, reason: string): Promise<number> {
    const rows = await this.deps.db.transaction(async (tx) => {
      const revoked =
        'systemAuthIds' in target
          ? await repo.revokeCertificatesOfSystemAuths(tx, tenantId, target.systemAuthIds, reason)
          : await repo.revokeCertificatesOfObject(tx, tenantId, target.type, target.id, reason);
      if (revoked.length > 0) {
        await this.deps.audit.recordMany(
          revoked.map((c) => ({
            action: 'certificate.revoked',
            actor: { accountId: caller.principal.accountId, username: caller.principal.username, tenantId },
            target: { type: c.object_type, id: c.object_id },
            result: 'success' as const,
            sourceIp: caller.ip,
            details: { serial: c.serial, fingerprint: c.fingerprint, systemAuthId: c.system_auth_id, reason },
          })),
          { tx },
        );
      }
      return revoked;
    });
    if (rows.length > 0) await this.announceRevocation(rows);
    return rows.length;
  }

  runtimeEventsUrl(runtimeId: string): string {
    return `${this.deps.urls().mtlsUrl}/events/${encodeURIComponent(runtimeId)}`;
  }

  // ---------------------------------------------------------------- tokens at the Connector

  private tokenUsed(row: repo.TokenRow, purpose: repo.TokenPurpose, ip: string): AuditRecordInput {
    return {
      action: 'token.used',
      actor: { accountId: `system-auth:${row.system_auth_id}`, username: `${row.object_type}:${row.object_id}`, tenantId: row.tenant_id },
      target: { type: row.object_type, id: row.object_id },
      result: 'success',
      sourceIp: ip,
      details: { purpose, systemAuthId: row.system_auth_id },
    };
  }

  /** Why a token found by its hash cannot be redeemed for `purpose`, or undefined when it can. */
  private refusalOf(found: repo.TokenRow | undefined, purpose: repo.TokenPurpose): string | undefined {
    if (!found) return 'the one-time token is not known: it was never issued, or was mistyped';
    if (found.purpose !== purpose) {
      return purpose === 'pairing'
        ? 'this token is for signCertificateSigningRequest (the token configuration answered), not for configuration'
        : 'this token is for configuration; call configuration first and sign with the token it answers';
    }
    if (found.used_at) return `the one-time token was already used at ${found.used_at.toISOString()}; request a new one`;
    if (found.invalidated_at) return `the one-time token was replaced by a newer one at ${found.invalidated_at.toISOString()}; use the newest`;
    if (found.expires_at.getTime() <= Date.now()) return `the one-time token expired at ${found.expires_at.toISOString()}; request a new one`;
    return undefined;
  }

  /** Throws 401 saying why the token cannot be used (audited when the token is known). */
  private async refuse(found: repo.TokenRow | undefined, purpose: repo.TokenPurpose, ip: string): Promise<never> {
    // The guarded UPDATE lost although the row looked good: the database's clock said expired.
    const reason = this.refusalOf(found, purpose) ?? (found ? `the one-time token expired at ${found.expires_at.toISOString()}; request a new one` : '');
    if (found) {
      await this.deps.audit.record({
        action: 'token.refused',
        actor: { accountId: `system-auth:${found.system_auth_id}`, username: `${found.object_type}:${found.object_id}`, tenantId: found.tenant_id },
        target: { type: found.object_type, id: found.object_id },
        result: 'denied',
        sourceIp: ip,
        details: { purpose, reason },
      });
    }
    throw new AppError('UNAUTHENTICATED', reason);
  }

  private static requireToken(token: string | undefined): string {
    if (!token) throw new AppError('UNAUTHENTICATED', 'send the one-time token in the Connector-Token header (or call the mTLS port with your client certificate)');
    return token;
  }

  private async issueCsrToken(tenantId: string, objectType: repo.ObjectType, objectId: string, systemAuthId: string): Promise<string> {
    const token = newToken();
    const ttlMs = objectType === 'application' ? this.deps.config.appTokenTtlMs : this.deps.config.runtimeTokenTtlMs;
    const hash = hashToken(token);
    await repo.insertToken(this.deps.db, { tokenHash: hash, tenantId, objectType, objectId, systemAuthId, purpose: 'csr', createdBy: null, ttlMs });
    this.rememberCsrToken(hash, { tenantId, objectType, objectId, systemAuthId, expiresAt: Date.now() + ttlMs });
    return token;
  }

  private rememberCsrToken(hash: string, entry: CsrTokenEntry): void {
    // Tokens never used stay until the map is full: then it starts again (they are read instead).
    if (this.csrTokens.size >= CSR_TOKENS_MAX) this.csrTokens.clear();
    this.csrTokens.set(hash, entry);
  }

  /** A csr token answered here and not yet used (forgotten now), or undefined. */
  private takeCsrToken(hash: string): CsrTokenEntry | undefined {
    const entry = this.csrTokens.get(hash);
    if (!entry) return undefined;
    this.csrTokens.delete(hash);
    return entry.expiresAt > Date.now() ? entry : undefined;
  }

  /**
   * Redeems a pairing token and issues the csr token in one statement, audited in the same
   * transaction (one commit where there were three).
   */
  private async redeemPairing(tokenText: string | undefined, ip: string): Promise<{ row: repo.TokenRow; csrToken: string }> {
    const hash = hashToken(ConnectorService.requireToken(tokenText));
    const csrToken = newToken();
    const csrHash = hashToken(csrToken);
    const row = (await this.writes.add({ kind: 'redeem', hash, csrHash, ip })) as repo.TokenRow | undefined;
    if (!row) return this.refuse(await repo.findToken(this.deps.db, hash), 'pairing', ip);
    const ttlMs = row.object_type === 'application' ? this.deps.config.appTokenTtlMs : this.deps.config.runtimeTokenTtlMs;
    this.rememberCsrToken(csrHash, { tenantId: row.tenant_id, objectType: row.object_type, objectId: row.object_id, systemAuthId: row.system_auth_id, expiresAt: Date.now() + ttlMs });
    return { row, csrToken };
  }

  /** `configuration` with a one-time token (pairing) or a client certificate (renewal). */
  async configuration(auth: { token: string | undefined; identity: CertificateIdentity | undefined; ip: string }): Promise<ConfigurationResult> {
    let who: { tenantId: string; objectType: repo.ObjectType; objectId: string; systemAuthId: string };
    let token: string;
    if (auth.identity) {
      const c = auth.identity.certificate;
      who = { tenantId: c.tenant_id, objectType: c.object_type, objectId: c.object_id, systemAuthId: c.system_auth_id };
      token = await this.issueCsrToken(who.tenantId, who.objectType, who.objectId, who.systemAuthId);
    } else {
      const { row, csrToken } = await this.redeemPairing(auth.token, auth.ip);
      who = { tenantId: row.tenant_id, objectType: row.object_type, objectId: row.object_id, systemAuthId: row.system_auth_id };
      token = csrToken;
    }
    const urls = this.deps.urls();
    return {
      token: { token },
      certificateSigningRequestInfo: { subject: this.subjectFor(who.systemAuthId), keyAlgorithm: 'rsa2048' },
      managementPlaneInfo: { directorURL: `${urls.mtlsUrl}/director/graphql`, certificateSecuredConnectorURL: `${urls.mtlsUrl}/connector/graphql` },
    };
  }

  /**
   * `signCertificateSigningRequest`: with the token `configuration` answered, or over mTLS with
   * the current certificate (renewal; the old certificate keeps working until it ends).
   */
  async signCsr(csrText: string, auth: { token: string | undefined; identity: CertificateIdentity | undefined; ip: string }): Promise<CertificationResult> {
    // A token, when sent, is what the client means to use, also over mTLS.
    const byToken = Boolean(auth.token || !auth.identity);
    let hash: string | undefined;
    let who: { tenantId: string; objectType: repo.ObjectType; objectId: string; systemAuthId: string };
    if (byToken) {
      // The token is known first (its system auth names the subject: remembered when this process
      // answered it, else read), and spent in the transaction that stores the certificate: one
      // commit for the redemption, the certificate and both audit records. The guarded UPDATE there
      // decides which of concurrent redemptions wins.
      hash = hashToken(ConnectorService.requireToken(auth.token));
      const known = this.takeCsrToken(hash);
      if (known) {
        who = { tenantId: known.tenantId, objectType: known.objectType, objectId: known.objectId, systemAuthId: known.systemAuthId };
      } else {
        const found = await repo.findToken(this.deps.db, hash);
        if (!found || this.refusalOf(found, 'csr') !== undefined) return this.refuse(found, 'csr', auth.ip);
        who = { tenantId: found.tenant_id, objectType: found.object_type, objectId: found.object_id, systemAuthId: found.system_auth_id };
      }
    } else {
      const c = auth.identity!.certificate;
      who = { tenantId: c.tenant_id, objectType: c.object_type, objectId: c.object_id, systemAuthId: c.system_auth_id };
    }
    const actor = { accountId: `system-auth:${who.systemAuthId}`, tenantId: who.tenantId };
    const target = { type: who.objectType, id: who.objectId };
    /** Spends the token (when one was sent) in `tx`; false when another redemption won. */
    const spend = async (tx: Queryable): Promise<AuditRecordInput[] | undefined> => {
      if (!hash) return [];
      const row = await repo.redeemToken(tx, hash, 'csr');
      return row ? [this.tokenUsed(row, 'csr', auth.ip)] : undefined;
    };
    let signed: SignedCertificate;
    try {
      signed = await this.signer.sign(csrText, this.subjectFor(who.systemAuthId), this.deps.config.certValidityMs);
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'VALIDATION_FAILED')) throw err;
      // A refused request spends the token all the same (ask configuration again).
      const refused: AuditRecordInput = { action: 'certificate.refused', actor, target, result: 'denied', sourceIp: auth.ip, details: { reason: err.message } };
      const spent = await this.deps.db.transaction(async (tx) => {
        const used = await spend(tx);
        if (used) await this.deps.audit.recordMany([...used, refused], { tx });
        return used !== undefined;
      });
      if (!spent) return this.refuse(await repo.findToken(this.deps.db, hash!), 'csr', auth.ip);
      throw err;
    }
    const stored = (await this.writes.add({
      kind: 'store',
      hash,
      certificate: {
        fingerprint: signed.fingerprint,
        serial: signed.serial,
        tenant_id: who.tenantId,
        system_auth_id: who.systemAuthId,
        object_type: who.objectType,
        object_id: who.objectId,
        subject: signed.subject,
        not_before: signed.notBefore,
        not_after: signed.notAfter,
      },
      issued: {
        action: 'certificate.issued',
        actor,
        target,
        result: 'success',
        sourceIp: auth.ip,
        details: { serial: signed.serial, fingerprint: signed.fingerprint, notAfter: signed.notAfter.toISOString(), renewal: !byToken },
      },
      ip: auth.ip,
    })) as boolean;
    // Another redemption of the same token won meanwhile: this certificate was never stored.
    if (!stored) return this.refuse(await repo.findToken(this.deps.db, hash!), 'csr', auth.ip);
    return {
      certificateChain: b64(signed.pem + this.deps.ca.pem),
      caCertificate: b64(this.deps.ca.pem),
      clientCertificate: b64(signed.pem),
    };
  }

  /** `revokeCertificate` over mTLS: the holder gives up the certificate it called with. */
  async revokeOwn(identity: CertificateIdentity): Promise<boolean> {
    const row = await repo.revokeCertificate(this.deps.db, identity.certificate.fingerprint, 'revoked by its holder');
    if (!row) return false;
    await this.deps.audit.record({
      action: 'certificate.revoked',
      actor: { accountId: identity.caller.principal.accountId, username: identity.caller.principal.username, tenantId: row.tenant_id },
      target: { type: row.object_type, id: row.object_id },
      result: 'success',
      sourceIp: identity.caller.ip,
      details: { serial: row.serial, fingerprint: row.fingerprint, reason: 'revoked by its holder' },
    });
    await this.announceRevocation([row]);
    return true;
  }

  // ---------------------------------------------------------------- identities on the mTLS listener

  /** This process forgets what it knew; every other process hears the live event. */
  private async announceRevocation(rows: readonly repo.CertificateRow[]): Promise<void> {
    this.identities.clear();
    try {
      await this.deps.bus.live.publish(REVOKED_EVENT, { fingerprints: rows.slice(0, 50).map((r) => r.fingerprint) });
    } catch (err) {
      // Others still stop trusting it within IDENTITY_CACHE_MS (they read the row again).
      this.deps.logger.warn({ err }, 'could not announce a certificate revocation');
    }
  }

  /** Heard from any process: what this one knew about certificates may be stale. */
  onRevoked(): void {
    this.identities.clear();
  }

  /**
   * The identity a verified client certificate (by its fingerprint) stands for, or 401 saying why
   * not: unknown to this hub, revoked, or its system auth removed.
   */
  async identityOf(fingerprint: string, ip: string): Promise<CertificateIdentity> {
    const now = Date.now();
    let entry = this.identities.get(fingerprint);
    if (entry?.identity && entry.until > now && entry.checkedUntil <= now) {
      // Kept, but not trusted past IDENTITY_CACHE_MS without asking what was revoked since.
      const checkedAt = await this.checkRevocations(now);
      entry = this.identities.get(fingerprint);
      if (entry && checkedAt !== undefined) entry.checkedUntil = checkedAt + IDENTITY_CACHE_MS;
      else entry = undefined;
    }
    const expired = entry?.identity !== undefined && entry.identity.certificate.not_after.getTime() <= now;
    if (!entry || entry.until <= now || entry.checkedUntil <= now || expired) {
      const read = Date.now();
      const found = await this.lookupIdentity(fingerprint, ip);
      // A refusal is read again soon (the row may change); an identity is kept, and rechecked.
      entry = { ...found, until: read + (found.identity ? IDENTITY_KEEP_MS : IDENTITY_CACHE_MS), checkedUntil: read + IDENTITY_CACHE_MS };
      if (this.identities.size >= IDENTITY_CACHE_MAX) this.identities.clear();
      this.identities.set(fingerprint, entry);
    }
    if (!entry.identity) throw new AppError('UNAUTHENTICATED', entry.refusal ?? 'the client certificate is not accepted');
    return entry.identity.caller.ip === ip ? entry.identity : { ...entry.identity, caller: { ...entry.identity.caller, ip } };
  }

  /**
   * Asks the revocation list what was revoked lately and forgets those certificates; one question
   * at a time, answered to every request waiting for it. Resolves to when it was asked (what was
   * revoked before then is known), or undefined when it failed (nothing kept is trusted then).
   */
  private async checkRevocations(now: number): Promise<number | undefined> {
    let current = this.revocations;
    if (!current || current.at + IDENTITY_CACHE_MS <= now) {
      const at = now;
      const done = repo.recentlyRevoked(this.deps.db, RECENT_REVOCATIONS_S).then(
        (fingerprints) => {
          for (const f of fingerprints) this.identities.delete(f);
          return true;
        },
        (err: unknown) => {
          this.deps.logger.warn({ err }, 'could not read the recent certificate revocations');
          if (this.revocations === current) this.revocations = undefined;
          return false;
        },
      );
      current = { at, done };
      this.revocations = current;
    }
    return (await current.done) ? current.at : undefined;
  }

  private async lookupIdentity(fingerprint: string, ip: string): Promise<{ identity: CertificateIdentity | undefined; refusal: string | undefined }> {
    const cert = await repo.findCertificate(this.deps.db, fingerprint);
    if (!cert) return { identity: undefined, refusal: 'the client certificate was not issued by this hub' };
    if (cert.revoked_at) return { identity: undefined, refusal: `the client certificate was revoked at ${cert.revoked_at.toISOString()} (${cert.revoked_reason ?? 'revoked'})` };
    if (cert.not_after.getTime() <= Date.now()) return { identity: undefined, refusal: `the client certificate expired at ${cert.not_after.toISOString()}` };
    const caller = await this.resolveCaller?.(cert.tenant_id, cert.system_auth_id, ip, cert.serial);
    if (!caller) return { identity: undefined, refusal: `the ${cert.object_type} this certificate stood for is no longer registered` };
    return { identity: { certificate: cert, caller }, refusal: undefined };
  }

  /** Expired tokens are deleted a day after they end; event ids after 24 h. */
  async purge(): Promise<void> {
    await repo.purgeTokens(this.deps.db);
    await repo.purgeEventIds(this.deps.db);
    await repo.purgeEventExecutions(this.deps.db);
  }
}
