import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

const contracts = fileURLToPath(new URL('../server/src/contracts', import.meta.url));

export default defineConfig({
  plugins: [react()],
  // The zod contracts of the API, shared with the server and the CLI (STYLE.md layout).
  resolve: { alias: { '@contracts': contracts } },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 2_000 },
  server: {
    // `npm run dev -w web` against a hub on the default port.
    proxy: Object.fromEntries(['/api', '/hook', '/director', '/openapi.json', '/docs'].map((p) => [p, 'http://127.0.0.1:8080'])),
  },
  test: {
    // Two cores shared by everything: one fork per project is enough.
    pool: 'forks',
    maxWorkers: 2,
    passWithNoTests: false,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['src/**/*.test.{ts,tsx}'], environment: 'jsdom', setupFiles: ['./test/setup-dom.ts'] },
      },
      {
        extends: true,
        // A real hub and Debian's chromium: see test/README in web/README.md.
        test: { name: 'browser', include: ['test/**/*.browser.test.ts'], environment: 'node', testTimeout: 120_000, hookTimeout: 120_000 },
      },
    ],
  },
});
