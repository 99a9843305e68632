/** The data-directory lock: atomic between processes, and never blocked by a dead holder. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir, processStartTime } from './datadir.lock.js';

const dirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-lock-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A process that is surely alive and is not this one: our parent. */
const otherPid = process.ppid;

describe('data-directory lock', () => {
  it('refuses a directory a live process holds, naming its pid', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: otherPid, startedAt: processStartTime(otherPid) }));
    expect(() => lockDataDir(dir)).toThrow(new RegExp(`in use by another Plexus process \\(pid ${otherPid}\\)`));
  });

  it('takes over a lock whose pid now belongs to another process (start time differs)', () => {
    const dir = tmpDir();
    // What a restart in a fresh container leaves: the dead hub's pid is now someone else's.
    fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: otherPid, startedAt: '1' }));
    const release = lockDataDir(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    release();
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it('takes over a lock of a dead process, and a torn lock file', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 7, startedAt: '5' }));
    lockDataDir(dir)();
    fs.writeFileSync(path.join(dir, LOCK_FILE), '{"pid":');
    lockDataDir(dir)();
  });

  it('lets exactly one of several processes starting at once take it', async () => {
    const dir = tmpDir();
    const module = new URL('./datadir.lock.ts', import.meta.url).pathname;
    const startAt = Date.now() + 3_000;
    // Each child waits for the same instant, tries, reports, and holds what it got for a while.
    const script = `
      const { lockDataDir } = await import(${JSON.stringify(module)});
      while (Date.now() < ${startAt}) {}
      try { lockDataDir(${JSON.stringify(dir)}); console.log('GOT'); } catch (e) { console.log('REFUSED ' + e.message); }
      setTimeout(() => {}, 4000);`;
    const runs = Array.from({ length: 4 }, () =>
      new Promise<string>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('exit', () => resolve(out.trim()));
      }),
    );
    const outcomes = await Promise.all(runs);
    expect(outcomes.filter((o) => o === 'GOT')).toHaveLength(1);
    expect(outcomes.filter((o) => o.startsWith('REFUSED'))).toHaveLength(3);
  }, 60_000);
});
