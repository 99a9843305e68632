/**
 * AES-256-GCM under a keyring. The current key seals; every key of the ring opens what it
 * sealed, found by the key id stored beside the ciphertext. A key id is a hash prefix of the
 * key, so it names the key without revealing it. The secret's tenant and id are bound in as
 * associated data: a ciphertext copied onto another row does not open.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_FILE = 'secret.key';

export interface Sealed {
  keyId: string;
  /** base64(iv ‖ tag ‖ ciphertext) */
  ciphertext: string;
}

export interface Keyring {
  readonly currentKeyId: string;
  seal(plaintext: string, aad: string): Sealed;
  open(sealed: Sealed, aad: string): string;
}

/** A 32-byte key written as 64 hex characters or as base64 / base64url. */
export function parseKey(raw: string, name: string): Buffer {
  const s = raw.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(s) ? Buffer.from(s, 'hex') : Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) throw new AppError('CONFIG_INVALID', `${name} must be 32 bytes, as 64 hex characters or base64 (got ${key.length} bytes)`, 'user');
  return key;
}

export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('plexus-secret-key-id').update(key).digest('hex').slice(0, 16);
}

export function createKeyring(current: Buffer, previous: readonly Buffer[] = []): Keyring {
  const keys = new Map<string, Buffer>();
  for (const k of [...previous, current]) keys.set(keyIdOf(k), k);
  const currentKeyId = keyIdOf(current);
  return {
    currentKeyId,
    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return { keyId: currentKeyId, ciphertext: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64') };
    },
    open(sealed, aad) {
      const key = keys.get(sealed.keyId);
      if (!key) {
        throw new AppError('INTERNAL', `secret is sealed with key ${sealed.keyId}, which this process does not have (set PLEXUS_SECRET_KEY / PLEXUS_SECRET_PREVIOUS_KEYS)`, 'bug');
      }
      const raw = Buffer.from(sealed.ciphertext, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      try {
        return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch (err) {
        throw new AppError('INTERNAL', 'secret ciphertext does not authenticate (tampered, or moved from another row)', 'bug', undefined, { cause: err });
      }
    },
  };
}

/**
 * The keyring from configuration: PLEXUS_SECRET_KEY, or outside production a key generated on
 * first start into `<dataDir>/secret.key` (mode 0600) and read from there afterwards.
 */
export function loadKeyring(opts: { key: string | undefined; previousKeys: readonly string[]; dataDir: string; isProduction: boolean; sharedDatabase: boolean; logger: Logger }): Keyring {
  const previous = opts.previousKeys.map((k, i) => parseKey(k, `PLEXUS_SECRET_PREVIOUS_KEYS[${i}]`));
  if (opts.key) return createKeyring(parseKey(opts.key, 'PLEXUS_SECRET_KEY'), previous);
  if (opts.isProduction) throw new AppError('CONFIG_INVALID', 'PLEXUS_SECRET_KEY is required when NODE_ENV=production', 'user');
  const file = path.join(opts.dataDir, KEY_FILE);
  fs.mkdirSync(opts.dataDir, { recursive: true });
  try {
    // `wx`: of several processes starting at once on one data dir, one creates the key.
    fs.writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    opts.logger.info({ file }, 'generated the key for secrets at rest; back it up, or set PLEXUS_SECRET_KEY');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) opts.logger.warn({ file, mode: mode.toString(8) }, 'the secret key file is readable by others; chmod 600 it');
  if (opts.sharedDatabase) {
    opts.logger.warn({ file }, 'secrets use a key generated into this data dir while the database is shared: set the same PLEXUS_SECRET_KEY on every process');
  }
  return createKeyring(parseKey(fs.readFileSync(file, 'utf8'), file), previous);
}
