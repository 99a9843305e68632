/**
 * The embedded database's memory settings (docs/adr/0010-compiled-at-install.md): the buffer cache
 * is the configured size, and a first start from the install-time template (its directory copied,
 * or else the tarball loaded, closed and reopened) gives a working, migrated database that a
 * second start opens as it is.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDb } from './index.js';
import { openPglite, pgliteTemplateDir, preparePgliteTemplate } from './pglite.db.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('embedded PGlite memory settings', () => {
  it('sizes shared_buffers as configured', async () => {
    const db = await openPglite(undefined, { sharedBufferBytes: 16 * 1024 * 1024 });
    try {
      const { rows } = await db.query<{ shared_buffers: string }>('SHOW shared_buffers');
      expect(rows[0]?.shared_buffers).toBe('16MB');
    } finally {
      await db.close();
    }
  });

  it('opens a new data directory from the template, then reopens it with its data', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-pglite-'));
    dirs.push(dataDir);
    const first = await openDb({ dataDir, sharedBufferBytes: 8 * 1024 * 1024, optimizeWasm: false });
    try {
      await first.exec('CREATE TABLE kept (v text)');
      await first.query('INSERT INTO kept (v) VALUES ($1)', ['still here']);
    } finally {
      await first.close();
    }
    expect(fs.existsSync(path.join(dataDir, 'plexus.lock'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'pgdata.copying'))).toBe(false);
    const second = await openDb({ dataDir, sharedBufferBytes: 8 * 1024 * 1024 });
    try {
      expect((await second.query<{ v: string }>('SELECT v FROM kept')).rows).toEqual([{ v: 'still here' }]);
      expect((await second.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]?.shared_buffers).toBe('8MB');
    } finally {
      await second.close();
    }
  });

  it('prepares the template as a directory beside the tarball, and a first start copies it', async () => {
    await preparePgliteTemplate();
    const template = pgliteTemplateDir();
    expect(fs.existsSync(path.join(template, 'PG_VERSION'))).toBe(true);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-pglite-'));
    dirs.push(dataDir);
    const db = await openPglite(dataDir, { sharedBufferBytes: 8 * 1024 * 1024 });
    try {
      expect(fs.readFileSync(path.join(dataDir, 'pgdata', 'PG_VERSION'), 'utf8')).toBe(fs.readFileSync(path.join(template, 'PG_VERSION'), 'utf8'));
      expect((await db.query<{ n: number }>('SELECT 1 AS n')).rows).toEqual([{ n: 1 }]);
    } finally {
      await db.close();
    }
    // The template is copied, never written through: it stays an empty cluster for the next start.
    expect(fs.existsSync(path.join(template, 'postmaster.pid'))).toBe(false);
  });
});
