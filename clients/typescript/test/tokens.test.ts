// tokenSource (exchange, refresh before expiry, single flight), verifyToken
// (offline, against the JWKS) and the middleware's check of an expired token,
// on a server issuing 3-second tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startTestServer, type TestServer } from '../../../test/support/server.js';
import { Keyward, KeyVerifier, KeywardError, tokenSource, verifyKey, verifyToken } from '../src/index.js';

let ts: TestServer;
let kw: Keyward;
let gatewayKey: string;
let ws: string;

beforeAll(async () => {
  ts = await startTestServer({ KEYWARD_TOKEN_TTL_SECONDS: '3' });
  kw = new Keyward({ baseUrl: ts.baseUrl, sdkKey: ts.adminToken });
  ws = (await kw.workspaces.create({ name: 'tokens' })).id;
  await kw.scopes.create({ workspaceId: ws, name: 'balance_transfers' });
  gatewayKey = await ts.sdkKey(['api_keys:verify']);
});

afterAll(async () => {
  await ts?.close();
});

async function newKey() {
  const r = await kw.keys.create({ workspaceId: ws, customerId: 'cus_9', grants: ['balance_transfers:read', 'balance_transfers:create'] });
  return { id: r.key.id, secret: r.secret };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jti = (token: string) => decodeJwt(token).jti;

async function caught(p: Promise<unknown>): Promise<KeywardError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(KeywardError);
  return e as KeywardError;
}

describe('tokenSource', () => {
  it('100 concurrent getToken() calls make one exchange; the token is reused, then refreshed refreshBufferSeconds before it expires', async () => {
    const k = await newKey();
    let exchanges = 0;
    const client = new Keyward({
      baseUrl: ts.baseUrl,
      sdkKey: gatewayKey,
      interceptors: [
        (next) => (req) => {
          if (req.method.name === 'ExchangeKey') exchanges++;
          return next(req);
        },
      ],
    });
    const source = tokenSource({ key: k.secret, client, refreshBufferSeconds: 1 });
    const tokens = await Promise.all(Array.from({ length: 100 }, () => source.getToken()));
    // Every exchange mints a token with its own jti: one jti, one exchange.
    expect(new Set(tokens.map(jti)).size).toBe(1);
    expect(exchanges).toBe(1);
    const first = tokens[0]!;
    const exp = decodeJwt(first).exp! * 1000;
    expect(source.expireTime!.getTime()).toBe(exp);
    expect(await source.getToken()).toBe(first);

    // Past exp - 1 s: the next call exchanges again (once, for all concurrent callers).
    await sleep(exp - 1000 - Date.now() + 50);
    const refreshed = await Promise.all(Array.from({ length: 20 }, () => source.getToken()));
    expect(new Set(refreshed).size).toBe(1);
    expect(exchanges).toBe(2);
    expect(jti(refreshed[0]!)).not.toBe(jti(first));
    expect(Date.now()).toBeLessThan(exp); // refreshed before the old token expired
    await expect(verifyToken(refreshed[0]!, { baseUrl: ts.baseUrl })).resolves.toMatchObject({ sub: k.id });
  });

  it('the token carries only the permissions asked for', async () => {
    const k = await newKey();
    const source = tokenSource({ key: k.secret, baseUrl: ts.baseUrl, sdkKey: gatewayKey, permissions: ['balance_transfers:read'] });
    expect(decodeJwt(await source.getToken()).permissions).toEqual(['balance_transfers:read']);
  });

  it('a key that does not pass is a KeywardError with its verify code, and a failed exchange is not cached', async () => {
    const k = await newKey();
    await kw.keys.revoke(k.id);
    const source = tokenSource({ key: k.secret, baseUrl: ts.baseUrl, sdkKey: gatewayKey });
    expect((await caught(source.getToken())).code).toBe('revoked');
    expect((await caught(source.getToken())).code).toBe('revoked');
    const noPermission = tokenSource({ key: (await newKey()).secret, baseUrl: ts.baseUrl, sdkKey: gatewayKey, permissions: ['balance_transfers:delete'] });
    expect((await caught(noPermission.getToken())).code).toBe('insufficient_permissions');
  });
});

