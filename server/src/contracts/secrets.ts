/**
 * Secrets: credentials flow steps use (a node's `credentialsId`). The value of each type, the
 * fields of it that are sensitive (masked as `***` on ordinary reads), the interface the
 * execution engine resolves a step's credential through, and the shapes of the secrets API.
 */
import { z } from 'zod';
import { pageQuery, searchQuery, sortQuery } from './list.js';

export const SECRET_TYPES = ['basic', 'apiKey', 'oauth2', 'mixed'] as const;
export type SecretType = (typeof SECRET_TYPES)[number];

export const MASK = '***';

const field = z.string().min(1).max(4_096);

export const BasicValue = z.strictObject({
  username: z.string().min(1).max(500),
  password: field,
});
export type BasicValue = z.infer<typeof BasicValue>;

export const ApiKeyValue = z
  .strictObject({
    key: field,
    /** The header the http-request step sends the key in (default `X-API-Key`). */
    headerName: z.string().min(1).max(200).optional(),
    /** Send the key as this query parameter instead of a header. */
    queryName: z.string().min(1).max(200).optional(),
  })
  .refine((v) => !(v.headerName && v.queryName), { message: 'set headerName or queryName, not both', path: ['queryName'] });
export type ApiKeyValue = z.infer<typeof ApiKeyValue>;

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).max(2_000);

export const OAuth2Value = z
  .strictObject({
    grantType: z.enum(['client_credentials', 'refresh_token']),
    tokenUrl: httpUrl,
    clientId: z.string().min(1).max(500),
    clientSecret: field.optional(),
    scope: z.string().max(1_000).optional(),
    audience: z.string().max(500).optional(),
    /** How the client authenticates at the token endpoint (RFC 6749 §2.3.1): HTTP Basic (default) or form fields. */
    clientAuth: z.enum(['basic', 'body']).optional(),
    refreshToken: field.optional(),
    accessToken: field.optional(),
    /** When `accessToken` expires (ISO 8601); refreshed before then. */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.grantType === 'refresh_token' && !v.refreshToken) {
      ctx.addIssue({ code: 'custom', path: ['refreshToken'], message: 'is required for grantType refresh_token' });
    }
    if (v.grantType === 'client_credentials' && !v.clientSecret) {
      ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: 'is required for grantType client_credentials' });
    }
  });
export type OAuth2Value = z.infer<typeof OAuth2Value>;

/** Free-form fields, every one of them sensitive; values may nest (an OIH component's `auth: {type, basic: {…}}`). */
export const MixedValue = z
  // z.unknown(), not z.json(): the values come from parsed JSON already, and z.json()'s recursive
  // schema leaves a $ref the OpenAPI document does not define (the cockpit's client generator fails on it).
  .record(z.string().min(1).max(200), z.unknown())
  .refine((v) => Object.keys(v).length > 0, 'must have at least one field')
  .refine((v) => Object.keys(v).length <= 100, 'must have at most 100 fields')
  .refine((v) => JSON.stringify(v).length <= 65_536, 'must be at most 64 KiB of JSON');
export type MixedValue = z.infer<typeof MixedValue>;

export const SECRET_VALUE_SCHEMAS = { basic: BasicValue, apiKey: ApiKeyValue, oauth2: OAuth2Value, mixed: MixedValue } as const;

export type SecretValue =
  | { type: 'basic'; value: BasicValue }
  | { type: 'apiKey'; value: ApiKeyValue }
  | { type: 'oauth2'; value: OAuth2Value }
  | { type: 'mixed'; value: MixedValue };

/** Fields masked on ordinary reads; `mixed` masks all. */
export const SENSITIVE_FIELDS: Record<Exclude<SecretType, 'mixed'>, readonly string[]> = {
  basic: ['password'],
  apiKey: ['key'],
  oauth2: ['clientSecret', 'refreshToken', 'accessToken'],
};

/** Where a step's credential is used, for the audit record of its use. */
export interface SecretUse {
  flowId?: string;
  stepId?: string;
  executionId?: string;
}

/**
 * What the execution engine uses to hand a step its credential: the decrypted value of secret
 * `secretId` in `tenantId` (oauth2 access tokens refreshed first when due). 404 NOT_FOUND when
 * the secret is missing or another tenant's; UPSTREAM_FAILED / UNAVAILABLE when a refresh fails.
 */
export interface SecretResolver {
  resolveForStep(tenantId: string, secretId: string, use?: SecretUse): Promise<SecretValue>;
}

/** A webhook signing secret is shorter than this only by mistake (contracts/flows.ts WebhookSettings). */
export const MIN_SIGNING_SECRET_LENGTH = 16;

/**
 * The key a secret signs webhooks with (HMAC, Standard Webhooks): an `apiKey` secret's `key`.
 * Undefined for any other type, or a key too short to be one.
 */
export function signingKeyOf(v: SecretValue): string | undefined {
  return v.type === 'apiKey' && v.value.key.length >= MIN_SIGNING_SECRET_LENGTH ? v.value.key : undefined;
}

// ------------------------------------------------------------ the secrets API (/api/v1/secrets)

const SecretName = z.string().trim().min(1).max(200);

export const CreateSecretBody = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ name: SecretName, type: z.literal('basic'), value: BasicValue }),
    z.strictObject({ name: SecretName, type: z.literal('apiKey'), value: ApiKeyValue }),
    z.strictObject({ name: SecretName, type: z.literal('oauth2'), value: OAuth2Value }),
    z.strictObject({ name: SecretName, type: z.literal('mixed'), value: MixedValue }),
  ],
  { error: `must be one of ${SECRET_TYPES.join(', ')}` },
);
export type CreateSecretBody = z.infer<typeof CreateSecretBody>;

/**
 * `value` is merged into the stored one field by field: a field sent as `***` (the mask) is
 * left as it is, so a client may send back what it read; `null` removes an optional field
 * (in `mixed`, where null is a value, it stores null).
 */
export const UpdateSecretBody = z
  .strictObject({
    name: SecretName.optional(),
    value: z.record(z.string().max(200), z.unknown()).optional(),
  })
  .refine((b) => b.name !== undefined || b.value !== undefined, 'must change name or value');
export type UpdateSecretBody = z.infer<typeof UpdateSecretBody>;

export const SecretListQuery = z.strictObject({
  ...pageQuery,
  'filter[type]': z.enum(SECRET_TYPES).optional(),
  'filter[name]': z.string().min(1).max(200).optional(),
  search: searchQuery,
  sort: sortQuery(['name', 'createdAt', 'updatedAt']),
});
export type SecretListQuery = z.infer<typeof SecretListQuery>;

export const Secret = z.object({
  id: z.string(),
  name: z.string(),
  type: z.enum(SECRET_TYPES),
  /** Sensitive fields masked as `***`, except from `GET /api/v1/secrets/:id/raw`. */
  value: z.record(z.string(), z.unknown()),
  createdBy: z.string().nullable(),
  /** What the secret belongs to and is deleted with (`flow:<id>` for a flow's webhook signing secret); null when made here. */
  owner: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** oauth2: when the stored access token expires, when it was last refreshed, and why the last refresh failed. */
  tokenExpiresAt: z.string().nullable(),
  lastRefreshedAt: z.string().nullable(),
  lastError: z.string().nullable(),
});
export type Secret = z.infer<typeof Secret>;
