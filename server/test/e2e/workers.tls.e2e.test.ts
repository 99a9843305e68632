/**
 * Step credentials reach a worker only over TLS, and only in the delivery of the step that uses
 * them: a hub whose gRPC port serves TLS (a certificate made here with openssl) hands a node's
 * credential to the worker running it; a hub without TLS fails such a step with a user error
 * naming the reason, and the worker never sees the credential.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StepInput, Worker, WorkerComponent } from '../../src/worker-sdk/index.js';
import { createAndStart, trigger, waitForExecution } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { enrol, startSdkWorker, tempDir } from '../helpers/workers.js';

function recorder(seen: StepInput[]): WorkerComponent {
  return { name: 'keyed', version: '1.0.0', functions: { call: async (input) => (seen.push(input), { emit: [{ body: { ok: true } }] }) } };
}

const flow = (credentialsId: string) => ({
  nodes: [
    { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
    { id: 'keyed', componentId: 'keyed', function: 'call', credentialsId, nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
    { id: 'plain', componentId: 'keyed', function: 'call', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
  ],
  edges: [
    { source: 'in', target: 'keyed' },
    { source: 'keyed', target: 'plain' },
  ],
});

describe('credentials and TLS', () => {
  const dir = tempDir();
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  let tlsHub: TestHub;
  let plainHub: TestHub;
  const workers: Worker[] = [];

  beforeAll(async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
    tlsHub = await createTestHub({ env: { PLEXUS_GRPC_TLS_CERT: cert, PLEXUS_GRPC_TLS_KEY: key } });
    plainHub = await createTestHub();
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) await w.stop();
    await tlsHub?.close();
    await plainHub?.close();
  });

  it('over TLS the worker gets the credential of the step it runs, and only for that step', async () => {
    const seen: StepInput[] = [];
    workers.push(await startSdkWorker([`127.0.0.1:${tlsHub.grpcPort()}`], [recorder(seen)], { workerId: 'tls', tls: { ca: fs.readFileSync(cert) }, enrolmentSecret: await enrol(tlsHub, ['keyed']), credentialFile: path.join(dir, 'tls.cred') }));
    const secret = await tlsHub.api('POST', '/api/v1/secrets', { name: 'remote key', type: 'mixed', value: { apiKey: 'k-remote' } });
    expect(secret.status).toBe(201);
    const flowId = await createAndStart(tlsHub, flow(secret.body.data.id));
    const x = await waitForExecution(tlsHub, await trigger(tlsHub, flowId, { n: 1 }), 30_000);
    expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
    const keyed = seen.find((s) => s.nodeId === 'keyed')!;
    const plain = seen.find((s) => s.nodeId === 'plain')!;
    expect(keyed.credentials).toEqual({ apiKey: 'k-remote' });
    expect(plain.credentials).toBeUndefined();
    expect((await tlsHub.api('GET', '/api/v1/workers')).body.data[0]).toMatchObject({ workerId: 'tls', secure: true });
  }, 60_000);

  it('a plain-text worker connection never gets a credential: the step fails, naming why', async () => {
    const seen: StepInput[] = [];
    workers.push(await startSdkWorker([`127.0.0.1:${plainHub.grpcPort()}`], [recorder(seen)], { workerId: 'plain', enrolmentSecret: await enrol(plainHub, ['keyed']), credentialFile: path.join(dir, 'plain.cred') }));
    const secret = await plainHub.api('POST', '/api/v1/secrets', { name: 'remote key', type: 'mixed', value: { apiKey: 'k-remote' } });
    const flowId = await createAndStart(plainHub, flow(secret.body.data.id));
    const x = await waitForExecution(plainHub, await trigger(plainHub, flowId, { n: 1 }), 30_000);
    expect(x.status).toBe('failed');
    expect(x.steps.find((s) => s.nodeId === 'keyed')!.error).toContain('credentials reach workers only over TLS');
    expect(seen).toEqual([]);
  }, 60_000);
});
