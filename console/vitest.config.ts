// Runs only the console's browser tests, with the repository's vitest setup
// (secret-hygiene scan, ORM loading, the UI build); `npm test` runs them too:
//   npx vitest run --config console/vitest.config.ts
import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import root from '../vitest.config.js';

// mergeConfig appends arrays: start from the root config without its include.
const base = { ...root, test: { ...root.test, include: [] as string[] } };
export default mergeConfig(
  base,
  defineConfig({
    root: fileURLToPath(new URL('..', import.meta.url)),
    test: { include: ['console/test/**/*.test.ts'] },
  }),
);
