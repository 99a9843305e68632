/**
 * Components in the OIH / elastic.io format, registered from a directory and run unmodified:
 * the test component under test/fixtures/oih-orders, copied to a fresh folder per run.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { StepError, type Component } from './components.descriptor.js';
import { OihPool, oihComponent, readOihComponent } from './components.oih.js';
import { ComponentsService } from './components.service.js';
import { bodies, context, message } from './components.testing.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/oih-orders');
const logger = createLogger('silent');

function copyFixture(root: string, name = 'oih-orders'): string {
  const dir = path.join(root, name);
  fs.cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

describe('reading an OIH component', () => {
  it('turns component.json into a descriptor with JSON schemas', () => {
    const { descriptor, mains } = readOihComponent(FIXTURE);
    expect(descriptor).toMatchObject({ name: 'oih-orders', version: '1.2.3', title: 'Orders (test component)' });
    expect(Object.keys(descriptor.triggers)).toEqual(['getOrders']);
    expect(Object.keys(descriptor.actions).sort()).toEqual(['unreliable', 'upsertOrder']);
    expect(descriptor.actions.upsertOrder!.fields).toEqual({
      type: 'object',
      properties: {
        prefix: { type: 'string', title: 'Order prefix', 'x-viewClass': 'TextFieldView' },
        dryRun: { type: 'boolean', title: 'Dry run', 'x-viewClass': 'CheckBox' },
        region: { type: 'string', title: 'Region', enum: ['eu', 'us'], 'x-viewClass': 'SelectView' },
      },
      required: ['prefix'],
    });
    expect(descriptor.actions.upsertOrder!.inputSchema).toMatchObject({ required: ['id'] });
    expect(descriptor.credentials).toMatchObject({ required: ['apiKey'] });
    expect(mains.getOrders).toEqual({ kind: 'trigger', file: path.join(FIXTURE, 'lib/triggers/getOrders.js') });
  });

  it('refuses a directory without component.json, or whose main escapes the directory', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-bad-'));
    try {
      expect(() => readOihComponent(dir)).toThrow(/component.json not found/);
      fs.writeFileSync(path.join(dir, 'component.json'), JSON.stringify({ actions: { a: { main: '../../etc/passwd' } } }));
      expect(() => readOihComponent(dir)).toThrow(/points outside the component directory/);
      fs.writeFileSync(path.join(dir, 'component.json'), '{ nope');
      expect(() => readOihComponent(dir)).toThrow(/not valid JSON/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(dbTargets)('registering and running an OIH component on %s', (target) => {
  let testDb: TestDb;
  let root: string;
  let service: ComponentsService;
  let component: Component;

  beforeAll(async () => {
    testDb = await openTestDb(target);
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-components-'));
    // Readable by others, as an operator's component folder is: runners then run as nobody.
    fs.chmodSync(root, 0o755);
    service = new ComponentsService(testDb.db, logger, [], { allowedRoots: [root] });
    copyFixture(root);
    await service.register('default', { directory: 'oih-orders' }, 'tester');
    component = (await service.findComponent('default', 'oih-orders'))!;
  }, 120_000);

  afterAll(async () => {
    await testDb?.drop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('installs the component’s own dependencies from its package.json', () => {
    expect(fs.existsSync(path.join(root, 'oih-orders', 'node_modules', 'order-format', 'index.js'))).toBe(true);
  });

  it('lists it for its tenant only, with its schemas; the catalog knows its functions', async () => {
    const own = (await service.list('default')).find((c) => c.id === 'oih-orders');
    expect(own).toMatchObject({ builtin: false, version: '1.2.3', source: { kind: 'directory', path: path.join(fs.realpathSync(root), 'oih-orders') } });
    expect((await service.list('other')).find((c) => c.id === 'oih-orders')).toBeUndefined();
    expect(await service.checkFunction('default', 'oih-orders', 'upsertOrder')).toBeUndefined();
    expect(await service.checkFunction('default', 'oih-orders', 'nope')).toBe('component oih-orders has no function nope');
    expect(await service.checkFunction('other', 'oih-orders', 'upsertOrder')).toBe('unknown component oih-orders');
  });

  it('runs an old-style action: msg.data in, data/updateSnapshot/end out, cfg = fields + credentials', async () => {
    const step = await component.fn('upsertOrder')!.prepare({ prefix: 'ORD', region: 'eu' }, { logger });
    expect(step.usesSnapshot).toBe(true);
    const input = message({ id: 42 }, { metadata: { source: 'shop' } });
    const out = await step.run(context(input, { credentials: { apiKey: 'k' }, snapshot: { seen: 4 } }));
    expect(bodies(out)).toEqual([{ number: 'ORD-000042', region: 'eu', authorised: true, sameAsBody: true }]);
    expect(out.messages[0]!.message.metadata).toEqual({ source: 'shop', upserted: true });
    expect(out.snapshot).toEqual({ value: { seen: 5 } });
  });

  it('runs an async trigger: the resolved value is emitted, snapshot keeps the cursor', async () => {
    const step = await component.fn('getOrders')!.prepare({ pageSize: '3' }, { logger });
    const first = await step.run(context(message({}), { credentials: { apiKey: 'k' } }));
    expect(bodies(first)).toEqual([{ orders: [{ id: '1' }, { id: '2' }, { id: '3' }] }]);
    expect(first.snapshot).toEqual({ value: { next: 4 } });
    const second = await step.run(context(message({}), { snapshot: first.snapshot!.value, credentials: { apiKey: 'k' } }));
    expect(bodies(second)).toEqual([{ orders: [{ id: '4' }, { id: '5' }, { id: '6' }] }]);
  });

  it('maps rebound, errors and httpReply, and cannot change the message it was given', async () => {
    const step = await component.fn('unreliable')!.prepare({}, { logger });
    const credentials = { apiKey: 'k' };
    expect((await step.run(context(message({ mode: 'rebound' }), { credentials }))).rebound).toEqual({ reason: 'the remote is not ready yet' });
    const user = (await step.run(context(message({ mode: 'user-error' }), { credentials })).catch((e: unknown) => e)) as StepError;
    expect([user instanceof StepError, user.kind, user.message]).toEqual([true, 'user', 'order rejected by the remote (HTTP 422)']);
    // As under sailor: an emitted error fails the message, whatever its network code; only an HTTP 408/429/5xx is transient.
    const emitted = (await step.run(context(message({ mode: 'transient' }), { credentials })).catch((e: unknown) => e)) as StepError;
    expect([emitted.kind, emitted.message]).toEqual(['user', 'remote unavailable']);
    const replied = await step.run(context(message({ mode: 'reply', id: 'o-1' }), { credentials }));
    expect(replied.reply).toEqual({ status: 201, headers: { 'x-from': 'oih' }, body: { accepted: 'o-1' } });
    expect(bodies(replied)).toEqual([{ ok: true, mode: 'reply' }]);
    const shared = message({ mode: 'mutate' });
    await step.run(context(shared, { credentials }));
    expect(shared.body).toEqual({ mode: 'mutate' });
  });

  it('fails a step whose node lacks the credential the component declares, naming the field', async () => {
    const step = await component.fn('unreliable')!.prepare({}, { logger });
    const err = (await step.run(context(message({}))).catch((e: unknown) => e)) as StepError;
    expect([err.kind, err.message]).toEqual(['user', 'the component needs the credential field apiKey: give the node a credential (credentialsId)']);
  });

  it('refuses folders outside the allowed roots, unknown packages, name clashes and duplicates', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-outside-'));
    try {
      copyFixture(outside);
      await expect(service.register('default', { directory: path.join(outside, 'oih-orders') }, 'tester')).rejects.toThrow(/not under an allowed component folder/);
      await expect(service.register('default', { directory: path.join(root, 'oih-orders', '..', '..', path.basename(outside), 'oih-orders') }, 'tester')).rejects.toThrow(/not under an allowed/);
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
    await expect(service.register('default', { directory: 'missing' }, 'tester')).rejects.toThrow(/does not exist/);
    await expect(service.register('default', { package: 'no-such-plexus-component' }, 'tester')).rejects.toThrow(/not installed on the hub/);
    await expect(service.register('default', { package: '../etc' }, 'tester')).rejects.toThrow(/not an npm package name/);
    await expect(service.register('default', { directory: 'oih-orders' }, 'tester')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    // Another tenant may register the same code under the same name.
    await expect(service.register('other', { directory: 'oih-orders' }, 'tester')).resolves.toMatchObject({ id: 'oih-orders' });
  });

  it('refuses a component whose code does not load', async () => {
    const dir = path.join(root, 'broken');
    fs.mkdirSync(path.join(dir, 'lib'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'component.json'), JSON.stringify({ title: 'broken', actions: { go: { main: './lib/go.js' } } }));
    fs.writeFileSync(path.join(dir, 'lib', 'go.js'), 'module.exports = { notProcess: 1 };');
    await expect(service.register('default', { directory: 'broken' }, 'tester')).rejects.toThrow(/go: cannot be loaded: go.js exports no process/);
    expect(await service.findComponent('default', 'broken')).toBeUndefined();
  });
});

describe('the runner contract, in a process of the tenant', () => {
  const CONTRACT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/oih-components/contract');
  let dir: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-contract-'));
    fs.chmodSync(dir, 0o755);
    fs.cpSync(CONTRACT, path.join(dir, 'contract'), { recursive: true });
    fs.cpSync(path.join(CONTRACT, '..', 'late-emits'), path.join(dir, 'late-emits'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'hang', 'lib'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'hang', 'component.json'), JSON.stringify({ actions: { hang: { main: './lib/hang.js' } } }));
    fs.writeFileSync(path.join(dir, 'hang', 'lib', 'hang.js'), "exports.process = function () { this.emit('data', { data: { started: true } }); };");
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives components a bunyan-style logger whose lines keep their objects, with the credential redacted', async () => {
    const lines: string[] = [];
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const def = readOihComponent(path.join(dir, 'contract'));
    const step = await oihComponent(def, { kind: 'directory', path: dir }).fn('observe')!.prepare({}, { logger });
    const out = await step.run(context(message({}), { credentials: { username: 'ann', password: 'pw-very-secret' }, credentialsType: 'basic', logger: createLogger('info', capture) }));
    expect((bodies(out)[0] as { user: string }).user).toBe('ann');
    const line = lines.map((l) => JSON.parse(l) as { msg: string; component: Record<string, unknown> }).find((l) => l.msg.startsWith('observing'));
    expect(line).toMatchObject({ msg: 'observing with passphrase [REDACTED]', component: { user: 'ann', passphrase: '[REDACTED]', step: 'node-1' } });
    expect(lines.join('\n')).not.toContain('pw-very-secret');
  });

  it('kills the process of a call past its time limit and fails the step with a user error', async () => {
    const def = readOihComponent(path.join(dir, 'hang'));
    const step = await oihComponent(def, { kind: 'directory', path: dir }).fn('hang')!.prepare({}, { logger, timeoutMs: 500 });
    const err = (await step.run(context(message({}))).catch((e: unknown) => e)) as StepError;
    expect([err instanceof StepError, err.kind, err.message]).toEqual([true, 'user', 'component: time limit exceeded (500 ms)']);
  });

  describe('emits after the run is over', () => {
    // A pool that may reach this process's loopback server (the default one refuses non-public addresses).
    let pool: OihPool;
    let server: http.Server;
    let url: string;
    beforeAll(async () => {
      pool = new OihPool({ size: 2, perTenant: 1, readRoots: () => [dir], checkAddress: () => undefined, logger });
      // Answers after 300 ms: later than the run's end.
      server = http.createServer((_req, res) => void setTimeout(() => res.end('late'), 300));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    });
    afterAll(async () => {
      await pool.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    const run = async (mode: string, fields: Record<string, unknown>, timeoutMs?: number): Promise<unknown[]> => {
      const def = readOihComponent(path.join(dir, 'late-emits'));
      const step = await oihComponent(def, { kind: 'directory', path: dir }, { pool }).fn('late')!.prepare(fields, { logger, ...(timeoutMs ? { timeoutMs } : {}) });
      return bodies(await step.run(context(message({ mode, url }))));
    };

    it('delivers the answer of an HTTP call made after end (Node’s http client and fetch)', async () => {
      expect(await run('response-after-end', {}, 60_000)).toEqual([{ lateStatus: 200 }]);
      expect(await run('fetch-after-end', {}, 60_000)).toEqual([{ lateStatus: 200 }]);
    });

    it('does not wait for a connection left open and idle (a database pool’s), only for work under way', async () => {
      // Held to its 60 s limit, the run would also hold the timer's emit (after 3 × 500 ms).
      expect(await run('keeps-connection', { delayMs: 500 }, 60_000)).toEqual([{ connected: true }]);
    });

    it('delivers what a callback-style run emits after end while its timers are pending', async () => {
      expect(await run('after-end', { delayMs: 300 })).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
    });

    it('delivers what a promise-style run emits after its promise settled', async () => {
      expect(await run('async-then-late', { delayMs: 200 })).toEqual([{ n: 0 }, { n: 1 }]);
    });

    it('ends the step at once when nothing is pending (an unref’d timer is not work it waits for)', async () => {
      // Held to its 60 s limit, the run would also hold the timer's emit (after 3 × 500 ms).
      expect(await run('ends-quietly', { delayMs: 500 }, 60_000)).toEqual([{ n: 0 }]);
    });

    it('holds a run whose work never ends to its time limit, then ends it with what it emitted', async () => {
      expect(await run('leaks', { delayMs: 100 }, 5_000)).toEqual([{ n: 0 }, { n: 1 }]);
    });
  });
});
