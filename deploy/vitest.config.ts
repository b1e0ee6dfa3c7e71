// Runs only the tests of deploy/ (the gateway configurations run by nginx and
// Caddy, the Dockerfile's command, the compose and Kubernetes files), with
// the repository's vitest setup; `npm test` runs them too:
//   npx vitest run --config deploy/vitest.config.ts
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from '../vitest.config.js';

// Not mergeConfig: it would append this include to the root's, running every test.
export default defineConfig({
  ...base,
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: { ...base.test, include: ['deploy/test/**/*.test.ts'] },
});
