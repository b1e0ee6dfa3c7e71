// Permission strings as the seeds write them, on a real server: scopes that
// declare their own actions (`inference:write`), whole-scope grants (`admin`),
// the string form in JSON and REST (ApiKey.scopes), and the same rules in
// VerifyKey, forward auth, exchanged tokens, portal sessions and UpdateScope.
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { PortalService } from '../../gen/keyward/v1/portal_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { recordSecret } from '../support/hygiene.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

type Json = Record<string, any>;
let ts: TestServer;
let ws: string;
let inferenceId: string;

const keys = (token?: string) => client(KeyService, ts, token === undefined ? {} : { token });
const scopes = () => client(ScopeService, ts);

async function rejected(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error('expected an error');
}

async function rest(method: string, path: string, body: unknown, token = ts.adminToken): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${ts.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Json };
}

async function newKey(scopeStrings: string[], extra: Json = {}) {
  const r = await keys().createKey({ key: { workspaceId: ws, name: 'k', scopes: scopeStrings, ...extra } });
  recordSecret(r.secret);
  return { id: r.key!.id, secret: r.secret, key: r.key! };
}

const verify = (key: string, requiredPermissions: string[]) => keys().verifyKey({ key, requiredPermissions });

beforeAll(async () => {
  ts = await startTestServer();
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'permission-strings' } })).workspace!.id;
  inferenceId = (await scopes().createScope({ scope: { workspaceId: ws, name: 'inference', actions: ['read', 'write'] } })).scope!.id;
  await scopes().createScope({ scope: { workspaceId: ws, name: 'admin', description: 'administrative operations' } });
  await scopes().createScope({ scope: { workspaceId: ws, name: 'analytics' } });
});
afterAll(async () => {
  await ts?.close();
});

describe('scopes declare their actions', () => {
  it('a scope created without actions declares the standard four; its own list otherwise, duplicates dropped', async () => {
    const list = (await scopes().listScopes({ workspaceId: ws })).scopes;
    expect(Object.fromEntries(list.map((s) => [s.name, s.actions]))).toEqual({
      admin: ['read', 'create', 'update', 'delete'],
      analytics: ['read', 'create', 'update', 'delete'],
      inference: ['read', 'write'],
    });
    const dup = await scopes().createScope({ scope: { workspaceId: ws, name: 'dup', actions: ['run', 'run', 'stop'] } });
    expect(dup.scope!.actions).toEqual(['run', 'stop']);
  });

  it('a bad action is INVALID_ARGUMENT naming it', async () => {
    for (const [actions, field] of [
      [['Write'], 'scope.actions[0]'],
      [['read', 'a:b'], 'scope.actions[1]'],
      [Array.from({ length: 33 }, (_, i) => `a${i}`), 'scope.actions'],
    ] as const) {
      const e = await rejected(scopes().createScope({ scope: { workspaceId: ws, name: `bad${actions.length}`, actions: [...actions] } }));
      expect(e.code).toBe(Code.InvalidArgument);
      expect(e.rawMessage.startsWith(`${field}: `), e.rawMessage).toBe(true);
    }
  });
});

