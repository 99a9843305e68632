/**
 * Bad input on the router's gRPC port: a malformed protobuf frame, an oversized message, a
 * stream that never sends hello, a hello that is not one, messages before welcome, 1,000 idle
 * connections, and a worker answering garbage. Each ends only its own stream (with a status
 * naming the problem) or fails only its own step; a healthy worker keeps running flow steps
 * throughout.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRouterProto } from '../../src/modules/router/index.js';
import type { Worker, WorkerComponent } from '../../src/worker-sdk/index.js';
import { createAndStart, trigger, waitForExecution } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { enrol, startSdkWorker, tempDir } from '../helpers/workers.js';

const MAX_BYTES = 64 * 1024;

const upper: WorkerComponent = {
  name: 'upper',
  version: '1.0.0',
  functions: { run: async (input) => ({ emit: [{ body: { text: String((input.message.body as { text?: unknown }).text ?? '').toUpperCase() } }] }) },
};

interface Ended {
  code: grpc.status;
  details: string;
  messages: Array<Record<string, unknown>>;
}

/** Opens a raw Attach stream; `send` is called on it, then resolves when the server ends it. */
function rawStream(address: string, send: (s: grpc.ClientDuplexStream<unknown, Record<string, unknown>>) => void, opts: grpc.ChannelOptions = {}): Promise<Ended> {
  const { client: Client } = loadRouterProto();
  const client = new Client(address, grpc.credentials.createInsecure(), opts);
  const stream = (client as unknown as { Attach(): grpc.ClientDuplexStream<unknown, Record<string, unknown>> }).Attach();
  const messages: Array<Record<string, unknown>> = [];
  stream.on('data', (m: Record<string, unknown>) => messages.push(m));
  return new Promise((resolve) => {
    stream.on('error', (err: grpc.ServiceError) => {
      client.close();
      resolve({ code: err.code, details: err.details, messages });
    });
    stream.on('status', (st: grpc.StatusObject) => {
      if (st.code === grpc.status.OK) {
        client.close();
        resolve({ code: st.code, details: st.details, messages });
      }
    });
    send(stream);
  });
}

