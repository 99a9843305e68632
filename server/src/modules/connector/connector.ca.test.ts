/**
 * The CA: generated once into the database with its key sealed (another process with the same
 * key reads the same CA; one with another key cannot), or supplied by PEM files (RSA or EC, any
 * PEM key format); certificates it signs chain to it and are for client auth only.
 */
import 'reflect-metadata';
import { createPrivateKey, webcrypto, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { csrPem, EC_P256, generateKeys, keyPem, selfSigned } from '../../../test/helpers/connector.js';
import { createLogger } from '../../platform/logger.js';
import { createKeyring } from '../secrets/index.js';
import { checkCsr, loadCertificateAuthority } from './connector.ca.js';

const SUBJECT = 'O=Plexus,OU=Connector,L=Local,ST=Local,C=DE,CN=system-auth-1';
const logger = createLogger('silent');

describe('connector CA', () => {
  let testDb: TestDb;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-ca-'));

  beforeAll(async () => {
    testDb = await openTestDb('pglite');
  });
  afterAll(async () => {
    await testDb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is created once in the database, its key sealed: the same key opens it, another does not', async () => {
    const keyring = createKeyring(Buffer.alloc(32, 1));
    const first = await loadCertificateAuthority({ db: testDb.db, keyring, logger, certFile: undefined, keyFile: undefined });
    const second = await loadCertificateAuthority({ db: testDb.db, keyring, logger, certFile: undefined, keyFile: undefined });
    expect(second.pem).toBe(first.pem);
    const row = (await testDb.db.query<{ key_ciphertext: string }>('SELECT key_ciphertext FROM connector_ca')).rows[0]!;
    expect(row.key_ciphertext).not.toContain('PRIVATE KEY');
    await expect(loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 2)), logger, certFile: undefined, keyFile: undefined })).rejects.toThrow(/PLEXUS_SECRET_KEY/);
    // What one process signs verifies against the CA the other loaded.
    const csr = await checkCsr(await csrPem(SUBJECT, await generateKeys()), SUBJECT);
    const signed = await first.signClientCertificate(csr, 86_400_000);
    const cert = new X509Certificate(signed.pem);
    expect(cert.verify(new X509Certificate(second.pem).publicKey)).toBe(true);
    expect(cert.fingerprint256).toBe(signed.fingerprint);
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
  });

  it('can be supplied as files: an RSA CA with a PKCS#1 key, and an EC CA with a PKCS#8 key', async () => {
    const rsaKeys = (await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const rsaCa = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Files RSA CA',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000 * 30),
      keys: rsaKeys as never,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const pkcs1 = createPrivateKey(await keyPem(rsaKeys)).export({ type: 'pkcs1', format: 'pem' }) as string;
    expect(pkcs1).toContain('BEGIN RSA PRIVATE KEY');
    fs.writeFileSync(path.join(dir, 'rsa.crt'), rsaCa.toString('pem'));
    fs.writeFileSync(path.join(dir, 'rsa.key'), pkcs1);
    const fromRsa = await loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 3)), logger, certFile: path.join(dir, 'rsa.crt'), keyFile: path.join(dir, 'rsa.key') });
    const a = await fromRsa.signClientCertificate(await checkCsr(await csrPem(SUBJECT, await generateKeys()), SUBJECT), 86_400_000);
    expect(new X509Certificate(a.pem).verify(new X509Certificate(rsaCa.toString('pem')).publicKey)).toBe(true);

    const ecKeys = await generateKeys(EC_P256);
    const ecCa = await selfSigned('CN=Files EC CA', ecKeys, true);
    fs.writeFileSync(path.join(dir, 'ec.crt'), ecCa);
    fs.writeFileSync(path.join(dir, 'ec.key'), await keyPem(ecKeys));
    const fromEc = await loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 3)), logger, certFile: path.join(dir, 'ec.crt'), keyFile: path.join(dir, 'ec.key') });
    const b = await fromEc.signClientCertificate(await checkCsr(await csrPem(SUBJECT, await generateKeys()), SUBJECT), 86_400_000);
    expect(new X509Certificate(b.pem).verify(new X509Certificate(ecCa).publicKey)).toBe(true);

    fs.writeFileSync(path.join(dir, 'bad.key'), 'not a key');
    await expect(loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 3)), logger, certFile: path.join(dir, 'ec.crt'), keyFile: path.join(dir, 'bad.key') })).rejects.toThrow(/PLEXUS_CA_KEY_FILE: not a PEM private key/);
    await expect(loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 3)), logger, certFile: path.join(dir, 'ec.crt'), keyFile: path.join(dir, 'rsa.key') })).rejects.toThrow(/PLEXUS_CA_KEY_FILE/);
  });

  it('accepts the subject attributes in any order, and a PEM or base64 DER request', async () => {
    const keys = await generateKeys();
    const reordered = await csrPem('CN=system-auth-1,C=DE,ST=Local,L=Local,OU=Connector,O=Plexus', keys);
    await expect(checkCsr(reordered, SUBJECT)).resolves.toBeDefined();
    const der = Buffer.from((await csrPem(SUBJECT, keys)).replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64');
    await expect(checkCsr(der, SUBJECT)).resolves.toBeDefined();
    await expect(checkCsr(await csrPem(`${SUBJECT},OU=extra`, keys), SUBJECT)).rejects.toThrow(/is not the subject issued/);
  });
});
