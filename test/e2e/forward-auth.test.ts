// Forward auth (GET /v1/authorize): straight over HTTP/1.1 and h2c, and end to
// end behind a real nginx (`auth_request`) in front of a node:http upstream.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action, type ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { hashApiKey } from '../../src/credentials/api-key.js';
import { constrainingLimit, forwardAuthStatus } from '../../src/http/forward-auth.js';
import { announceSkip, ensureDebianPackages, hasCommand } from '../support/debian.js';
import { freePort } from '../support/process.js';
import { awayFromWindowEnd, currentWindowEnd } from '../support/redis.js';
import { httpRequest, newKey } from '../support/fixtures.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
let gatewayKey: string;
let ws: string;
let otherWs: string;
const K = () => client(KeyService, ts);

type ApiKey = MessageInitShape<typeof ApiKeySchema>;
const MINUTE_MS = 60_000;
const HOUR_MS = 3600_000;
const rateLimit = (name: string, n: number, ms: number) => ({ name, limit: BigInt(n), duration: durationFromMs(ms) });
const READ = [{ scope: 'balance_transfers', actions: [Action.READ] }];

/** A key with these grants, in `ws` and for cus_42 unless told otherwise. */
const keyWith = (
  grants: { scope: string; actions: Action[] }[],
  opts: { enabled?: boolean; workspaceId?: string; customerId?: string; limits?: Pick<ApiKey, 'rateLimits' | 'remainingUses'> } = {},
) =>
  newKey(K(), {
    workspaceId: opts.workspaceId ?? ws,
    customerId: opts.customerId ?? 'cus_42',
    name: 'fa',
    grants,
    enabled: opts.enabled ?? true,
    ...opts.limits,
  });

beforeAll(async () => {
  ts = await startTestServer();
  const W = client(WorkspaceService, ts);
  const S = client(ScopeService, ts);
  ws = (await W.createWorkspace({ workspace: { name: 'forward-auth' } })).workspace!.id;
  otherWs = (await W.createWorkspace({ workspace: { name: 'forward-auth-other' } })).workspace!.id;
  await S.createScope({ scope: { workspaceId: ws, name: 'balance_transfers' } });
  await S.createScope({ scope: { workspaceId: otherWs, name: 'balance_transfers' } });
  gatewayKey = await ts.sdkKey(['api_keys:verify']);
});

afterAll(async () => {
  await ts?.close();
});

const authorize = (headers: Record<string, string>, method = 'GET', pathname = '/v1/authorize') =>
  httpRequest(`${ts.baseUrl}${pathname}`, { method, headers: { 'x-keyward-sdk-key': gatewayKey, ...headers } });

