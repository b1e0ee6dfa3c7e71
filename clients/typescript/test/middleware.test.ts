// The Express, Fastify and Hono middleware, each on a real port, hit with
// real HTTP requests, and compared with what forward auth (GET /v1/authorize)
// answers for the same key, or for the same token (a JWT from ExchangeOwnKey).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PRINCIPAL } from '../../../src/domain/principal.js';
import { startTestServer, type TestServer } from '../../../test/support/server.js';
import { Keyward, KeyVerifier, tokenSource, verifyKey, type Permission } from '../src/index.js';
import { keywardExpress } from '../src/middleware/express.js';
import { keywardFastify, keywardPlugin } from '../src/middleware/fastify.js';
import { keywardHono, type KeywardEnv } from '../src/middleware/hono.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

let ts: TestServer;
let kw: Keyward;
let gatewayKey: string;
let ws: string;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ts = await startTestServer();
  kw = new Keyward({ baseUrl: ts.baseUrl, sdkKey: ts.adminToken });
  ws = (await kw.workspaces.create({ name: 'middleware' })).id;
  await kw.scopes.create({ workspaceId: ws, name: 'balance_transfers' });
  gatewayKey = await ts.sdkKey(['api_keys:verify']);
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await ts?.close();
});

async function newKey(opts: { rateLimit?: boolean; remainingUses?: number } = {}) {
  const r = await kw.keys.create({
    workspaceId: ws,
    customerId: 'cus_ü42',
    name: 'middleware test',
    grants: ['balance_transfers:read'],
    metadata: { plan: 'pro' },
    ...(opts.rateLimit && { rateLimits: [{ name: 'per_minute', limit: 1, durationMs: 60_000 }] }),
    ...(opts.remainingUses !== undefined && { remainingUses: opts.remainingUses }),
  });
  return { id: r.key.id, secret: r.secret };
}

/** A token for the key, as a customer holding only the key gets it: tokenSource without an SDK key (ExchangeOwnKey). */
function tokenOf(k: { secret: string }, permissions?: Permission[]): Promise<string> {
  return tokenSource({ key: k.secret, baseUrl: ts.baseUrl, ...(permissions && { permissions }) }).getToken();
}

/** The token with its payload changed (the signature no longer matches). */
function tampered(token: string, change: Record<string, unknown>): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  return `${h}.${Buffer.from(JSON.stringify({ ...claims, ...change })).toString('base64url')}.${s}`;
}

/** The routes each app serves: GET needs read, DELETE needs delete. */
const ROUTES: Record<string, Permission> = { GET: 'balance_transfers:read', DELETE: 'balance_transfers:delete' };

function listenExpress(verifier: KeyVerifier): Promise<string> {
  const auth = keywardExpress(verifier);
  const app = express();
  app.get('/transfers', auth('balance_transfers:read'), (req, res) => {
    res.json(req.keyward);
  });
  app.delete('/transfers', auth('balance_transfers:delete'), (req, res) => {
    res.json(req.keyward);
  });
  return new Promise((resolve) => {
    const server: Server = app.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
    closers.push(() => new Promise((r) => server.close(r)));
  });
}

async function listenFastify(verifier: KeyVerifier): Promise<string> {
  const auth = keywardFastify(verifier);
  const app = Fastify();
  app.get('/transfers', { preHandler: auth('balance_transfers:read') }, async (request) => request.keyward);
  app.delete('/transfers', { preHandler: auth('balance_transfers:delete') }, async (request) => request.keyward);
  closers.push(() => app.close());
  return app.listen({ port: 0, host: '127.0.0.1' });
}

function listenHono(verifier: KeyVerifier): Promise<string> {
  const auth = keywardHono(verifier);
  const app = new Hono<KeywardEnv>();
  app.get('/transfers', auth('balance_transfers:read'), (c) => c.json(c.get('keyward')));
  app.delete('/transfers', auth('balance_transfers:delete'), (c) => c.json(c.get('keyward')));
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(`http://127.0.0.1:${info.port}`));
    closers.push(() => new Promise((r) => server.close(r)));
  });
}

const FRAMEWORKS = { express: listenExpress, fastify: listenFastify, hono: listenHono };

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** The headers forward auth and the middleware share: X-Keyward-*, RateLimit-*, Retry-After, WWW-Authenticate. */
const SHARED = /^(x-keyward-|ratelimit-|retry-after$|www-authenticate$)/;

