// TokenService/ExchangeKey: a valid API key buys a short-lived EdDSA JWT that
// verifies against the JWKS served over HTTP; signing keys rotate.
import { randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { CLI_PRINCIPAL } from '../../src/domain/principal.js';
import { newKey } from '../support/fixtures.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, type ProtocolName, type TestServer } from '../support/server.js';

const TTL_SECONDS = 120;
let ts: TestServer;
let ws: string;
let gatewayKey: string;

beforeAll(async () => {
  ts = await startTestServer({
    KEYWARD_TOKEN_TTL_SECONDS: String(TTL_SECONDS),
    KEYWARD_TOKEN_AUDIENCE: 'api.example.com',
    KEYWARD_TOKEN_ISSUER: 'https://keyward.example.com',
    // Private keys sealed at rest: every token below is signed with a key read back through it.
    KEYWARD_SECRETS_KEY: randomBytes(32).toString('base64'),
  });
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'tokens' } })).workspace!.id;
  const S = client(ScopeService, ts);
  await S.createScope({ scope: { workspaceId: ws, name: 'balance_transfers' } });
  await S.createScope({ scope: { workspaceId: ws, name: 'invoices' } });
  gatewayKey = await ts.sdkKey(['api_keys:verify']);
});

afterAll(async () => {
  await ts?.close();
});

/** A key in the workspace with grants in both scopes, expiring at `expireTime` (whole seconds) if given. */
const tokenKey = (opts: { expireTime?: Date } = {}) =>
  newKey(ts, {
    workspaceId: ws,
    customerId: 'cus_7',
    name: 'token test',
    grants: [
      { scope: 'balance_transfers', actions: [Action.READ, Action.CREATE] },
      { scope: 'invoices', actions: [Action.READ] },
    ],
    ...(opts.expireTime && { expireTime: { seconds: BigInt(Math.floor(opts.expireTime.getTime() / 1000)), nanos: 0 } }),
  });

const tokens = (protocol: ProtocolName = 'connect-json') => client(TokenService, ts, { token: gatewayKey, protocol });
const jwksUrl = () => new URL(`${ts.baseUrl}/.well-known/jwks.json`);
const verifyToken = (token: string) =>
  jwtVerify(token, createRemoteJWKSet(jwksUrl()), { issuer: 'https://keyward.example.com', audience: 'api.example.com', algorithms: ['EdDSA'] });

describe('ExchangeKey', () => {
  it.each(['connect-json', 'grpc'] as const)('over %s: a valid key gets a JWT that verifies against the JWKS fetched over HTTP', async (protocol) => {
    const k = await tokenKey();
    const before = Math.floor(Date.now() / 1000);
    const r = await tokens(protocol).exchangeKey({ key: k.secret });
    expect(r.code).toBe(VerifyCode.VALID);
    expect(r.keyId).toBe(k.id);
    const { payload, protectedHeader } = await verifyToken(r.token);
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', typ: 'JWT', kid: r.signingKeyId });
    expect(payload).toMatchObject({
      sub: k.id,
      workspace_id: ws,
      customer_id: 'cus_7',
      permissions: ['balance_transfers:create', 'balance_transfers:read', 'invoices:read'],
    });
    expect(payload.exp! - payload.iat!).toBe(TTL_SECONDS);
    expect(payload.iat!).toBeGreaterThanOrEqual(before);
    expect(typeof payload.jti).toBe('string');
    expect(timestampDate(r.expireTime!).getTime()).toBe(payload.exp! * 1000);
    expect(r.token).not.toContain(k.secret);
  });

  it('with required permissions the token carries only those', async () => {
    const k = await tokenKey();
    const r = await tokens().exchangeKey({ key: k.secret, requiredPermissions: ['invoices:read', 'balance_transfers:read', 'invoices:read'] });
    expect(r.code).toBe(VerifyCode.VALID);
    expect((await verifyToken(r.token)).payload.permissions).toEqual(['balance_transfers:read', 'invoices:read']);
  });

  it('never outlives the key', async () => {
    const expireTime = new Date(Date.now() + 30_000);
    const k = await tokenKey({ expireTime });
    const r = await tokens().exchangeKey({ key: k.secret });
    expect((await verifyToken(r.token)).payload.exp).toBe(Math.floor(expireTime.getTime() / 1000));
  });

  it('answers like VerifyKey for keys that do not pass: no token, and why', async () => {
    const k = await tokenKey();
    const missing = await tokens().exchangeKey({ key: k.secret, requiredPermissions: ['invoices:delete'] });
    expect(missing).toMatchObject({ code: VerifyCode.INSUFFICIENT_PERMISSIONS, token: '', keyId: k.id, signingKeyId: '' });
    expect(missing.expireTime).toBeUndefined();
    const unknown = await tokens().exchangeKey({ key: `kw_${'C'.repeat(49)}` });
    expect(unknown).toMatchObject({ code: VerifyCode.NOT_FOUND, token: '', keyId: '' });
  });

  it('a revoked key can no longer obtain a token (its earlier token lives until it expires)', async () => {
    const k = await tokenKey();
    const first = await tokens().exchangeKey({ key: k.secret });
    expect(first.code).toBe(VerifyCode.VALID);
    await client(KeyService, ts).revokeKey({ id: k.id });
    const r = await tokens().exchangeKey({ key: k.secret });
    expect(r).toMatchObject({ code: VerifyCode.REVOKED, token: '', keyId: k.id });
  });

  it('rejects bad requests with INVALID_ARGUMENT naming the field, and SDK keys without api_keys:verify', async () => {
    await expectError(tokens().exchangeKey({ key: '' }), Code.InvalidArgument, 'key');
    await expectError(tokens().exchangeKey({ key: 'kw_x', requiredPermissions: ['invoices:Read'] }), Code.InvalidArgument, 'required_permissions[0]');
    const reader = await ts.sdkKey(['api_keys:read']);
    await expectError(client(TokenService, ts, { token: reader }).exchangeKey({ key: 'kw_x' }), Code.PermissionDenied);
    await expectError(client(TokenService, ts, { token: null }).exchangeKey({ key: 'kw_x' }), Code.Unauthenticated);
  });
});

