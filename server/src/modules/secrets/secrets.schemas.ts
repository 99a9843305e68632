/** The secrets API's shapes (the value schemas themselves live in contracts/secrets.ts). */
import { z } from 'zod';
import { pageQuery, searchQuery, sortQuery } from '../../contracts/list.js';
import { ApiKeyValue, BasicValue, MixedValue, OAuth2Value, SECRET_TYPES } from '../../contracts/secrets.js';

const SecretName = z.string().trim().min(1).max(200);

export const SecretParams = z.strictObject({ id: z.uuid({ error: 'must be a UUID' }) });

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
