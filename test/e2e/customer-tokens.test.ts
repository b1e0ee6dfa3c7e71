// Scope's SDK flow, played by a customer that holds only its API key: the key
// exchanges itself for a short-lived JWT (TokenService/ExchangeOwnKey, no SDK
// key), the JWT is sent to an API behind real forward auth (/v1/authorize,
// called as a gateway calls it, with the gateway's own SDK key), and a client
// refreshes it before it expires. Tokens live 2 s here.
import { Code, ConnectError } from '@connectrpc/connect';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { issueApiKey } from '../../src/credentials/api-key.js';
import { httpRequest, newKey, sleep, type HttpReply } from '../support/fixtures.js';
import { recordSecret } from '../support/hygiene.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

const PER_MINUTE = 30;
const FAILURE_BURST = 6;
let ts: TestServer;
let ws: string;
let gatewayKey: string;

beforeAll(async () => {
  ts = await startTestServer({
    KEYWARD_TOKEN_TTL_SECONDS: '2',
    KEYWARD_TOKEN_EXCHANGES_PER_MINUTE: String(PER_MINUTE),
    // Failed exchanges from one address: a small burst, regained slowly.
    KEYWARD_SDK_KEY_FAILURE_BURST: String(FAILURE_BURST),
    KEYWARD_SDK_KEY_FAILURES_PER_SECOND: '0.05',
  });
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'customer-tokens' } })).workspace!.id;
  await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'balance_transfers' } });
  gatewayKey = await ts.sdkKey(['api_keys:verify']);
});

afterAll(async () => {
  await ts?.close();
});

/** What the company does once: a key for its customer. The customer only ever holds the secret. */
const customerKey = (actions = [Action.READ, Action.CREATE]) =>
  newKey(ts, { workspaceId: ws, customerId: 'cus_scope', name: 'sdk', grants: [{ scope: 'balance_transfers', actions }] });

