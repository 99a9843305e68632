/**
 * Compass `Auth` objects: stored in clear only by the secrets module; Director rows keep a
 * masked copy (secrets as `***`) that every reader may see.
 */
import type { AuthInput } from './director.inputs.js';

export const MASK = '***';

export interface AuthView {
  credential: { username: string; password: string } | { clientId: string; clientSecret: string; url: string } | { token: string };
  additionalHeaders: Record<string, string[]> | null;
  additionalQueryParams: Record<string, string[]> | null;
  requestAuth: {
    csrf: {
      tokenEndpointURL: string;
      credential: AuthView['credential'];
      additionalHeaders: Record<string, string[]> | null;
      additionalQueryParams: Record<string, string[]> | null;
    } | null;
  } | null;
}

type CredentialInput = AuthInput['credential'];

function credentialView(c: CredentialInput, masked: boolean): AuthView['credential'] {
  if (c.basic) return { username: c.basic.username, password: masked ? MASK : c.basic.password };
  const o = c.oauth!;
  return { clientId: o.clientId, clientSecret: masked ? MASK : o.clientSecret, url: o.url };
}

function valuesView(v: Record<string, string[]> | null | undefined, masked: boolean): Record<string, string[]> | null {
  if (!v) return null;
  return masked ? Object.fromEntries(Object.keys(v).map((k) => [k, [MASK]])) : v;
}

/** The Auth as GraphQL shows it; `masked` hides passwords, client secrets and header / parameter values. */
export function authView(a: AuthInput, masked: boolean): AuthView {
  const csrf = a.requestAuth?.csrf;
  return {
    credential: credentialView(a.credential, masked),
    additionalHeaders: valuesView(a.additionalHeaders, masked),
    additionalQueryParams: valuesView(a.additionalQueryParams, masked),
    requestAuth: a.requestAuth
      ? {
          csrf: csrf
            ? {
                tokenEndpointURL: csrf.tokenEndpointURL,
                credential: credentialView(csrf.credential, masked),
                additionalHeaders: valuesView(csrf.additionalHeaders, masked),
                additionalQueryParams: valuesView(csrf.additionalQueryParams, masked),
              }
            : null,
        }
      : null,
  };
}

/** The secret value an Auth is kept as (secrets `mixed` type: flat strings). */
export function authSecretValue(a: AuthInput): Record<string, string> {
  return { auth: JSON.stringify(a) };
}

export function authFromSecret(value: Record<string, unknown>): AuthInput | undefined {
  const raw = value.auth;
  if (typeof raw !== 'string') return undefined;
  return JSON.parse(raw) as AuthInput;
}
