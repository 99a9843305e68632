/**
 * The router's protocol end to end, through gRPC and the HTTP API, with TypeScript SDK workers:
 * enrolment (wrong, reused, expired secrets and forbidden components refused before anything is
 * delivered), leases (a worker that stops heartbeating loses its deliveries to another), commands
 * (schema-checked, one worker, failover over three aggregator instances of which two are
 * silent), events, logical configuration, the admin worker, and versions side by side with a
 * drain-based upgrade that neither loses nor repeats a message.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRouterProto } from '../../src/modules/router/index.js';
import { WorkerRefusedError, type Worker, type WorkerComponent } from '../../src/worker-sdk/index.js';
import { createAndStart, getExecution, trigger, waitForExecution } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { enrol, startSdkWorker, tempDir } from '../helpers/workers.js';

/** A step that records every run (by idempotency key) and answers with its version. */
function echo(version: string, runs: Map<string, string[]>, delayMs = 0): WorkerComponent {
  return {
    name: 'echo',
    version,
    functions: {
      async reply(input) {
        runs.set(input.idempotencyKey, [...(runs.get(input.idempotencyKey) ?? []), version]);
        if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        return { emit: [{ body: { ...(input.message.body as object), version } }] };
      },
    },
  };
}

const inventory: WorkerComponent = {
  name: 'inventory',
  version: '1.0.0',
  functions: {},
  commands: {
    reserve: {
      schema: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' }, qty: { type: 'integer', minimum: 1 } } },
      handle: async (payload) => ({ reserved: (payload as { sku: string }).sku }),
    },
  },
};

