/**
 * The signer threads: what they sign chains to the CA the main thread loaded (its key was cloned
 * to them, never exported), a refused request comes back as the same 400 the main thread would
 * give, and signing on the main thread (0 threads) answers alike.
 */
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { csrPem, generateKeys, RSA_1024 } from '../../../test/helpers/connector.js';
import { loadConfig } from '../../platform/config.js';
import { AppError } from '../../platform/errors.js';
import { createLogger } from '../../platform/logger.js';
import { createKeyring } from '../secrets/index.js';
import { loadCertificateAuthority, type CertificateAuthority } from './connector.ca.js';
import { CsrSigner } from './connector.signer.js';

const SUBJECT = 'O=Plexus,OU=Connector,L=Local,ST=Local,C=DE,CN=system-auth-1';
const logger = createLogger('silent');

describe('connector signer', () => {
  let testDb: TestDb;
  let ca: CertificateAuthority;

  beforeAll(async () => {
    testDb = await openTestDb('pglite');
    ca = await loadCertificateAuthority({ db: testDb.db, keyring: createKeyring(Buffer.alloc(32, 7)), logger, certFile: undefined, keyFile: undefined });
  });
  afterAll(async () => {
    await testDb?.drop();
  });

  for (const threads of [2, 0]) {
    it(`signs requests that chain to the CA and refuses bad ones with 400 naming the problem (${threads} threads)`, async () => {
      const signer = new CsrSigner(ca, threads, logger);
      try {
        const csrs = await Promise.all([1, 2, 3, 4].map(async () => csrPem(SUBJECT, await generateKeys())));
        const signed = await Promise.all(csrs.map((csr) => signer.sign(csr, SUBJECT, 86_400_000)));
        const caKey = new X509Certificate(ca.pem).publicKey;
        for (const s of signed) {
          const cert = new X509Certificate(s.pem);
          expect(cert.verify(caKey)).toBe(true);
          expect(cert.fingerprint256).toBe(s.fingerprint);
          expect(s.notAfter).toBeInstanceOf(Date);
          expect(s.subject).toContain('CN=system-auth-1');
        }
        expect(new Set(signed.map((s) => s.serial)).size).toBe(4);

        const other = signer.sign(await csrPem(`${SUBJECT},OU=extra`, await generateKeys()), SUBJECT, 86_400_000);
        await expect(other).rejects.toBeInstanceOf(AppError);
        await expect(other).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^csr: its subject .* is not the subject issued/) });
        const weak = signer.sign(await csrPem(SUBJECT, await generateKeys(RSA_1024), RSA_1024), SUBJECT, 86_400_000);
        await expect(weak).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^csr: its RSA key has 1024 bits/) });
        await expect(signer.sign('garbage!', SUBJECT, 86_400_000)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
      } finally {
        await signer.close();
      }
    });
  }

  it('is sized by PLEXUS_CONNECTOR_SIGNER_THREADS: 2 by default, 0 signs on the main thread, bad values named', () => {
    expect(loadConfig({}).connector.signerThreads).toBe(2);
    expect(loadConfig({ PLEXUS_CONNECTOR_SIGNER_THREADS: '0' }).connector.signerThreads).toBe(0);
    expect(() => loadConfig({ PLEXUS_CONNECTOR_SIGNER_THREADS: '-1' })).toThrow(/PLEXUS_CONNECTOR_SIGNER_THREADS="-1" must be 0 or more/);
    expect(() => loadConfig({ PLEXUS_CONNECTOR_SIGNER_THREADS: 'many' })).toThrow(/PLEXUS_CONNECTOR_SIGNER_THREADS="many" must be a number/);
  });

  it('starts no thread before the first signing, and stops an idle one', async () => {
    const signer = new CsrSigner(ca, 2, logger, 10);
    try {
      expect(signer.running).toBe(0);
      await signer.sign(await csrPem(SUBJECT, await generateKeys()), SUBJECT, 86_400_000);
      // Waits for the idle stop however slow the machine is (bounded by the test's own timeout only).
      while (signer.running > 0) await new Promise((r) => setTimeout(r, 10));
      const again = await signer.sign(await csrPem(SUBJECT, await generateKeys()), SUBJECT, 86_400_000);
      expect(again.pem).toContain('BEGIN CERTIFICATE');
    } finally {
      await signer.close();
    }
  });
});
