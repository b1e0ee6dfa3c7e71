// The gateway configurations in deploy/gateways/, run as shipped: Debian's
// nginx and Caddy with the files exactly as they are in the repository (only
// the ports, addresses and SDK key filled in), in front of a real Keyward and
// a node:http upstream that echoes what it received. Traefik and Envoy are not
// Debian packages: their files are parsed and checked, not run.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { announceSkip, ensureDebianPackages, hasCommand } from '../../test/support/debian.js';
import { freePort } from '../../test/support/process.js';
import { awayFromWindowEnd } from '../../test/support/redis.js';
import { client, startTestServer, type TestServer } from '../../test/support/server.js';
import { parseYaml } from './yaml.js';

const GATEWAYS = path.resolve(import.meta.dirname, '../gateways');
const shipped = (name: string) => readFileSync(path.join(GATEWAYS, name), 'utf8');

let ts: TestServer;
let gatewayKey: string;
let ws: string;
let upstream: http.Server;
let upstreamPort: number;
/** What the upstream received, newest last. */
const seen: { method: string; url: string; headers: http.IncomingHttpHeaders }[] = [];

const HOUR_MS = 3600_000;
const READ = [{ scope: 'balance_transfers', actions: [Action.READ] }];

async function newKey(opts: { rateLimitPerHour?: number; remainingUses?: bigint } = {}) {
  const r = await client(KeyService, ts).createKey({
    key: {
      workspaceId: ws,
      customerId: 'cus_42',
      name: 'gateway test',
      grants: READ,
      rateLimits: opts.rateLimitPerHour ? [{ name: 'per_hour', limit: BigInt(opts.rateLimitPerHour), duration: durationFromMs(HOUR_MS) }] : [],
      remainingUses: opts.remainingUses,
    },
  });
  return { id: r.key!.id, secret: r.secret };
}

beforeAll(async () => {
  ts = await startTestServer();
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'gateways' } })).workspace!.id;
  await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'balance_transfers' } });
  gatewayKey = await ts.sdkKey(['api_keys:verify']);
  upstream = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: true, path: req.url }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  upstreamPort = (upstream.address() as { port: number }).port;
});

