/**
 * The bench runner: `npm run bench -- <name> [args…]` (from the repo root or server/) imports
 * `bench/<name>.ts` and awaits its exported `run(args)`. A benchmark is one file exporting
 *
 *   export async function run(args: string[]): Promise<void>
 *
 * that measures, prints, and records its figures with `recordResults` (bench/results.ts); with
 * `--no-record` anywhere in its arguments nothing is recorded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchModule {
  run(args: string[]): Promise<void>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** Files here that are infrastructure, not benchmarks. */
const NOT_BENCHMARKS = new Set(['run', 'results', 'wrk']);

function availableBenchmarks(): string[] {
  return fs
    .readdirSync(here)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .filter((name) => !NOT_BENCHMARKS.has(name))
    .sort();
}

function isBenchModule(mod: unknown): mod is BenchModule {
  return typeof mod === 'object' && mod !== null && typeof (mod as { run?: unknown }).run === 'function';
}

async function main(): Promise<number> {
  const [name, ...args] = process.argv.slice(2);
  const available = availableBenchmarks();
  if (!name || !available.includes(name)) {
    console.error(`usage: npm run bench -- <name> [args…]\navailable: ${available.join(', ') || '(none)'}`);
    return 2;
  }
  const mod: unknown = await import(pathToFileURL(path.join(here, `${name}.ts`)).href);
  if (!isBenchModule(mod)) {
    console.error(`bench/${name}.ts does not export run(args: string[]): Promise<void>`);
    return 2;
  }
  const startedAt = performance.now();
  await mod.run(args);
  console.log(`\n${name}: done in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);
  return 0;
}

// Exit explicitly: a benchmark that leaves a socket or timer open must not hang the run.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