describe('forward auth over HTTP/1.1', () => {
  it('a valid key with the required permissions → 200 with the identity headers', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }], { customerId: 'cus_ünïcode 42' });
    const r = await authorize({ authorization: `Bearer ${k.secret}`, 'x-keyward-permissions': 'balance_transfers:read' });
    expect(r.status, r.body).toBe(200);
    expect(r.headers['x-keyward-key-id']).toBe(k.id);
    expect(r.headers['x-keyward-workspace-id']).toBe(ws);
    expect(r.headers['x-keyward-customer-id']).toBe(encodeURIComponent('cus_ünïcode 42'));
    expect(r.headers['x-keyward-code']).toBe('valid');
    expect(r.body).not.toContain(k.secret);
  });

  it('takes the key from X-API-Key, any method, and any path below /v1/authorize (Envoy appends the original)', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ, Action.CREATE] }]);
    for (const method of ['GET', 'POST', 'DELETE', 'HEAD']) {
      const r = await authorize(
        { 'x-api-key': k.secret, 'x-keyward-permissions': 'balance_transfers:create, balance_transfers:read' },
        method,
        '/v1/authorize/transfers/7?x=1',
      );
      expect(r.status, `${method} ${r.body}`).toBe(200);
      expect(r.headers['x-keyward-key-id']).toBe(k.id);
    }
  });

  it('no key → 401 with a bare Bearer challenge', async () => {
    const r = await authorize({});
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keyward"');
    expect(JSON.parse(r.body).code).toBe('missing_key');
  });

  it('unknown, malformed, disabled and revoked keys → 401 invalid_token saying why', async () => {
    const disabled = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }], { enabled: false });
    const revoked = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    await K().revokeKey({ id: revoked.id });
    const cases = [
      ['kw_notakey', 'not_found'],
      [`kw_${'A'.repeat(49)}`, 'not_found'],
      [disabled.secret, 'disabled'],
      [revoked.secret, 'revoked'],
    ] as const;
    for (const [key, code] of cases) {
      const r = await authorize({ authorization: `Bearer ${key}` });
      expect(r.status, code).toBe(401);
      expect(r.headers['x-keyward-code']).toBe(code);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="keyward", error="invalid_token", error_description="[^"]+"$/);
      expect(r.headers['x-keyward-key-id']).toBeUndefined();
    }
  });

  it('a key without a required permission → 403', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    const r = await authorize({ authorization: `Bearer ${k.secret}`, 'x-keyward-permissions': 'balance_transfers:read,balance_transfers:delete' });
    expect(r.status).toBe(403);
    expect(r.headers['x-keyward-code']).toBe('insufficient_permissions');
  });

  it('X-Keyward-Require-Workspace-Id: another workspace’s key → 401 not_found', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }], { workspaceId: otherWs });
    expect((await authorize({ authorization: `Bearer ${k.secret}` })).status).toBe(200);
    const r = await authorize({ authorization: `Bearer ${k.secret}`, 'x-keyward-require-workspace-id': ws });
    expect(r.status).toBe(401);
    expect(r.headers['x-keyward-code']).toBe('not_found');
  });

  it('the gateway’s SDK key: missing or invalid → 401 in the gateway realm; lacking api_keys:verify → 403; never 200', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    const lacking = await ts.sdkKey(['api_keys:read']);
    const restricted = await ts.sdkKey(['api_keys:verify'], [otherWs]);
    const missing = await httpRequest(`${ts.baseUrl}/v1/authorize`, { headers: { authorization: `Bearer ${k.secret}` } });
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('KeywardSDK realm="keyward-gateway"');
    expect(missing.headers['x-keyward-code']).toBe('gateway_unauthenticated');
    for (const bad of ['nope', `${gatewayKey.slice(0, -4)}AAAA`]) {
      const r = await authorize({ 'x-keyward-sdk-key': bad, authorization: `Bearer ${k.secret}` });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toMatch(/^KeywardSDK realm="keyward-gateway"/);
    }
    const r = await authorize({ 'x-keyward-sdk-key': lacking, authorization: `Bearer ${k.secret}` });
    expect(r.status).toBe(403);
    expect(r.headers['x-keyward-code']).toBe('gateway_permission_denied');
    expect((await authorize({ 'x-keyward-sdk-key': lacking })).status).toBe(403);
    // A key restricted to other workspaces sees this key as absent.
    const other = await authorize({ 'x-keyward-sdk-key': restricted, authorization: `Bearer ${k.secret}` });
    expect(other.status).toBe(401);
    expect(other.headers['x-keyward-code']).toBe('not_found');
  });

  it('a malformed permissions header → 400 naming the header', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    const r = await authorize({ authorization: `Bearer ${k.secret}`, 'x-keyward-permissions': 'balance_transfers:read,transfers:Fly' });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body).message).toMatch(/^x-keyward-permissions/);
  });

  it('shares VerifyKey’s cache: a revoked key is refused on the next request', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    expect((await authorize({ authorization: `Bearer ${k.secret}` })).status).toBe(200);
    // The verdict came through VerifyKey's cache, which the revocation evicts.
    expect(ts.internals.keyCache.peek(hashApiKey(k.secret))?.id).toBe(k.id);
    await K().revokeKey({ id: k.id });
    const r = await authorize({ authorization: `Bearer ${k.secret}` });
    expect(r.status).toBe(401);
    expect(r.headers['x-keyward-code']).toBe('revoked');
  });

  it('maps every verify code, including ones added later (rate_limited, usage_exceeded), and refuses unknown ones', () => {
    expect(
      ['valid', 'not_found', 'disabled', 'expired', 'revoked', 'insufficient_permissions', 'rate_limited', 'usage_exceeded', 'something_new'].map(
        forwardAuthStatus,
      ),
    ).toEqual([200, 401, 401, 401, 401, 403, 429, 429, 403]);
  });
});

