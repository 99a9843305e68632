/**
 * What the Director needs from outside its module, as small interfaces wired in
 * `entrypoints/hub.ts`: who a caller is, where credentials are kept, how identities standing for
 * applications and runtimes are issued. Outbound HTTP is the platform's guard (platform/outbound).
 */
import type { Permission } from '../../contracts/permissions.js';
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