afterAll(async () => {
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  await ts?.close();
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/** Keyward's refusal as the client must see it: the status, its JSON body and X-Keyward-Code, not a gateway's page. */
function expectKeywardRefusal(r: Reply, status: number, code: string): void {
  expect(r.status, r.body).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(r.body) as { code: string; message: string };
  expect(body.code).toBe(code);
  expect(body.message).toMatch(/\S/);
  expect(r.headers['x-keyward-code']).toBe(code);
}

/** A gateway child process: started, waited for, stopped. */
interface Gateway {
  url: string;
  stop(): Promise<void>;
}

async function startGateway(name: string, command: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; port: number }): Promise<Gateway> {
  // stdout (where the files send access logs) into a file: a gateway opening
  // /dev/stdout cannot open the socket Node would give it as a pipe.
  const stdoutFd = openSync(path.join(opts.cwd, 'stdout.log'), 'a');
  const child: ChildProcess = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', stdoutFd, 'pipe'] });
  closeSync(stdoutFd);
  let output = '';
  child.stderr!.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${opts.port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${output}`);
    const up = await request(`${url}/public/ping`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // Alerts and worse mean the file did not do what it says.
      if (/\[(emerg|alert|crit)\]|"level":"(error|fatal)"/.test(output)) process.stderr.write(`${name} output:\n${output}\n`);
    },
  };
}

/**
 * The checks every gateway must pass. `limitFieldsOnSuccess`: whether the
 * client sees RateLimit-* on a 2xx (nginx adds them; Caddy copies headers of a
 * 2xx only to the upstream request).
 */
function gatewayChecks(gateway: () => Gateway, opts: { limitFieldsOnSuccess: boolean }) {
  const get = (p: string, headers: Record<string, string> = {}, method = 'GET') => request(`${gateway().url}${p}`, { method, headers });

  it('a valid key: 200 from the upstream, which gets the key’s identity (forged identity headers replaced) and never the SDK key', async () => {
    const k = await newKey();
    seen.length = 0;
    const r = await get('/transfers/1', { authorization: `Bearer ${k.secret}`, 'x-keyward-key-id': 'forged', 'x-keyward-customer-id': 'forged' });
    expect(r.status, r.body).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ upstream: true, path: '/transfers/1' });
    expect(seen).toHaveLength(1);
    const h = seen[0]!.headers;
    expect([h['x-keyward-key-id'], h['x-keyward-customer-id'], h['x-keyward-workspace-id']]).toEqual([k.id, 'cus_42', ws]);
    expect(JSON.stringify(h)).not.toContain(gatewayKey);
    // X-API-Key works too, and a route without a permission takes any valid key.
    expect((await get('/anything', { 'x-api-key': k.secret })).status).toBe(200);
  });

  it('no key: 401 with Keyward’s JSON body, X-Keyward-Code and the Bearer challenge; the upstream is not asked', async () => {
    seen.length = 0;
    const r = await get('/transfers/1');
    expectKeywardRefusal(r, 401, 'missing_key');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keyward"');
    expect(seen).toHaveLength(0);
  });

  it('an unknown key: 401 not_found with the invalid_token challenge', async () => {
    const r = await get('/transfers/1', { authorization: `Bearer kw_${'B'.repeat(49)}` });
    expectKeywardRefusal(r, 401, 'not_found');
    expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="keyward", error="invalid_token"/);
  });

  it('a permission the route needs and the key lacks: 403 JSON; a client cannot lower what the route requires', async () => {
    const k = await newKey();
    seen.length = 0;
    // POST /transfers/ needs balance_transfers:create; the key may only read.
    const r = await get('/transfers/1', { authorization: `Bearer ${k.secret}` }, 'POST');
    expectKeywardRefusal(r, 403, 'insufficient_permissions');
    const forged = await get('/transfers/1', { authorization: `Bearer ${k.secret}`, 'x-keyward-permissions': 'balance_transfers:read' }, 'POST');
    expectKeywardRefusal(forged, 403, 'insufficient_permissions');
    expect(seen).toHaveLength(0);
  });

  it('a rate-limited key: 429 with Retry-After, RateLimit-* and Keyward’s JSON; only the admitted requests reach the upstream', async () => {
    await awayFromWindowEnd(HOUR_MS, 10_000);
    const k = await newKey({ rateLimitPerHour: 2 });
    seen.length = 0;
    const answers: Reply[] = [];
    // A client's X-Keyward-Cost: 0 (check without using up) is overwritten by the gateway.
    for (let i = 0; i < 3; i++) answers.push(await get('/transfers/9', { authorization: `Bearer ${k.secret}`, 'x-keyward-cost': '0' }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429]);
    expect(seen).toHaveLength(2);
    const limited = answers[2]!;
    expectKeywardRefusal(limited, 429, 'rate_limited');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect([limited.headers['ratelimit-limit'], limited.headers['ratelimit-remaining'], limited.headers['ratelimit-reset']]).toEqual([
      '2',
      '0',
      String(retryAfter),
    ]);
    if (opts.limitFieldsOnSuccess) {
      expect(answers.slice(0, 2).map((a) => [a.headers['ratelimit-limit'], a.headers['ratelimit-remaining']])).toEqual([
        ['2', '1'],
        ['2', '0'],
      ]);
    }
  });

  it('a spent usage-limited key: 429 usage_exceeded, no Retry-After', async () => {
    const k = await newKey({ remainingUses: 1n });
    expect((await get('/transfers/10', { 'x-api-key': k.secret })).status).toBe(200);
    const spent = await get('/transfers/10', { 'x-api-key': k.secret });
    expectKeywardRefusal(spent, 429, 'usage_exceeded');
    expect(spent.headers['retry-after']).toBeUndefined();
    expect(spent.headers['x-keyward-remaining-uses']).toBe('0');
  });

  it('a revoked key is refused on the next request', async () => {
    const k = await newKey();
    expect((await get('/transfers/3', { authorization: `Bearer ${k.secret}` })).status).toBe(200);
    await client(KeyService, ts).revokeKey({ id: k.id });
    expectKeywardRefusal(await get('/transfers/3', { authorization: `Bearer ${k.secret}` }), 401, 'revoked');
  });
}

/** The placeholders the shipped files use, and this test's values for them. */
const placeholders = () => ({
  KEYWARD_HOST: '127.0.0.1',
  KEYWARD_PORT: String(ts.server.port),
  APP_HOST: '127.0.0.1',
  APP_PORT: String(upstreamPort),
  KEYWARD_GATEWAY_SDK_KEY: gatewayKey,
});

/** What `envsubst '${A} ${B} ...'` does: replaces ${NAME} for the listed names only. */
function envsubst(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (whole, name: string) => values[name] ?? whole);
}

// ---------------------------------------------------------------------------

const NGINX = '/usr/sbin/nginx';
const nginxMissing = ensureDebianPackages(['nginx'], () => hasCommand(NGINX, ['-v']));
if (nginxMissing) announceSkip('deploy/gateways/nginx.conf behind a real nginx', nginxMissing);

/** nginx on the shipped nginx.conf with `values` filled in, in a temporary directory of its own. */
async function startNginx(values: Record<string, string>): Promise<Gateway> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keyward-deploy-nginx-'));
  const port = await freePort();
  const conf = envsubst(shipped('nginx.conf'), { ...values, GATEWAY_PORT: String(port) });
  // Every placeholder is filled: nothing in ${...} form is left outside comments.
  expect(conf.split('\n').filter((l) => !/^\s*#/.test(l) && /\$\{/.test(l))).toEqual([]);
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  // The pid file and the startup error log are not in the shipped file: here they go to the temporary directory.
  const g = await startGateway('nginx', NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr', '-g', `daemon off; pid ${dir}/nginx.pid;`], {
    cwd: dir,
    port,
  });
  return {
    url: g.url,
    async stop() {
      await g.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe.skipIf(!!nginxMissing)('deploy/gateways/nginx.conf, run by nginx', () => {
  let nginx: Gateway;

  beforeAll(async () => {
    nginx = await startNginx(placeholders());
  });

  afterAll(async () => {
    await nginx?.stop();
  });

  gatewayChecks(() => nginx, { limitFieldsOnSuccess: true });

  it('keeps the identity of a refused key between nginx and Keyward', async () => {
    const k = await newKey();
    const r = await request(`${nginx.url}/transfers/1`, { method: 'DELETE', headers: { authorization: `Bearer ${k.secret}` } });
    expectKeywardRefusal(r, 403, 'insufficient_permissions');
    expect(r.headers['x-keyward-key-id']).toBeUndefined();
    expect(r.headers['cache-control']).toBe('no-store');
    // Each field once: nginx's copy of the first answer's fields and the second answer's are not both sent.
    const none = await request(`${nginx.url}/transfers/1`);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="keyward"');
  });

  it('a wrong SDK key in the configuration lets nothing through: 401 in the gateway realm, as Keyward answers it', async () => {
    const misconfigured = await startNginx({ ...placeholders(), KEYWARD_GATEWAY_SDK_KEY: 'kws_00000000-0000-0000-0000-000000000000_wrong' });
    try {
      const k = await newKey();
      seen.length = 0;
      const r = await request(`${misconfigured.url}/transfers/1`, { headers: { authorization: `Bearer ${k.secret}` } });
      expectKeywardRefusal(r, 401, 'gateway_unauthenticated');
      expect(r.headers['www-authenticate']).toMatch(/^KeywardSDK realm="keyward-gateway"/);
      expect(seen).toHaveLength(0);
    } finally {
      await misconfigured.stop();
    }
  });

  it('Keyward unreachable: 502 with a JSON body, never the upstream', async () => {
    const cut = await startNginx({ ...placeholders(), KEYWARD_PORT: String(await freePort()) });
    try {
      const k = await newKey();
      seen.length = 0;
      const r = await request(`${cut.url}/transfers/1`, { headers: { authorization: `Bearer ${k.secret}` } });
      expect(r.status).toBe(502);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(r.body).code).toBe('bad_gateway');
      expect(seen).toHaveLength(0);
    } finally {
      await cut.stop();
    }
  });
});

// ---------------------------------------------------------------------------

const CADDY = '/usr/bin/caddy';
const caddyMissing = ensureDebianPackages(['caddy'], () => hasCommand(CADDY, ['version']));
if (caddyMissing) announceSkip('deploy/gateways/Caddyfile behind a real Caddy', caddyMissing);

describe.skipIf(!!caddyMissing)('deploy/gateways/Caddyfile, run by Caddy', () => {
  let dir: string;
  let caddy: Gateway;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyward-deploy-caddy-'));
    const port = await freePort();
    const env = {
      ...process.env,
      ...placeholders(),
      GATEWAY_PORT: String(port),
      CADDY_ADMIN: `127.0.0.1:${await freePort()}`,
      // Caddy keeps its state under HOME / XDG_*: a directory of this test's own.
      HOME: dir,
      XDG_CONFIG_HOME: dir,
      XDG_DATA_HOME: dir,
    };
    // The shipped file itself: Caddy fills its {$NAME} placeholders from the environment.
    caddy = await startGateway('caddy', CADDY, ['run', '--config', path.join(GATEWAYS, 'Caddyfile'), '--adapter', 'caddyfile'], { cwd: dir, env, port });
  });

  afterAll(async () => {
    await caddy?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  gatewayChecks(() => caddy, { limitFieldsOnSuccess: false });
});

// ---------------------------------------------------------------------------
// Traefik and Envoy are not Debian packages: these tests parse their files and
// check what they ask of Keyward, but do not run them.

type Node = Record<string, unknown>;
const at = (root: unknown, ...keys: (string | number)[]): unknown =>
  keys.reduce<unknown>((n, k) => (n === null || typeof n !== 'object' ? undefined : (n as Node)[k]), root);

describe('deploy/gateways/traefik (parsed, not run)', () => {
  it('the static configuration has an entry point and loads the dynamic file', () => {
    const s = parseYaml(shipped('traefik/traefik.yml'))[0];
    expect(at(s, 'entryPoints', 'web', 'address')).toMatch(/^:\d+$/);
    expect(at(s, 'providers', 'file', 'filename')).toMatch(/dynamic\.yml$/);
  });

  it('the dynamic configuration sets the gateway’s headers, asks /v1/authorize, copies the identity and strips the SDK key', () => {
    const d = parseYaml(shipped('traefik/dynamic.yml'))[0];
    const mw = at(d, 'http', 'middlewares') as Node;
    const fa = at(mw, 'keyward', 'forwardAuth') as Node;
    expect(fa.address).toMatch(/\/v1\/authorize$/);
    expect(fa.authResponseHeaders).toEqual(['X-Keyward-Key-Id', 'X-Keyward-Customer-Id', 'X-Keyward-Workspace-Id']);
    const setters = Object.entries(mw).filter(([name]) => name.startsWith('keyward-set-'));
    expect(setters.length).toBeGreaterThan(0);
    for (const [, m] of setters) {
      const h = at(m, 'headers', 'customRequestHeaders') as Node;
      expect(Object.keys(h).sort()).toEqual(['X-Keyward-Cost', 'X-Keyward-Permissions', 'X-Keyward-Require-Workspace-Id', 'X-Keyward-SDK-Key']);
      expect(h['X-Keyward-SDK-Key']).toContain('KEYWARD_GATEWAY_SDK_KEY');
    }
    expect(at(mw, 'keyward-strip', 'headers', 'customRequestHeaders', 'X-Keyward-SDK-Key')).toBe('');
    // Every protected router: set, then ask, then strip, in that order.
    const routers = at(d, 'http', 'routers') as Node;
    for (const [name, r] of Object.entries(routers)) {
      const chain = at(r, 'middlewares') as string[] | undefined;
      if (name === 'public') expect(chain).toBeUndefined();
      else expect(chain!.slice(1), name).toEqual(['keyward', 'keyward-strip']);
      if (chain) expect(chain[0]).toMatch(/^keyward-set-/);
      expect(at(r, 'service')).toBe('app');
    }
  });
});

describe('deploy/gateways/envoy.yaml (parsed, not run)', () => {
  it('an HTTP ext_authz filter to /v1/authorize that sends the key, sets the gateway’s headers and passes refusals through', () => {
    // As Envoy reads it: with the placeholders replaced (a port is a number then).
    const values = { GATEWAY_PORT: '8000', KEYWARD_HOST: 'keyward', KEYWARD_PORT: '8080', APP_HOST: 'app', APP_PORT: '3000', KEYWARD_GATEWAY_SDK_KEY: 'kws_x' };
    const text = envsubst(shipped('envoy.yaml'), values);
    expect(text.split('\n').filter((l) => !/^\s*#/.test(l) && /\$\{/.test(l))).toEqual([]);
    const e = parseYaml(text)[0];
    expect(at(e, 'static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value')).toBe(8000);
    const listener = at(e, 'static_resources', 'listeners', 0);
    const hcm = at(listener, 'filter_chains', 0, 'filters', 0, 'typed_config') as Node;
    const filters = hcm.http_filters as Node[];
    expect(filters.map((f) => f.name)).toEqual(['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router']);
    const authz = filters[1]!.typed_config as Node;
    expect(authz.failure_mode_allow).toBe(false);
    expect(at(authz, 'http_service', 'path_prefix')).toBe('/v1/authorize');
    const sent = (at(authz, 'http_service', 'authorization_request', 'allowed_headers', 'patterns') as Node[]).map((p) => p.exact);
    expect(sent).toEqual(expect.arrayContaining(['authorization', 'x-api-key', 'x-keyward-permissions']));
    const added = (at(authz, 'http_service', 'authorization_request', 'headers_to_add') as Node[]).map((h) => h.key);
    expect(added).toEqual(expect.arrayContaining(['x-keyward-sdk-key', 'x-keyward-cost']));
    const toClient = JSON.stringify(at(authz, 'http_service', 'authorization_response', 'allowed_client_headers'));
    for (const h of ['content-type', 'www-authenticate', 'x-keyward-code', 'retry-after', 'ratelimit-']) expect(toClient).toContain(h);
    const clusters = (at(e, 'static_resources', 'clusters') as Node[]).map((c) => c.name);
    expect(clusters).toEqual(expect.arrayContaining(['keyward', 'app']));
    expect(at(authz, 'http_service', 'server_uri', 'cluster')).toBe('keyward');
  });
});
