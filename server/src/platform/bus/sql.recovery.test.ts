/**
 * A restart on the embedded database: the data-directory lock proves the process that held
 * leases in it is gone, so the SQL bus makes its jobs claimable at once — claimed deliveries and
 * in-process hand-offs (`held`) alike — instead of after their leases.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb, type Db } from '../db/index.js';
import { createLogger } from '../logger.js';
import { createBus } from './index.js';

const logger = createLogger('silent');
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function open(dir: string): Promise<{ db: Db; bus: Awaited<ReturnType<typeof createBus>> }> {
  const db = await openDb({ dataDir: dir });
  const bus = await createBus({ db, serviceName: 'test', logger, maxAttempts: 5, leaseMs: 60_000 });
  return { db, bus };
}

describe('SQL bus on a restarted embedded database', () => {
  it('makes held hand-offs and claimed jobs claimable at once, keeping delayed jobs delayed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-bus-restart-'));
    dirs.push(dir);
    let { db, bus } = await open(dir);
    await bus.enqueue('work', { n: 'handed-off' }, { delayMs: 60_000, held: true });
    await bus.enqueue('work', { n: 'claimed' });
    await bus.enqueue('work', { n: 'delayed' }, { delayMs: 60_000 });
    const [claimed] = await bus.claim<{ n: string }>('work', { leaseMs: 60_000 });
    expect(claimed?.payload.n).toBe('claimed');
    expect(await bus.claim('work')).toEqual([]);
    // What a kill -9 leaves: rows as they are (close does not touch bus_jobs).
    await bus.close();
    await db.close();

    ({ db, bus } = await open(dir));
    try {
      const jobs = await bus.claim<{ n: string }>('work', { max: 10 });
      expect(jobs.map((j) => j.payload.n).sort()).toEqual(['claimed', 'handed-off']);
      // The crashed delivery counts; the hand-off was never a delivery.
      expect(jobs.find((j) => j.payload.n === 'claimed')!.attempt).toBe(2);
      expect(jobs.find((j) => j.payload.n === 'handed-off')!.attempt).toBe(1);
      expect((await bus.stats('work')).delayed).toBe(1);
    } finally {
      await bus.close();
      await db.close();
    }
  });

  it('counts a held hand-off as in flight, and settles it like a claimed job', async () => {
    const db = await openDb({});
    const bus = await createBus({ db, serviceName: 'test', logger, maxAttempts: 5, leaseMs: 60_000 });
    try {
      const id = await bus.enqueue('held', { n: 1 }, { delayMs: 60_000, held: true });
      expect(await bus.stats('held')).toMatchObject({ inFlight: 1, delayed: 0, ready: 0 });
      await bus.ack({ id, queue: 'held', payload: { n: 1 }, attempt: 0, enqueuedAt: new Date() });
      expect((await bus.stats('held')).depth).toBe(0);
    } finally {
      await bus.close();
      await db.close();
    }
  });
});