/** An aggregator instance that welcomes workers and then never answers anything. */
async function startSilentRouter(): Promise<{ address: string; stop(): void }> {
  const server = new grpc.Server();
  server.addService(loadRouterProto().service, {
    Attach: (call: grpc.ServerDuplexStream<Record<string, unknown>, unknown>) => {
      call.on('data', (msg: Record<string, unknown>) => {
        if (msg.body === 'hello')
          call.write({ welcome: { worker_id: 'x', tenant: 'default', credential: '', lease_ms: 10_000, heartbeat_ms: 2_500, configuration_json: Buffer.alloc(0), configuration_version: 0, aggregator: 'plexus', instance_id: 'silent' } });
      });
      call.on('error', () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
}

describe('router protocol with SDK workers', () => {
  let hub: TestHub;
  let router: string;
  const dir = tempDir();
  const workers: Worker[] = [];
  const start = async (components: WorkerComponent[], opts: Parameters<typeof startSdkWorker>[2], routers = [router]) => {
    const w = await startSdkWorker(routers, components, opts);
    workers.push(w);
    return w;
  };

  beforeAll(async () => {
    hub = await createTestHub({ env: { PLEXUS_WORKER_LEASE: '1s' } });
    router = `127.0.0.1:${hub.grpcPort()}`;
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => {});
    await hub?.close();
  });

  describe('enrolment', () => {
    it('a wrong secret, a reused one and an expired one are refused before anything is delivered', async () => {
      const secret = await enrol(hub, ['echo']);
      const wrong = `${secret.slice(0, -4)}AAAA`;
      await expect(start([echo('1.0.0', new Map())], { workerId: 'bad', enrolmentSecret: wrong, credentialFile: path.join(dir, 'bad.cred') })).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: 'unknown enrolment secret' });
      await expect(start([echo('1.0.0', new Map())], { workerId: 'bad', enrolmentSecret: 'hello', credentialFile: path.join(dir, 'bad.cred') })).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('malformed') });

      const first = await start([echo('1.0.0', new Map())], { workerId: 'once', enrolmentSecret: secret, credentialFile: path.join(dir, 'once.cred') });
      await first.stop();
      const reused = start([echo('1.0.0', new Map())], { workerId: 'twice', enrolmentSecret: secret, credentialFile: path.join(dir, 'twice.cred') });
      await expect(reused).rejects.toBeInstanceOf(WorkerRefusedError);
      await expect(reused).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('used already') });

      const old = await enrol(hub, ['echo']);
      await hub.db.query("UPDATE router_enrolments SET expires_at = now() - interval '1 second' WHERE id = $1", [old.slice(4).split('.')[0]]);
      await expect(start([echo('1.0.0', new Map())], { workerId: 'late', enrolmentSecret: old, credentialFile: path.join(dir, 'late.cred') })).rejects.toMatchObject({ code: 'UNAUTHENTICATED', message: expect.stringContaining('expired') });
      // None of them ever showed up as attached.
      const listed = (await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>;
      expect(listed.map((w) => w.workerId)).not.toContain('twice');
      expect(listed.map((w) => w.workerId)).not.toContain('late');
    }, 60_000);

    it('a worker announcing a component its enrolment does not cover is refused, naming it', async () => {
      const secret = await enrol(hub, ['echo@1']);
      const refused = start([echo('2.0.0', new Map())], { workerId: 'v2-not-allowed', enrolmentSecret: secret, credentialFile: path.join(dir, 'v2.cred') });
      await expect(refused).rejects.toMatchObject({ code: 'FORBIDDEN', message: 'worker v2-not-allowed may not serve echo@2.0.0 (its enrolment allows echo@1)' });
    }, 90_000);

    it('an enrolment names what it allows; bad requests get 400 naming the field, and it needs workers.write', async () => {
      const bad = await hub.api('POST', '/api/v1/workers/enrolments', { components: ['Not A Name'] });
      expect(bad.status).toBe(400);
      expect(JSON.stringify(bad.body)).toContain('components');
      expect((await hub.api('POST', '/api/v1/workers/enrolments', { components: [] })).status).toBe(400);
      expect((await hub.api('POST', '/api/v1/workers/enrolments', { components: ['echo'], expiresInSeconds: 5 })).status).toBe(400);
      expect((await hub.api('POST', '/api/v1/workers/enrolments', { components: ['echo'] }, null)).status).toBe(401);
      const list = await hub.api('GET', '/api/v1/workers/enrolments');
      expect(list.status).toBe(200);
      expect(JSON.stringify(list.body)).not.toContain('secret');
    });
  });

  it('the logical configuration is validated against the declared keys, stored and versioned', async () => {
    const component: WorkerComponent = { ...echo('1.0.0', new Map()), name: 'configured', configurationKeys: { region: { mandatory: true }, colour: {} } };
    const secret = await enrol(hub, ['configured']);
    await expect(start([component], { workerId: 'cfg', enrolmentSecret: secret, credentialFile: path.join(dir, 'cfg.cred'), configuration: { colour: 'red' } })).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: 'configuration: region: mandatory',
    });
    const again = await enrol(hub, ['configured']);
    const w = await start([component], { workerId: 'cfg', enrolmentSecret: again, credentialFile: path.join(dir, 'cfg.cred'), configuration: { region: 'eu' } });
    try {
      const updated = await hub.api('POST', '/api/v1/workers/cfg/admin', { command: 'admin.update', payload: { configuration: { region: 'us', colour: 'blue' } }, timeoutMs: 30_000 });
      expect(updated.status, JSON.stringify(updated.body)).toBe(200);
      expect(updated.body.data).toEqual({ event: 'SUCCEEDED', payload: { version: 2, configuration: { region: 'us', colour: 'blue' } } });
      const refused = await hub.api('POST', '/api/v1/workers/cfg/admin', { command: 'admin.update', payload: { configuration: { shape: 'round' } }, timeoutMs: 30_000 });
      expect(refused.body.data).toMatchObject({ event: 'FAILED', payload: { error: expect.stringContaining('shape: not a configuration key') } });
    } finally {
      await w.stop();
    }
  }, 90_000);

  it('a worker that stops heartbeating loses its deliveries after its lease; another worker completes them once', async () => {
    const runs = new Map<string, string[]>();
    // A worker that heartbeats until it holds deliveries, then goes silent: no outcome, no heartbeat.
    const { client: Client } = loadRouterProto();
    const client = new Client(router, grpc.credentials.createInsecure());
    const stream = (client as unknown as { Attach(): grpc.ClientDuplexStream<unknown, Record<string, unknown>> }).Attach();
    stream.on('error', () => {});
    const taken: string[] = [];
    stream.on('data', (m: Record<string, unknown>) => {
      if (m.body === 'delivery') taken.push((m.delivery as { delivery_id: string }).delivery_id);
    });
    stream.write({
      hello: { worker_id: 'silent', enrolment_secret: await enrol(hub, ['echo']), credential: '', components: [{ name: 'echo', version: '1.0.0', functions: ['reply'], commands_json: Buffer.alloc(0), configuration_keys_json: Buffer.alloc(0) }], concurrency: 100, configuration_json: Buffer.alloc(0), subscriptions: [], sdk: 'test' },
    });
    const beat = setInterval(() => {
      if (taken.length === 0) stream.write({ heartbeat: { delivery_ids: [] } });
    }, 100);
    let healthy: Worker | undefined;
    try {
      await waitFor('the silent worker attached', async () => ((await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>).some((w) => w.workerId === 'silent'), 20_000);
      const flowId = await createAndStart(hub, {
        nodes: [
          { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
          { id: 'echo', componentId: 'echo', function: 'reply', nodeSettings: { runtime: 'workers', timeoutMs: 60_000 } },
        ],
        edges: [{ source: 'in', target: 'echo' }],
      });
      const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => trigger(hub, flowId, { n: i })));
      await waitFor('the silent worker to take deliveries', async () => taken.length > 0, 30_000);
      healthy = await start([echo('1.0.0', runs)], { workerId: 'healthy', enrolmentSecret: await enrol(hub, ['echo']), credentialFile: path.join(dir, 'healthy.cred'), concurrency: 1 });
      for (const id of ids) expect((await waitForExecution(hub, id, 60_000)).status).toBe('succeeded');
      // Each step ran once, on the healthy worker, though the silent one had taken some first.
      expect([...runs.values()].every((v) => v.length === 1)).toBe(true);
      expect(runs.size).toBe(6);
      expect(((await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>).map((w) => w.workerId)).not.toContain('silent');
    } finally {
      clearInterval(beat);
      client.close();
      await healthy?.stop();
    }
  }, 120_000);

  describe('commands and events', () => {
    let sender: Worker;
    const silent: Array<{ address: string; stop(): void }> = [];
    const heard: Array<{ topic: string; event: string; payload: unknown }> = [];

    beforeAll(async () => {
      await start([inventory], { workerId: 'inventory', enrolmentSecret: await enrol(hub, ['inventory']), credentialFile: path.join(dir, 'inv.cred'), subscriptions: ['orders'], onEvent: (e) => heard.push(e) });
      silent.push(await startSilentRouter(), await startSilentRouter());
      // The real instance first (it enrols); the command tries all three in random order.
      sender = await start([{ name: 'shop', version: '1.0.0', functions: {} }], { workerId: 'sender', enrolmentSecret: await enrol(hub, ['shop']), credentialFile: path.join(dir, 'sender.cred') }, [router, ...silent.map((s) => s.address)]);
      expect(sender.attachedTo()).toHaveLength(3);
    }, 90_000);

    afterAll(() => {
      for (const s of silent) s.stop();
    });

    it('a command to three aggregator instances, two of them silent, is answered within its timeout (timeoutMs / n per instance)', async () => {
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const answer = await sender.sendCommand('inventory', 'reserve', { sku: `A-${i}`, qty: 1 }, { timeoutMs: 4_500 });
        expect(answer).toEqual({ event: 'SUCCEEDED', payload: { reserved: `A-${i}` }, router });
        // At most the two silent instances' shares (1.5 s each) were spent before the real one.
        expect(Date.now() - started).toBeLessThan(4_500);
      }
    }, 60_000);

    it('an invalid command payload is refused to the sender (schema), never delivered', async () => {
      const answer = await sender.sendCommand('inventory', 'reserve', { qty: 0 }, { timeoutMs: 6_000 });
      expect(answer.event).toBe('FAILED');
      expect(JSON.stringify(answer.payload)).toContain("must have required property 'sku'");
      expect(JSON.stringify(answer.payload)).toContain('/qty must be >= 1');
    }, 90_000);

    it('events reach subscribed workers and the hub bus (worker.event.<topic>)', async () => {
      const onBus: unknown[] = [];
      const consumer = await hub.bus.subscribe('worker.event.orders', 'test-listener', async (e) => void onBus.push(e.payload));
      try {
        sender.publishEvent('orders', 'CREATED', { id: 'O-1' });
        await waitFor('the event at the subscriber', async () => heard.find((e) => e.topic === 'orders'), 10_000);
        await waitFor('the event on the bus', async () => onBus.length > 0, 10_000);
        expect(onBus[0]).toMatchObject({ tenant: 'default', workerId: 'sender', topic: 'orders', event: 'CREATED', payload: { id: 'O-1' } });
      } finally {
        await consumer.stop();
      }
    }, 90_000);

    it('the admin worker answers admin.list, admin.stop / start and admin.drain', async () => {
      const list = await hub.api('POST', '/api/v1/workers/inventory/admin', { command: 'admin.list', timeoutMs: 30_000 });
      expect(list.status, JSON.stringify(list.body)).toBe(200);
      expect(list.body.data).toEqual({ event: 'SUCCEEDED', payload: { workerId: 'inventory', draining: false, inFlight: 0, components: [{ name: 'inventory', version: '1.0.0', functions: [], state: 'running' }] } });
      const stopped = await hub.api('POST', '/api/v1/workers/inventory/admin', { command: 'admin.stop', payload: { component: 'inventory', version: '1.0.0' }, timeoutMs: 30_000 });
      expect(stopped.body.data).toEqual({ event: 'SUCCEEDED', payload: { stopped: ['inventory@1.0.0'] } });
      expect((await hub.api('POST', '/api/v1/workers/inventory/admin', { command: 'admin.start', payload: { component: 'inventory' }, timeoutMs: 30_000 })).body.data.event).toBe('SUCCEEDED');
      expect((await hub.api('POST', '/api/v1/workers/nobody/admin', { command: 'admin.list' })).status).toBe(404);
      expect((await hub.api('POST', '/api/v1/workers/inventory/admin', { command: 'admin.explode' })).status).toBe(400);
      const drained = await hub.api('POST', '/api/v1/workers/inventory/admin', { command: 'admin.drain', timeoutMs: 30_000 });
      expect(drained.body.data).toEqual({ event: 'SUCCEEDED', payload: { drained: true, workerId: 'inventory' } });
      const listed = (await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string; draining: boolean }>;
      expect(listed.find((w) => w.workerId === 'inventory')?.draining).toBe(true);
    }, 90_000);
  });

  it('versions side by side: a node pinned to major 1 runs only on 1.x; upgrading 1.0 → 1.1 by drain loses and repeats nothing', async () => {
    const runs = new Map<string, string[]>();
    const secret = await enrol(hub, ['echo']);
    const v1 = await start([echo('1.0.0', runs, 30)], { workerId: 'echo-v1', enrolmentSecret: secret, credentialFile: path.join(dir, 'v1.cred'), concurrency: 4 });
    const v2 = await start([echo('2.0.0', runs)], { workerId: 'echo-v2', enrolmentSecret: await enrol(hub, ['echo']), credentialFile: path.join(dir, 'v2.cred'), concurrency: 4 });
    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
        { id: 'echo', componentId: 'echo', function: 'reply', nodeSettings: { runtime: 'workers', version: '1', timeoutMs: 30_000 } },
      ],
      edges: [{ source: 'in', target: 'echo' }],
    });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await trigger(hub, flowId, { n: i }));
    // Attach 1.1.0, wait until it registers, drain 1.0.0 while messages keep coming.
    const v11 = await start([echo('1.1.0', runs, 5)], { workerId: 'echo-v11', enrolmentSecret: await enrol(hub, ['echo']), credentialFile: path.join(dir, 'v11.cred'), concurrency: 4 });
    await waitFor('1.1.0 registered', async () => ((await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>).some((w) => w.workerId === 'echo-v11'), 10_000);
    const sending = (async () => {
      for (let i = 10; i < 30; i++) ids.push(await trigger(hub, flowId, { n: i }));
    })();
    const drained = await hub.api('POST', '/api/v1/workers/echo-v1/admin', { command: 'admin.drain', timeoutMs: 60_000 });
    expect(drained.body.data.event).toBe('SUCCEEDED');
    await v1.stop();
    await sending;
    // Sent after 1.0.0 was drained and detached.
    for (let i = 30; i < 35; i++) ids.push(await trigger(hub, flowId, { n: i }));
    const versions: string[] = [];
    for (const id of ids) {
      const x = await waitForExecution(hub, id, 30_000);
      expect(x.status, JSON.stringify(x.steps)).toBe('succeeded');
      versions.push(((await getExecution(hub, id))!.steps.find((s) => s.nodeId === 'echo')!.output as Array<{ version: string }>)[0]!.version);
    }
    expect(versions.filter((v) => v === '2.0.0')).toEqual([]);
    expect(versions.slice(-5)).toEqual(['1.1.0', '1.1.0', '1.1.0', '1.1.0', '1.1.0']);
    // Every message ran exactly once.
    expect(runs.size).toBe(35);
    expect([...runs.values()].filter((v) => v.length !== 1)).toEqual([]);
    await v11.stop();
    await v2.stop();
  }, 180_000);
});
