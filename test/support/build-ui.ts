// Global setup: builds the console and the portal page once, before any test
// file runs (bin/build-ui.js, what `npm test` and `npm start` run first), so
// test files that load them in a browser never race a rebuild of each other's.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function setup() {
  const root = path.resolve(import.meta.dirname, '../..');
  execFileSync(process.execPath, [path.join(root, 'bin/build-ui.js')], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}
