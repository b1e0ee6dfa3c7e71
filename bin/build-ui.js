#!/usr/bin/env node
// Builds the browser surfaces the server serves (console/dist, portal/dist)
// when they are missing or older than their sources: `npm start` and
// `npm test` run it first, so a fresh clone needs nothing but `npm ci`.
//   node bin/build-ui.js           build what is stale
//   node bin/build-ui.js --force   build everything
//   node bin/build-ui.js --lenient a failed or impossible build (no Vite: installed
//                                  without dev dependencies) warns instead of failing;
//                                  the server then answers 503 at that page
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const force = process.argv.includes('--force');
const lenient = process.argv.includes('--lenient');
const VITE = path.join(ROOT, 'node_modules/vite/bin/vite.js');

/** Each app: its folder, the vite config, and what it builds. */
const APPS = [
  { dir: 'console', config: 'console/vite.config.ts', output: 'console/dist/index.html' },
  { dir: 'portal', config: 'portal/vite.config.ts', output: 'portal/dist/index.html' },
];

/** Newest modification time of the files an app is built from (its sources and the generated API). */
function newestSource(dir) {
  let newest = 0;
  const walk = (p) => {
    const s = statSync(p, { throwIfNoEntry: false });
    if (!s) return;
    if (s.isDirectory()) {
      for (const name of readdirSync(p)) if (!['dist', 'dist-lib', 'node_modules', 'test', '.scratch'].includes(name)) walk(path.join(p, name));
    } else newest = Math.max(newest, s.mtimeMs);
  };
  walk(path.join(ROOT, dir));
  walk(path.join(ROOT, 'gen'));
  return newest;
}

for (const app of APPS) {
  const built = statSync(path.join(ROOT, app.output), { throwIfNoEntry: false });
  if (!force && built && built.mtimeMs >= newestSource(app.dir)) continue;
  if (!existsSync(VITE)) {
    process.stderr.write(`${app.dir}/ is not built and Vite is not installed (npm ci installs it); /${app.dir}/ answers 503\n`);
    if (lenient) continue;
    process.exit(1);
  }
  process.stderr.write(`building ${app.dir}/ (vite)\n`);
  const r = spawnSync(process.execPath, [VITE, 'build', '--config', app.config, '--logLevel', 'warn'], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) {
    process.stderr.write(`building ${app.dir}/ failed (exit ${r.status}); the server answers 503 at /${app.dir}/ until it is built\n`);
    if (!lenient) process.exit(r.status || 1);
  }
}
