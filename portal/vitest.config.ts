// Runs the portal's browser tests with the repository's test setup:
//   npx vitest run --config portal/vitest.config.ts
// (the root vitest.config.ts runs them too, with the rest of the suite).
import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import root from '../vitest.config.js';

const base = { ...root, test: { ...root.test, include: [] as string[] } };
export default mergeConfig(
  base,
  defineConfig({ root: fileURLToPath(new URL('..', import.meta.url)), test: { include: ['portal/test/**/*.test.ts'] } }),
);
