/**
 * wrk (Debian's package) as a load generator in a process of its own: it costs the measured
 * process nothing, and it is not a Node program sharing the machine's event loops. Requests come
 * from a Lua script, so every request may differ (a counter per thread, ids made unique across
 * threads with the thread's number).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface WrkResult {
  requests: number;
  perSecond: number;
  non2xx: number;
  socketErrors: number;
  p50Ms: number;
  p99Ms: number;
}

export function hasWrk(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/**
 * `request` is the body of a Lua function returning `wrk.format(...)`; it sees `thread_id` (1..n)
 * and `counter` (this thread's requests so far, from 1).
 */
export function luaScript(opts: { method: string; path: string; headers: Record<string, string>; request: string }): string {
  const headers = Object.entries(opts.headers)
    .map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`)
    .join('\n');
  return `
wrk.method = ${JSON.stringify(opts.method)}
wrk.path = ${JSON.stringify(opts.path)}
${headers}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
counter = 0
function request()
  counter = counter + 1
  ${opts.request}
end
`;
}

function millis(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

export async function runWrk(url: string, opts: { connections: number; seconds: number; threads?: number; script: string }): Promise<WrkResult> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-wrk-')), 'script.lua');
  fs.writeFileSync(file, opts.script);
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', ['-t', String(opts.threads ?? 2), '-c', String(opts.connections), '-d', `${opts.seconds}s`, '--latency', '-s', file, url], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
    });
    const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 0);
    const total = num(/(\d+) requests in/);
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    return {
      requests: total,
      perSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
      non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
      socketErrors: errors ? errors.slice(1).reduce((s, v) => s + Number(v), 0) : 0,
      p50Ms: millis(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
      p99Ms: millis(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    };
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
}