/** The SDK's exchange: POST /v1/tokens:exchange-own with the API key as the bearer credential, nothing else. */
function exchange(apiKey: string, body: { requiredPermissions?: string[]; workspaceId?: string } = {}): Promise<HttpReply> {
  return httpRequest(`${ts.baseUrl}/v1/tokens:exchange-own`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function tokenFor(apiKey: string, body: { requiredPermissions?: string[] } = {}) {
  const r = await exchange(apiKey, body);
  expect(r.status, r.body).toBe(200);
  const j = JSON.parse(r.body) as { token: string; expireTime: string; keyId: string; permissions: string[]; workspaceId: string };
  recordSecret(j.token);
  return j;
}

/** The gateway asking forward auth about a request that carries `Authorization: Bearer <jwt>`. */
const authorize = (jwt: string, headers: Record<string, string> = {}) =>
  httpRequest(`${ts.baseUrl}/v1/authorize`, {
    headers: { 'x-keyward-sdk-key': gatewayKey, authorization: `Bearer ${jwt}`, 'x-keyward-permissions': 'balance_transfers:read', ...headers },
  });

const code = (r: HttpReply) => r.headers['x-keyward-code'];

/** Like tokenSource in clients/typescript/src/tokens.ts: a fresh token, exchanged again `bufferMs` before expiry. */
function refreshingToken(apiKey: string, bufferMs: number) {
  let current: { token: string; expireMs: number } | undefined;
  const issued: string[] = [];
  return {
    issued,
    async get(): Promise<string> {
      if (current === undefined || Date.now() >= current.expireMs - bufferMs) {
        const t = await tokenFor(apiKey);
        current = { token: t.token, expireMs: Date.parse(t.expireTime) };
        issued.push(t.token);
      }
      return current.token;
    },
  };
}

describe('a customer’s own API key, without an SDK key', () => {
  it('exchanges itself over REST for a JWT that forward auth lets through with the identity headers', async () => {
    const k = await customerKey();
    const t = await tokenFor(k.secret, { requiredPermissions: ['balance_transfers:read'] });
    expect(t).toMatchObject({ keyId: k.id, workspaceId: ws, permissions: ['balance_transfers:read'] });
    expect(t.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const r = await authorize(t.token);
    expect(r.status, r.body).toBe(200);
    expect(code(r)).toBe('valid');
    expect(r.headers['x-keyward-key-id']).toBe(k.id);
    expect(r.headers['x-keyward-workspace-id']).toBe(ws);
    expect(r.headers['x-keyward-customer-id']).toBe('cus_scope');
    expect(r.body).not.toContain(t.token);
  });

  it('exchanges itself over gRPC and Connect too (the key in authorization, no SDK key)', async () => {
    const k = await customerKey();
    for (const protocol of ['grpc', 'connect-binary'] as const) {
      const r = await client(TokenService, ts, { token: k.secret, protocol }).exchangeOwnKey({});
      recordSecret(r.token);
      expect(r).toMatchObject({ keyId: k.id, workspaceId: ws, permissions: ['balance_transfers:create', 'balance_transfers:read'] });
      expect(timestampDate(r.expireTime!).getTime() - Date.now()).toBeLessThanOrEqual(2000);
      expect((await authorize(r.token)).status).toBe(200);
    }
  });

  it('the token expires (401 invalid_token), and a client that refreshes before expiry keeps passing', async () => {
    const k = await customerKey();
    const first = await tokenFor(k.secret);
    expect((await authorize(first.token)).status).toBe(200);
    const source = refreshingToken(k.secret, 500);
    const until = Date.now() + 4500;
    while (Date.now() < until) {
      const r = await authorize(await source.get());
      expect(r.status, r.body).toBe(200);
      await sleep(200);
    }
    // Tokens live at most 2 s: the client exchanged again, more than once.
    expect(new Set(source.issued).size).toBeGreaterThanOrEqual(3);
    // The first token is long expired by now.
    const old = await authorize(first.token);
    expect(old.status).toBe(401);
    expect(code(old)).toBe('invalid_token');
    expect(old.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    expect(JSON.parse(old.body).message).toMatch(/expired/);
  });

  it('a token whose key is revoked after it was minted is refused, and the key exchanges no more', async () => {
    const k = await customerKey();
    const t = await tokenFor(k.secret);
    expect((await authorize(t.token)).status).toBe(200);
    await client(KeyService, ts).revokeKey({ id: k.id });
    const r = await authorize(t.token);
    expect(r.status, `${r.body} ${ts.logs.slice(-5).join('\n')}`).toBe(401);
    expect(code(r)).toBe('revoked');
    const again = await exchange(k.secret);
    expect(again.status).toBe(401);
    expect(JSON.parse(again.body)).toMatchObject({ code: 'unauthenticated' });
    expect(JSON.parse(again.body).message).toMatch(/REVOKED/);
  });

  it('an unknown key gets no token (401); an SDK key sent instead is told what belongs there', async () => {
    const r = await exchange(issueApiKey('kw').plaintext);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).message).toMatch(/NOT_FOUND/);
    const sdk = await exchange(gatewayKey);
    expect(sdk.status).toBe(401);
    expect(JSON.parse(sdk.body).message).toMatch(/SDK key/);
    const none = await httpRequest(`${ts.baseUrl}/v1/tokens:exchange-own`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(none.status).toBe(401);
  });

  it('a permission the key lacks gets no token (403)', async () => {
    const k = await customerKey([Action.READ]);
    const r = await exchange(k.secret, { requiredPermissions: ['balance_transfers:delete'] });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'permission_denied' });
  });

  it('a tampered token → 401 invalid_token', async () => {
    const k = await customerKey();
    const t = (await tokenFor(k.secret, { requiredPermissions: ['balance_transfers:read'] })).token;
    const [h, p, s] = t.split('.') as [string, string, string];
    // Another signature ...
    const flipped = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    // ... and more permissions than were granted, under the original signature.
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    const widened = `${h}.${Buffer.from(JSON.stringify({ ...claims, permissions: ['balance_transfers:delete'] })).toString('base64url')}.${s}`;
    for (const bad of [flipped, widened, `${h}.${p}.`, 'a.b.c']) {
      const r = await authorize(bad, { 'x-keyward-permissions': 'balance_transfers:delete' });
      expect(r.status, bad).toBe(401);
      expect(code(r)).toBe('invalid_token');
    }
  });

  it('a token lacking the permission the route needs → 403 insufficient_permissions, with the identity headers', async () => {
    const k = await customerKey();
    const t = await tokenFor(k.secret, { requiredPermissions: ['balance_transfers:read'] });
    // The key holds create, but this token was asked for read only.
    const r = await authorize(t.token, { 'x-keyward-permissions': 'balance_transfers:create' });
    expect(r.status).toBe(403);
    expect(code(r)).toBe('insufficient_permissions');
    expect(r.headers['x-keyward-key-id']).toBe(k.id);
    // Another workspace required by the route: as an unknown key.
    const other = await authorize(t.token, { 'x-keyward-require-workspace-id': '00000000-0000-4000-8000-000000000000' });
    expect(other.status).toBe(401);
  });

  it('forward auth still needs the gateway’s SDK key for a token', async () => {
    const k = await customerKey();
    const t = await tokenFor(k.secret);
    const r = await httpRequest(`${ts.baseUrl}/v1/authorize`, { headers: { authorization: `Bearer ${t.token}` } });
    expect(r.status).toBe(401);
    expect(code(r)).toBe('gateway_unauthenticated');
  });

  it(`one key exchanges at most ${PER_MINUTE} times a minute (429), then reuses its token`, async () => {
    const k = await customerKey();
    let last = '';
    for (let i = 0; i < PER_MINUTE; i++) last = (await tokenFor(k.secret)).token;
    const r = await exchange(k.secret);
    expect(r.status, r.body).toBe(429);
    expect(JSON.parse(r.body)).toMatchObject({ code: 'resource_exhausted' });
    expect(JSON.parse(r.body).message).toMatch(/at most 30 a minute/);
    // Another key is not held back, and the token it has still passes.
    expect((await exchange((await customerKey()).secret)).status).toBe(200);
    expect((await authorize(last)).status).toBe(200);
  });

  it('an address that made a burst of failed exchanges is throttled (429); a key that exchanged before still can', async () => {
    const known = await customerKey();
    await tokenFor(known.secret);
    const fresh = await customerKey();
    let throttled: HttpReply | undefined;
    for (let i = 0; i <= FAILURE_BURST + 1 && throttled === undefined; i++) {
      const r = await exchange(issueApiKey('kw').plaintext);
      if (r.status === 429) throttled = r;
      else expect(r.status).toBe(401);
    }
    expect(throttled, 'no 429 after a burst of failures').toBeDefined();
    expect(JSON.parse(throttled!.body).message).toMatch(/too many failed token exchanges from this address/);
    expect(throttled!.headers['retry-after']).toBeDefined();
    // A key never seen from here waits too; one that exchanged before does not.
    expect((await exchange(fresh.secret)).status).toBe(429);
    expect((await exchange(known.secret)).status).toBe(200);
    // Over gRPC the same refusal is RESOURCE_EXHAUSTED.
    const e = await client(TokenService, ts, { token: issueApiKey('kw').plaintext, protocol: 'grpc' })
      .exchangeOwnKey({})
      .then(
        () => undefined,
        (x: unknown) => ConnectError.from(x),
      );
    expect(e?.code).toBe(Code.ResourceExhausted);
  });
});
