/** Runs the real `plexus` command as a child process, as a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SERVER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** `plexus` from the sources (tests run what they sit beside; bin/plexus.js runs the build). */
export const PLEXUS_BIN = path.join(SERVER_DIR, 'test', 'helpers', 'plexus-from-sources.mjs');
/** The installed command: the compiled hub in server/dist. */
export const PLEXUS_BUILT_BIN = path.join(SERVER_DIR, 'bin', 'plexus.js');

export interface PlexusProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves once stdout matches `re`; rejects if the process exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

export function runPlexus(args: string[], env: Record<string, string>): PlexusProcess {
  const child = spawn(process.execPath, [PLEXUS_BIN, ...args], {
    cwd: SERVER_DIR,
    // Processes of tests running side by side must not share the default gRPC and mTLS ports.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PLEXUS_LOG_LEVEL: 'warn', PLEXUS_GRPC_PORT: '0', PLEXUS_MTLS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const started = Date.now();
        const tick = (): void => {
          const m = out.match(re);
          if (m) return resolve(m);
          if (child.exitCode !== null) return reject(new Error(`plexus exited ${child.exitCode} before printing ${re}: ${err || out}`));
          if (Date.now() - started > timeoutMs) return reject(new Error(`plexus did not print ${re} within ${timeoutMs} ms: ${err || out}`));
          setTimeout(tick, 20);
        };
        tick();
      });
    },
  };
}