describe('signing keys', () => {
  it('private halves are stored sealed with KEYWARD_SECRETS_KEY, never as PEM', async () => {
    await tokens().exchangeKey({ key: (await tokenKey()).secret });
    const rows = await ts.sql<{ private_pkcs8: string }[]>(`select private_pkcs8 from signing_keys`);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(r.private_pkcs8).toMatch(/^sealed:v2:[A-Za-z0-9_-]{8}:[A-Za-z0-9_-]+$/);
  });

  it('a fresh server publishes its signing key, and the next one, before any exchange', async () => {
    const fresh = await startTestServer();
    try {
      const { keys } = (await (await fetch(`${fresh.baseUrl}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      expect(keys).toHaveLength(2);
    } finally {
      await fresh.close();
    }
  });

  it('the JWKS publishes public halves only, and is served without credentials', async () => {
    await tokens().exchangeKey({ key: (await tokenKey()).secret });
    const res = await fetch(jwksUrl());
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const { keys } = (await res.json()) as { keys: Record<string, string>[] };
    expect(keys.length).toBeGreaterThanOrEqual(1);
    for (const k of keys) {
      expect(Object.keys(k).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
      expect(k).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    }
  });

  it('rotation: new tokens use the new key, tokens of the old one keep verifying, the old one leaves the JWKS once its tokens expired', async () => {
    const k = await tokenKey();
    const old = await tokens().exchangeKey({ key: k.secret });
    // A verifier that fetched the JWKS before the rotation already has the key that signs after it.
    const before = (await (await fetch(jwksUrl())).json()) as { keys: { kid: string }[] };
    const rotated = await ts.internals.signingKeys.rotate(CLI_PRINCIPAL);
    expect(before.keys.map((x) => x.kid)).toContain(rotated.id);
    expect(rotated.retired).toEqual([old.signingKeyId]);
    const fresh = await tokens().exchangeKey({ key: k.secret });
    expect(fresh.signingKeyId).toBe(rotated.id);
    expect(decodeProtectedHeader(fresh.token).kid).toBe(rotated.id);
    expect(fresh.signingKeyId).not.toBe(old.signingKeyId);
    // Both verify against one fetch of the JWKS.
    const jwks = createRemoteJWKSet(jwksUrl());
    for (const t of [old.token, fresh.token]) expect((await jwtVerify(t, jwks)).payload.sub).toBe(k.id);
    // Once the old key retired longer ago than a token lives (plus a margin), it is no longer published.
    await ts.sql(`update signing_keys set retire_time = now() - interval '1 hour' where id = ?`, [old.signingKeyId]);
    const { keys } = (await (await fetch(jwksUrl())).json()) as { keys: { kid: string }[] };
    expect(keys.map((x) => x.kid)).toContain(rotated.id);
    expect(keys.map((x) => x.kid)).not.toContain(old.signingKeyId);
    await expect(jwtVerify(old.token, createRemoteJWKSet(jwksUrl()))).rejects.toThrow();
  });

  it('writes an audit record per rotation and never logs a private key', async () => {
    const rows = await ts.sql<{ n: number }[]>(`select count(*)::int as n from audit_events where action = 'signing_key.rotate'`);
    expect(rows[0]!.n).toBeGreaterThanOrEqual(1);
    for (const line of ts.logs) expect(line).not.toMatch(/PRIVATE KEY|"d":/);
  });
});
