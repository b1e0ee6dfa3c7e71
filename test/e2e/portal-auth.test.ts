// Customer portal tokens (PortalService) against every RPC: what a session may
// do with its own customer's keys, and that everything else is refused exactly
// as the authorization matrix refuses it (another customer's key NOT_FOUND,
// another workspace PERMISSION_DENIED or NOT_FOUND, any other RPC
// PERMISSION_DENIED), expired and tampered tokens UNAUTHENTICATED; CORS for
// the configured origins only; the console and portal pages with their
// security headers.
import { Code, ConnectError, createClient, type CallOptions } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Action, type ApiKeySchema, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { PortalService } from '../../gen/keyward/v1/portal_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { RPCS } from '../support/descriptors.js';
import { httpRequest } from '../support/fixtures.js';
import { recordSecret } from '../support/hygiene.js';
import { client, PROTOCOLS, startTestServer, transport, type ProtocolName, type TestServer } from '../support/server.js';

const PORTAL_RPCS = new Set([
  'KeyService/ListKeys',
  'KeyService/GetKey',
  'KeyService/CreateKey',
  'KeyService/UpdateKey',
  'KeyService/RotateKey',
  'KeyService/RevokeKey',
  'KeyService/DeleteKey',
  'UsageService/GetKeyUsage',
  'PortalService/GetPortalSession',
]);
const ALLOWED_ORIGIN = 'https://app.example.com';

let ts: TestServer;
let ws: string;
let otherWs: string;
let keyOfA: { id: string; secret: string };
let keyOfB: { id: string };
let keyOfAElsewhere: { id: string };
let tokenA: string;

async function session(workspaceId: string, customerId: string, allowed = [{ scope: 'reports', actions: [Action.READ, Action.CREATE] }], ttlSeconds = 600n) {
  const r = await client(PortalService, ts).createPortalSession({ workspaceId, customerId, allowedGrants: allowed, ttl: { seconds: ttlSeconds } });
  recordSecret(r.token);
  return r.token;
}

const as = <S extends Parameters<typeof client>[0]>(service: S, token: string, protocol: ProtocolName = 'connect-json') =>
  client(service, ts, { token, protocol });

