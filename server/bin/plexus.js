#!/usr/bin/env node
// Loads the TypeScript entry through tsx's loader, in this process (signals reach the hub
// directly), so `plexus` works from a clean clone without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/entrypoints/cli.ts');
