/**
 * The data-directory lock: embedded PGlite cannot share its files between processes, so one
 * Plexus process at a time holds `<dataDir>/plexus.lock`.
 *
 * - Taken atomically: the lock file appears with its content by a hard link (which fails when the
 *   file exists, as O_EXCL does), so of two processes starting together exactly one gets it, and
 *   no one ever reads a half-written lock.
 * - A lock left by a killed process never blocks a restart. It names its holder's pid and that
 *   process's start time (Linux: /proc/<pid>/stat); a lock whose pid is gone, or is now another
 *   process (a pid reused after a reboot or a container restart, where the new hub may well get
 *   the dead one's pid), is stale. Where the start time cannot be read, the pid alone decides.
 * - Holding it proves no other process uses the database, which lets the bus release every
 *   lease at start (platform/bus: `Db.exclusive`).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.js';

export const LOCK_FILE = 'plexus.lock';

interface Holder {
  pid: number;
  /** Clock ticks since boot when the process started (/proc/<pid>/stat field 22); null when unknown. */
  startedAt: string | null;
}

/** Takes the lock or throws CONFIG_INVALID naming the live holder; returns the release function. */
export function lockDataDir(dataDir: string): () => void {
  const lockPath = path.join(dataDir, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, startedAt: processStartTime(process.pid) } satisfies Holder);
  // Again after moving a stale lock away; a third time only if someone raced us.
  for (let round = 0; round < 3; round++) {
    if (linkNew(lockPath, mine)) return () => release(lockPath, mine);
    const text = readOrEmpty(lockPath);
    const holder = parseHolder(text);
    if (holder && holder.pid !== process.pid && isRunning(holder)) {
      throw new AppError('CONFIG_INVALID', `PLEXUS_DATA_DIR=${dataDir} is in use by another Plexus process (pid ${holder.pid}); use PLEXUS_DATABASE_URL to run several processes`, 'user');
    }
    removeStale(lockPath, text);
  }
  throw new AppError('CONFIG_INVALID', `PLEXUS_DATA_DIR=${dataDir}: could not take ${LOCK_FILE}; another process keeps replacing it`, 'user');
}

/**
 * Creates the lock with its content in one step: written to a file of this process first, then
 * linked into place (link fails with EEXIST like O_EXCL). Created empty and written after, a
 * lock could be read empty by another starting process, judged stale and removed — and both
 * processes held it (seen in a test of four processes under load).
 */
function linkNew(lockPath: string, content: string): boolean {
  const draft = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}.new`;
  fs.writeFileSync(draft, content, { flag: 'wx', mode: 0o600 });
  try {
    fs.linkSync(draft, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    fs.rmSync(draft, { force: true });
  }
}

/**
 * Moves the stale lock aside under a unique name, then checks it moved the lock it judged: two
 * processes judging the same stale lock at once could otherwise delete the fresh lock the
 * faster one just took. A lock that turns out fresh is put back (link fails if yet another
 * was taken meanwhile, which then stands).
 */
function removeStale(lockPath: string, judged: string): void {
  const aside = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    fs.renameSync(lockPath, aside);
  } catch {
    return; // already gone: try again
  }
  if (readOrEmpty(aside) !== judged) {
    try {
      fs.linkSync(aside, lockPath);
    } catch {
      /* a newer lock stands */
    }
  }
  fs.rmSync(aside, { force: true });
}

function release(lockPath: string, mine: string): void {
  try {
    if (fs.readFileSync(lockPath, 'utf8') === mine) fs.unlinkSync(lockPath);
  } catch {
    /* already gone */
  }
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Reads both the current format and the older bare pid. */
function parseHolder(text: string): Holder | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { pid: Number(trimmed), startedAt: null };
  try {
    const v = JSON.parse(trimmed) as Partial<Holder>;
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0) return { pid: v.pid, startedAt: typeof v.startedAt === 'string' ? v.startedAt : null };
  } catch {
    /* torn or foreign: stale */
  }
  return undefined;
}

function isRunning(holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (holder.startedAt === null) return true;
  const now = processStartTime(holder.pid);
  // Unreadable now (another user's process without /proc access): trust the pid.
  return now === null || now === holder.startedAt;
}

/** The process's start time in clock ticks since boot (Linux), or null where it cannot be read. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, starttime field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}