describe('bad input on the gRPC port', () => {
  let hub: TestHub;
  let router: string;
  let worker: Worker;
  let flowId: string;
  const dir = tempDir();

  /** The healthy worker still runs steps. */
  const stillServes = async (n: number) => {
    const x = await waitForExecution(hub, await trigger(hub, flowId, { text: `still ${n}` }), 30_000);
    expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
  };

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_GRPC_MAX_MESSAGE_BYTES: String(MAX_BYTES), PLEXUS_GRPC_HELLO_TIMEOUT: '1s' } });
    router = `127.0.0.1:${hub.grpcPort()}`;
    worker = await startSdkWorker([router], [upper], { workerId: 'healthy', enrolmentSecret: await enrol(hub, ['upper', 'garbage']), credentialFile: path.join(dir, 'healthy.cred') });
    flowId = await createAndStart(hub, {
      nodes: [
        { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
        { id: 'up', componentId: 'upper', function: 'run', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
      ],
      edges: [{ source: 'in', target: 'up' }],
    });
    await stillServes(0);
  }, 60_000);

  afterAll(async () => {
    await worker?.stop();
    await hub?.close();
  });

  it('a malformed protobuf frame ends that stream only', async () => {
    const { client: Client } = loadRouterProto();
    const client = new Client(router, grpc.credentials.createInsecure());
    const call = client.makeBidiStreamRequest(
      '/plexus.router.v1.Router/Attach',
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const ended = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('error', resolve);
      call.on('data', () => {});
      // Field 1 (hello), length-delimited, claiming 100 bytes it does not have.
      call.write(Buffer.from([0x0a, 0x64, 0x01, 0x02]));
    });
    client.close();
    expect(ended.code).not.toBe(grpc.status.OK);
    await stillServes(1);
  }, 30_000);

  it(`a message over PLEXUS_GRPC_MAX_MESSAGE_BYTES (${MAX_BYTES}) ends that stream with RESOURCE_EXHAUSTED`, async () => {
    const ended = await rawStream(router, (s) =>
      s.write({ hello: { worker_id: 'big', enrolment_secret: 'x'.repeat(MAX_BYTES + 10), credential: '', components: [], concurrency: 1, configuration_json: Buffer.alloc(0), subscriptions: [], sdk: 'test' } }),
    );
    expect(ended.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await stillServes(2);
  }, 30_000);

  it('a stream that never sends hello is refused after PLEXUS_GRPC_HELLO_TIMEOUT', async () => {
    const ended = await rawStream(router, () => {});
    expect(ended.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(ended.messages).toEqual([expect.objectContaining({ refused: { code: 'TIMEOUT', message: 'no hello within 1000 ms' } })]);
  }, 30_000);

  it('a first message that is not hello, and a hello missing its parts, are refused naming the problem', async () => {
    const first = await rawStream(router, (s) => s.write({ heartbeat: { delivery_ids: [] } }));
    expect(first.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(first.details).toBe('the first message must be hello, got heartbeat');
    const hollow = await rawStream(router, (s) => s.write({ hello: { worker_id: 'bad id!', components: [] } }));
    expect(hollow.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(hollow.details).toContain('hello.worker_id: worker_id must be 1-100 characters');
    expect(hollow.details).toContain('hello.components: a worker must offer at least one component');
    const noSecret = await rawStream(router, (s) =>
      s.write({ hello: { worker_id: 'w', enrolment_secret: '', credential: '', components: [{ name: 'upper', version: '1.0.0', functions: ['run'] }], concurrency: 1, subscriptions: [], sdk: 'test' } }),
    );
    expect(noSecret.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(noSecret.details).toBe('hello carries neither an enrolment secret nor a credential');
    await stillServes(3);
  }, 30_000);

  it('a worker answering an invalid result fails only its own step, with a user error naming it', async () => {
    const garbage: WorkerComponent = { name: 'garbage', version: '1.0.0', functions: { run: async () => ({ emit: [{ body: 1, delayMs: -5 }] }) } };
    const w = await startSdkWorker([router], [garbage], { workerId: 'garbage', enrolmentSecret: await enrol(hub, ['garbage']), credentialFile: path.join(dir, 'garbage.cred') });
    try {
      const bad = await createAndStart(hub, {
        nodes: [
          { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'g', componentId: 'garbage', function: 'run', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
        ],
        edges: [{ source: 'in', target: 'g' }],
      });
      const x = await waitForExecution(hub, await trigger(hub, bad, {}), 30_000);
      expect(x.status).toBe('failed');
      expect(x.steps.find((s) => s.nodeId === 'g')!.error).toContain('the worker answered an invalid result: messages.0.delayMs');
      await stillServes(4);
    } finally {
      await w.stop();
    }
  }, 60_000);

  it('1,000 idle connections (no hello yet) do not disturb the attached worker', async () => {
    // A hub of its own that waits long for hellos, so the connections stay open while steps run.
    const patient = await createTestHub({ env: { PLEXUS_GRPC_HELLO_TIMEOUT: '120s' } });
    const address = `127.0.0.1:${patient.grpcPort()}`;
    const w = await startSdkWorker([address], [upper], { workerId: 'patient', enrolmentSecret: await enrol(patient, ['upper']), credentialFile: path.join(dir, 'patient.cred') });
    const { client: Client } = loadRouterProto();
    const clients: grpc.Client[] = [];
    const streams: Array<grpc.ClientDuplexStream<unknown, unknown>> = [];
    try {
      const patientFlow = await createAndStart(patient, {
        nodes: [
          { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'up', componentId: 'upper', function: 'run', nodeSettings: { runtime: 'workers', timeoutMs: 20_000 } },
        ],
        edges: [{ source: 'in', target: 'up' }],
      });
      for (let i = 0; i < 1_000; i++) {
        // Its own subchannel pool: one TCP connection per client.
        const c = new Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
        clients.push(c);
        const s = (c as unknown as { Attach(): grpc.ClientDuplexStream<unknown, unknown> }).Attach();
        s.on('error', () => {});
        s.on('data', () => {});
        streams.push(s);
      }
      const openStreams = async () => Number(/^plexus_router_open_streams (\d+)$/m.exec(String((await patient.api('GET', '/metrics')).body))?.[1] ?? 0);
      await waitFor('1,000 idle streams open', async () => (await openStreams()) >= 1_001, 60_000, 200);
      for (let i = 0; i < 5; i++) {
        const x = await waitForExecution(patient, await trigger(patient, patientFlow, { text: `busy ${i}` }), 30_000);
        expect(x.status).toBe('succeeded');
        expect(x.steps.find((st) => st.nodeId === 'up')!.output).toEqual([{ text: `BUSY ${i}` }]);
      }
      expect(await openStreams()).toBeGreaterThanOrEqual(1_001);
    } finally {
      for (const s of streams) s.cancel();
      for (const c of clients) c.close();
      await w.stop();
      await patient.close();
    }
  }, 180_000);
});