async function answerOf(res: Response): Promise<Answer> {
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    if (SHARED.test(k)) headers[k] = v;
  });
  return { status: res.status, headers, body: (await res.json()) as Record<string, unknown> };
}

async function call(url: string, method: string, headers: Record<string, string>): Promise<Answer> {
  return answerOf(await fetch(`${url}/transfers`, { method, headers }));
}

/** What forward auth answers for the same request. */
async function forwardAuth(method: string, headers: Record<string, string>): Promise<Answer> {
  const res = await fetch(`${ts.baseUrl}/v1/authorize`, {
    headers: { ...headers, 'x-keyward-sdk-key': gatewayKey, 'x-keyward-permissions': ROUTES[method]! },
  });
  return answerOf(res);
}

/** Equal, but the seconds of RateLimit-Reset and Retry-After may differ by one (the two answers are not in the same instant). */
function expectSameRefusal(mw: Answer, fa: Answer): void {
  const loose = (a: Answer) => {
    const h = { ...a.headers };
    for (const k of ['ratelimit-reset', 'retry-after']) if (h[k] !== undefined) h[k] = 'N';
    return { ...a, headers: h };
  };
  expect(loose(mw)).toEqual(loose(fa));
  for (const k of ['ratelimit-reset', 'retry-after']) {
    if (fa.headers[k] !== undefined) expect(Math.abs(Number(mw.headers[k]) - Number(fa.headers[k]))).toBeLessThanOrEqual(1);
  }
}

/** Waits out the last seconds of a minute, so two requests fall in one window of a per-minute limit. */
async function awayFromMinuteEdge(): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 4_000) await new Promise((r) => setTimeout(r, left + 100));
}

