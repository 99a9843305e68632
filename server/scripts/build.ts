// Runs after `npm ci` (root postinstall) and by `npm run build`: compiles the server to
// server/dist, which `npm start` and the `plexus` bin run with plain `node`
// (docs/adr/0010-compiled-at-install.md). dist is removed first, so a file deleted from src
// never survives in it. Files tsc does not emit (the GraphQL schema, GraphiQL page, the
// sandbox runner and its context, the spec worker) are copied beside their compiled modules,
// byte for byte: the sandbox context is evaluated inside an isolate as written.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const serverDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(serverDir, 'src');
const distDir = path.join(serverDir, 'dist');

function fail(message: string): never {
  process.stderr.write(`plexus: cannot build the server: ${message}\n`);
  process.exit(1);
}

/** Source files that are not TypeScript but are loaded at run time. */
function isRuntimeAsset(file: string): boolean {
  return !file.endsWith('.ts') && !file.endsWith('.md');
}

function copyAssets(dir: string): number {
  let copied = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const from = path.join(dir, entry.name);
    if (entry.isDirectory()) copied += copyAssets(from);
    else if (isRuntimeAsset(entry.name)) {
      const to = path.join(distDir, path.relative(srcDir, from));
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
      copied += 1;
    }
  }
  return copied;
}

let tsc: string;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  fail('TypeScript is not installed (it is a devDependency: install without --omit=dev, or build where it is installed and ship server/dist)');
}
const startedAt = performance.now();
fs.rmSync(distDir, { recursive: true, force: true });
const result = spawnSync(process.execPath, [tsc, '-p', path.join(serverDir, 'tsconfig.build.json')], { stdio: 'inherit' });
if (result.status !== 0) fail(`tsc exited with ${result.status ?? result.signal}`);
const assets = copyAssets(srcDir);
process.stdout.write(`plexus: server compiled to ${path.relative(process.cwd(), distDir) || '.'} (${assets} assets copied) in ${((performance.now() - startedAt) / 1000).toFixed(1)} s\n`);
