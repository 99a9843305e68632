/**
 * An OIH component's `cfg`: the node's fields merged with its credential, under the names the
 * component's own code reads (sailor hands components the credential's fields as they were typed
 * into its form; Plexus keeps typed secrets, so their fields are mapped):
 * - `basic` → `username`, `password`, and `passphrase` (the REST-API component's name); a
 *   component declaring an object field `auth` (HTTPAuthView) also gets
 *   `auth: {type: 'Basic Auth', basic: {username, password}}`;
 * - `oauth2` → `oauth: {access_token, refresh_token, expires_in, token_type}` (expires_in in
 *   seconds from now, as the token endpoint said it), and `accessToken`;
 * - `apiKey` → `key` and `apiKey` (and the one required credential field the component
 *   declares and the secret does not name, when there is exactly one);
 * - `mixed` → its fields as they are, nested objects included.
 */

export type DeclaredCredentialFields = Record<string, { required: boolean; type: string }>;

function mapped(credentials: Record<string, unknown> | undefined, type: string | undefined, declared: DeclaredCredentialFields): Record<string, unknown> {
  if (!credentials) return {};
  switch (type) {
    case 'basic': {
      const { username, password } = credentials as { username?: unknown; password?: unknown };
      const out: Record<string, unknown> = { username, password, passphrase: password };
      if (declared.auth?.type === 'object') out.auth = { type: 'Basic Auth', basic: { username, password } };
      return out;
    }
    case 'oauth2': {
      const v = credentials as { accessToken?: string; refreshToken?: string; expiresAt?: string };
      const expiresIn = v.expiresAt ? Math.max(0, Math.round((Date.parse(v.expiresAt) - Date.now()) / 1000)) : undefined;
      return {
        // The OIH REST-API component reads the token as cfg.accessToken.
        ...(v.accessToken ? { accessToken: v.accessToken } : {}),
        oauth: {
          ...(v.accessToken ? { access_token: v.accessToken } : {}),
          ...(v.refreshToken ? { refresh_token: v.refreshToken } : {}),
          ...(expiresIn !== undefined ? { expires_in: expiresIn } : {}),
          token_type: 'Bearer',
        },
      };
    }
    case 'apiKey': {
      const { key, ...rest } = credentials as { key?: unknown };
      const out: Record<string, unknown> = { ...rest, key, apiKey: key };
      const unnamed = Object.entries(declared).filter(([name, f]) => f.required && f.type === 'string' && !(name in out));
      if (unnamed.length === 1) out[unnamed[0]![0]] = key;
      return out;
    }
    default:
      return { ...credentials };
  }
}

/** The node's fields merged with its credential (the credential wins, as under sailor). */
export function toCfg(fields: Record<string, unknown>, credentials: Record<string, unknown> | undefined, type: string | undefined, declared: DeclaredCredentialFields): Record<string, unknown> {
  return { ...fields, ...mapped(credentials, type, declared) };
}

function isMissing(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

/**
 * Why the step cannot run with this credential: a required credential field the component
 * declares and `cfg` would not hold. Never run a call without its auth.
 */
export function credentialProblem(
  declared: DeclaredCredentialFields,
  fields: Record<string, unknown>,
  credentials: Record<string, unknown> | undefined,
  type: string | undefined,
): string | undefined {
  const cfg = toCfg(fields, credentials, type, declared);
  for (const [name, f] of Object.entries(declared)) {
    if (!f.required || !isMissing(cfg[name])) continue;
    return credentials
      ? `the component needs the credential field ${name}, which the node's credential (type ${type ?? 'unknown'}) does not provide`
      : `the component needs the credential field ${name}: give the node a credential (credentialsId)`;
  }
  return undefined;
}