async function codeOf(p: Promise<unknown>): Promise<{ code: Code | 'OK'; message: string }> {
  try {
    await p;
    return { code: 'OK', message: '' };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
}

beforeAll(async () => {
  ts = await startTestServer({ KEYWARD_PORTAL_ORIGINS: `${ALLOWED_ORIGIN}, http://127.0.0.1:9` });
  const W = client(WorkspaceService, ts);
  const S = client(ScopeService, ts);
  const K = client(KeyService, ts);
  ws = (await W.createWorkspace({ workspace: { name: 'portal' } })).workspace!.id;
  otherWs = (await W.createWorkspace({ workspace: { name: 'portal-other' } })).workspace!.id;
  for (const w of [ws, otherWs]) {
    await S.createScope({ scope: { workspaceId: w, name: 'reports' } });
    await S.createScope({ scope: { workspaceId: w, name: 'billing' } });
  }
  const a = await K.createKey({ key: { workspaceId: ws, customerId: 'cus_A', name: 'a-1', grants: [{ scope: 'reports', actions: [Action.READ] }] } });
  keyOfA = { id: a.key!.id, secret: a.secret };
  keyOfB = { id: (await K.createKey({ key: { workspaceId: ws, customerId: 'cus_B', name: 'b-1' } })).key!.id };
  keyOfAElsewhere = { id: (await K.createKey({ key: { workspaceId: otherWs, customerId: 'cus_A', name: 'a-elsewhere' } })).key!.id };
  tokenA = await session(ws, 'cus_A');
});
afterAll(async () => {
  await ts?.close();
});

describe('minting a portal session', () => {
  it('returns a kwp_ token, kept only as its SHA-256, with the expiry asked for', async () => {
    const before = Date.now();
    const r = await client(PortalService, ts).createPortalSession({ workspaceId: ws, customerId: 'cus_C', ttl: { seconds: 3600n } });
    recordSecret(r.token);
    expect(r.token).toMatch(/^kwp_[0-9A-Za-z]{43}$/);
    const expires = Number(r.expireTime!.seconds) * 1000;
    expect(expires).toBeGreaterThanOrEqual(before + 3600_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 3600_000 + 1000);
    const rows = await ts.sql<{ token_hash: string }[]>('select token_hash from portal_sessions where customer_id = ?', ['cus_C']);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(rows)).not.toContain(r.token.slice(4));
  });

  it('defaults to 15 minutes and refuses bad input naming the field', async () => {
    const P = client(PortalService, ts);
    const r = await P.createPortalSession({ workspaceId: ws, customerId: 'cus_D' });
    recordSecret(r.token);
    expect(Number(r.expireTime!.seconds) * 1000 - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(Number(r.expireTime!.seconds) * 1000 - Date.now()).toBeLessThanOrEqual(15 * 60_000 + 1000);
    const bad: [Parameters<typeof P.createPortalSession>[0], string][] = [
      [{ workspaceId: ws, customerId: '' }, 'customer_id'],
      [{ workspaceId: ws, customerId: 'x', ttl: { seconds: 30n } }, 'ttl'],
      [{ workspaceId: ws, customerId: 'x', ttl: { seconds: 25n * 3600n } }, 'ttl'],
      [{ workspaceId: ws, customerId: 'x', allowedGrants: [{ scope: 'nope', actions: [Action.READ] }] }, 'allowed_grants[0].scope'],
      [{ workspaceId: 'not-an-id', customerId: 'x' }, 'workspace_id'],
    ];
    for (const [req, field] of bad) {
      const e = await codeOf(P.createPortalSession(req));
      expect(
        e.code,
        JSON.stringify(req, (_k, v) => (typeof v === 'bigint' ? `${v}` : v)),
      ).toBe(Code.InvalidArgument);
      expect(e.message.startsWith(field)).toBe(true);
    }
  });
});

describe('what a portal token may call', () => {
  it('every RPC outside the portal’s answers PERMISSION_DENIED, over every protocol', async () => {
    const others = RPCS.filter((r) => !PORTAL_RPCS.has(r.name));
    expect(others.length).toBeGreaterThan(15);
    for (const protocol of PROTOCOLS) {
      for (const rpc of others) {
        const c = createClient(rpc.service, transport(ts.baseUrl, protocol, tokenA)) as unknown as Record<
          string,
          (req: unknown, o?: CallOptions) => Promise<unknown>
        >;
        const req = rpc.name === 'KeyService/VerifyKey' || rpc.name === 'TokenService/ExchangeKey' ? { key: keyOfA.secret } : {};
        const e = await codeOf(c[rpc.method.localName]!(req));
        expect(e.code, `${protocol} ${rpc.name}: ${e.message}`).toBe(Code.PermissionDenied);
        expect(e.message).toContain('portal token');
      }
    }
  });

  it('its own customer’s keys: list, get, create, update, rotate, revoke, delete, usage, and its session', async () => {
    for (const protocol of PROTOCOLS) {
      const K = as(KeyService, tokenA, protocol);
      const listed = await K.listKeys({ workspaceId: ws });
      expect(listed.keys.map((k) => k.customerId)).toEqual(listed.keys.map(() => 'cus_A'));
      expect(listed.keys.map((k) => k.id)).toContain(keyOfA.id);
      expect((await K.getKey({ id: keyOfA.id })).key!.name).toBe('a-1');

      // Created keys belong to the session's customer, with or without naming it.
      const created = await K.createKey({ key: { workspaceId: ws, name: `mine-${protocol}`, grants: [{ scope: 'reports', actions: [Action.READ] }] } });
      recordSecret(created.secret);
      expect(created.key).toMatchObject({ customerId: 'cus_A', state: KeyState.ACTIVE });
      const named = await K.createKey({ key: { workspaceId: ws, customerId: 'cus_A', name: 'named' } });
      recordSecret(named.secret);
      const verified = await client(KeyService, ts).verifyKey({ key: created.secret, requiredPermissions: ['reports:read'] });
      expect(verified).toMatchObject({ code: VerifyCode.VALID, customerId: 'cus_A' });

      const id = created.key!.id;
      const updated = await K.updateKey({
        key: { id, name: 'renamed', description: 'd', enabled: false },
        updateMask: { paths: ['name', 'description', 'enabled'] },
      });
      expect(updated.key).toMatchObject({ name: 'renamed', enabled: false });
      const rotated = await K.rotateKey({ id, gracePeriod: { seconds: 60n } });
      recordSecret(rotated.secret);
      expect(rotated.secret).not.toBe(created.secret);
      const usage = await as(UsageService, tokenA, protocol).getKeyUsage({ keyId: id, startTime: timestampFromDate(new Date(Date.now() - 3600_000)) });
      expect(typeof usage.total).toBe('bigint');
      expect((await K.revokeKey({ id })).key!.state).toBe(KeyState.REVOKED);
      await K.deleteKey({ id: named.key!.id });
      expect((await codeOf(client(KeyService, ts).getKey({ id: named.key!.id }))).code).toBe(Code.NotFound);

      const s = (await as(PortalService, tokenA, protocol).getPortalSession({})).session!;
      expect(s).toMatchObject({ workspaceId: ws, customerId: 'cus_A', keyPrefix: 'kw' });
      expect(s.allowedGrants).toEqual([expect.objectContaining({ scope: 'reports', actions: [Action.READ, Action.CREATE] })]);
    }
  });

  it('is audited as the portal session', async () => {
    const created = await as(KeyService, tokenA).createKey({ key: { workspaceId: ws, name: 'audited' } });
    recordSecret(created.secret);
    const events = await client(AuditService, ts).listAuditEvents({ workspaceId: ws, resourceId: created.key!.id });
    expect(events.events.map((e) => [e.action, e.actor.startsWith('portal:')])).toContainEqual(['key.create', true]);
  });
});

describe('what a portal token may not reach', () => {
  it('another customer’s key, or a key of another workspace: NOT_FOUND, as for a key that does not exist', async () => {
    const K = as(KeyService, tokenA);
    const absent = '00000000-0000-4000-8000-000000000000';
    const calls = (id: string) => [
      K.getKey({ id }),
      K.updateKey({ key: { id, name: 'x' }, updateMask: { paths: ['name'] } }),
      K.rotateKey({ id }),
      K.revokeKey({ id }),
      K.deleteKey({ id }),
      as(UsageService, tokenA).getKeyUsage({ keyId: id, startTime: timestampFromDate(new Date(Date.now() - 3600_000)) }),
    ];
    const shape = (m: string) => m.replace(/[0-9a-f-]{36}/g, '<id>');
    const expected = await Promise.all(calls(absent).map(codeOf));
    for (const id of [keyOfB.id, keyOfAElsewhere.id]) {
      const got = await Promise.all(calls(id).map(codeOf));
      got.forEach((g, i) => {
        expect(g.code, g.message).toBe(Code.NotFound);
        expect(shape(g.message)).toBe(shape(expected[i]!.message));
      });
    }
    // Untouched.
    const b = (await client(KeyService, ts).getKey({ id: keyOfB.id })).key!;
    expect(b).toMatchObject({ name: 'b-1', state: KeyState.ACTIVE });
  });

  it('another customer’s list, another workspace, another customer id: PERMISSION_DENIED', async () => {
    const K = as(KeyService, tokenA);
    expect((await codeOf(K.listKeys({ workspaceId: ws, customerId: 'cus_B' }))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(K.listKeys({ workspaceId: otherWs }))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(K.createKey({ key: { workspaceId: otherWs, name: 'x' } }))).code).toBe(Code.PermissionDenied);
    expect((await codeOf(K.createKey({ key: { workspaceId: ws, customerId: 'cus_B', name: 'x' } }))).code).toBe(Code.PermissionDenied);
    const listed = await client(KeyService, ts).listKeys({ workspaceId: ws, customerId: 'cus_B' });
    expect(listed.keys.map((k) => k.name)).toEqual(['b-1']);
  });

  it('grants outside allowed_grants, limits, metadata, and other fields of an update: PERMISSION_DENIED naming the field', async () => {
    const K = as(KeyService, tokenA);
    const creates: [MessageInitShape<typeof ApiKeySchema>, string][] = [
      [{ grants: [{ scope: 'billing', actions: [Action.READ] }] }, 'key.grants[0]'],
      [{ grants: [{ scope: 'reports', actions: [Action.DELETE] }] }, 'key.grants[0]'],
      [{ metadata: { plan: 'enterprise' } }, 'key.metadata'],
      [{ rateLimits: [{ name: 'burst', limit: 1000000n, duration: { seconds: 1n } }] }, 'key.rate_limits'],
      [{ remainingUses: 1000000n }, 'key.remaining_uses'],
    ];
    for (const [fields, field] of creates) {
      const e = await codeOf(K.createKey({ key: { workspaceId: ws, name: 'greedy', ...fields } }));
      expect(e.code, e.message).toBe(Code.PermissionDenied);
      expect(e.message.startsWith(field), e.message).toBe(true);
    }
    for (const path of ['grants', 'customer_id', 'metadata', 'rate_limits', 'remaining_uses', 'expire_time']) {
      const e = await codeOf(
        K.updateKey({ key: { id: keyOfA.id, customerId: 'cus_B', grants: [{ scope: 'billing', actions: [Action.READ] }] }, updateMask: { paths: [path] } }),
      );
      expect(e.code, `${path}: ${e.message}`).toBe(Code.PermissionDenied);
    }
    const a = (await client(KeyService, ts).getKey({ id: keyOfA.id })).key!;
    expect(a).toMatchObject({ customerId: 'cus_A', grants: [expect.objectContaining({ scope: 'reports', actions: [Action.READ] })] });
    const names = (await client(KeyService, ts).listKeys({ workspaceId: ws, pageSize: 1000 })).keys.map((k) => k.name);
    expect(names).not.toContain('greedy');
  });

  it('expired, tampered, malformed and other-workspace-deleted tokens: UNAUTHENTICATED or NOT_FOUND, never a key', async () => {
    const expired = await session(ws, 'cus_A', [], 60n);
    await ts.sql(`update portal_sessions set expire_time = now() - interval '1 second' where expire_time < now() + interval '61 seconds'`);
    const tampered = tokenA.slice(0, -1) + (tokenA.endsWith('a') ? 'b' : 'a');
    for (const [t, why] of [
      [expired, 'expired'],
      [tampered, 'tampered'],
      ['kwp_short', 'malformed'],
    ] as const) {
      for (const protocol of PROTOCOLS) {
        const e = await codeOf(as(KeyService, t, protocol).listKeys({ workspaceId: ws }));
        expect(e.code, `${why} over ${protocol}: ${e.message}`).toBe(Code.Unauthenticated);
      }
    }
    // A session of a workspace deleted since: its keys are gone for it too.
    const doomed = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'portal-doomed' } })).workspace!.id;
    const t = await session(doomed, 'cus_A', []);
    await client(WorkspaceService, ts).deleteWorkspace({ id: doomed });
    expect((await codeOf(as(KeyService, t).listKeys({ workspaceId: doomed }))).code).toBe(Code.NotFound);
    expect((await codeOf(as(PortalService, t).getPortalSession({}))).code).toBe(Code.NotFound);
  });
});

