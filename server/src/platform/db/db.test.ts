import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { openDb, openPostgres } from './index.js';
import { migrate, type Migration } from './migrate.js';

describe.each(dbTargets)('Db on %s', (target) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await openTestDb(target);
  });
  afterAll(async () => t.drop());

  it('returns int8 as numbers, jsonb parsed, timestamptz as Date', async () => {
    const res = await t.db.query<{ n: number; j: { a: number[] }; d: Date }>(
      `SELECT 42::int8 AS n, $1::jsonb AS j, now() AS d`,
      [JSON.stringify({ a: [1, 2] })],
    );
    expect(res.rows[0]).toMatchObject({ n: 42, j: { a: [1, 2] } });
    expect(res.rows[0]!.d).toBeInstanceOf(Date);
  });

  it('rolls a transaction back when it throws', async () => {
    await t.db.exec('CREATE TABLE tx_probe (v int)');
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query('INSERT INTO tx_probe VALUES (1)');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const res = await t.db.query('SELECT * FROM tx_probe');
    expect(res.rows).toHaveLength(0);
  });

  it('applies each migration once, even when several runners race', async () => {
    const migrations: Migration[] = [
      { id: 9001, name: 'probe_a', sql: 'CREATE TABLE probe_a (id int); INSERT INTO probe_a VALUES (1);' },
      { id: 9002, name: 'probe_b', sql: 'INSERT INTO probe_a VALUES (2);' },
    ];
    // PostgreSQL: three pools on one schema, as three processes booting together would.
    const dbs = target === 'postgres' ? await Promise.all([0, 1, 2].map(() => openPostgres({ url: t.url!, poolSize: 2, schema: t.schema }))) : [t.db, t.db, t.db];
    const applied = await Promise.all(dbs.map((db) => migrate(db, migrations)));
    expect(applied.flat().sort()).toEqual([9001, 9002]);
    const rows = await t.db.query<{ id: number }>('SELECT id FROM probe_a ORDER BY id');
    expect(rows.rows.map((r) => r.id)).toEqual([1, 2]);
    if (target === 'postgres') await Promise.all(dbs.map((db) => db.close()));
  });
});

describe('embedded data directory', () => {
  it('keeps data across reopen and refuses a second opener while held', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-db-'));
    const db = await openDb({ dataDir: dir });
    await db.exec('CREATE TABLE kept (v text); INSERT INTO kept VALUES ($$x$$)');
    fs.writeFileSync(path.join(dir, 'plexus.lock'), String(process.ppid));
    await expect(openDb({ dataDir: dir })).rejects.toThrow(/in use by another Plexus process/);
    fs.writeFileSync(path.join(dir, 'plexus.lock'), String(process.pid));
    await db.close();
    const again = await openDb({ dataDir: dir });
    const res = await again.query<{ v: string }>('SELECT v FROM kept');
    expect(res.rows).toEqual([{ v: 'x' }]);
    await again.close();
  });
});
