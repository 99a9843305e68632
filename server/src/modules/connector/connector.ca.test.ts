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
import { csrPem, EC_P256, generateKeys, keyPem, RSA_2048, selfSigned } from '../../../test/helpers/connector.js';
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

  it("signs a client certificate holding exactly the request's subject and key, for client auth only", async () => {
    const ca = await loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 1)), logger, certFile: undefined, keyFile: undefined });
    const keys = await generateKeys();
    const request = new x509.Pkcs10CertificateRequest(await csrPem('CN=system-auth-1,C=DE,ST=Local,L=Local,OU=Connector,O=Plexus', keys));
    const before = Date.now();
    const signed = await ca.signClientCertificate(await checkCsr(request.toString('pem'), SUBJECT), 3_600_000);
    const cert = new x509.X509Certificate(signed.pem);
    const caCert = new x509.X509Certificate(ca.pem);
    // The subject as the request spelled it (its order kept), the request's own public key.
    expect(cert.subject).toBe(request.subject);
    expect(signed.subject).toBe(request.subject);
    expect(Buffer.from(cert.publicKey.rawData).equals(Buffer.from(request.publicKey.rawData))).toBe(true);
    expect(cert.issuer).toBe(caCert.subject);
    expect(await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true })).toBe(true);
    expect(cert.serialNumber.toUpperCase()).toBe(signed.serial);
    expect(signed.serial).toMatch(/^[1-7][0-9A-F]{31}$/);
    // What the row stores is what the certificate says (whole seconds), a minute back-dated.
    expect(cert.notBefore.getTime()).toBe(signed.notBefore.getTime());
    expect(cert.notAfter.getTime()).toBe(signed.notAfter.getTime());
    expect(signed.notBefore.getTime()).toBeGreaterThanOrEqual(Math.floor((before - 60_000) / 1000) * 1000);
    expect(signed.notAfter.getTime() - signed.notBefore.getTime()).toBeGreaterThanOrEqual(3_660_000 - 1000);
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    expect(aki).toBeDefined();
    expect(aki).toBe(caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
    expect(await new x509.X509ChainBuilder({ certificates: [caCert] }).build(cert)).toHaveLength(2);
  });

  it('takes RSA ≥ 2048 and EC P-384 keys; refuses other curves and requests whose signature does not verify', async () => {
    await expect(checkCsr(await csrPem(SUBJECT, await generateKeys(RSA_2048), RSA_2048), SUBJECT)).resolves.toBeDefined();
    const p384 = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
    const p384Keys = (await webcrypto.subtle.generateKey(p384, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    await expect(checkCsr(await csrPem(SUBJECT, p384Keys as never, p384), SUBJECT)).resolves.toBeDefined();
    const p521 = { name: 'ECDSA', namedCurve: 'P-521', hash: 'SHA-512' };
    const p521Keys = (await webcrypto.subtle.generateKey(p521, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    await expect(checkCsr(await csrPem(SUBJECT, p521Keys as never, p521), SUBJECT)).rejects.toThrow(/^csr: its EC key is on curve P-521/);
    const a = new x509.Pkcs10CertificateRequest(await csrPem(SUBJECT, await generateKeys()));
    const tampered = Buffer.from(a.rawData);
    // Flip one byte of the signed part (inside the subject's CN value).
    const at = tampered.indexOf(Buffer.from('system-auth-1'));
    tampered[at + 7] = 'X'.charCodeAt(0);
    await expect(checkCsr(tampered.toString('base64'), SUBJECT.replace('system-auth-1', 'systemXauth-1'))).rejects.toThrow(/^csr: its signature does not verify/);
    await expect(checkCsr(Buffer.from('not a request at all').toString('base64'), SUBJECT)).rejects.toThrow(/^csr: is not a PKCS#10 certificate signing request/);
  });
});
