/**
 * Workers with client certificates (issue 13 × the Connector): a runtime paired through the
 * Connector presents its certificate on the gRPC port (TLS) and attaches without an enrolment
 * secret, serving its tenant's components; a revoked certificate is refused on connect and ends
 * the streams it already held; a certificate of another CA, a self-signed one and an
 * application's certificate are refused.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerRefusedError, type Worker, type WorkerComponent } from '../../src/worker-sdk/index.js';
import { b64, csrPem, EC_P256, generateKeys, keyPem, selfSigned, signedByOtherCa, unb64, type TlsIdentity } from '../helpers/connector.js';
import { ok, registerApp, registerRuntime } from '../helpers/director.js';
import { createAndStart, trigger, waitForExecution } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { runPlexus, type PlexusProcess } from '../helpers/process.js';
import { startSdkWorker, tempDir } from '../helpers/workers.js';

const CONFIGURATION = '{ configuration { token { token } certificateSigningRequestInfo { subject } } }';
const SIGN = 'mutation($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { caCertificate clientCertificate } }';

async function connector(hub: TestHub, token: string, query: string, variables?: Record<string, unknown>): Promise<any> {
  const res = await hub.api('POST', '/connector/graphql', { query, variables }, null, { 'connector-token': token });
  expect(res.body?.errors, JSON.stringify(res.body)).toBeUndefined();
  return res.body.data;
}

/** Pairing through the Connector: one-time token → configuration → CSR signed by the hub's CA. */
async function pair(hub: TestHub, type: 'Application' | 'Runtime', id: string): Promise<TlsIdentity> {
  const { token } = (await ok(hub, `mutation { result: requestOneTimeTokenFor${type}(id: "${id}") { token } }`)).result;
  const cfg = (await connector(hub, token, CONFIGURATION)).configuration;
  const keys = await generateKeys(EC_P256);
  const signed = (await connector(hub, cfg.token.token, SIGN, { csr: b64(await csrPem(cfg.certificateSigningRequestInfo.subject, keys)) })).result;
  return { key: await keyPem(keys), cert: unb64(signed.clientCertificate), ca: unb64(signed.caCertificate) };
}

const upper: WorkerComponent = {
  name: 'upper',
  version: '1.0.0',
  functions: { run: async (input) => ({ emit: [{ body: { text: String((input.message.body as { text?: unknown }).text ?? '').toUpperCase() } }] }) },
};

