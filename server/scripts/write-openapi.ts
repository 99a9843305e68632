// Writes the hub's OpenAPI document to the file named as the first argument. The web build
// generates its typed API client from it, so the client always matches the routes in this tree.
// A throwaway embedded database under a temporary folder; nothing listens, nothing is kept.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHub } from '../src/entrypoints/hub.js';
import { loadConfig } from '../src/platform/config.js';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: tsx server/scripts/write-openapi.ts <out.json>\n');
  process.exit(2);
}
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-openapi-'));
try {
  const config = loadConfig({ PLEXUS_DATA_DIR: dataDir, PLEXUS_LOG_LEVEL: 'silent', PLEXUS_ADMIN_PASSWORD: 'openapi-snapshot-only' });
  const hub = await createHub(config);
  const doc = hub.app.swagger();
  await hub.stop();
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(doc, null, 2)}\n`);
} finally {
  fs.rmSync(dataDir, { recursive: true, force: true });
}
