/**
 * GraphQL inputs, validated at the edge. GraphQL itself checks types and required fields; these
 * schemas add what Compass's validators checked (DNS-style names, lengths, URLs, "exactly one
 * of data or fetchRequest", matching spec type and format) and give each problem its field path,
 * e.g. `in.apiDefinitions.0.targetURL: must be an absolute URL`.
 */
import { z } from 'zod';
import { AppError } from '../../platform/errors.js';

const SHORT = 128;
const LONG = 256;
const DESCRIPTION = 2_000;
const GROUP = 36;
/** A spec or document body stored inline; larger ones belong behind a fetch request. */
export const MAX_CLOB_BYTES = 4 * 1024 * 1024;

/** Compass's rule for application and runtime names: a DNS subdomain of at most 36 characters, not starting with a digit. */
const DnsName = z
  .string()
  .min(1, 'is required')
  .max(36, 'must be no more than 36 characters')
  .regex(/^[a-z][a-z0-9-.]*$/, 'must be lower case letters, digits, "-" and "."; starting with a letter')
  .regex(/[a-z0-9]$/, 'must end with a letter or a digit');

/** An absolute URL with a scheme (Compass's inputvalidation.IsURL). */
const AbsoluteUrl = z
  .string()
  .max(LONG, `must be at most ${LONG} characters`)
  .refine((v) => /^(https?|wss?|ftp|tcp|udp):\/\/[^\s/$.?#][^\s]*$/i.test(v), 'must be an absolute URL (http://…)');

/** Compass's is.URL: a scheme is optional ("kyma-project.io" passes); fetching needs http(s). */
const LooseUrl = z
  .string()
  .min(1, 'is required')
  .max(LONG, `must be at most ${LONG} characters`)
  .refine((v) => /^([a-z][a-z0-9+.-]*:\/\/)?[^\s/$.?#][^\s]*$/i.test(v) && /[.:]/.test(v), 'must be a URL');

const Printable = z.string().regex(/^[\x20-\x7e]*$/, 'must be printable ASCII');
const Clob = z.string().refine((v) => Buffer.byteLength(v) <= MAX_CLOB_BYTES, `must be at most ${MAX_CLOB_BYTES} bytes; use a fetchRequest for larger documents`);

const MultiValues = z.record(z.string().min(1, 'keys must not be empty'), z.array(z.string().min(1, 'values must not be empty')).min(1, 'must have at least one value'));

const BasicCredential = z.strictObject({ username: z.string().min(1, 'is required').max(LONG), password: z.string().min(1, 'is required').max(4_096) });
const OAuthCredential = z.strictObject({ clientId: z.string().min(1, 'is required').max(LONG), clientSecret: z.string().min(1, 'is required').max(4_096), url: LooseUrl });
const CredentialData = z
  .strictObject({ basic: BasicCredential.nullish(), oauth: OAuthCredential.nullish() })
  .refine((c) => Boolean(c.basic) !== Boolean(c.oauth), 'exactly one of basic or oauth must be given');

export const AuthInput = z.strictObject({
  credential: CredentialData,
  additionalHeaders: MultiValues.nullish(),
  additionalQueryParams: MultiValues.nullish(),
  requestAuth: z
    .strictObject({
      csrf: z.strictObject({
        tokenEndpointURL: LooseUrl,
        credential: CredentialData,
        additionalHeaders: MultiValues.nullish(),
        additionalQueryParams: MultiValues.nullish(),
      }),
    })
    .nullish(),
});
export type AuthInput = z.infer<typeof AuthInput>;

const FetchRequestInput = z.strictObject({
  url: LooseUrl,
  auth: AuthInput.nullish(),
  mode: z.enum(['SINGLE', 'PACKAGE', 'INDEX']).nullish(),
  filter: z.string().min(1).max(LONG).nullish(),
});
export type FetchRequestInput = z.infer<typeof FetchRequestInput>;

const VersionInput = z.strictObject({
  value: z.string().min(1, 'is required').max(LONG),
  deprecated: z.boolean().nullish(),
  deprecatedSince: z.string().max(LONG).nullish(),
  forRemoval: z.boolean().nullish(),
});
export type VersionInput = z.infer<typeof VersionInput>;

const FORMATS_BY_TYPE: Record<string, readonly string[]> = { OPEN_API: ['JSON', 'YAML'], ODATA: ['JSON', 'XML'], ASYNC_API: ['JSON', 'YAML'] };

function specInput<T extends string>(types: readonly [T, ...T[]]) {
  return z
    .strictObject({
      data: Clob.nullish(),
      type: z.enum(types),
      format: z.enum(['YAML', 'JSON', 'XML']),
      fetchRequest: FetchRequestInput.nullish(),
    })
    .superRefine((s, ctx) => {
      if (!FORMATS_BY_TYPE[s.type]?.includes(s.format)) {
        ctx.addIssue({ code: 'custom', path: ['format'], message: `${s.format} is not a valid format for spec type ${s.type} (use ${FORMATS_BY_TYPE[s.type]?.join(' or ')})` });
      }
      if ((s.data != null) === (s.fetchRequest != null)) {
        ctx.addIssue({ code: 'custom', message: 'exactly one of data or fetchRequest must be given' });
      }
    });
}

export const APIDefinitionInput = z.strictObject({
  name: Printable.min(1, 'is required').max(100, 'must be at most 100 characters'),
  description: z.string().max(DESCRIPTION).nullish(),
  targetURL: AbsoluteUrl,
  group: z.string().max(GROUP, `must be at most ${GROUP} characters`).nullish(),
  spec: specInput(['OPEN_API', 'ODATA']).nullish(),
  version: VersionInput.nullish(),
  defaultAuth: AuthInput.nullish(),
});
export type APIDefinitionInput = z.infer<typeof APIDefinitionInput>;

export const EventDefinitionInput = z.strictObject({
  name: Printable.min(1, 'is required').max(100, 'must be at most 100 characters'),
  description: z.string().max(DESCRIPTION).nullish(),
  spec: specInput(['ASYNC_API']).nullish(),
  group: z.string().max(GROUP, `must be at most ${GROUP} characters`).nullish(),
  version: VersionInput.nullish(),
});
export type EventDefinitionInput = z.infer<typeof EventDefinitionInput>;

export const DocumentInput = z
  .strictObject({
    title: z.string().min(1, 'is required').max(SHORT),
    displayName: z.string().min(1, 'is required').max(SHORT),
    description: z.string().min(1, 'is required').max(DESCRIPTION),
    format: z.enum(['MARKDOWN']),
    kind: z.string().max(LONG).nullish(),
    data: Clob.nullish(),
    fetchRequest: FetchRequestInput.nullish(),
  });
export type DocumentInput = z.infer<typeof DocumentInput>;

export const WebhookInput = z.strictObject({
  type: z.enum(['CONFIGURATION_CHANGED']),
  url: LooseUrl,
  auth: AuthInput.nullish(),
});
export type WebhookInput = z.infer<typeof WebhookInput>;

const LabelKey = z.string().min(1, 'label keys must not be empty').max(LONG, `label keys must be at most ${LONG} characters`);
export const Labels = z.record(LabelKey, z.unknown());
export type Labels = Record<string, unknown>;

const IntegrationLevel = z.enum(['BASIC', 'APPLICATION', 'PROXY', 'SERVICE']);
export type IntegrationLevel = z.infer<typeof IntegrationLevel>;

const NoIntegrationSystem = z
  .string()
  .nullish()
  .refine((v) => v == null, 'integration systems are not part of Plexus; leave integrationSystemID out');

export const ApplicationRegisterInput = z.strictObject({
  name: DnsName,
  providerName: z.string().max(LONG).nullish(),
  description: z.string().max(DESCRIPTION).nullish(),
  labels: Labels.nullish(),
  webhooks: z.array(WebhookInput).max(20).nullish(),
  healthCheckURL: AbsoluteUrl.nullish(),
  apiDefinitions: z.array(APIDefinitionInput).max(200).nullish(),
  eventDefinitions: z.array(EventDefinitionInput).max(200).nullish(),
  documents: z.array(DocumentInput).max(200).nullish(),
  integrationSystemID: NoIntegrationSystem,
  integrationLevel: IntegrationLevel.nullish(),
});
export type ApplicationRegisterInput = z.infer<typeof ApplicationRegisterInput>;

export const ApplicationUpdateInput = z.strictObject({
  name: DnsName,
  providerName: z.string().max(LONG).nullish(),
  description: z.string().max(DESCRIPTION).nullish(),
  healthCheckURL: AbsoluteUrl.nullish(),
  integrationSystemID: NoIntegrationSystem,
  integrationLevel: IntegrationLevel.nullish(),
});
export type ApplicationUpdateInput = z.infer<typeof ApplicationUpdateInput>;

export const RuntimeInput = z.strictObject({
  name: DnsName,
  description: z.string().max(DESCRIPTION).nullish(),
  labels: Labels.nullish(),
});
export type RuntimeInput = z.infer<typeof RuntimeInput>;

export const LabelDefinitionInput = z.strictObject({
  key: LabelKey,
  schema: z.unknown().optional(),
});
export type LabelDefinitionInput = z.infer<typeof LabelDefinitionInput>;

export const DirectorSettingsInput = z.strictObject({ specValidation: z.enum(['LENIENT', 'STRICT']).nullish() });
export type DirectorSettingsInput = z.infer<typeof DirectorSettingsInput>;

export const LabelFilterInput = z.array(z.strictObject({ key: LabelKey, query: z.string().max(4_096).nullish() })).max(20, 'at most 20 label filters');
export type LabelFilterInput = z.infer<typeof LabelFilterInput>;

/** Parses `value` with `schema`, or throws 22 naming every problem under `where`. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${[where, ...i.path.map(String)].join('.')}: ${i.message}`);
  throw AppError.invalid(problems.join('; '), { problems });
}