describe('workers with client certificates', () => {
  const dir = tempDir();
  const serverCert = path.join(dir, 'cert.pem');
  const serverKey = path.join(dir, 'key.pem');
  let hub: TestHub;
  const workers: Worker[] = [];
  const procs: PlexusProcess[] = [];

  beforeAll(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', serverKey, '-out', serverCert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    hub = await createTestHub({ env: { PLEXUS_GRPC_TLS_CERT: serverCert, PLEXUS_GRPC_TLS_KEY: serverKey, PLEXUS_WORKER_LEASE: '2s' } });
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
    for (const w of workers) await w.stop();
    await hub?.close();
  });

  const start = (id: string, client: { cert: string; key: string } | undefined, extra: Parameters<typeof startSdkWorker>[2] | object = {}) =>
    startSdkWorker([`127.0.0.1:${hub.grpcPort()}`], [upper], {
      workerId: id,
      credentialFile: path.join(dir, `${id}.cred`),
      tls: { ca: fs.readFileSync(serverCert), ...(client ? { cert: Buffer.from(client.cert), key: Buffer.from(client.key) } : {}) },
      connectTimeoutMs: 20_000,
      ...extra,
    });

  it("a runtime's certificate attaches a worker without an enrolment secret, and it runs a step of its tenant's flow", async () => {
    const runtime = await registerRuntime(hub, '{ name: "edge-workers" }');
    const id = await pair(hub, 'Runtime', runtime.id);
    const worker = await start('edge-1', id);
    workers.push(worker);
    expect(fs.existsSync(path.join(dir, 'edge-1.cred'))).toBe(false);
    const listed = (await hub.api('GET', '/api/v1/workers')).body.data;
    expect(listed).toEqual([expect.objectContaining({ workerId: 'edge-1', secure: true, components: [expect.objectContaining({ name: 'upper', version: '1.0.0' })] })]);
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
        { id: 'up', componentId: 'upper', function: 'run', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
      ],
      edges: [{ source: 'in', target: 'up' }],
    });
    const x = await waitForExecution(hub, await trigger(hub, flowId, { text: 'hi' }), 30_000);
    expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
    expect(x.steps.find((s) => s.nodeId === 'up')?.status).toBe('succeeded');
  }, 90_000);

  it('a revoked certificate ends the stream it holds and is refused on the next connect', async () => {
    const runtime = await registerRuntime(hub, '{ name: "edge-revoked" }');
    const id = await pair(hub, 'Runtime', runtime.id);
    const refusals: WorkerRefusedError[] = [];
    const worker = await start('edge-revoked', id, { onRefused: (e: WorkerRefusedError) => refusals.push(e) });
    workers.push(worker);
    expect((await ok(hub, `mutation { result: revokeRuntimeCertificates(id: "${runtime.id}") }`)).result).toBe(1);
    await waitFor('the refusal', async () => refusals.length > 0, 15_000);
    expect(refusals[0]).toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('revoked') });
    await waitFor('the worker gone from the list', async () => !(await hub.api('GET', '/api/v1/workers')).body.data.some((w: { workerId: string }) => w.workerId === 'edge-revoked'), 15_000);
    await expect(start('edge-revoked-again', id)).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('revoked') });
  }, 60_000);

  it('a certificate of another CA or a self-signed one attaches nothing', async () => {
    const keys = await generateKeys(EC_P256);
    const self = { cert: await selfSigned('CN=worker', keys), key: await keyPem(keys) };
    const refusal = expect.objectContaining({ code: 'UNAUTHENTICATED', message: expect.stringContaining("no client certificate issued by this hub's CA") });
    await expect(start('self-signed', self)).rejects.toEqual(refusal);
    const caKeys = await generateKeys(EC_P256);
    const otherCa = await selfSigned('CN=other ca', caKeys, true);
    const foreign = { cert: await signedByOtherCa('CN=worker', keys, caKeys, otherCa), key: await keyPem(keys) };
    await expect(start('foreign', foreign)).rejects.toBeInstanceOf(WorkerRefusedError);
    await expect(start('foreign', foreign)).rejects.toEqual(refusal);
  }, 60_000);

  it('plexus worker --cert/--key attaches with a runtime certificate and no secret', async () => {
    const runtime = await registerRuntime(hub, '{ name: "edge-cli" }');
    const id = await pair(hub, 'Runtime', runtime.id);
    fs.writeFileSync(path.join(dir, 'cli.crt'), id.cert);
    fs.writeFileSync(path.join(dir, 'cli.key'), id.key, { mode: 0o600 });
    const args = ['worker', '--router', `127.0.0.1:${hub.grpcPort()}`, '--component', 'builtin:transform', '--id', 'edge-cli', '--credential-file', path.join(dir, 'cli.cred')];
    args.push('--ca', serverCert, '--cert', path.join(dir, 'cli.crt'), '--key', path.join(dir, 'cli.key'));
    const p = runPlexus(args, {});
    procs.push(p);
    await p.waitFor(/Plexus worker attached/, 60_000);
    const listed = (await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string; secure: boolean }>;
    expect(listed).toContainEqual(expect.objectContaining({ workerId: 'edge-cli', secure: true }));
  }, 90_000);

  it("an application's certificate is refused: only runtimes run steps", async () => {
    const app = await registerApp(hub, '{ name: "shop-for-workers" }');
    const id = await pair(hub, 'Application', app.id);
    await expect(start('as-app', id)).rejects.toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('only a runtime') });
  }, 60_000);
});
