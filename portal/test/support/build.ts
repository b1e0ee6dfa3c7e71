// Builds what the browser tests load, when it is missing or older than its
// sources (the /portal page itself, portal/dist, is built once for all test
// files by test/support/build-ui.ts):
//   portal/dist-lib      the @keyward/portal library
//   portal/example/dist  the example host app, built against dist-lib
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PORTAL_DIR = fileURLToPath(new URL('../../', import.meta.url));
export const REPO_DIR = path.resolve(PORTAL_DIR, '..');
const VITE = path.join(REPO_DIR, 'node_modules/vite/bin/vite.js');

function newest(p: string): number {
  if (!existsSync(p)) return 0;
  const s = statSync(p);
  if (!s.isDirectory()) return s.mtimeMs;
  let m = s.mtimeMs;
  for (const e of readdirSync(p)) if (e !== 'dist' && e !== 'node_modules') m = Math.max(m, newest(path.join(p, e)));
  return m;
}

interface Build {
  output: string;
  sources: string[];
  args: string[];
}

const BUILDS: Build[] = [
  {
    output: 'dist-lib/keyward-portal.js',
    sources: ['src', 'vite.lib.config.ts', '../gen/keyward/v1'],
    args: ['build', '--config', 'portal/vite.lib.config.ts', '--logLevel', 'warn'],
  },
  {
    output: 'example/dist/index.html',
    sources: ['example/src', 'example/index.html', 'example/iframe.html', 'example/vite.config.ts', 'dist-lib/keyward-portal.js'],
    args: ['build', '--config', 'portal/example/vite.config.ts', '--logLevel', 'warn'],
  },
];

/** Runs each build whose output is missing or older than a source, in order (the example needs dist-lib). */
export function ensurePortalBuilds(): void {
  for (const b of BUILDS) {
    const out = path.join(PORTAL_DIR, b.output);
    const built = existsSync(out) ? statSync(out).mtimeMs : 0;
    const src = Math.max(...b.sources.map((s) => newest(path.join(PORTAL_DIR, s))));
    if (built >= src) continue;
    execFileSync(process.execPath, [VITE, ...b.args], { cwd: REPO_DIR, stdio: ['ignore', 'ignore', 'inherit'] });
  }
}
