// Runs after `npm ci` (root postinstall). Best effort: if it fails, the first start runs initdb.
import { preparePgliteTemplate } from '../src/platform/db/pglite.db.js';

try {
  await preparePgliteTemplate();
} catch (err) {
  process.stderr.write(`plexus: could not prepare the embedded database template (${(err as Error).message}); the first start will initialise it\n`);
}
