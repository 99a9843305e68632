// @ts-check
// Helper of bench/code.ts, run as `node --no-node-snapshot bench/code-isolate-cost.mjs` from
// server/: what a fresh isolate costs in one process (new Isolate, the context script compiled,
// a context, one trivial run, dispose) — the alternative to a new process on a tenant switch.
import { createRequire } from 'node:module';
import process from 'node:process';

/** @type {typeof import('isolated-vm')} */
const ivm = createRequire(`${process.cwd()}/package.json`)('isolated-vm');
const samples = [];
for (let i = 0; i < 50; i++) {
  const started = performance.now();
  const isolate = new ivm.Isolate({ memoryLimit: 64 });
  const context = await isolate.createContext();
  const script = await isolate.compileScript('(function (n) { return n + 1; })');
  const fn = await script.run(context, { reference: true });
  await fn.apply(undefined, [1], { result: { copy: true } });
  isolate.dispose();
  samples.push(performance.now() - started);
}
samples.sort((a, b) => a - b);
process.stdout.write(`p50 ${samples[25]?.toFixed(1)} ms, max ${samples[49]?.toFixed(1)} ms over 50\n`);
