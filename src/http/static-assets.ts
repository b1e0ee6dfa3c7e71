// The browser surfaces, built by Vite (`npm run build:ui`) and served from
// the RPC port: the operator console at /console/ and the customer portal at
// /portal/. Files under assets/ have content hashes in their names and are
// cached for good; index.html is revalidated on every load. A path that names
// no file and has no extension is the single-page app's own route, answered
// with index.html.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

export interface StaticApp {
  /** The URL prefix, e.g. `/console`. */
  prefix: string;
  /** The built files. */
  dir: string;
  /** Who may frame it: CSP frame-ancestors sources. */
  frameAncestors: string;
}

export interface StaticAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

function csp(frameAncestors: string): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors}`,
  ].join('; ');
}

/** The console (never framed) and the portal (framed by its own origin and KEYWARD_PORTAL_ORIGINS). */
export function browserApps(portalOrigins: readonly string[]): StaticApp[] {
  return [
    { prefix: '/console', dir: path.join(REPO_ROOT, 'console/dist'), frameAncestors: "'none'" },
    { prefix: '/portal', dir: path.join(REPO_ROOT, 'portal/dist'), frameAncestors: ["'self'", ...portalOrigins].join(' ') },
  ];
}

export function staticAppOf(apps: readonly StaticApp[], urlPath: string): StaticApp | undefined {
  return apps.find((a) => urlPath === a.prefix || urlPath.startsWith(`${a.prefix}/`));
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** Answers a GET or HEAD of a path under `app.prefix`. */
export async function serveStatic(app: StaticApp, urlPath: string): Promise<StaticAnswer> {
  const security = {
    'content-security-policy': csp(app.frameAncestors),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  if (urlPath === app.prefix) return { status: 308, headers: { location: `${app.prefix}/` }, body: '' };
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.slice(app.prefix.length + 1));
  } catch {
    return { status: 400, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'bad path' };
  }
  const file = path.resolve(app.dir, rel);
  if (rel.includes('\0') || (file !== app.dir && !file.startsWith(app.dir + path.sep))) {
    return { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'not found' };
  }
  const index = path.join(app.dir, 'index.html');
  if (!(await isFile(index))) {
    const body = `${app.prefix}/ is not built: run "npm run build:ui" (npm start does it when needed)\n`;
    return { status: 503, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body };
  }
  const found = rel !== '' && (await isFile(file)) ? file : path.extname(rel) === '' ? index : undefined;
  if (!found) return { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8', ...security }, body: 'not found' };
  const immutable = found.startsWith(path.join(app.dir, 'assets') + path.sep);
  return {
    status: 200,
    headers: {
      'content-type': TYPES[path.extname(found)] ?? 'application/octet-stream',
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      ...security,
    },
    body: await readFile(found),
  };
}