/** The limit-related headers of an answer, absent ones left out. */
const LIMIT_HEADERS = ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'retry-after', 'x-keyward-remaining-uses'] as const;
const limitHeaders = (r: { headers: http.IncomingHttpHeaders }) =>
  Object.fromEntries(LIMIT_HEADERS.filter((h) => r.headers[h] !== undefined).map((h) => [h, r.headers[h]]));

/** Seconds until the current window of `ms` ends, as RateLimit-Reset counts them (rounded up). */
const resetSeconds = (ms: number) => Math.ceil((currentWindowEnd(ms).getTime() - Date.now()) / 1000);
/** A reset (or Retry-After) header of an answer given after `expected` was computed: at most it, and at most 2 s less. */
function expectResetNear(header: string | string[] | undefined, expected: number): void {
  expect(Number(header)).toBeGreaterThanOrEqual(expected - 2);
  expect(Number(header)).toBeLessThanOrEqual(expected);
}

describe('forward auth for keys with limits', () => {
  it('a key with a rate limit of 3 a minute: 3 × 200 with RateLimit-Remaining 2, 1, 0, then 429 rate_limited with Retry-After', async () => {
    await awayFromWindowEnd(MINUTE_MS, 10_000);
    const k = await keyWith(READ, { limits: { rateLimits: [rateLimit('per_minute', 3, MINUTE_MS)] } });
    const expected = resetSeconds(MINUTE_MS);
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await authorize({ authorization: `Bearer ${k.secret}` }));
    expect(answers.map((r) => [r.status, r.headers['x-keyward-code'], r.headers['ratelimit-limit'], r.headers['ratelimit-remaining']])).toEqual([
      [200, 'valid', '3', '2'],
      [200, 'valid', '3', '1'],
      [200, 'valid', '3', '0'],
      [429, 'rate_limited', '3', '0'],
    ]);
    for (const r of answers) {
      expectResetNear(r.headers['ratelimit-reset'], expected);
      expect(r.headers['x-keyward-remaining-uses']).toBeUndefined();
    }
    for (const r of answers.slice(0, 3)) expect(r.headers['retry-after']).toBeUndefined();
    const limited = answers[3]!;
    expect(limited.headers['retry-after']).toBe(limited.headers['ratelimit-reset']);
    expect(limited.headers['x-keyward-key-id']).toBe(k.id);
    expect(JSON.parse(limited.body).code).toBe('rate_limited');
  });

  it('several limits: the fields describe the one closest to running out, and Retry-After the one that refused', async () => {
    await awayFromWindowEnd(MINUTE_MS, 10_000);
    await awayFromWindowEnd(HOUR_MS, 10_000);
    const k = await keyWith(READ, { limits: { rateLimits: [rateLimit('per_minute', 5, MINUTE_MS), rateLimit('per_hour', 2, HOUR_MS)] } });
    // The hour's reset, not the minute's (in the last minute of an hour both windows end together).
    const hourReset = resetSeconds(HOUR_MS);
    const first = await authorize({ authorization: `Bearer ${k.secret}` });
    expect([first.status, first.headers['ratelimit-limit'], first.headers['ratelimit-remaining']]).toEqual([200, '2', '1']);
    expectResetNear(first.headers['ratelimit-reset'], hourReset);
    await authorize({ authorization: `Bearer ${k.secret}` });
    const limited = await authorize({ authorization: `Bearer ${k.secret}` });
    expect([limited.status, limited.headers['ratelimit-limit'], limited.headers['ratelimit-remaining']]).toEqual([429, '2', '0']);
    // The per-hour limit refused it: retrying after the minute would not help.
    expectResetNear(limited.headers['retry-after'], hourReset);
  });

  it('a usage-limited key: X-Keyward-Remaining-Uses counts down, then 429 usage_exceeded without Retry-After', async () => {
    const k = await keyWith(READ, { limits: { remainingUses: 2n } });
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await authorize({ 'x-api-key': k.secret }));
    expect(answers.map((r) => [r.status, r.headers['x-keyward-code'], limitHeaders(r)])).toEqual([
      [200, 'valid', { 'x-keyward-remaining-uses': '1' }],
      [200, 'valid', { 'x-keyward-remaining-uses': '0' }],
      [429, 'usage_exceeded', { 'x-keyward-remaining-uses': '0' }],
    ]);
    expect(answers[2]!.headers['x-keyward-key-id']).toBe(k.id);
  });

  it('a key with both: a request refused for its uses gives back the rate limit, and says so', async () => {
    await awayFromWindowEnd(MINUTE_MS, 10_000);
    const k = await keyWith(READ, { limits: { rateLimits: [rateLimit('per_minute', 10, MINUTE_MS)], remainingUses: 1n } });
    const ok = await authorize({ 'x-api-key': k.secret });
    expect([ok.status, ok.headers['ratelimit-remaining'], ok.headers['x-keyward-remaining-uses']]).toEqual([200, '9', '0']);
    const spent = await authorize({ 'x-api-key': k.secret });
    expect([spent.status, spent.headers['x-keyward-code'], spent.headers['ratelimit-remaining'], spent.headers['x-keyward-remaining-uses']]).toEqual([
      429,
      'usage_exceeded',
      '9',
      '0',
    ]);
    expect(spent.headers['retry-after']).toBeUndefined();
  });

  it('X-Keyward-Cost takes that much (0 only checks), default 1', async () => {
    const k = await keyWith(READ, { limits: { remainingUses: 10n } });
    const uses = async (cost?: string) => {
      const r = await authorize(cost === undefined ? { 'x-api-key': k.secret } : { 'x-api-key': k.secret, 'x-keyward-cost': cost });
      return [r.status, r.headers['x-keyward-remaining-uses']];
    };
    expect(await uses('4')).toEqual([200, '6']);
    expect(await uses(' 0 ')).toEqual([200, '6']);
    expect(await uses()).toEqual([200, '5']);
    expect(await uses('6')).toEqual([429, '5']);
    expect(await uses('5')).toEqual([200, '0']);
    expect(await uses('0')).toEqual([429, '0']);
  });

  it('a malformed X-Keyward-Cost → 400 naming the header, consuming nothing', async () => {
    const k = await keyWith(READ, { limits: { remainingUses: 1n } });
    for (const bad of ['-1', '1.5', 'abc', '1e3', '0x10', '1000000001', '99999999999999999']) {
      const r = await authorize({ 'x-api-key': k.secret, 'x-keyward-cost': bad });
      expect(r.status, bad).toBe(400);
      expect(r.headers['x-keyward-code']).toBe('invalid_argument');
      expect(JSON.parse(r.body).message, bad).toMatch(/^x-keyward-cost: must be an integer from 0 to 10\^9/);
    }
    expect((await K().getKey({ id: k.id })).key!.remainingUses).toBe(1n);
  });

  it('a key without limits gets none of the limit fields, with or without a cost', async () => {
    const k = await keyWith(READ);
    for (const headers of [{}, { 'x-keyward-cost': '7' }] as Record<string, string>[]) {
      const r = await authorize({ 'x-api-key': k.secret, ...headers });
      expect(r.status).toBe(200);
      expect(limitHeaders(r)).toEqual({});
    }
  });

  it('picks the constraining limit: refusing ones first (latest reset), else fewest remaining (latest reset on a tie)', () => {
    const l = (name: string, remaining: number, resetMs: number, exceeded = false) => ({ name, limit: 10, remaining, resetMs, exceeded });
    expect(constrainingLimit([])).toBeUndefined();
    expect(constrainingLimit([l('a', 5, 1), l('b', 3, 2), l('c', 3, 1)])?.name).toBe('b');
    expect(constrainingLimit([l('a', 0, 1), l('b', 4, 9, true), l('c', 2, 5, true)])?.name).toBe('b');
  });
});

