/**
 * Runs the real `plexus` admin CLI (bin/plexus.js, as a user's shell would) with its own config
 * directory, optional standard input, and returns what it printed and its exit code.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PLEXUS_BIN, SERVER_DIR } from './process.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliUser {
  /** `$XDG_CONFIG_HOME` of this user: the session lands in `<configHome>/plexus/session.json`. */
  configHome: string;
  sessionFile: string;
  run(args: string[], opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  cleanup(): void;
}

export function cliUser(): CliUser {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-cli-'));
  const configHome = path.join(home, '.config');
  return {
    configHome,
    sessionFile: path.join(configHome, 'plexus', 'session.json'),
    run(args, opts = {}) {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [PLEXUS_BIN, ...args], {
          cwd: SERVER_DIR,
          env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: configHome, ...opts.env },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        // Generous: a busy two-core machine runs tsx slowly; the bound only stops a hang.
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`plexus ${args.join(' ')} did not end: ${stderr || stdout}`));
        }, opts.timeoutMs ?? 60_000);
        child.once('close', (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
        child.stdin.end(opts.input ?? '');
      });
    },
    cleanup() {
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
