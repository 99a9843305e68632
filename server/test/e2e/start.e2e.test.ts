/**
 * `npm start` and `npx plexus start` as a process manager or a container meets them: the hub is
 * one `node` process on the compiled output, and SIGTERM to the command it started stops the hub,
 * frees its port and its data directory, and leaves no process behind (issue 16, "One lean
 * production process"). Linux: the process tree is read from /proc.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/flows.js';
import { PLEXUS_BUILT_BIN, SERVER_DIR } from '../helpers/process.js';

const ROOT_DIR = path.resolve(SERVER_DIR, '..');

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-start-'));
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on the port. */
function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string[];
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: the fields after it are fixed.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z') return undefined;
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { pid, ppid: Number(ppid), cmdline };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `root`. */
function descendants(root: number): ProcInfo[] {
  const all = fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is ProcInfo => p !== undefined);
  const out: ProcInfo[] = [];
  const parents = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        out.push(p);
        grew = true;
      }
    }
  }
  return out;
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  url: string;
}

/** Runs `command` in the repository root as a user would, until it prints the URL. */
async function startCommand(command: string, args: string[], env: Record<string, string>): Promise<Started> {
  const child = spawn(command, args, {
    cwd: ROOT_DIR,
    // A clean environment: nothing of the test runner's npm leaks into the command under test.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PLEXUS_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await waitFor(
    `${command} ${args.join(' ')} to print its URL`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${command} exited ${child.exitCode}: ${out}`);
      return /listening on (http:\/\/\S+)/.exec(out)?.[1];
    },
    90_000,
    50,
  );
  return { child, output: () => out, exited, url };
}

async function within<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const cleanups: Array<() => void> = [];

beforeAll(async () => {
  // The commands run the compiled output: build it from the sources under test.
  await promisify(execFile)('npm', ['run', 'build'], { cwd: SERVER_DIR, maxBuffer: 16 * 1024 * 1024 });
}, 600_000);

afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

afterAll(() => {
  for (const c of cleanups.splice(0)) c();
});

describe.each([
  { name: 'npm start', command: 'npm', args: ['start'] },
  { name: 'npx plexus start', command: 'npx', args: ['plexus', 'start'] },
])('$name', ({ command, args }) => {
  it('runs the hub as one node process on the compiled output; SIGTERM to the command stops it, frees the port and the data directory, leaves no process', async () => {
    const dataDir = tmpDir();
    const port = await freePort();
    const env = { PLEXUS_DATA_DIR: dataDir, PLEXUS_HTTP_PORT: String(port), PLEXUS_MTLS_PORT: String(await freePort()), PLEXUS_GRPC_PORT: String(await freePort()) };
    const started = await startCommand(command, args, env);
    const pid = started.child.pid!;
    cleanups.push(() => {
      for (const p of descendants(pid)) process.kill(p.pid, 'SIGKILL');
      if (started.child.exitCode === null) started.child.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    expect((await fetch(`${started.url}/healthz`)).status).toBe(200);
    const tree = descendants(pid);
    const nodes = tree.filter((p) => path.basename(p.cmdline[0] ?? '') === 'node');
    // One hub process, no TypeScript loader, no second node beside it.
    expect(nodes, JSON.stringify(tree)).toHaveLength(1);
    expect(tree.flatMap((p) => p.cmdline).join(' ')).not.toMatch(/tsx/);
    const hub = nodes[0]!;
    // After node's own flags (`npm start` passes V8 heap flags): the script and `start`.
    expect(hub.cmdline.slice(1).filter((a) => !a.startsWith('--')).slice(0, 2)).toEqual([expect.stringMatching(/(^|\/)plexus(\.js)?$/), 'start']);
    if (command === 'npm') expect(hub.ppid).toBe(pid); // npm start execs node: nothing between them
    expect(fs.readdirSync(dataDir)).toContain('pgdata');

    process.kill(pid, 'SIGTERM');
    await within('the command exits after SIGTERM', started.exited, 60_000);
    await waitFor('the hub process to end', async () => readProc(hub.pid) === undefined && descendants(pid).length === 0, 60_000, 100);
    expect(await isListening(port)).toBe(false);

    // The port and the data directory are free: the installed command starts on both at once.
    const again = spawn(process.execPath, [PLEXUS_BUILT_BIN, 'start'], {
      cwd: ROOT_DIR,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PLEXUS_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.unshift(() => {
      if (again.exitCode === null) again.kill('SIGKILL');
    });
    let out = '';
    again.stdout.on('data', (d: Buffer) => (out += d.toString()));
    again.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(
      'the restarted hub to listen',
      async () => {
        if (again.exitCode !== null) throw new Error(`the restart exited ${again.exitCode}: ${out}`);
        return out.includes(`listening on http://127.0.0.1:${port}`);
      },
      90_000,
      50,
    );
    const againExited = new Promise((resolve) => again.once('exit', resolve));
    again.kill('SIGTERM');
    await within('the restarted hub exits after SIGTERM', againExited, 60_000);
  }, 300_000);
});

describe('the installed command', () => {
  it('names the missing build instead of failing on a stack trace', async () => {
    // A copy of the bin beside no dist/ directory stands for a checkout that was never built.
    const dir = tmpDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(PLEXUS_BUILT_BIN, path.join(dir, 'bin', 'plexus.js'));
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const result = await promisify(execFile)(process.execPath, [path.join(dir, 'bin', 'plexus.js'), 'start']).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/not built.*npm run build/);
  });
});
