import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets, openTestDb, type TestDb } from '../../../test/helpers/db.js';
import { waitFor } from '../../../test/helpers/flows.js';
import { openDb } from './index.js';
import { openPostgres } from './postgres.db.js';
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

  it('returns bytea as bytes', async () => {
    const res = await t.db.query<{ b: Uint8Array }>(`SELECT '\\x00ff10'::bytea AS b`);
    expect(res.rows[0]!.b).toBeInstanceOf(Uint8Array);
    expect([...res.rows[0]!.b]).toEqual([0, 255, 16]);
  });

  it("keeps PostgreSQL's error fields: code, constraint, detail", async () => {
    await t.db.exec('CREATE TABLE uniq_probe (k text CONSTRAINT uniq_probe_k UNIQUE)');
    await t.db.query('INSERT INTO uniq_probe VALUES ($1)', ['a']);
    const err = (await t.db.query('INSERT INTO uniq_probe VALUES ($1)', ['a']).catch((e: unknown) => e)) as Error & Record<string, unknown>;
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: '23505', constraint: 'uniq_probe_k', table: 'uniq_probe' });
    expect(err.message).toMatch(/duplicate key value violates unique constraint "uniq_probe_k"/);
    expect(err.detail).toMatch(/Key \(k\)=\(a\) already exists/);
    // Inside a transaction too, and the transaction rejects with that same error.
    const inTx = (await t.db.transaction((tx) => tx.query('INSERT INTO uniq_probe VALUES ($1)', ['a'])).catch((e: unknown) => e)) as Record<string, unknown>;
    expect(inTx).toMatchObject({ code: '23505', constraint: 'uniq_probe_k' });
  });

  it('delivers notifications of a committed transaction, none of a rolled-back one', async () => {
    const channel = `probe_${randomBytes(4).toString('hex')}`;
    const seen: string[] = [];
    const unlisten = await t.db.listen(channel, (payload) => seen.push(payload));
    await t.db.transaction(async (tx) => {
      await tx.query('SELECT pg_notify($1, $2)', [channel, 'rolled back']);
      throw new Error('undo');
    }).catch(() => undefined);
    await t.db.transaction(async (tx) => {
      await tx.query('SELECT pg_notify($1, $2)', [channel, 'committed']);
    });
    await waitFor('the notification', async () => seen.length > 0);
    await unlisten();
    await t.db.query('SELECT pg_notify($1, $2)', [channel, 'after unlisten']);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['committed']);
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
