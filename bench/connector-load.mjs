// Load generator of bench/connector.ts, run as a child process (forked, IPC) so that the bench
// process's CPU time is the hub's alone and the client never takes the hub's event loop:
// - kind "event" / "hook": `clients` loops, each with one keep-alive connection (HTTPS with its
//   own client certificate, or HTTP), each sending one request after another until the time is up;
// - kind "pair": one loop per application, each repeating a complete pairing (token from the
//   Director as the administrator → configuration → CSR built and signed here →
//   signCertificateSigningRequest). Client keys are made before the clock starts; each CSR is
//   built and signed within the pairing.
// The parent sends {kind, …} once; the child answers with its figures and exits.
import 'reflect-metadata';
import { createPrivateKey, sign, webcrypto } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';

/**
 * A client's key, ready to build CSRs: the public key info and Node's private key object.
 * Like the hub (connector.ca.ts), the CSR is built with the ASN.1 schema classes @peculiar/x509 is
 * built on and signed with Node's synchronous crypto.sign: the library's generator (WebCrypto, a
 * re-parse of the result) took ~2.2 ms of the client's CPU per CSR, this ~0.7 ms, and the client
 * shares the machine's two cores with the hub it measures.
 */
async function csrKey(keys) {
  return {
    spki: AsnConvert.parse(await webcrypto.subtle.exportKey('spki', keys.publicKey), SubjectPublicKeyInfo),
    key: createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' }),
  };
}

/** Subject names parsed once per subject (an application's subject stays the same). */
const names = new Map();

/** A PKCS#10 request for `subject` signed with the client's key, base64 of its PEM. */
function csrBase64(subject, k) {
  let name = names.get(subject);
  if (!name) names.set(subject, (name = AsnConvert.parse(new x509.Name(subject).toArrayBuffer(), Name)));
  const info = new CertificationRequestInfo({ subject: name, subjectPKInfo: k.spki });
  const signature = sign('sha256', Buffer.from(AsnConvert.serialize(info)), k.key);
  const der = Buffer.from(AsnConvert.serialize(new CertificationRequest({ certificationRequestInfo: info, signatureAlgorithm: new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 }), signature: new Uint8Array(signature).buffer })));
  const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`;
  return Buffer.from(pem).toString('base64');
}

const latencies = [];
let accepted = 0;
let other = 0;
let errors = 0;
/** When the measured window began (after the client's keys were made). */
let clockStart = Date.now();

function body(kind, client, n) {
  if (kind === 'event') {
    return JSON.stringify({ specversion: '1.0', id: `${client}-${n}-${Math.random().toString(36).slice(2)}`, source: `/bench/${client}`, type: 'order.created', data: { orderId: `o-${n}`, total: 19.9 } });
  }
  return JSON.stringify({ orderId: 4711, customer: { id: 'c-42', name: 'Ada' }, items: [{ sku: 'book', qty: 1 }], total: 19.9 });
}

function once(target, kind, agent, client, n) {
  const isTls = target.protocol === 'https:';
  return new Promise((resolve) => {
    const payload = body(kind, client, n);
    const started = performance.now();
    const req = (isTls ? https : http).request(
      target,
      { method: 'POST', agent, headers: { 'content-type': kind === 'event' ? 'application/cloudevents+json' : 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - started);
          if (res.statusCode === 202) accepted++;
          else other++;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end(payload);
  });
}

async function ingress({ url, clients, durationMs, identities, kind }) {
  const target = new URL(url);
  clockStart = Date.now();
  const deadline = Date.now() + durationMs;
  const loop = async (client) => {
    const id = identities?.[client];
    const agent =
      target.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets: 1, key: id.key, cert: id.cert, ca: id.ca })
        : new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let n = 0; Date.now() < deadline; n++) await once(target, kind, agent, client, n);
    agent.destroy();
  };
  await Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
}

async function post(agent, url, headers, query, variables) {
  const payload = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (parsed.errors) reject(new Error(JSON.stringify(parsed.errors)));
          else resolve(parsed.data);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function pairings({ base, authorization, apps, durationMs }) {
  const keys = await Promise.all(apps.map(() => webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])));
  const csrKeys = await Promise.all(keys.map(csrKey));
  const certificates = [];
  clockStart = Date.now();
  const deadline = Date.now() + durationMs;
  const loop = async (appId, i) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    while (Date.now() < deadline) {
      const started = performance.now();
      try {
        const { t } = await post(agent, `${base}/director/graphql`, { authorization }, `mutation { t: requestOneTimeTokenForApplication(id: "${appId}") { token } }`);
        const { configuration: cfg } = await post(agent, `${base}/connector/graphql`, { 'connector-token': t.token }, '{ configuration { token { token } certificateSigningRequestInfo { subject } } }');
        const { r } = await post(agent, `${base}/connector/graphql`, { 'connector-token': cfg.token.token }, 'mutation($csr: String!) { r: signCertificateSigningRequest(csr: $csr) { clientCertificate caCertificate } }', {
          csr: csrBase64(cfg.certificateSigningRequestInfo.subject, csrKeys[i]),
        });
        latencies.push(performance.now() - started);
        accepted++;
        certificates[i] = { cert: Buffer.from(r.clientCertificate, 'base64').toString(), ca: Buffer.from(r.caCertificate, 'base64').toString() };
      } catch (err) {
        errors++;
        if (errors === 1) console.error(`pairing failed: ${err.message}`);
      }
    }
    agent.destroy();
  };
  await Promise.all(apps.map((id, i) => loop(id, i)));
  // The keys and certificates of the last pairing of each application, for the event clients.
  return Promise.all(
    apps.map(async (_, i) => {
      if (!certificates[i]) return undefined;
      const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys[i].privateKey)).toString('base64');
      return { key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`, ...certificates[i] };
    }),
  );
}

process.once('message', async (data) => {
  const identities = data.kind === 'pair' ? await pairings(data) : (await ingress(data), undefined);
  const seconds = (Date.now() - clockStart) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  const cpu = process.cpuUsage();
  process.send({ accepted, other, errors, seconds, p50: q(0.5), p99: q(0.99), clientCpuMs: (cpu.user + cpu.system) / 1000, identities }, () => process.exit(0));
});
