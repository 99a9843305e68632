import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite } from './pglite.db.js';
import type { Db } from './db.js';
import { PreparedStatements, textValue } from './pglite.statements.js';

describe('textValue', () => {
  it('gives text, numbers, booleans, dates and arrays in PostgreSQL text format, unquoted', () => {
    expect(textValue("it's")).toBe("it's");
    expect(textValue('back\\slash')).toBe('back\\slash');
    expect(textValue(42)).toBe('42');
    expect(textValue(true)).toBe('t');
    expect(textValue(null)).toBeNull();
    expect(textValue(undefined)).toBeNull();
    expect(textValue(new Date('2026-01-02T03:04:05.678Z'))).toBe('2026-01-02T03:04:05.678Z');
    expect(textValue(['a', 'b"c', 'd\\e', null, "f'g"])).toBe(`{"a","b\\"c","d\\\\e",NULL,"f'g"}`);
    expect(textValue([1, 2.5])).toBe('{1,2.5}');
    expect(textValue([])).toBe('{}');
  });

  it('has no text for values without one text form', () => {
    expect(textValue({ a: 1 })).toBeUndefined();
    expect(textValue(Buffer.from('x'))).toBeUndefined();
    expect(textValue('nul\0byte')).toBeUndefined();
    expect(textValue(['nul\0byte'])).toBeUndefined();
    expect(textValue(Number.NaN)).toBeUndefined();
    expect(textValue([[1]])).toBeUndefined();
    expect(textValue([{ a: 1 }])).toBeUndefined();
  });
});

describe('PreparedStatements', () => {
  it('prepares a statement after its first use and binds its parameters from then on', async () => {
    const prepared: string[] = [];
    const s = new PreparedStatements(async (sql) => void prepared.push(sql));
    const sql = 'SELECT * FROM t WHERE id = $1';
    expect(s.bind(sql, [1])).toBeUndefined();
    await Promise.resolve();
    expect(prepared).toEqual([`PREPARE plexus_stmt_1 AS ${sql}`]);
    expect(s.bind(sql, [7])).toEqual({ name: 'plexus_stmt_1', values: ['7'] });
    // A value without a text form takes the ordinary path; the statement stays prepared.
    expect(s.bind(sql, [{ x: 1 }])).toBeUndefined();
    expect(s.bind('VACUUM', [])).toBeUndefined();
    expect(s.bind('VACUUM', [])).toBeUndefined();
    expect(prepared).toHaveLength(1);
  });

  it('never prepares a statement PREPARE refused', async () => {
    const s = new PreparedStatements(() => Promise.reject(new Error('syntax error')));
    const sql = 'SELECT $1';
    s.bind(sql, ['a']);
    await new Promise((r) => setImmediate(r));
    expect(s.bind(sql, ['a'])).toBeUndefined();
  });
});

describe('prepared statements on PGlite', () => {
  let db: Db;
  beforeAll(async () => {
    db = await openPglite(undefined);
    await db.exec('CREATE TABLE kv (k text PRIMARY KEY, v text, n bigint, at timestamptz, ok boolean, j json)');
  });
  afterAll(async () => db.close());

  /** Runs a statement until it has run through EXECUTE (a PREPARE is queued after its first use). */
  const twice = async <R>(sql: string, params: unknown[]): Promise<R[]> => {
    await db.query(sql, params);
    await db.query('SELECT 1');
    return (await db.query<R>(sql, params)).rows;
  };

  it('returns what the ordinary path returns, for hostile text too', async () => {
    const hostile = ["'); DROP TABLE kv; --", 'back\\slash \\x00 \\n', '{"a":[1,2]}', 'üñí©ødé ✓', "O'Reilly \"quoted\""];
    for (const [i, v] of hostile.entries()) {
      const rows = await twice<{ k: string; v: string }>('INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v RETURNING k, v', [`h${i}`, v]);
      expect(rows).toEqual([{ k: `h${i}`, v }]);
    }
    const all = await db.query<{ v: string }>('SELECT v FROM kv WHERE k LIKE $1 ORDER BY k', ['h%']);
    expect(all.rows.map((r) => r.v)).toEqual(hostile);
    const prepared = await db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
    expect(prepared.rows.some((r) => r.statement.includes('INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT'))).toBe(true);
  });

  it('passes arrays, numbers, dates, booleans, JSON and NULL through the parameter types', async () => {
    const at = new Date('2026-11-23T10:00:00.123Z');
    const keys = ['a,b', 'c"d', 'e\\f', "g'h", 'i}j'];
    const rows = await twice<{ k: string; n: number; at: Date; ok: boolean; j: unknown }>(
      `INSERT INTO kv (k, n, at, ok, j)
       SELECT k, $2::bigint, $3::timestamptz, $4::boolean, $5::json FROM unnest($1::text[]) AS k
       ON CONFLICT (k) DO UPDATE SET n = EXCLUDED.n RETURNING k, n, at, ok, j`,
      [keys, 9_007_199_254_740_991, at, true, JSON.stringify({ x: "it's", y: [1, null] })],
    );
    expect(rows.map((r) => r.k).sort()).toEqual([...keys].sort());
    expect(rows[0]).toMatchObject({ n: 9_007_199_254_740_991, at, ok: true, j: { x: "it's", y: [1, null] } });
    const none = await twice<{ v: string | null }>('SELECT $1::text AS v', [null]);
    expect(none).toEqual([{ v: null }]);
  });

  it('works inside transactions, and a failing statement still rolls its transaction back', async () => {
    const insert = 'INSERT INTO kv (k, v) VALUES ($1, $2)';
    await db.query(insert, ['t0', 'first']);
    await db.query('SELECT 1');
    await db.transaction(async (tx) => {
      await tx.query(insert, ['t1', 'in tx']);
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.query(insert, ['t2', 'rolled back']);
        await tx.query(insert, ['t1', 'duplicate']);
      }),
    ).rejects.toMatchObject({ code: '23505' });
    const rows = await db.query<{ k: string }>("SELECT k FROM kv WHERE k LIKE 't_' ORDER BY k");
    expect(rows.rows.map((r) => r.k)).toEqual(['t0', 't1']);
  });

  it('keeps values out of the SQL text: turning standard_conforming_strings off opens no injection', async () => {
    const insert = 'INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v RETURNING v';
    await twice(insert, ['scs0', 'warm-up']);
    await db.exec('SET standard_conforming_strings = off');
    try {
      // With quoted literals and this setting off, \' would end the string and run the rest as SQL.
      const hostile = ["\\'); DELETE FROM kv; --", "x\\", "\\\\'||(SELECT 'pwned')||'"];
      for (const [i, v] of hostile.entries()) {
        const rows = await twice<{ v: string }>(insert, [`scs${i + 1}`, v]);
        expect(rows).toEqual([{ v }]);
      }
      const count = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM kv WHERE k LIKE 'scs%'");
      expect(count.rows[0]!.n).toBe(hostile.length + 1);
      const prepared = await db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements');
      expect(prepared.rows.some((r) => r.statement.includes('INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT'))).toBe(true);
    } finally {
      await db.exec('SET standard_conforming_strings = on');
    }
  });
});