const request = (path: string, opts: Parameters<typeof httpRequest>[1] = {}) => httpRequest(`${ts.baseUrl}${path}`, opts);

describe('CORS for the portal’s origins', () => {
  const listKeys = '/keyward.v1.KeyService/ListKeys';

  it('answers Connect and gRPC-Web preflights of portal RPCs for an allowed origin', async () => {
    for (const headers of ['content-type,connect-protocol-version,authorization', 'content-type,x-grpc-web,x-user-agent,authorization']) {
      const r = await request(listKeys, {
        method: 'OPTIONS',
        headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': headers },
      });
      expect(r.status).toBe(204);
      expect(r.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
      expect(r.headers['access-control-allow-methods']).toContain('POST');
      for (const h of headers.split(',')) expect(r.headers['access-control-allow-headers']!.toLowerCase()).toContain(h);
    }
  });

  it('the real request gets the origin back and the gRPC-Web status headers exposed', async () => {
    const r = await request(listKeys, {
      method: 'POST',
      headers: { origin: ALLOWED_ORIGIN, 'content-type': 'application/json', authorization: `Bearer ${tokenA}` },
      body: JSON.stringify({ workspaceId: ws }),
    });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe(ALLOWED_ORIGIN);
    expect(r.headers['access-control-expose-headers']).toContain('Grpc-Status');
  });

  it('no CORS for another origin, nor for any RPC a portal token may not call', async () => {
    const other = await request(listKeys, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const management = await request('/keyward.v1.WorkspaceService/ListWorkspaces', {
      method: 'OPTIONS',
      headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'POST' },
    });
    expect(management.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('the console and the portal pages', () => {
  it('/ redirects a browser to the console (and answers JSON links otherwise); /console redirects to /console/', async () => {
    expect(await request('/', { headers: { accept: 'text/html,application/xhtml+xml' } })).toMatchObject({
      status: 302,
      headers: expect.objectContaining({ location: '/console/' }),
    });
    const json = await request('/');
    expect(json.status).toBe(200);
    expect(JSON.parse(json.body).links).toMatchObject({ console: '/console/', openapi: '/openapi.json' });
    expect(await request('/console')).toMatchObject({ status: 308, headers: expect.objectContaining({ location: '/console/' }) });
  });

  it('serves each page with a strict CSP, its assets cached for good, and its routes as index.html', async () => {
    for (const [prefix, frameAncestors] of [
      ['/console', "frame-ancestors 'none'"],
      ['/portal', `frame-ancestors 'self' ${ALLOWED_ORIGIN} http://127.0.0.1:9`],
    ] as const) {
      const index = await request(`${prefix}/`);
      expect(index.status, `${prefix}/ (run npm run build:ui): ${index.body}`).toBe(200);
      expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(index.headers['cache-control']).toBe('no-cache');
      const policy = index.headers['content-security-policy']!;
      expect(policy).toContain("script-src 'self'");
      expect(policy).not.toContain('unsafe');
      expect(policy).toContain(frameAncestors);
      expect(index.headers['x-content-type-options']).toBe('nosniff');
      const asset = /(?:src|href)="([^"]+\/assets\/[^"]+\.js)"/.exec(index.body)?.[1];
      expect(asset, index.body).toBeDefined();
      const js = await request(asset!);
      expect(js.status).toBe(200);
      expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
      expect(js.headers['cache-control']).toContain('immutable');
      const route = await request(`${prefix}/some/deep/route`);
      expect(route.status).toBe(200);
      expect(route.body).toBe(index.body);
      expect((await request(`${prefix}/assets/missing.js`)).status).toBe(404);
      expect((await request(`${prefix}/..%2F..%2Fpackage.json`)).status).toBe(404);
      expect((await request(`${prefix}/%2e%2e/%2e%2e/package.json`)).status).toBe(404);
      expect((await request(`${prefix}/`, { method: 'POST' })).status).toBe(405); // a page takes GET: said in JSON
    }
  });
});