describe('the AIaaS guide, as written', () => {
  it('POST /v1/api-keys {"name", "scopes": ["inference:read", "inference:write"], "expires_in_days"} gets a key that verifies for inference:write', async () => {
    const scoped = await ts.sdkKey(['api_keys:write', 'api_keys:read'], [ws]);
    const res = await fetch(`${ts.baseUrl}/v1/api-keys`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${scoped}`, 'Content-Type': 'application/json' },
      body: '{"name": "production-key", "scopes": ["inference:read", "inference:write"], "expires_in_days": 90}',
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as Json;
    recordSecret(json.secret);
    expect(json.key).toMatchObject({
      name: 'production-key',
      workspaceId: ws,
      scopes: ['inference:read', 'inference:write'],
      grants: [{ scope: 'inference', actions: ['ACTION_READ'], customActions: ['write'] }],
    });
    expect((await verify(json.secret, ['inference:write'])).code).toBe(VerifyCode.VALID);
    const r = await verify(json.secret, ['inference:read', 'analytics:read']);
    expect(r.code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    expect(r.permissions).toEqual(['inference:read', 'inference:write']);
  });
});

describe('whole-scope grants', () => {
  it('`admin` grants every action of the scope and the bare permission; a single action does not grant the bare one', async () => {
    const k = await newKey(['admin', 'inference:read']);
    expect(k.key.scopes).toEqual(['admin', 'inference:read']);
    expect(k.key.grants).toEqual([
      expect.objectContaining({ scope: 'admin', actions: [], customActions: [], allActions: true }),
      expect.objectContaining({ scope: 'inference', actions: [Action.READ], customActions: [], allActions: false }),
    ]);
    for (const ok of [['admin'], ['admin:delete'], ['admin:anything'], ['admin', 'inference:read']]) {
      expect((await verify(k.secret, ok)).code, ok.join()).toBe(VerifyCode.VALID);
    }
    for (const no of [['inference'], ['inference:write'], ['analytics']]) {
      expect((await verify(k.secret, no)).code, no.join()).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    }
    expect((await verify(k.secret, ['admin'])).permissions).toEqual(['admin', 'inference:read']);
  });

  it('the structured form says the same: custom_actions and all_actions, merged with scopes', async () => {
    const r = await keys().createKey({
      key: {
        workspaceId: ws,
        grants: [
          { scope: 'inference', customActions: ['write'] },
          { scope: 'analytics', actions: [Action.READ], allActions: true },
        ],
        scopes: ['inference:read'],
      },
    });
    recordSecret(r.secret);
    expect(r.key!.scopes).toEqual(['analytics', 'inference:read', 'inference:write']);
  });
});

describe('bad permission strings are INVALID_ARGUMENT naming the entry, and nothing is written', () => {
  it('malformed, unknown scope, undeclared action', async () => {
    const before = (await keys().listKeys({ workspaceId: ws })).keys.length;
    const cases: [string[], string, RegExp][] = [
      [['inference:read', 'Inference:write'], 'key.scopes[1]', /not scope:action or a scope name/],
      [['billing:read'], 'key.scopes[0]', /no scope named "billing"/],
      [['inference:delete'], 'key.scopes[0]', /declares no action "delete" \(it declares read, write\)/],
    ];
    for (const [strings, field, message] of cases) {
      const e = await rejected(keys().createKey({ key: { workspaceId: ws, scopes: strings } }));
      expect(e.code).toBe(Code.InvalidArgument);
      expect(e.rawMessage.startsWith(`${field}: `), e.rawMessage).toBe(true);
      expect(e.rawMessage).toMatch(message);
    }
    const e = await rejected(keys().createKey({ key: { workspaceId: ws, grants: [{ scope: 'inference', actions: [Action.DELETE] }] } }));
    expect(e.rawMessage).toMatch(/^key\.grants\[0\]\.scope: .*declares no action "delete"/);
    expect((await keys().listKeys({ workspaceId: ws })).keys.length).toBe(before);
  });

  it('VerifyKey refuses a malformed required permission, and accepts a bare scope', async () => {
    const k = await newKey(['analytics:read']);
    const e = await rejected(verify(k.secret, ['analytics:Read']));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toMatch(/^required_permissions\[0\]: /);
    expect((await verify(k.secret, ['analytics'])).code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
  });
});

describe('UpdateKey and UpdateScope', () => {
  it("the mask path `scopes` replaces the key's permissions, over REST as over Connect", async () => {
    const k = await newKey(['inference:read']);
    const r = await rest('PATCH', `/v1/api-keys/${k.id}?update_mask=scopes`, { scopes: ['inference:write', 'admin'] });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.key.scopes).toEqual(['admin', 'inference:write']);
    expect((await verify(k.secret, ['inference:read'])).code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    expect((await verify(k.secret, ['inference:write', 'admin:update'])).code).toBe(VerifyCode.VALID);
  });

  it('an action still granted to a live key cannot be removed; once the key is revoked it can; actions can be added', async () => {
    const s = (await scopes().createScope({ scope: { workspaceId: ws, name: 'models', actions: ['read', 'train'] } })).scope!;
    const k = await newKey(['models:train']);
    const e = await rejected(scopes().updateScope({ scope: { id: s.id, actions: ['read'] }, updateMask: { paths: ['actions'] } }));
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.rawMessage).toMatch(/^scope\.actions: models:train is still granted/);
    const added = await scopes().updateScope({ scope: { id: s.id, actions: ['read', 'train', 'deploy'] }, updateMask: { paths: ['actions'] } });
    expect(added.scope!.actions).toEqual(['read', 'train', 'deploy']);
    const empty = await rejected(scopes().updateScope({ scope: { id: s.id, actions: [] }, updateMask: { paths: ['actions'] } }));
    expect(empty.code).toBe(Code.InvalidArgument);
    await keys().revokeKey({ id: k.id });
    const removed = await scopes().updateScope({ scope: { id: s.id, actions: ['read'] }, updateMask: { paths: ['actions'] } });
    expect(removed.scope!.actions).toEqual(['read']);
    expect((await rejected(keys().createKey({ key: { workspaceId: ws, scopes: ['models:train'] } }))).code).toBe(Code.InvalidArgument);
    expect(inferenceId).toBeTruthy();
  });
});

describe('forward auth, tokens and portal sessions use the same rules', () => {
  it('X-Keyward-Permissions takes custom actions and bare scopes', async () => {
    const gateway = await ts.sdkKey(['api_keys:verify']);
    const k = await newKey(['inference:write', 'admin']);
    const authorize = async (perms: string) =>
      (
        await fetch(`${ts.baseUrl}/v1/authorize`, {
          headers: { authorization: `Bearer ${k.secret}`, 'x-keyward-sdk-key': gateway, 'x-keyward-permissions': perms },
        })
      ).status;
    expect(await authorize('inference:write, admin:delete')).toBe(200);
    expect(await authorize('admin')).toBe(200);
    expect(await authorize('inference')).toBe(403);
  });

  it('a token asked for `admin:read` from a whole-scope key passes forward auth for it, and nothing wider', async () => {
    const gateway = await ts.sdkKey(['api_keys:verify']);
    const k = await newKey(['admin']);
    const t = await client(TokenService, ts, { token: k.secret }).exchangeOwnKey({ requiredPermissions: ['admin:read'] });
    const authorize = async (perms: string) =>
      (
        await fetch(`${ts.baseUrl}/v1/authorize`, {
          headers: { authorization: `Bearer ${t.token}`, 'x-keyward-sdk-key': gateway, 'x-keyward-permissions': perms },
        })
      ).status;
    expect(await authorize('admin:read')).toBe(200);
    expect(await authorize('admin:delete')).toBe(403);
  });

  it('a portal session allowed a whole scope may grant it or its actions; nothing outside', async () => {
    const session = await client(PortalService, ts).createPortalSession({
      workspaceId: ws,
      customerId: 'cus_portal',
      allowedGrants: [
        { scope: 'analytics', allActions: true },
        { scope: 'inference', actions: [Action.READ] },
      ],
      ttl: { seconds: 600n },
    });
    expect((await client(PortalService, ts, { token: session.token }).getPortalSession({})).session!.allowedGrants).toEqual([
      expect.objectContaining({ scope: 'analytics', allActions: true }),
      expect.objectContaining({ scope: 'inference', actions: [Action.READ] }),
    ]);
    const portal = keys(session.token);
    const ok = await portal.createKey({ key: { workspaceId: ws, scopes: ['analytics', 'analytics:read', 'inference:read'] } });
    recordSecret(ok.secret);
    expect(ok.key!.scopes).toEqual(['analytics', 'inference:read']);
    for (const [strings, what] of [
      [['inference:write'], 'inference:write'],
      [['inference'], 'inference'],
      [['admin:read'], 'admin:read'],
    ] as const) {
      const e = await rejected(portal.createKey({ key: { workspaceId: ws, scopes: [...strings] } }));
      expect(e.code).toBe(Code.PermissionDenied);
      expect(e.rawMessage).toBe(`key.scopes[0]: the portal session may not grant ${what}`);
    }
  });
});
