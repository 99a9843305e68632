/**
 * Log lines an operator reads: each key once (bus lines repeated "module"), and the "listening"
 * line printed after the listener is up and after the start's log lines.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createHub } from '../../src/entrypoints/hub.js';
import { loadConfig } from '../../src/platform/config.js';
import { createLogger } from '../../src/platform/logger.js';
import { waitFor } from '../helpers/flows.js';
import { freePort } from '../helpers/crash.js';
import { runPlexus, type PlexusProcess } from '../helpers/process.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-logs-'));
  dirs.push(dir);
  return dir;
}

/** Top-level keys that occur more than once in one JSON log line. */
function repeatedKeys(line: string): string[] {
  const obj = JSON.parse(line) as Record<string, unknown>;
  return Object.keys(obj).filter((k) => (line.match(new RegExp(`[{,]"${k}":`, 'g')) ?? []).length > 1 && typeof obj[k] !== 'object');
}

describe('log lines', () => {
  it('carry each key once, bus lines included', async () => {
    const lines: string[] = [];
    const out = new PassThrough();
    out.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const config = loadConfig({ PLEXUS_DATA_DIR: tmpDir(), PLEXUS_HTTP_PORT: '0', PLEXUS_ADMIN_PASSWORD: 'logs-admin-password', PLEXUS_LOG_LEVEL: 'info' });
    const hub = await createHub(config, { logger: createLogger('info', out) });
    try {
      // A handler that fails is logged by the hub's own bus (info: will retry).
      let calls = 0;
      const consumer = await hub.bus.subscribe('test.logged', 'log-test', async () => {
        calls++;
        throw new Error('boom');
      });
      await hub.bus.publish('test.logged', {});
      await waitFor('a bus log line', async () => lines.some((l) => l.includes('"bus: handler failed; will retry"')), 20_000);
      await consumer.stop();
      expect(calls).toBeGreaterThan(0);
      const busLine = lines.find((l) => l.includes('"bus: handler failed; will retry"'))!;
      expect(JSON.parse(busLine)).toMatchObject({ module: 'bus' });
      for (const line of lines) expect(repeatedKeys(line), line).toEqual([]);
    } finally {
      await hub.stop();
    }
  }, 60_000);

  it('prints "listening" after the listener is up and after the start-up log lines', async () => {
    let proc: PlexusProcess | undefined;
    try {
      proc = runPlexus(['start'], {
        PLEXUS_DATA_DIR: tmpDir(),
        PLEXUS_HTTP_PORT: String(await freePort()),
        PLEXUS_MTLS_PORT: String(await freePort()),
        PLEXUS_GRPC_PORT: String(await freePort()),
        PLEXUS_LOG_LEVEL: 'info',
      });
      const url = (await proc.waitFor(/listening on (http:\/\/\S+)/, 90_000))[1]!;
      // Up when it says so.
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const stdout = proc.stdout().split('\n');
      const listenerLogged = stdout.findIndex((l) => l.includes('Server listening at'));
      const listeningLine = stdout.findIndex((l) => l.includes('Plexus is listening on'));
      expect(listenerLogged).toBeGreaterThanOrEqual(0);
      expect(listeningLine).toBeGreaterThan(listenerLogged);
      for (const line of stdout.filter((l) => l.startsWith('{'))) expect(repeatedKeys(line), line).toEqual([]);
    } finally {
      if (proc && proc.child.exitCode === null) {
        proc.child.kill('SIGTERM');
        await proc.exited;
      }
    }
  }, 120_000);
});
