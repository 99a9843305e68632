import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { createKeyring, keyIdOf, loadKeyring, parseKey } from './secrets.crypto.js';

const logger = createLogger('silent');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('secrets keyring', () => {
  it('seals so that the plaintext does not appear and only the same row opens it', () => {
    const ring = createKeyring(randomBytes(32));
    const sealed = ring.seal('{"password":"hunter2-hunter2"}', 'plexus-secret:t1:s1');
    expect(sealed.keyId).toBe(ring.currentKeyId);
    expect(Buffer.from(sealed.ciphertext, 'base64').toString('latin1')).not.toContain('hunter2');
    expect(ring.open(sealed, 'plexus-secret:t1:s1')).toBe('{"password":"hunter2-hunter2"}');
    expect(() => ring.open(sealed, 'plexus-secret:t2:s1')).toThrow(/does not authenticate/);
  });

  it('refuses a tampered ciphertext', () => {
    const ring = createKeyring(randomBytes(32));
    const sealed = ring.seal('value', 'aad');
    const raw = Buffer.from(sealed.ciphertext, 'base64');
    raw[raw.length - 1]! ^= 1;
    expect(() => ring.open({ ...sealed, ciphertext: raw.toString('base64') }, 'aad')).toThrow(/does not authenticate/);
  });

  it('opens what a previous key sealed, and seals with the current one', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealedOld = createKeyring(oldKey).seal('v', 'aad');
    const ring = createKeyring(newKey, [oldKey]);
    expect(ring.open(sealedOld, 'aad')).toBe('v');
    expect(ring.seal('v', 'aad').keyId).toBe(keyIdOf(newKey));
    expect(() => createKeyring(newKey).open(sealedOld, 'aad')).toThrow(/which this process does not have/);
  });

  it('parses hex and base64 keys and names a wrong length', () => {
    const key = randomBytes(32);
    expect(parseKey(key.toString('hex'), 'K').equals(key)).toBe(true);
    expect(parseKey(key.toString('base64'), 'K').equals(key)).toBe(true);
    expect(parseKey(key.toString('base64url'), 'K').equals(key)).toBe(true);
    expect(() => parseKey('c2hvcnQ=', 'PLEXUS_SECRET_KEY')).toThrow(/PLEXUS_SECRET_KEY must be 32 bytes/);
  });

  it('generates a key into the data dir with mode 0600 once, and reuses it', () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-key-'));
    dirs.push(dataDir);
    const opts = { key: undefined, previousKeys: [], dataDir, isProduction: false, sharedDatabase: false, logger };
    const first = loadKeyring(opts);
    const file = path.join(dataDir, 'secret.key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const second = loadKeyring(opts);
    expect(second.currentKeyId).toBe(first.currentKeyId);
    expect(second.open(first.seal('x', 'a'), 'a')).toBe('x');
  });

  it('requires a configured key in production and never generates one there', () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-key-'));
    dirs.push(dataDir);
    expect(() => loadKeyring({ key: undefined, previousKeys: [], dataDir, isProduction: true, sharedDatabase: true, logger })).toThrow(/required when NODE_ENV=production/);
    expect(fs.existsSync(path.join(dataDir, 'secret.key'))).toBe(false);
  });
});
