// The example host app's backend: serves the built pages (portal/example/dist)
// and, for its signed-in user, mints a Keyward portal session with an SDK key
// that never leaves this server. Run:
//
//   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_SDK_KEY=kws_... \
//   WORKSPACE_ID=... CUSTOMER_ID=cus_123 ALLOWED_GRANTS=orders:read,orders:create \
//   PORT=3000 node portal/example/server.mjs
//
// and start Keyward with KEYWARD_PORTAL_ORIGINS=http://127.0.0.1:3000.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('./dist/', import.meta.url));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json', '.svg': 'image/svg+xml' };

/**
 * Mints a portal token for one customer: PortalService.CreatePortalSession in
 * the Connect protocol's JSON form, which is a plain POST any backend can make.
 * @param {{ keywardUrl: string, sdkKey: string, workspaceId: string, customerId: string, allowedGrants?: string[], ttlSeconds?: number }} c
 * @returns {Promise<{ token: string, expireTime: string }>}
 */
export async function createPortalSession(c) {
  const res = await fetch(`${c.keywardUrl}/keyward.v1.PortalService/CreatePortalSession`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${c.sdkKey}` },
    body: JSON.stringify({
      workspaceId: c.workspaceId,
      customerId: c.customerId,
      allowedGrants: grantsOf(c.allowedGrants ?? []),
      ttl: `${c.ttlSeconds ?? 900}s`,
    }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`CreatePortalSession: ${body.code}: ${body.message}`);
  return body;
}

const STANDARD = new Set(['read', 'create', 'update', 'delete']);

/**
 * Permission strings to Grant JSON: `orders:read` → `{ scope: 'orders', actions: ['ACTION_READ'] }`,
 * an action of the scope's own (`inference:write`) → `customActions: ['write']`, a bare scope
 * (`admin`) → `allActions: true`.
 */
function grantsOf(permissions) {
  const by = new Map();
  for (const p of permissions) {
    const i = p.indexOf(':');
    const scope = i < 0 ? p : p.slice(0, i);
    const g = by.get(scope) ?? { scope, actions: [], customActions: [], allActions: false };
    if (i < 0) g.allActions = true;
    else if (STANDARD.has(p.slice(i + 1))) g.actions.push(`ACTION_${p.slice(i + 1).toUpperCase()}`);
    else g.customActions.push(p.slice(i + 1));
    by.set(scope, g);
  }
  return [...by.values()];
}

/**
 * The host app's HTTP server. `config()` is read per request, so a test can
 * start the server first (to learn its origin) and configure it afterwards.
 * @param {() => { keywardUrl: string, sdkKey: string, workspaceId: string, customerId: string, allowedGrants?: string[] }} config
 */
export function createHostServer(config) {
  return createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://host');
      if (url.pathname === '/api/keyward-session' && req.method === 'POST') {
        // A real app checks its own login here and uses that user's customer id.
        const c = config();
        const { token } = await createPortalSession(c);
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ token, baseUrl: c.keywardUrl }));
        return;
      }
      const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).replace(/^\/+/, '');
      const file = path.join(DIST, rel);
      if (!file.startsWith(DIST)) throw Object.assign(new Error('bad path'), { status: 400 });
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch (e) {
      const status = e?.status ?? (e?.code === 'ENOENT' ? 404 : 500);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 404 ? 'not found' : status === 400 ? 'bad request' : 'error');
      if (status === 500) console.error('example host:', e?.message);
    }
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const env = process.env;
  for (const k of ['KEYWARD_URL', 'KEYWARD_SDK_KEY', 'WORKSPACE_ID', 'CUSTOMER_ID']) {
    if (!env[k]) {
      console.error(`set ${k}`);
      process.exit(2);
    }
  }
  const port = Number(env.PORT ?? 3000);
  createHostServer(() => ({
    keywardUrl: env.KEYWARD_URL.replace(/\/+$/, ''),
    sdkKey: env.KEYWARD_SDK_KEY,
    workspaceId: env.WORKSPACE_ID,
    customerId: env.CUSTOMER_ID,
    allowedGrants: (env.ALLOWED_GRANTS ?? '').split(',').filter(Boolean),
  })).listen(port, '127.0.0.1', () => console.log(`example host on http://127.0.0.1:${port}`));
}
