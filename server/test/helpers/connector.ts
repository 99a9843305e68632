/**
 * A paired client for Connector tests: keys and CSRs made with @peculiar/x509 over WebCrypto (as
 * a real client would), and calls over real TLS with Node's https client and the issued key and
 * certificate.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import https from 'node:https';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const RSA_2048 = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as const;
export const RSA_1024 = { ...RSA_2048, modulusLength: 1024 } as const;
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function generateKeys(alg: typeof RSA_2048 | typeof RSA_1024 | typeof EC_P256 = EC_P256): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(alg as never, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

/** A PEM PKCS#10 request for `subject`, signed with `keys`. */
export async function csrPem(subject: string, keys: CryptoKeyPair, alg: { name: string; hash: string } = EC_P256): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subject, keys: keys as never, signingAlgorithm: alg as never });
  return csr.toString('pem');
}

export const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
export const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

/** A self-signed certificate (not from the hub's CA) for `subject`. */
export async function selfSigned(subject: string, keys: CryptoKeyPair, ca = false): Promise<string> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '0a' + Math.floor(Math.random() * 1e9).toString(16),
    name: subject,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys: keys as never,
    signingAlgorithm: EC_P256,
    extensions: ca ? [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)] : [],
  });
  return cert.toString('pem');
}

/** A certificate for `subject` signed by another CA (`caKeys`, `caPem`). */
export async function signedByOtherCa(subject: string, keys: CryptoKeyPair, caKeys: CryptoKeyPair, caPem: string): Promise<string> {
  const ca = new x509.X509Certificate(caPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0b' + Math.floor(Math.random() * 1e9).toString(16),
    subject,
    issuer: ca.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey as never,
    signingKey: caKeys.privateKey as never,
    signingAlgorithm: EC_P256,
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
  });
  return cert.toString('pem');
}

export interface TlsIdentity {
  key: string;
  cert: string;
  ca: string;
}

export interface TlsResponse {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTPS request with a client certificate; `agent` keeps a connection alive between calls. */
export function tlsRequest(url: string, id: TlsIdentity, opts: { method?: string; body?: unknown; rawBody?: string; headers?: Record<string, string>; agent?: https.Agent } = {}): Promise<TlsResponse> {
  return new Promise((resolve, reject) => {
    const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    const req = https.request(
      url,
      {
        method: opts.method ?? 'POST',
        key: id.key,
        cert: id.cert,
        ca: id.ca,
        agent: opts.agent ?? false,
        headers: { ...(payload !== undefined && !opts.headers?.['content-type'] ? { 'content-type': 'application/json' } : {}), ...opts.headers },
        timeout: 60_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** A keep-alive agent holding the client certificate (one connection reused for every call). */
export function keepAliveAgent(id: TlsIdentity): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets: 1, key: id.key, cert: id.cert, ca: id.ca });
}
