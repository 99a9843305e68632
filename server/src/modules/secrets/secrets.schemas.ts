/**
 * The secrets API's shapes. The bodies and the Secret the API answers with are contracts shared
 * with the CLI and the web UI (contracts/secrets.ts); the route parameters stay here.
 */
import { z } from 'zod';

export { CreateSecretBody, Secret, SecretListQuery, UpdateSecretBody } from '../../contracts/secrets.js';

export const SecretParams = z.strictObject({ id: z.uuid({ error: 'must be a UUID' }) });
