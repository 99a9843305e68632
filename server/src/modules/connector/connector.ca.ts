/**
 * The hub's certificate authority: created on first start with @peculiar/x509 over WebCrypto and
 * stored in the database (its key sealed under the secrets keyring, PLEXUS_SECRET_KEY), so every
 * process of a deployment signs with the same CA; or supplied by PLEXUS_CA_CERT_FILE /
 * PLEXUS_CA_KEY_FILE. Certificates and requests are built and parsed by that library only.
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import * as x509 from '@peculiar/x509';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Keyring } from '../secrets/index.js';
import * as repo from './connector.repo.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const CA_AAD = 'connector-ca:default';
const CA_VALIDITY_MS = 10 * 365 * 86_400_000;
const SERVER_VALIDITY_MS = 365 * 86_400_000;
/** A PEM request with a 4096-bit key is under 2 KB; anything far larger is not a CSR. */
export const MAX_CSR_BYTES = 64 * 1024;
/** Clocks of clients and hub differ a little; a certificate is valid from a minute ago. */
const BACKDATE_MS = 60_000;

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface SignedCertificate {
  pem: string;
  /** SHA-256 of the DER as Node's TLS shows it (`AA:BB:…`), the key of connector_certificates. */
  fingerprint: string;
  serial: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

/** A random positive serial of 128 bits (RFC 5280: at most 20 octets, positive). */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10;
  return b.toString('hex').toUpperCase();
}

function signingAlgorithmOf(cert: x509.X509Certificate): Algorithm & { hash: string } {
  const alg = cert.publicKey.algorithm as Algorithm & { namedCurve?: string };
  if (alg.name === 'ECDSA') return { ...alg, hash: alg.namedCurve === 'P-384' ? 'SHA-384' : alg.namedCurve === 'P-521' ? 'SHA-512' : 'SHA-256' } as never;
  if (alg.name === 'RSASSA-PKCS1-v1_5') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new AppError('CONFIG_INVALID', `the CA certificate's key is ${alg.name}; use an RSA or EC (P-256 / P-384) key`, 'user');
}

/** SHA-256 of the DER, written as Node's TLS writes a peer's `fingerprint256` (`AA:BB:…`). */
function fingerprintOf(der: ArrayBuffer): string {
  return createHash('sha256').update(Buffer.from(der)).digest('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

export class CertificateAuthority {
  readonly pem: string;
  private readonly signingAlgorithm: Algorithm;
  /**
   * The issuer name and the extensions are the same for every client certificate this CA signs:
   * built once (each extension is ASN.1-serialized when constructed, the key identifier hashes the
   * CA's key), not per signing.
   */
  private clientExtensions: Promise<x509.Extension[]> | undefined;
  private readonly issuer: x509.Name;

  constructor(
    readonly certificate: x509.X509Certificate,
    /** Non-extractable: handed (cloned) only to this process's signer threads, never exported. */
    readonly key: CryptoKey,
  ) {
    this.pem = certificate.toString('pem');
    this.signingAlgorithm = signingAlgorithmOf(certificate);
    this.issuer = certificate.subjectName;
  }

  private async extensionsForClients(): Promise<x509.Extension[]> {
    return [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(this.certificate, false),
    ];
  }

  /** Signs a verified request as a client certificate (clientAuth only) valid for `validityMs`. */
  async signClientCertificate(csr: x509.Pkcs10CertificateRequest, validityMs: number): Promise<SignedCertificate> {
    const now = Date.now();
    const notBefore = new Date(now - BACKDATE_MS);
    const notAfter = new Date(Math.min(now + validityMs, this.certificate.notAfter.getTime()));
    const serial = newSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: csr.subjectName,
      issuer: this.issuer,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.key,
      signingAlgorithm: this.signingAlgorithm,
      extensions: await (this.clientExtensions ??= this.extensionsForClients()),
    });
    return { pem: cert.toString('pem'), fingerprint: fingerprintOf(cert.rawData), serial, subject: csr.subject, notBefore, notAfter };
  }

  /** A fresh key and server certificate for the mTLS listener (per process, never stored). */
  async issueServerCertificate(hosts: readonly string[]): Promise<{ certPem: string; keyPem: string }> {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
    const names = [...new Set(hosts)].map((h) => (/^[\d.]+$/.test(h) || h.includes(':') ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: newSerial(),
      subject: `CN=${hosts[0] ?? 'localhost'}, O=Plexus`,
      issuer: this.certificate.subjectName,
      notBefore: new Date(Date.now() - BACKDATE_MS),
      notAfter: new Date(Math.min(Date.now() + SERVER_VALIDITY_MS, this.certificate.notAfter.getTime())),
      publicKey: keys.publicKey,
      signingKey: this.key,
      signingAlgorithm: this.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
    return { certPem: cert.toString('pem'), keyPem };
  }
}

async function importKey(pem: string, cert: x509.X509Certificate, source: string): Promise<CryptoKey> {
  let der: Buffer;
  try {
    // Node reads PKCS#1, SEC1 and PKCS#8 PEM alike; WebCrypto takes PKCS#8.
    der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `${source}: not a PEM private key (${(err as Error).message})`, 'user');
  }
  const alg = cert.publicKey.algorithm as Algorithm & { namedCurve?: string };
  const importAlg = alg.name === 'ECDSA' ? { name: 'ECDSA', namedCurve: alg.namedCurve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  try {
    return await webcrypto.subtle.importKey('pkcs8', der, importAlg, false, ['sign']);
  } catch (err) {
    throw new AppError('CONFIG_INVALID', `${source}: the key does not fit the CA certificate (${(err as Error).message})`, 'user');
  }
}

async function createCa(): Promise<{ cert: x509.X509Certificate; keys: CryptoKeyPair }> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: `CN=Plexus Connector CA ${randomBytes(4).toString('hex')}, O=Plexus`,
    notBefore: new Date(Date.now() - BACKDATE_MS),
    notAfter: new Date(Date.now() + CA_VALIDITY_MS),
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

export interface LoadCaOptions {
  db: Db;
  keyring: Keyring;
  logger: Logger;
  certFile: string | undefined;
  keyFile: string | undefined;
}

/** The deployment's CA: from the files when configured, else from the database (created once). */
export async function loadCertificateAuthority(opts: LoadCaOptions): Promise<CertificateAuthority> {
  if (opts.certFile && opts.keyFile) {
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(fs.readFileSync(opts.certFile, 'utf8'));
    } catch (err) {
      throw new AppError('CONFIG_INVALID', `PLEXUS_CA_CERT_FILE: not a PEM certificate (${(err as Error).message})`, 'user');
    }
    return new CertificateAuthority(cert, await importKey(fs.readFileSync(opts.keyFile, 'utf8'), cert, 'PLEXUS_CA_KEY_FILE'));
  }
  let row = await repo.findCa(opts.db);
  if (!row) {
    const { cert, keys } = await createCa();
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const sealed = opts.keyring.seal(pkcs8, CA_AAD);
    // Of processes starting together one row wins; everyone signs with the stored one.
    await repo.insertCaIfAbsent(opts.db, { certificate_pem: cert.toString('pem'), key_id: sealed.keyId, key_ciphertext: sealed.ciphertext });
    row = (await repo.findCa(opts.db))!;
    if (row.certificate_pem === cert.toString('pem')) opts.logger.info({ subject: cert.subject }, 'created the connector certificate authority');
  }
  const cert = new x509.X509Certificate(row.certificate_pem);
  const der = Buffer.from(opts.keyring.open({ keyId: row.key_id, ciphertext: row.key_ciphertext }, CA_AAD), 'base64');
  const key = await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: (cert.publicKey.algorithm as { namedCurve?: string }).namedCurve ?? 'P-256' }, false, ['sign']);
  return new CertificateAuthority(cert, key);
}

