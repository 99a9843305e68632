// The `plexus` command run from the TypeScript sources through tsx's loader, in this process:
// tests exercise the code they sit beside, not the last build (server/bin/plexus.js runs dist).
import { register } from 'tsx/esm/api';

register();
await import('../../src/entrypoints/cli.ts');