describe('forward auth over h2c', () => {
  it('answers on the same port over HTTP/2 cleartext', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    const session = http2.connect(ts.baseUrl);
    try {
      const reply = await new Promise<{ status: number; headers: http2.IncomingHttpHeaders }>((resolve, reject) => {
        const s = session.request({ ':path': '/v1/authorize', ':method': 'GET', 'x-keyward-sdk-key': gatewayKey, 'x-api-key': k.secret });
        s.on('response', (headers) => resolve({ status: Number(headers[':status']), headers }));
        s.on('error', reject);
        s.resume();
        s.end();
      });
      expect(reply.status).toBe(200);
      expect(reply.headers['x-keyward-key-id']).toBe(k.id);
    } finally {
      session.close();
    }
  });
});

// ---------------------------------------------------------------------------
// A real nginx with auth_request in front of a node:http upstream.

const NGINX = '/usr/sbin/nginx';
const nginxMissing = ensureDebianPackages(['nginx'], () => hasCommand(NGINX, ['-v']));
if (nginxMissing) announceSkip('forward auth behind nginx', nginxMissing);

describe.skipIf(!!nginxMissing)('behind a real nginx (auth_request)', () => {
  let dir: string;
  let nginx: ChildProcess | undefined;
  let nginxLog = '';
  let upstream: http.Server;
  let gatewayUrl: string;
  const seen: http.IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.url, keyId: req.headers['x-keyward-key-id'] ?? null }));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const upstreamPort = (upstream.address() as { port: number }).port;
    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    dir = mkdtempSync(path.join(tmpdir(), 'keyward-nginx-'));
    mkdirSync(path.join(dir, 'logs'));
    const conf = nginxConf({ dir, port, keywardPort: ts.server.port, upstreamPort, sdkKey: gatewayKey });
    writeFileSync(path.join(dir, 'nginx.conf'), conf);
    nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout!.on('data', (d) => (nginxLog += d));
    nginx.stderr!.on('data', (d) => (nginxLog += d));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (nginx.exitCode !== null) throw new Error(`nginx exited ${nginx.exitCode}: ${nginxLog}`);
      const up = await httpRequest(`${gatewayUrl}/public`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (up) break;
      if (Date.now() > deadline) throw new Error(`nginx did not start: ${nginxLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx!.once('exit', r));
      nginx.kill('SIGQUIT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (nginx.exitCode === null) nginx.kill('SIGKILL');
    }
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    if (dir) {
      const errors = readFileSync(path.join(dir, 'logs/error.log'), 'utf8');
      if (/\[(emerg|alert|crit)\]/.test(errors)) process.stderr.write(`nginx error.log:\n${errors}\n`);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const get = (p: string, headers: Record<string, string> = {}) => httpRequest(`${gatewayUrl}${p}`, { headers });

  it('lets an allowed request through to the upstream with the identity headers, replacing forged ones', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    seen.length = 0;
    const r = await get('/transfers/1', { authorization: `Bearer ${k.secret}`, 'x-keyward-key-id': 'forged', 'x-keyward-customer-id': 'forged' });
    expect(r.status, r.body).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ path: '/transfers/1', keyId: k.id });
    expect(seen).toHaveLength(1);
    expect(seen[0]!['x-keyward-key-id']).toBe(k.id);
    expect(seen[0]!['x-keyward-customer-id']).toBe('cus_42');
    expect(seen[0]!['x-keyward-workspace-id']).toBe(ws);
    // The gateway's SDK key never reaches the upstream.
    expect(JSON.stringify(seen[0])).not.toContain(gatewayKey);
  });

  it('X-API-Key works through nginx too', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    expect((await get('/transfers/2', { 'x-api-key': k.secret })).status).toBe(200);
  });

  it('refuses without reaching the upstream: no key 401, unknown key 401, missing permission 403', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    seen.length = 0;
    const none = await get('/transfers/1');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="keyward"');
    const unknown = await get('/transfers/1', { authorization: `Bearer kw_${'B'.repeat(49)}` });
    expect(unknown.status).toBe(401);
    expect(unknown.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    // POST /transfers/ needs balance_transfers:create, which the key lacks.
    const post = await httpRequest(`${gatewayUrl}/transfers/1`, { method: 'POST', headers: { authorization: `Bearer ${k.secret}` } });
    expect(post.status).toBe(403);
    // A client cannot lower the permissions the route requires.
    const forged = await httpRequest(`${gatewayUrl}/transfers/1`, {
      method: 'POST',
      headers: { authorization: `Bearer ${k.secret}`, 'x-keyward-permissions': 'balance_transfers:read' },
    });
    expect(forged.status).toBe(403);
    expect(seen).toHaveLength(0);
  });

  it('a revoked key is refused on the next request', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    expect((await get('/transfers/3', { authorization: `Bearer ${k.secret}` })).status).toBe(200);
    await K().revokeKey({ id: k.id });
    const r = await get('/transfers/3', { authorization: `Bearer ${k.secret}` });
    expect(r.status).toBe(401);
  });

  it('a rate-limited key: 200s with the RateLimit fields at the client, then 429 (not 500) with Retry-After, never reaching the upstream', async () => {
    await awayFromWindowEnd(MINUTE_MS, 10_000);
    const k = await keyWith(READ, { limits: { rateLimits: [rateLimit('per_minute', 2, MINUTE_MS)] } });
    seen.length = 0;
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await get('/transfers/9', { authorization: `Bearer ${k.secret}` }));
    expect(answers.map((r) => [r.status, r.headers['ratelimit-limit'], r.headers['ratelimit-remaining']])).toEqual([
      [200, '2', '1'],
      [200, '2', '0'],
      [429, '2', '0'],
    ]);
    expect(seen).toHaveLength(2);
    const limited = answers[2]!;
    expect(limited.headers['x-keyward-code']).toBe('rate_limited');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.headers['ratelimit-reset']).toBe(limited.headers['retry-after']);
    expect(Number(answers[0]!.headers['ratelimit-reset'])).toBeGreaterThanOrEqual(retryAfter);
    // The identity stays between nginx and Keyward.
    expect(limited.headers['x-keyward-key-id']).toBeUndefined();
  });

  it('a spent usage-limited key: 429 usage_exceeded at the client; a client cannot lower its cost', async () => {
    const k = await keyWith(READ, { limits: { remainingUses: 1n } });
    // nginx sets X-Keyward-Cost itself, so a client's "0" (check only) is overwritten.
    const ok = await get('/transfers/10', { 'x-api-key': k.secret, 'x-keyward-cost': '0' });
    expect([ok.status, ok.headers['x-keyward-remaining-uses']]).toEqual([200, '0']);
    seen.length = 0;
    const spent = await get('/transfers/10', { 'x-api-key': k.secret });
    expect([spent.status, spent.headers['x-keyward-code'], spent.headers['x-keyward-remaining-uses']]).toEqual([429, 'usage_exceeded', '0']);
    expect(spent.headers['retry-after']).toBeUndefined();
    expect(seen).toHaveLength(0);
  });

  it('a key without limits: no limit fields at the client', async () => {
    const k = await keyWith(READ);
    const r = await get('/transfers/11', { 'x-api-key': k.secret });
    expect(r.status).toBe(200);
    expect(limitHeaders(r)).toEqual({});
  });

  it('a gateway configured with a bad SDK key lets nothing through (401 in the gateway realm)', async () => {
    const k = await keyWith([{ scope: 'balance_transfers', actions: [Action.READ] }]);
    seen.length = 0;
    const r = await get('/misconfigured/1', { authorization: `Bearer ${k.secret}` });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^KeywardSDK realm="keyward-gateway"/);
    expect(seen).toHaveLength(0);
  });
});

/** The nginx example in docs/gateways.md, with this test's ports and paths. */
function nginxConf(o: { dir: string; port: number; keywardPort: number; upstreamPort: number; sdkKey: string }): string {
  return `
worker_processes 1;
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log ${o.dir}/logs/access.log;
  client_body_temp_path ${o.dir}/body;
  proxy_temp_path ${o.dir}/proxy;
  fastcgi_temp_path ${o.dir}/fastcgi;
  uwsgi_temp_path ${o.dir}/uwsgi;
  scgi_temp_path ${o.dir}/scgi;

  upstream keyward { server 127.0.0.1:${o.keywardPort}; keepalive 8; }
  upstream app { server 127.0.0.1:${o.upstreamPort}; }

  # The permission each method needs on /transfers/.
  map $request_method $transfers_permission {
    GET     balance_transfers:read;
    HEAD    balance_transfers:read;
    DELETE  balance_transfers:delete;
    default balance_transfers:create;
  }

  server {
    listen 127.0.0.1:${o.port};

    location = /_keyward {
      internal;
      proxy_pass http://keyward/v1/authorize;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Keyward-SDK-Key "${o.sdkKey}";
      proxy_set_header X-Keyward-Permissions $keyward_permissions;
      proxy_set_header X-Keyward-Cost 1;
    }

    location = /_keyward_misconfigured {
      internal;
      proxy_pass http://keyward/v1/authorize;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Keyward-SDK-Key "kws_00000000-0000-0000-0000-000000000000_wrong";
    }

    location /transfers/ {
      set $keyward_permissions $transfers_permission;
      auth_request /_keyward;
      auth_request_set $keyward_key_id $upstream_http_x_keyward_key_id;
      auth_request_set $keyward_customer_id $upstream_http_x_keyward_customer_id;
      auth_request_set $keyward_workspace_id $upstream_http_x_keyward_workspace_id;
      auth_request_set $keyward_status $upstream_status;
      auth_request_set $keyward_code $upstream_http_x_keyward_code;
      auth_request_set $keyward_rl_limit $upstream_http_ratelimit_limit;
      auth_request_set $keyward_rl_remaining $upstream_http_ratelimit_remaining;
      auth_request_set $keyward_rl_reset $upstream_http_ratelimit_reset;
      auth_request_set $keyward_retry_after $upstream_http_retry_after;
      auth_request_set $keyward_remaining_uses $upstream_http_x_keyward_remaining_uses;
      proxy_set_header X-Keyward-Key-Id $keyward_key_id;
      proxy_set_header X-Keyward-Customer-Id $keyward_customer_id;
      proxy_set_header X-Keyward-Workspace-Id $keyward_workspace_id;
      # To the client: how much of its limits is left (an empty value adds no header).
      add_header RateLimit-Limit $keyward_rl_limit always;
      add_header RateLimit-Remaining $keyward_rl_remaining always;
      add_header RateLimit-Reset $keyward_rl_reset always;
      add_header X-Keyward-Remaining-Uses $keyward_remaining_uses always;
      # auth_request passes 2xx, 401 and 403 through and turns any other status
      # into 500: give the client Keyward's 429 (and 503) instead.
      error_page 500 = @keyward_error;
      proxy_pass http://app;
    }

    location @keyward_error {
      add_header X-Keyward-Code $keyward_code always;
      add_header RateLimit-Limit $keyward_rl_limit always;
      add_header RateLimit-Remaining $keyward_rl_remaining always;
      add_header RateLimit-Reset $keyward_rl_reset always;
      add_header Retry-After $keyward_retry_after always;
      add_header X-Keyward-Remaining-Uses $keyward_remaining_uses always;
      if ($keyward_status = 429) { return 429; }
      if ($keyward_status = 503) { return 503; }
      return 500;
    }

    location /misconfigured/ {
      auth_request /_keyward_misconfigured;
      proxy_pass http://app;
    }

    location = /public {
      set $keyward_permissions "";
      proxy_pass http://app;
    }
  }
}
`;
}