// ---------------------------------------------------------------- requests

/** The subject's attributes as `TYPE=value` strings, sorted: two subjects with the same are equal. */
function attributesOf(name: x509.Name): string[] {
  return name
    .toJSON()
    .flatMap((rdn) => Object.entries(rdn).flatMap(([type, values]) => values.map((v) => `${type}=${String(v)}`)))
    .sort();
}

/** The PEM (or DER) text a client sent: Compass clients send base64 of the PEM; raw PEM is taken too. */
function requestBytes(raw: string): string | ArrayBuffer {
  const text = raw.trim();
  if (text.startsWith('-----BEGIN')) return text;
  if (!/^[A-Za-z0-9+/=_\-\s]+$/.test(text)) throw AppError.invalid('csr: is neither base64 nor PEM; send the PEM certificate signing request base64-encoded');
  const bytes = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  const asText = bytes.toString('latin1');
  if (asText.includes('-----BEGIN')) return asText.trim();
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

/**
 * Parses and checks a certificate signing request: its signature, a subject exactly the one
 * issued, and a key strong enough (RSA ≥ 2048 bits, EC P-256 / P-384). Refusals are 22 naming
 * the problem.
 */
export async function checkCsr(raw: string, expectedSubject: string): Promise<x509.Pkcs10CertificateRequest> {
  if (raw.length > MAX_CSR_BYTES) throw AppError.invalid(`csr: is ${raw.length} characters long; a certificate signing request is at most ${MAX_CSR_BYTES}`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(requestBytes(raw));
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw AppError.invalid(`csr: is not a PKCS#10 certificate signing request (${(err as Error).message})`);
  }
  const alg = csr.publicKey.algorithm as Algorithm & { modulusLength?: number; namedCurve?: string };
  if (alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'RSA-PSS' || alg.name === 'RSA-OAEP') {
    if ((alg.modulusLength ?? 0) < 2048) throw AppError.invalid(`csr: its RSA key has ${alg.modulusLength ?? 0} bits; use RSA of at least 2048 bits, or EC P-256 / P-384`);
  } else if (alg.name === 'ECDSA' || alg.name === 'ECDH') {
    if (alg.namedCurve !== 'P-256' && alg.namedCurve !== 'P-384') throw AppError.invalid(`csr: its EC key is on curve ${alg.namedCurve ?? 'unknown'}; use P-256 or P-384 (or RSA ≥ 2048)`);
  } else {
    throw AppError.invalid(`csr: its key is ${alg.name}; use RSA ≥ 2048 bits or EC P-256 / P-384`);
  }
  const valid = await csr.verify().catch(() => false);
  if (!valid) throw AppError.invalid('csr: its signature does not verify (the request was altered, or signed with another key than the one it holds)');
  const expected = attributesOf(new x509.Name(expectedSubject));
  const got = attributesOf(csr.subjectName);
  if (expected.join('\n') !== got.join('\n')) {
    throw AppError.invalid(`csr: its subject "${csr.subject}" is not the subject issued for this token ("${expectedSubject}")`);
  }
  return csr;
}

/** A CA from its PEM certificate and its (already imported) signing key: the signer threads' copy. */
export function caFromKey(pem: string, key: CryptoKey): CertificateAuthority {
  return new CertificateAuthority(new x509.X509Certificate(pem), key);
}
