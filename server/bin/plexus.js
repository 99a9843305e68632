#!/usr/bin/env node
// Runs the compiled `plexus` command (server/dist, built by `npm ci` or `npm run build`) in this
// process, so signals reach the hub itself (docs/adr/0010-compiled-at-install.md).
import fs from 'node:fs';

const entry = new URL('../dist/entrypoints/cli.js', import.meta.url);
if (!fs.existsSync(entry)) {
  process.stderr.write('plexus: the server is not built (server/dist is missing): run `npm run build` (npm ci runs it)\n');
  process.exit(1);
}
await import(entry.href);
