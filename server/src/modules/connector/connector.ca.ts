/**
 * The hub's certificate authority: created on first start with @peculiar/x509 over WebCrypto and
 * stored in the database (its key sealed under the secrets keyring, PLEXUS_SECRET_KEY), so every
 * process of a deployment signs with the same CA; or supplied by PLEXUS_CA_CERT_FILE /
 * PLEXUS_CA_KEY_FILE. Certificates and requests are built and parsed by that library and the
 * ASN.1 schema packages it is built on (@peculiar/asn1-x509, -csr, -schema) only: no hand-written
 * ASN.1.
 *
 * The per-pairing work (check a request, sign a client certificate) uses the schema classes
 * directly and Node's synchronous crypto.sign / crypto.verify: X509CertificateGenerator serializes
 * each certificate and then parses it again into an X509Certificate (~2.2 ms of CPU per
 * certificate), and Pkcs10CertificateRequest plus WebCrypto's import + verify cost ~1.1 ms per
 * request; the direct path does the same checks and builds the same certificate for a fraction.
 */
import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, constants as cryptoConstants, KeyObject, randomBytes, sign as signData, verify as verifySignature, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import { CertificationRequest, type CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert, AsnSerializer } from '@peculiar/asn1-schema';
import * as asnX509 from '@peculiar/asn1-x509';
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
function newSerialBytes(): Buffer {
  const b = randomBytes(16);
  // Top bit clear (positive), not zero (no leading zero octet): its INTEGER is these 16 octets.
  b[0] = (b[0]! & 0x7f) | 0x10;
  return b;
}

function newSerial(): string {
  return newSerialBytes().toString('hex').toUpperCase();
}

/** The library's mapping between WebCrypto algorithms and their ASN.1 identifiers. */
const algorithms = new x509.AlgorithmProvider();

/** WebCrypto's hash name (`SHA-256`) as Node's crypto names it (`sha256`). */
const nodeHash = (name: string): string => name.replace('-', '').toLowerCase();

/** An exact ArrayBuffer of a Buffer's bytes (the schema classes take ArrayBuffers). */
const arrayBufferOf = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

type AsnBlock = ReturnType<typeof AsnSerializer.toASN>;

/**
 * A schema value converted to its asn1js form once (the schema library's IAsnConvertible: its
 * serializer takes the form as it is). The TBSCertificate is signed and then embedded in the
 * certificate, and the issuer and extensions are the same in every certificate: each is walked
 * through its schema once instead of at every serialization.
 */
class Converted {
  constructor(private readonly asn: AsnBlock) {}
  static of<T>(value: T): T {
    return new Converted(AsnSerializer.toASN(value)) as unknown as T;
  }
  toASN(): AsnBlock {
    return this.asn;
  }
  fromASN(): this {
    throw new Error('a converted ASN.1 value is only serialized');
  }
  /** Its DER. */
  der(): ArrayBuffer {
    return this.asn.toBER(false);
  }
}

/** A request that passed checkCsr: what a client certificate is built from. */
export interface CheckedCsr {
  /** Subject and public key, as the schema parsed them (copied into the certificate as they are). */
  info: CertificationRequestInfo;
  /** The subject as text (`O=…, CN=…`), for the certificate row and messages. */
  subject: string;
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
  private clientExtensions: Promise<asnX509.Extensions> | undefined;
  /** The CA's subject, the issuer of every certificate it signs. */
  private readonly issuer: asnX509.Name;
  /** The signature's AlgorithmIdentifier (in the TBSCertificate and the certificate) and its hash. */
  private readonly signatureAlgorithm: asnX509.AlgorithmIdentifier;
  private readonly hash: string;
  /**
   * The same key as Node's KeyObject, for the synchronous crypto.sign (~0.05 ms where WebCrypto's
   * sign is a hop to libuv's pool and back). KeyObject.from neither exports nor copies it out.
   */
  private readonly signingKey: KeyObject;

  constructor(
    readonly certificate: x509.X509Certificate,
    /** Non-extractable: handed (cloned) only to this process's signer threads, never exported. */
    readonly key: CryptoKey,
  ) {
    this.pem = certificate.toString('pem');
    this.signingAlgorithm = signingAlgorithmOf(certificate);
    this.issuer = Converted.of(AsnConvert.parse(certificate.subjectName.toArrayBuffer(), asnX509.Name));
    this.signatureAlgorithm = Converted.of(algorithms.toAsnAlgorithm(this.signingAlgorithm));
    this.hash = nodeHash((this.signingAlgorithm as Algorithm & { hash: string }).hash);
    this.signingKey = KeyObject.from(key);
  }

