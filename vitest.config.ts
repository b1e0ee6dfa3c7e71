import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The server's tests; the console's and the portal's (real server, real browser); the clients'.
    include: ['test/**/*.test.ts', 'console/test/**/*.test.ts', 'portal/test/**/*.test.ts', 'clients/*/test/**/*.test.ts', 'deploy/test/**/*.test.ts'],
    // Records issued secrets and everything they must not appear in; scans after the run.
    globalSetup: ['test/support/global-setup.ts', 'test/support/build-ui.ts'],
    // load-orm first: MikroORM must load with synchronous contexts, as in production (src/db/load-orm.ts).
    setupFiles: ['src/db/load-orm.ts', 'test/support/setup-file.ts'],
    // Each file starts its own server and database; two at a time suits a 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
