import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // dist/ holds the build (dist/test/support/ among it): never tests, and run only as child processes.
    exclude: [...configDefaults.exclude, 'dist/**'],
    globalSetup: ['test/support/globalSetup.ts'],
    // Tests spawn streamers and a PostgreSQL server: give them room on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
