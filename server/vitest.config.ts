import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Two cores: more forks only fight over CPU and make timing-sensitive bus tests flaky.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // No test may pass by skipping: an empty run is a failure.
    passWithNoTests: false,
  },
});