  /** Built once with the library's extension classes, kept as the schema's Extension objects. */
  private async extensionsForClients(): Promise<asnX509.Extensions> {
    const extensions = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(this.certificate, false),
    ];
    return Converted.of(new asnX509.Extensions(extensions.map((e) => AsnConvert.parse(e.rawData, asnX509.Extension))));
  }

  /**
   * Signs a checked request as a client certificate (clientAuth only) valid for `validityMs`: the
   * TBSCertificate from the schema classes (subject and public key exactly as the request holds
   * them), its DER signed with the CA key, the certificate serialized once.
   */
  async signClientCertificate(csr: CheckedCsr, validityMs: number): Promise<SignedCertificate> {
    const now = Date.now();
    // Whole seconds: the DER times hold no more, and the row must say what the certificate says.
    const notBefore = new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000);
    const notAfter = new Date(Math.floor(Math.min(now + validityMs, this.certificate.notAfter.getTime()) / 1000) * 1000);
    const serial = newSerialBytes();
    const tbs = new asnX509.TBSCertificate({
      version: asnX509.Version.v3,
      serialNumber: arrayBufferOf(serial),
      signature: this.signatureAlgorithm,
      issuer: this.issuer,
      validity: new asnX509.Validity({ notBefore, notAfter }),
      subject: csr.info.subject,
      subjectPublicKeyInfo: csr.info.subjectPKInfo,
      extensions: await (this.clientExtensions ??= this.extensionsForClients()),
    });
    const tbsCertificate = Converted.of(tbs);
    // ECDSA signatures come DER-encoded (Ecdsa-Sig-Value) from Node, as X.509 wants them.
    const signature = signData(this.hash, Buffer.from((tbsCertificate as unknown as Converted).der()), this.signingKey);
    const der = AsnConvert.serialize(new asnX509.Certificate({ tbsCertificate, signatureAlgorithm: this.signatureAlgorithm, signatureValue: arrayBufferOf(signature) }));
    return { pem: x509.PemConverter.encode(der, 'CERTIFICATE'), fingerprint: fingerprintOf(der), serial: serial.toString('hex').toUpperCase(), subject: csr.subject, notBefore, notAfter };
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

/** OpenSSL's curve names as WebCrypto (and the messages) name them. */
const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** The request's public key, or 400 naming why it is not one a client certificate may hold. */
function checkedKey(info: CertificationRequestInfo): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(AsnConvert.serialize(info.subjectPKInfo)), format: 'der', type: 'spki' });
  } catch (err) {
    throw AppError.invalid(`csr: its public key cannot be read (${(err as Error).message}); use RSA ≥ 2048 bits or EC P-256 / P-384`);
  }
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    if ((details.modulusLength ?? 0) < 2048) throw AppError.invalid(`csr: its RSA key has ${details.modulusLength ?? 0} bits; use RSA of at least 2048 bits, or EC P-256 / P-384`);
  } else if (type === 'ec') {
    const curve = CURVES[details.namedCurve ?? ''] ?? details.namedCurve;
    if (curve !== 'P-256' && curve !== 'P-384') throw AppError.invalid(`csr: its EC key is on curve ${curve ?? 'unknown'}; use P-256 or P-384 (or RSA ≥ 2048)`);
  } else {
    throw AppError.invalid(`csr: its key is ${type ?? 'of an unknown type'}; use RSA ≥ 2048 bits or EC P-256 / P-384`);
  }
  return key;
}

/** Whether the request's signature verifies with its own key (proof that the client holds it). */
function signatureVerifies(req: CertificationRequest, key: KeyObject): boolean {
  const alg = algorithms.toWebAlgorithm(req.signatureAlgorithm) as (Algorithm & { hash?: { name: string }; saltLength?: number }) | null;
  const hash = alg?.hash?.name;
  if (!alg || !hash || !req.certificationRequestInfoRaw) return false;
  const data = Buffer.from(req.certificationRequestInfoRaw);
  const signature = Buffer.from(req.signature);
  const type = key.asymmetricKeyType;
  try {
    if (alg.name === 'ECDSA' && type === 'ec') return verifySignature(nodeHash(hash), data, key, signature);
    if (alg.name === 'RSASSA-PKCS1-v1_5' && type === 'rsa') return verifySignature(nodeHash(hash), data, key, signature);
    if (alg.name === 'RSA-PSS' && (type === 'rsa' || type === 'rsa-pss')) {
      return verifySignature(nodeHash(hash), data, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength ?? 20 }, signature);
    }
  } catch {
    return false;
  }
  return false;
}

/**
 * Parses and checks a certificate signing request: its signature, a subject exactly the one
 * issued, and a key strong enough (RSA ≥ 2048 bits, EC P-256 / P-384). Refusals are 22 naming
 * the problem.
 */
export async function checkCsr(raw: string, expectedSubject: string): Promise<CheckedCsr> {
  if (raw.length > MAX_CSR_BYTES) throw AppError.invalid(`csr: is ${raw.length} characters long; a certificate signing request is at most ${MAX_CSR_BYTES}`);
  let req: CertificationRequest;
  try {
    const bytes = requestBytes(raw);
    req = AsnConvert.parse(typeof bytes === 'string' ? x509.PemConverter.decodeFirst(bytes) : bytes, CertificationRequest);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw AppError.invalid(`csr: is not a PKCS#10 certificate signing request (${(err as Error).message})`);
  }
  const key = checkedKey(req.certificationRequestInfo);
  if (!signatureVerifies(req, key)) throw AppError.invalid('csr: its signature does not verify (the request was altered, or signed with another key than the one it holds)');
  const subjectName = new x509.Name(req.certificationRequestInfo.subject);
  const expected = attributesOf(new x509.Name(expectedSubject));
  const got = attributesOf(subjectName);
  if (expected.join('\n') !== got.join('\n')) {
    throw AppError.invalid(`csr: its subject "${subjectName.toString()}" is not the subject issued for this token ("${expectedSubject}")`);
  }
  return { info: req.certificationRequestInfo, subject: subjectName.toString() };
}

/** A CA from its PEM certificate and its (already imported) signing key: the signer threads' copy. */
export function caFromKey(pem: string, key: CryptoKey): CertificateAuthority {
  return new CertificateAuthority(new x509.X509Certificate(pem), key);
}
