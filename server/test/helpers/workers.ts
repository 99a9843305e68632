/** Helpers for router / worker tests: enrolment secrets, `plexus worker` processes, SDK workers. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { Worker, type WorkerComponent, type WorkerOptions } from '../../src/worker-sdk/index.js';
import type { TestHub } from './hub.js';
import { runPlexus, SERVER_DIR, type PlexusProcess } from './process.js';

export const OIH_WORKER_COMPONENT = path.join(SERVER_DIR, 'test', 'fixtures', 'oih-worker');

export async function enrol(hub: TestHub, components: string[], token?: string, expiresInSeconds?: number): Promise<string> {
  const res = await hub.api('POST', '/api/v1/workers/enrolments', { components, ...(expiresInSeconds ? { expiresInSeconds } : {}) }, token);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.data.secret as string;
}

export function tempDir(prefix = 'plexus-worker-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * `plexus worker` processes by pid. Their OIH components run in runner processes of their own with
 * a clean environment (as in the hub), so the test component stamps its runner's parent pid: this
 * turns it back into the worker's name.
 */
const workerNames = new Map<string, string>();
export function workerName(stampedBy: string): string {
  return workerNames.get(stampedBy) ?? stampedBy;
}

/** Starts `plexus worker` as a child process; resolves once it printed that it is attached. */
export async function startWorkerProcess(
  routers: string[],
  opts: { secret?: string; credentialFile: string; id: string; components?: string[]; concurrency?: number; env?: Record<string, string> },
): Promise<PlexusProcess> {
  const args = ['worker', '--router', routers.join(','), '--id', opts.id, '--credential-file', opts.credentialFile, '--concurrency', String(opts.concurrency ?? 8)];
  for (const c of opts.components ?? [OIH_WORKER_COMPONENT]) args.push('--component', c);
  if (opts.secret) args.push('--secret', opts.secret);
  const p = runPlexus(args, { PLEXUS_TEST_WORKER_NAME: opts.id, ...opts.env });
  if (p.child.pid !== undefined) workerNames.set(String(p.child.pid), opts.id);
  await p.waitFor(/Plexus worker attached/, 60_000);
  return p;
}

/** An SDK worker in this process. */
export async function startSdkWorker(routers: string[], components: WorkerComponent[], opts: Partial<WorkerOptions> & { credentialFile: string; workerId: string }): Promise<Worker> {
  const worker = new Worker({ routers, components, connectTimeoutMs: 20_000, ...opts });
  await worker.start();
  return worker;
}

/** Debian's Python, where python3-grpcio / python3-protobuf / python3-grpc-tools are installed (.ci/run). */
export const PYTHON = process.env.PLEXUS_TEST_PYTHON ?? '/usr/bin/python3';
export const PYTHON_WORKER = path.join(SERVER_DIR, '..', 'examples', 'python-worker', 'worker.py');

/** Starts the Python example worker; resolves once it printed that it is attached. */
export async function startPythonWorker(router: string, opts: { secret?: string; credentialFile: string; id: string }): Promise<{ child: ChildProcess; output: () => string }> {
  const args = [PYTHON_WORKER, '--router', router, '--credential-file', opts.credentialFile, '--id', opts.id];
  if (opts.secret) args.push('--secret', opts.secret);
  const child = spawn(PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const until = Date.now() + 60_000;
  while (!/python worker attached/.test(out)) {
    if (child.exitCode !== null) throw new Error(`the python worker exited ${child.exitCode}: ${out}`);
    if (Date.now() > until) throw new Error(`the python worker did not attach within 60 s: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out };
}
