/**
 * sailor's lifecycle hooks of an OIH component, as the orchestrator drives them: startup(cfg) for
 * every OIH node when a flow starts (its data stored and handed to each process call), shutdown
 * (cfg, startupData) when it stops; a failing startup undoes the others and names the node.
 * The test component is test/fixtures/oih-components/lifecycle.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Flow } from '../../contracts/flows.js';
import { createLogger } from '../../platform/logger.js';
import { openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { OihPool } from './components.oih.js';
import { OihPlatform } from './components.oih-platform.js';
import * as repo from './components.repo.js';
import { ComponentsService } from './components.service.js';
import { bodies, context, message } from './components.testing.js';

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/oih-components/lifecycle');

function flowOf(id: string, nodes: Array<{ id: string; fields: Record<string, unknown> }>): Flow {
  return {
    id,
    tenant: 'default',
    name: id,
    graph: { nodes: nodes.map((n) => ({ id: n.id, componentId: 'lifecycle', function: 'watch', fields: n.fields })), edges: nodes.slice(1).map((n, i) => ({ source: nodes[i]!.id, target: n.id })) },
    status: 'starting',
    owners: [],
    version: 1,
  } as unknown as Flow;
}

describe('OIH startup and shutdown with the flow’s start and stop', () => {
  let testDb: TestDb;
  let root: string;
  let pool: OihPool;
  let service: ComponentsService;
  let lines: Array<{ msg: string; component?: Record<string, unknown> }>;

  beforeAll(async () => {
    testDb = await openTestDb('pglite');
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-lifecycle-'));
    fs.chmodSync(root, 0o755);
    fs.cpSync(FIXTURE, path.join(root, 'lifecycle'), { recursive: true });
    lines = [];
    const logger = createLogger('info', new Writable({ write: (chunk: Buffer, _enc, cb) => (lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]), cb()) }));
    pool = new OihPool({ size: 2, perTenant: 1, readRoots: () => [root], checkAddress: () => undefined, logger });
    const platform = new OihPlatform({ db: testDb.db, logger, secrets: undefined, signingKey: undefined, apiBase: undefined, objectMaxBytes: 1024, tenantQuotaBytes: 4096 });
    service = new ComponentsService(testDb.db, logger, [], {
      allowedRoots: [root],
      oihRuntime: { pool, startupData: (scope, node, run) => platform.startupData(scope, node, run) },
    });
    await service.register('default', { directory: 'lifecycle' }, 'tester');
  }, 120_000);

  afterAll(async () => {
    await pool?.close();
    await testDb?.drop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  // Topics of under four characters: lifecycle calls redact every cfg value from their log lines.
  it('runs startup when the flow starts, hands its data to process, and shutdown with it when the flow stops', async () => {
    await service.startFlow(flowOf('flow-1', [{ id: 'node-1', fields: { topic: 'ord' } }]));
    expect(await repo.findStartupState(testDb.db, 'flow-1', 'node-1')).toEqual({ data: { subscription: 'sub-ord' } });
    expect(lines.filter((l) => l.msg === 'subscribed')).toHaveLength(1);

    const fn = await service.getFunction('default', 'lifecycle', 'watch');
    const step = await fn.prepare({ topic: 'ord' }, { logger: createLogger('silent') });
    const out = await step.run(context(message({ n: 1 })));
    expect(bodies(out)).toEqual([{ got: { n: 1 }, startupData: { subscription: 'sub-ord' } }]);
    // Startup ran once: at the start, not at the message.
    expect(lines.filter((l) => l.msg === 'subscribed')).toHaveLength(1);

    await service.stopFlow('flow-1');
    expect(lines.find((l) => l.msg === 'unsubscribed')?.component).toMatchObject({ topic: 'ord', startupData: { subscription: 'sub-ord' } });
    expect(await repo.findStartupState(testDb.db, 'flow-1', 'node-1')).toBeUndefined();
  });

  it('fails the start naming the node whose startup failed, and shuts down the nodes already started', async () => {
    lines.length = 0;
    const flow = flowOf('flow-2', [
      { id: 'first', fields: { topic: 'inv' } },
      { id: 'second', fields: { topic: 'refunds', failStartup: true } },
    ]);
    await expect(service.startFlow(flow)).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: 'node second (lifecycle/watch): startup failed: the remote refused the subscription to refunds',
    });
    expect(lines.filter((l) => l.msg === 'unsubscribed').map((l) => l.component)).toEqual([expect.objectContaining({ topic: 'inv', startupData: { subscription: 'sub-inv' } })]);
    expect(await repo.findStartupState(testDb.db, 'flow-2', 'first')).toBeUndefined();
  });
});
