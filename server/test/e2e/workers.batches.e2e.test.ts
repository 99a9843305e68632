/**
 * Batches on the router's stream (proto/router.proto `WorkerBatch` / `RouterBatch`): messages that
 * queue while a stream is busy writing travel as one, but only to a peer whose hello or welcome
 * said it reads them. A burst of commands from an SDK worker reaches a batch-reading worker in
 * batches and an older worker one by one, and every one is answered; a worker's own batch of
 * answers is taken apart in order; a batch inside a batch, or of more than 1,024 messages, ends the stream.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRouterProto } from '../../src/modules/router/index.js';
import type { Worker } from '../../src/worker-sdk/index.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { enrol, startSdkWorker, tempDir } from '../helpers/workers.js';
import path from 'node:path';

type Msg = Record<string, unknown> & { body?: string };

interface RawWorker {
  /** Every message as it arrived (batches not taken apart). */
  arrived: Msg[];
  /** Commands received, batches taken apart. */
  commands: Array<{ header: { uuid: string; tenant: string } }>;
  stream: grpc.ClientDuplexStream<unknown, Msg>;
  ended: Promise<{ code: grpc.status; details: string }>;
  close(): void;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/** A hand-written worker serving `raw@1.0.0` with the command `ping`; resolves once welcomed. */
async function rawWorker(address: string, secret: string, id: string, batchMaxBytes: number, onCommand?: (w: RawWorker, c: RawWorker['commands'][number]) => void): Promise<RawWorker> {
  const { client: Client } = loadRouterProto();
  const client = new Client(address, grpc.credentials.createInsecure());
  const stream = (client as unknown as { Attach(): grpc.ClientDuplexStream<unknown, Msg> }).Attach();
  let welcomed!: () => void;
  const welcome = new Promise<void>((resolve) => (welcomed = resolve));
  const w: RawWorker = {
    arrived: [],
    commands: [],
    stream,
    ended: new Promise((resolve) => stream.on('error', (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details }))),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
  const take = (m: Msg) => {
    if (m.body === 'welcome') welcomed();
    if (m.body === 'command') {
      const c = m.command as RawWorker['commands'][number];
      w.commands.push(c);
      onCommand?.(w, c);
    }
  };
  stream.on('data', (m: Msg) => {
    w.arrived.push(m);
    if (m.body === 'batch') for (const inner of (m.batch as { messages: Msg[] }).messages) take(inner);
    else take(m);
  });
  stream.write({
    hello: {
      worker_id: id,
      enrolment_secret: secret,
      components: [{ name: 'raw', version: '1.0.0', functions: [], commands_json: json({ ping: { type: 'object' } }), configuration_keys_json: Buffer.alloc(0) }],
      concurrency: 10,
      batch_max_bytes: batchMaxBytes,
    },
  });
  await welcome;
  return w;
}

/** The receipt and result event a worker owes for a command. */
function answer(c: RawWorker['commands'][number]): Msg[] {
  const header = { uuid: `${c.header.uuid}-r`, tenant: c.header.tenant, timestamp_unix_ms: Date.now(), timeout_ms: 0, major: 1, minor: 0 };
  return [{ receipt: { uuid: c.header.uuid } }, { event: { header, topic: 'command', event: 'SUCCEEDED', reference_uuid: c.header.uuid, payload_json: json({ pong: true }) } }];
}

describe('batches on the router stream', () => {
  let hub: TestHub;
  let router: string;
  let sender: Worker;
  const dir = tempDir();

  beforeAll(async () => {
    hub = await createTestHub({});
    router = `127.0.0.1:${hub.grpcPort()}`;
    sender = await startSdkWorker([router], [{ name: 'sender', version: '1.0.0', functions: {} }], { workerId: 'sender', enrolmentSecret: await enrol(hub, ['sender']), credentialFile: path.join(dir, 'sender.cred') });
  }, 60_000);

  afterAll(async () => {
    await sender?.stop().catch(() => {});
    await hub?.close();
  });

  const detached = (workerId: string) =>
    waitFor(`${workerId} to detach`, async () => ((await hub.api('GET', '/api/v1/workers')).body.data as Array<{ workerId: string }>).every((x) => x.workerId !== workerId));
  const burst = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => sender.sendCommand('raw', 'ping', { i }, { timeoutMs: 20_000 })));

  it('a burst reaches a batch-reading worker in batches and an older worker one by one; every command is answered once', async () => {
    const reply = (w: RawWorker, c: RawWorker['commands'][number]) => {
      for (const m of answer(c)) w.stream.write(m);
    };
    const modern = await rawWorker(router, await enrol(hub, ['raw']), 'raw-modern', 64 * 1024, reply);
    const answers = await burst(300);
    expect(answers.every((a) => a.event === 'SUCCEEDED')).toBe(true);
    expect(new Set(modern.commands.map((c) => c.header.uuid)).size).toBe(300);
    expect(modern.commands).toHaveLength(300);
    expect(modern.arrived.some((m) => m.body === 'batch')).toBe(true);
    modern.close();
    await detached('raw-modern');

    const older = await rawWorker(router, await enrol(hub, ['raw']), 'raw-older', 0, reply);
    const again = await burst(300);
    expect(again.every((a) => a.event === 'SUCCEEDED')).toBe(true);
    expect(older.commands).toHaveLength(300);
    expect(older.arrived.filter((m) => m.body === 'batch')).toEqual([]);
    older.close();
    await detached('raw-older');
  }, 60_000);

  it("a worker's batch of answers is taken apart in order; a batch inside a batch, or of more than 1,024 messages, ends the stream", async () => {
    const held: RawWorker['commands'] = [];
    const w = await rawWorker(router, await enrol(hub, ['raw']), 'raw-batcher', 0, (raw, c) => {
      held.push(c);
      if (held.length === 20) raw.stream.write({ batch: { messages: held.flatMap(answer) } });
    });
    const answers = await burst(20);
    expect(answers.map((a) => a.event)).toEqual(Array(20).fill('SUCCEEDED'));

    w.stream.write({ batch: { messages: [{ batch: { messages: [] } }] } });
    const ended = await w.ended;
    expect(ended.details).toMatch(/a batch cannot hold another batch/);
    w.close();

    const flood = await rawWorker(router, await enrol(hub, ['raw']), 'raw-flood', 0);
    flood.stream.write({ batch: { messages: Array.from({ length: 1_025 }, () => ({ heartbeat: { delivery_ids: [] } })) } });
    expect((await flood.ended).details).toMatch(/batch: 1025 messages, at most 1024 in one batch/);
    flood.close();
  }, 60_000);
});
