/**
 * What the Director needs from outside its module, as small interfaces wired in
 * `entrypoints/hub.ts`: who a caller is, where credentials are kept, how identities standing for
 * applications and runtimes are issued. Outbound HTTP is the platform's guard (platform/outbound).
 */
import type { Permission } from '../../contracts/permissions.js';
import type { AuditEvent } from '../../platform/audit.js';
import type { Principal } from '../../platform/http/index.js';

/** The object a caller's credential stands for (a system auth), if any. */
export interface CallerObject {
  type: 'application' | 'runtime';
  id: string;
}

export interface Caller {
  principal: Principal;
  ip: string;
  /** Set when the caller is an application or a runtime rather than a user. */
  object: CallerObject | undefined;
}

/**
 * Credentials (API auths, webhook keys, fetch auths) kept encrypted by the secrets module. Only
 * their ids are stored in Director tables.
 */
export interface CredentialStore {
  /** Stores `value` as secret `name` of the caller's tenant; resolves to its id. */
  save(caller: Caller, name: string, value: Record<string, string>): Promise<string>;
  /** The value in clear; `caller` (when given) is who the read is audited for. */
  read(tenantId: string, secretId: string, caller?: Caller): Promise<Record<string, unknown>>;
  /** Removes a secret (missing ones are ignored). */
  remove(caller: Caller, secretId: string): Promise<void>;
}

/** A credential issued for an application or runtime, shown once. */
export interface IssuedIdentity {
  kind: string;
  /** The account a request with this credential authenticates as (recognises the caller). */
  accountId: string;
  /** The bearer token to show once. */
  token: string;
}

/**
 * Issues and revokes the credentials that stand for applications and runtimes. Today an IAM
 * service account with a persistent token; the Connector issue adds one-time tokens and client
 * certificates behind this same interface.
 */
export interface IdentityIssuer {
  issue(caller: Caller, object: { type: 'application' | 'runtime'; id: string; tenantId: string; permissions: readonly Permission[] }): Promise<IssuedIdentity>;
  revoke(caller: Caller, accountId: string): Promise<void>;
}

/** Tenants the caller may act in (the `tenants` query). */
export type TenantLister = (principal: Principal) => Promise<Array<{ id: string; name: string | null }>>;

/** Plexus: the status of an object's newest one-time token (never the token itself). */
export interface OneTimeTokenStatus {
  createdAt: Date;
  expiresAt: Date;
  used: boolean;
  usedAt: Date | null;
  /** Replaced by a newer token before it was used. */
  invalidated: boolean;
}

/** What `requestOneTimeTokenFor…` answers: the token is shown once, here. */
export interface IssuedOneTimeToken {
  token: string;
  connectorURL: string;
  expiresAt: Date;
  used: boolean;
}

export interface PairingTarget {
  type: 'application' | 'runtime';
  id: string;
  tenantId: string;
  /** The system auth the certificate will stand for (its CN). */
  systemAuthId: string;
}

/**
 * Pairing through the Connector (issue 12): one-time tokens and the client certificates they
 * lead to. The Director keeps the system auths; the Connector keeps tokens and certificates.
 * Absent on processes without the Connector: the pairing mutations then answer 27.
 */
export interface Pairing {
  /**
   * A new single-use token for the object; earlier unused ones stop working. `audit` is the
   * Director's audit event of it, published in the transaction that stores the token (with the
   * Connector's own record: one commit, one write for both).
   */
  issueOneTimeToken(caller: Caller, target: PairingTarget, audit?: (expiresAt: Date) => AuditEvent): Promise<IssuedOneTimeToken>;
  oneTimeTokenStatus(tenantId: string, type: 'application' | 'runtime', id: string): Promise<OneTimeTokenStatus | undefined>;
  /** Revokes the live certificates of these system auths, or of the object; resolves to how many. */
  revokeCertificates(caller: Caller, tenantId: string, target: { systemAuthIds: readonly string[] } | { type: 'application' | 'runtime'; id: string }, reason: string): Promise<number>;
  /** `https://<host>:<mtls>/events/<runtimeId>`: where applications send events for a runtime. */
  runtimeEventsUrl(runtimeId: string): string;
}