describe.each(Object.keys(FRAMEWORKS) as (keyof typeof FRAMEWORKS)[])('%s', (name) => {
  let url: string;
  beforeAll(async () => {
    url = await FRAMEWORKS[name](new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey }));
  });

  it('a valid key passes, with the identity on the request, from Authorization: Bearer or X-API-Key', async () => {
    const k = await newKey();
    for (const headers of [{ authorization: `Bearer ${k.secret}` }, { 'x-api-key': k.secret }] as Record<string, string>[]) {
      const a = await call(url, 'GET', headers);
      expect(a.status).toBe(200);
      expect(a.body).toMatchObject({
        keyId: k.id,
        workspaceId: ws,
        customerId: 'cus_ü42',
        permissions: ['balance_transfers:read'],
        metadata: { plan: 'pro' },
      });
      expect(a.headers).toEqual({}); // a key without limits: no limit fields
    }
  });

  it('no key: 401 missing_key, as forward auth answers', async () => {
    const a = await call(url, 'GET', {});
    expect(a.status).toBe(401);
    expect(a.headers['www-authenticate']).toBe('Bearer realm="keyward"');
    expectSameRefusal(a, await forwardAuth('GET', {}));
  });

  it('an unknown key: 401 not_found, as forward auth answers', async () => {
    const headers = { authorization: 'Bearer kw_3xGvUnknownKeyThatNeverWasIssued000000000000' };
    const a = await call(url, 'GET', headers);
    expect(a).toMatchObject({ status: 401, body: { code: 'not_found' } });
    expectSameRefusal(a, await forwardAuth('GET', headers));
  });

  it('a key without the permission: 403 insufficient_permissions, as forward auth answers', async () => {
    const k = await newKey();
    const headers = { 'x-api-key': k.secret };
    const a = await call(url, 'DELETE', headers);
    expect(a).toMatchObject({ status: 403, body: { code: 'insufficient_permissions' } });
    expect(a.headers['x-keyward-customer-id']).toBe(encodeURIComponent('cus_ü42'));
    expectSameRefusal(a, await forwardAuth('DELETE', headers));
  });

  it('a key over its rate limit (1 a minute): 429 with Retry-After and RateLimit-*, as forward auth answers', async () => {
    await awayFromMinuteEdge();
    const k = await newKey({ rateLimit: true });
    const headers = { authorization: `Bearer ${k.secret}` };
    const first = await call(url, 'GET', headers);
    expect(first.status).toBe(200);
    expect(first.headers).toMatchObject({ 'ratelimit-limit': '1', 'ratelimit-remaining': '0' });
    const a = await call(url, 'GET', headers);
    expect(a).toMatchObject({ status: 429, body: { code: 'rate_limited' } });
    expect(Number(a.headers['retry-after'])).toBeGreaterThan(0);
    expect(a.headers['retry-after']).toBe(a.headers['ratelimit-reset']);
    expectSameRefusal(a, await forwardAuth('GET', headers));
  });

  it('a key with its uses spent: 429 usage_exceeded without Retry-After, as forward auth answers', async () => {
    const k = await newKey({ remainingUses: 1 });
    const headers = { 'x-api-key': k.secret };
    expect((await call(url, 'GET', headers)).headers['x-keyward-remaining-uses']).toBe('0');
    const a = await call(url, 'GET', headers);
    expect(a).toMatchObject({ status: 429, body: { code: 'usage_exceeded' } });
    expect(a.headers['retry-after']).toBeUndefined();
    expectSameRefusal(a, await forwardAuth('GET', headers));
  });

  it('a token (JWT from ExchangeOwnKey) in Authorization: Bearer passes, checked offline, with the identity from its claims', async () => {
    const k = await newKey();
    const token = await tokenOf(k);
    const claims = decodeJwt(token);
    const a = await call(url, 'GET', { authorization: `Bearer ${token}` });
    expect(a.status).toBe(200);
    expect(a.body).toEqual({
      keyId: k.id,
      workspaceId: ws,
      customerId: 'cus_ü42',
      name: '',
      permissions: ['balance_transfers:read'],
      metadata: {},
      rateLimits: [],
      token: { expireTime: new Date(claims.exp! * 1000).toISOString(), issueTime: new Date(claims.iat! * 1000).toISOString(), id: claims.jti },
    });
    expect(a.headers).toEqual({});
    expect((await forwardAuth('GET', { authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it('a token without the permission: 403 insufficient_permissions, as forward auth answers', async () => {
    const k = await newKey();
    const headers = { authorization: `Bearer ${await tokenOf(k, ['balance_transfers:read'])}` };
    const a = await call(url, 'DELETE', headers);
    expect(a).toMatchObject({ status: 403, body: { code: 'insufficient_permissions' } });
    expect(a.headers).toMatchObject({ 'x-keyward-key-id': k.id, 'x-keyward-customer-id': encodeURIComponent('cus_ü42'), 'x-keyward-workspace-id': ws });
    expectSameRefusal(a, await forwardAuth('DELETE', headers));
  });

  it('a tampered token: 401 invalid_token, as forward auth answers', async () => {
    const k = await newKey();
    const token = await tokenOf(k);
    for (const bad of [tampered(token, { permissions: ['balance_transfers:read', 'balance_transfers:delete'] }), `${token.slice(0, -4)}AAAA`]) {
      const headers = { authorization: `Bearer ${bad}` };
      const a = await call(url, 'DELETE', headers);
      expect(a).toMatchObject({ status: 401, body: { code: 'invalid_token', message: 'the token is not valid' } });
      expect(a.headers['www-authenticate']).toBe('Bearer realm="keyward", error="invalid_token", error_description="the token is not valid"');
      expectSameRefusal(a, await forwardAuth('DELETE', headers));
    }
  });

  it('revocation is immediate (no cache by default): 401 revoked, as forward auth answers', async () => {
    const k = await newKey();
    const headers = { authorization: `Bearer ${k.secret}` };
    expect((await call(url, 'GET', headers)).status).toBe(200);
    await kw.keys.revoke(k.id);
    const a = await call(url, 'GET', headers);
    expect(a).toMatchObject({ status: 401, body: { code: 'revoked' } });
    expectSameRefusal(a, await forwardAuth('GET', headers));
  });
});

describe('failures and the cache', () => {
  it('fails closed: 503 when Keyward cannot be reached, for each framework', async () => {
    const k = await newKey();
    for (const listen of Object.values(FRAMEWORKS)) {
      const url = await listen(new KeyVerifier({ baseUrl: 'http://127.0.0.1:1', sdkKey: gatewayKey, retries: 0 }));
      const a = await call(url, 'GET', { 'x-api-key': k.secret });
      expect(a).toMatchObject({ status: 503, body: { code: 'unavailable' }, headers: { 'x-keyward-code': 'unavailable' } });
    }
  });

  it("a bad SDK key is the gateway's fault, as forward auth says: 401 gateway_unauthenticated in another realm", async () => {
    const k = await newKey();
    const url = await listenExpress(new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: 'kws_wrong_wrong' }));
    const a = await call(url, 'GET', { 'x-api-key': k.secret });
    expect(a).toMatchObject({ status: 401, body: { code: 'gateway_unauthenticated' } });
    expect(a.headers['www-authenticate']).toMatch(/^KeywardSDK realm="keyward-gateway"/);
  });

  it('with the optional cache a revoked key passes until the TTL ends; keys with limits are never cached', async () => {
    const verifier = new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey, cacheTtlMs: 60_000 });
    const url = await listenHono(verifier);
    const k = await newKey();
    expect((await call(url, 'GET', { 'x-api-key': k.secret })).status).toBe(200);
    await kw.keys.revoke(k.id);
    expect((await call(url, 'GET', { 'x-api-key': k.secret })).status).toBe(200);
    const limited = await newKey({ remainingUses: 1 });
    expect((await call(url, 'GET', { 'x-api-key': limited.secret })).status).toBe(200);
    expect((await call(url, 'GET', { 'x-api-key': limited.secret })).status).toBe(429);
  });

  it('the Fastify plugin guards every route, with per-route permissions and open routes', async () => {
    const app = Fastify();
    await app.register(keywardPlugin, { baseUrl: ts.baseUrl, sdkKey: gatewayKey, permissions: ['balance_transfers:read'] });
    app.get('/transfers', async (request) => request.keyward);
    app.delete('/transfers', { config: { keyward: { permissions: ['balance_transfers:delete'] } } }, async (request) => request.keyward);
    app.get('/health', { config: { keyward: false } }, async () => ({ ok: true }));
    closers.push(() => app.close());
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const k = await newKey();
    const ok = await call(url, 'GET', { 'x-api-key': k.secret });
    expect(ok).toMatchObject({ status: 200, body: { keyId: k.id } });
    expect((await call(url, 'DELETE', { 'x-api-key': k.secret })).status).toBe(403);
    expect((await call(url, 'GET', {})).status).toBe(401);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});

describe('tokens (JWTs)', () => {
  it('are checked offline: a token of a revoked key passes until it expires (forward auth, which looks the key up, refuses it)', async () => {
    const verifier = new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey });
    const url = await listenExpress(verifier);
    const k = await newKey();
    const headers = { authorization: `Bearer ${await tokenOf(k)}` };
    await kw.keys.revoke(k.id);
    expect(await call(url, 'GET', headers)).toMatchObject({ status: 200, body: { keyId: k.id } });
    expect(await forwardAuth('GET', headers)).toMatchObject({ status: 401, body: { code: 'revoked' } });
    // The API key itself is refused at once.
    expect(await call(url, 'GET', { authorization: `Bearer ${k.secret}` })).toMatchObject({ status: 401, body: { code: 'revoked' } });
  });

  it('need no SDK key; workspaceId and X-API-Key apply to them as to keys; tokens: false refuses them as unknown keys', async () => {
    const k = await newKey();
    const token = await tokenOf(k);
    const noSdkKey = new KeyVerifier({ baseUrl: ts.baseUrl });
    expect(await verifyKey(noSdkKey, token, { permissions: ['balance_transfers:read'], workspaceId: ws })).toMatchObject({
      ok: true,
      identity: { keyId: k.id },
    });
    const otherWs = '00000000-0000-4000-8000-000000000000';
    expect(await verifyKey(noSdkKey, token, { workspaceId: otherWs })).toMatchObject({
      ok: false,
      status: 401,
      body: { code: 'not_found', message: 'the token is not valid for this workspace' },
    });
    // An API key still needs the SDK key.
    expect(await verifyKey(noSdkKey, k.secret)).toMatchObject({ ok: false, status: 401, body: { code: 'gateway_unauthenticated' } });
    const off = new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey, tokens: false });
    expect(off.tokens).toBeUndefined();
    expect(await verifyKey(off, token)).toMatchObject({ ok: false, status: 401, body: { code: 'not_found' } });
  });

  it('a token signed by another key, unsigned, or of another issuer or audience: 401 invalid_token', async () => {
    const verifier = new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey });
    const k = await newKey();
    const token = await tokenOf(k);
    const claims = decodeJwt(token);
    const { kid } = decodeProtectedHeader(token);
    const { privateKey } = await generateKeyPair('EdDSA');
    const forged = await new SignJWT({ ...claims, permissions: ['balance_transfers:delete'] })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: kid! })
      .sign(privateKey);
    const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: 'not-a-keyward-key' }).sign(privateKey);
    const [h, p] = token.split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
    for (const bad of [forged, unknownKid, none, `${h}.${p}.`]) {
      expect(await verifyKey(verifier, bad)).toMatchObject({ ok: false, status: 401, body: { code: 'invalid_token', message: 'the token is not valid' } });
    }
    const picky = new KeyVerifier({ baseUrl: ts.baseUrl, tokens: { issuer: 'someone-else' } });
    expect(await verifyKey(picky, token)).toMatchObject({
      ok: false,
      status: 401,
      body: { code: 'invalid_token', message: "the token's iss claim is not accepted here" },
    });
    const audience = new KeyVerifier({ baseUrl: ts.baseUrl, tokens: { audience: 'https://api.example.com' } });
    expect(await verifyKey(audience, token)).toMatchObject({
      ok: false,
      status: 401,
      body: { code: 'invalid_token', message: "the token's aud claim is not accepted here" },
    });
  });

  it('the JWKS is fetched once and kept; a token of a signing key it lacks makes it fetch again, once', async () => {
    const verifier = new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey });
    const url = await listenHono(verifier);
    const k = await newKey();
    const token = await tokenOf(k);
    for (let i = 0; i < 5; i++) expect((await call(url, 'GET', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect(verifier.tokens!.jwks.stats.fetches).toBe(1);
    // The JWKS publishes the next signing key ahead of time: two rotations make one it has never seen.
    await ts.internals.signingKeys.rotate(CLI_PRINCIPAL);
    const rotated = await ts.internals.signingKeys.rotate(CLI_PRINCIPAL);
    const fresh = await tokenOf(await newKey());
    expect(decodeProtectedHeader(fresh).kid).toBe(rotated.id);
    await new Promise((r) => setTimeout(r, 1100)); // reloads for unknown keys are at most one a second
    expect((await call(url, 'GET', { authorization: `Bearer ${fresh}` })).status).toBe(200);
    expect(verifier.tokens!.jwks.stats.fetches).toBe(2);
    // The token of the retired key still verifies (it stays published while its tokens live), with no further fetch.
    expect((await call(url, 'GET', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect(verifier.tokens!.jwks.stats.fetches).toBe(2);
  });

  it('fails closed: 503 when the JWKS cannot be fetched', async () => {
    const k = await newKey();
    const verifier = new KeyVerifier({ baseUrl: ts.baseUrl, sdkKey: gatewayKey, tokens: { jwksUrl: 'http://127.0.0.1:1/.well-known/jwks.json' } });
    const url = await listenFastify(verifier);
    const a = await call(url, 'GET', { authorization: `Bearer ${await tokenOf(k)}` });
    expect(a).toMatchObject({ status: 503, body: { code: 'unavailable' }, headers: { 'x-keyward-code': 'unavailable' } });
    // API keys do not need the JWKS.
    expect((await call(url, 'GET', { authorization: `Bearer ${k.secret}` })).status).toBe(200);
  });
});

describe('examples/quickstart.ts', () => {
  it("the README's ten-line example runs as written and exits", async () => {
    const started = Date.now();
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin/run-ts.js'), path.join(ROOT, 'clients/typescript/examples/quickstart.ts')], {
      env: { ...process.env, KEYWARD_URL: ts.baseUrl, KEYWARD_SDK_KEY: ts.adminToken },
      timeout: 20_000,
    });
    expect(stdout).toBe('true cus_42\nrevoked\n');
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});

describe('examples/express.ts', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill();
  });

  it('protects an Express app with one line per route, against a live server', async () => {
    child = spawn(process.execPath, [path.join(ROOT, 'bin/run-ts.js'), path.join(ROOT, 'clients/typescript/examples/express.ts')], {
      env: { ...process.env, KEYWARD_URL: ts.baseUrl, KEYWARD_SDK_KEY: gatewayKey, PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child!.once('exit', (code) => reject(new Error(`the example exited (${code}): ${stderr}`)));
    });
    const k = await newKey();
    const ok = await fetch(`${url}/transfers`, { headers: { authorization: `Bearer ${k.secret}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ customer: 'cus_ü42', transfers: [] });
    const create = await fetch(`${url}/transfers`, { method: 'POST', headers: { authorization: `Bearer ${k.secret}` } });
    expect(create.status).toBe(403);
    expect(create.headers.get('x-keyward-code')).toBe('insufficient_permissions');
    expect((await fetch(`${url}/transfers`)).status).toBe(401);
  });
});
