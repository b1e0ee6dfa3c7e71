#!/usr/bin/env node
// Runs one TypeScript file through tsx, like bin/keyward.js does for the CLI:
//   node bin/run-ts.js path/to/file.ts [args...]
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bin/run-ts.js <file.ts> [args...]\n');
  process.exit(2);
}
register();
const abs = path.resolve(file);
// The script sees its own path and arguments, as if it had been run directly.
process.argv = [process.argv[0], abs, ...args];
await import(pathToFileURL(abs).href);