describe('tokenSource without an SDK key (ExchangeOwnKey)', () => {
  it('a customer holding only its API key gets tokens for it, narrowed to the permissions asked for, and a revoked key gets none', async () => {
    const k = await newKey();
    const source = tokenSource({ key: k.secret, baseUrl: ts.baseUrl, permissions: ['balance_transfers:read'], refreshBufferSeconds: 1 });
    const token = await source.getToken();
    expect(decodeJwt(token)).toMatchObject({ sub: k.id, permissions: ['balance_transfers:read'] });
    await expect(verifyToken(token, { baseUrl: ts.baseUrl })).resolves.toMatchObject({ sub: k.id });
    expect(await source.getToken()).toBe(token);
    await kw.keys.revoke(k.id);
    source.invalidate();
    expect((await caught(source.getToken())).code).toBe('unauthenticated');
  });
});

describe('verifyToken', () => {
  it('valid: the claims, checked offline against the JWKS; issuer and permissions checked', async () => {
    const k = await newKey();
    const token = (await kw.tokens.exchange(k.secret)).token;
    const payload = await verifyToken(token, { baseUrl: ts.baseUrl, issuer: 'keyward', permissions: ['balance_transfers:read'] });
    expect(payload).toMatchObject({ sub: k.id, workspace_id: ws, customer_id: 'cus_9', permissions: ['balance_transfers:create', 'balance_transfers:read'] });
    await expect(verifyToken(token, { jwksUrl: `${ts.baseUrl}/.well-known/jwks.json` })).resolves.toMatchObject({ sub: k.id });
    expect((await caught(verifyToken(token, { baseUrl: ts.baseUrl, issuer: 'someone-else' }))).code).toBe('invalid_token');
    expect((await caught(verifyToken(token, { baseUrl: ts.baseUrl, permissions: ['balance_transfers:delete'] }))).code).toBe('insufficient_permissions');
  });

  it('tampered: a changed claim or signature is invalid_token', async () => {
    const k = await newKey();
    const token = (await kw.tokens.exchange(k.secret)).token;
    const [h, p, s] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, customer_id: 'cus_evil' })).toString('base64url')}.${s}`;
    expect((await caught(verifyToken(forged, { baseUrl: ts.baseUrl }))).code).toBe('invalid_token');
    const flipped = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
    expect((await caught(verifyToken(flipped, { baseUrl: ts.baseUrl }))).code).toBe('invalid_token');
    expect((await caught(verifyToken('not.a.jwt', { baseUrl: ts.baseUrl }))).code).toBe('invalid_token');
  });

  it('expired: token_expired once exp has passed', async () => {
    const k = await newKey();
    const { token, expireTime } = await kw.tokens.exchange(k.secret);
    await sleep(expireTime.getTime() - Date.now() + 1100);
    expect((await caught(verifyToken(token, { baseUrl: ts.baseUrl }))).code).toBe('token_expired');
  });
});

describe('the middleware and a token', () => {
  it('expired: 401 invalid_token once exp has passed, as forward auth answers', async () => {
    const k = await newKey();
    const source = tokenSource({ key: k.secret, baseUrl: ts.baseUrl });
    const token = await source.getToken();
    const verifier = new KeyVerifier({ baseUrl: ts.baseUrl });
    expect(await verifyKey(verifier, token, { permissions: ['balance_transfers:read'] })).toMatchObject({ ok: true, identity: { keyId: k.id } });
    await sleep(source.expireTime!.getTime() - Date.now() + 1100);
    const message = 'the token has expired';
    const challenge = `Bearer realm="keyward", error="invalid_token", error_description="${message}"`;
    const d = await verifyKey(verifier, token, { permissions: ['balance_transfers:read'] });
    expect(d).toEqual({
      ok: false,
      status: 401,
      headers: { 'x-keyward-code': 'invalid_token', 'www-authenticate': challenge },
      body: { code: 'invalid_token', message },
    });
    const fa = await fetch(`${ts.baseUrl}/v1/authorize`, { headers: { authorization: `Bearer ${token}`, 'x-keyward-sdk-key': gatewayKey } });
    expect(fa.status).toBe(401);
    expect(fa.headers.get('www-authenticate')).toBe(challenge);
    expect(await fa.json()).toEqual(d.ok ? undefined : d.body);
  });
});
