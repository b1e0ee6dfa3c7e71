// SdkKeyService: SDK keys made, listed and revoked over RPC, as the console
// does, holding no more than their maker holds.
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import { SdkKeySchema, SdkKeyService } from '../../gen/keyward/v1/sdk_key_service_pb.js';
import { toJsonString } from '@bufbuild/protobuf';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { recordSecret } from '../support/hygiene.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
let ws1: string;
let ws2: string;

const sdk = (token?: string) => client(SdkKeyService, ts, { token: token ?? ts.adminToken });

async function refusal(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
  throw new Error('expected the call to fail');
}

async function create(scopes: string[], workspaceIds: string[] = [], token?: string) {
  const r = await sdk(token).createSdkKey({ sdkKey: { name: `k ${scopes.join(' ')}`, scopes, workspaceIds } });
  recordSecret(r.token);
  return r;
}

beforeAll(async () => {
  ts = await startTestServer();
  const W = client(WorkspaceService, ts);
  ws1 = (await W.createWorkspace({ workspace: { name: 'sdk-one' } })).workspace!.id;
  ws2 = (await W.createWorkspace({ workspace: { name: 'sdk-two' } })).workspace!.id;
});
afterAll(async () => {
  await ts?.close();
});

describe('SdkKeyService', () => {
  it('creates a key whose token works at once and is shown only in the answer', async () => {
    const r = await create(['workspace:read']);
    expect(r.token).toMatch(/^kws_[0-9a-f-]{36}_[0-9A-Za-z]{43}$/);
    expect(r.sdkKey).toMatchObject({ scopes: ['workspace:read'], workspaceIds: [] });
    expect(r.sdkKey!.revokeTime).toBeUndefined();
    const listed = await client(WorkspaceService, ts, { token: r.token }).listWorkspaces({});
    expect(listed.workspaces.length).toBeGreaterThanOrEqual(2);
    const again = (await sdk().listSdkKeys({ pageSize: 1000 })).sdkKeys.find((k) => k.id === r.sdkKey!.id)!;
    expect(toJsonString(SdkKeySchema, again)).not.toContain(r.token.slice(-43));
  });

  it('describes the caller, last use included', async () => {
    const r = await create(['api_keys:read', 'sdk_keys:write'], [ws1]);
    const me = (await sdk(r.token).getCurrentSdkKey({})).sdkKey!;
    expect(me).toMatchObject({ id: r.sdkKey!.id, scopes: ['api_keys:read', 'sdk_keys:write'], workspaceIds: [ws1] });
    // Written at first use (best effort, off the request path).
    await expect.poll(async () => (await sdk().listSdkKeys({ pageSize: 1000 })).sdkKeys.find((k) => k.id === r.sdkKey!.id)?.lastUsedTime).toBeDefined();
  });

  it('hands out no scope the caller lacks, and * only from a * key', async () => {
    const maker = await create(['sdk_keys:write', 'api_keys:read']);
    expect((await create(['api_keys:read'], [], maker.token)).sdkKey!.scopes).toEqual(['api_keys:read']);
    for (const scopes of [['api_keys:write'], ['*'], ['api_keys:read', 'audit:read']]) {
      const e = await refusal(create(scopes, [], maker.token));
      expect(e.code, e.message).toBe(Code.PermissionDenied);
      expect(e.message).toMatch(/^sdk_key\.scopes: /);
    }
    const bad = await refusal(create(['nope:read']));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toMatch(/^sdk_key\.scopes: unknown scope/);
    expect((await refusal(sdk().createSdkKey({ sdkKey: { name: '', scopes: ['*'] } }))).message).toMatch(/^sdk_key\.name/);
    expect((await refusal(sdk().createSdkKey({ sdkKey: { name: 'x', scopes: ['*'], workspaceIds: ['00000000-0000-4000-8000-000000000000'] } }))).code).toBe(
      Code.NotFound,
    );
  });

  it('a key restricted to workspaces makes, lists and revokes only keys restricted to some of them', async () => {
    const maker = await create(['*'], [ws1]);
    const mine = await create(['api_keys:read'], [ws1], maker.token);
    expect((await refusal(create(['api_keys:read'], [], maker.token))).code).toBe(Code.PermissionDenied);
    expect((await refusal(create(['api_keys:read'], [ws1, ws2], maker.token))).code).toBe(Code.PermissionDenied);
    const theirs = await create(['api_keys:read'], [ws2]);
    const global = await create(['api_keys:read']);

    const listed = (await sdk(maker.token).listSdkKeys({ pageSize: 1000 })).sdkKeys;
    expect(listed.map((k) => k.id)).toContain(mine.sdkKey!.id);
    expect(listed.every((k) => k.workspaceIds.length > 0 && k.workspaceIds.every((w) => w === ws1))).toBe(true);
    for (const other of [theirs, global]) {
      const e = await refusal(sdk(maker.token).revokeSdkKey({ id: other.sdkKey!.id }));
      expect(e.code).toBe(Code.NotFound);
    }
    const revoked = (await sdk(maker.token).revokeSdkKey({ id: mine.sdkKey!.id })).sdkKey!;
    expect(revoked.revokeTime).toBeDefined();
    expect((await refusal(client(WorkspaceService, ts, { token: mine.token }).listWorkspaces({}))).code).toBe(Code.Unauthenticated);
  });

  it('pages through keys in id order', async () => {
    for (let i = 0; i < 3; i++) await create(['workspace:read']);
    const all = (await sdk().listSdkKeys({ pageSize: 1000 })).sdkKeys.map((k) => k.id);
    const paged: string[] = [];
    let pageToken = '';
    do {
      const page = await sdk().listSdkKeys({ pageSize: 2, pageToken });
      paged.push(...page.sdkKeys.map((k) => k.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    expect(paged).toEqual(all);
    expect([...all].sort()).toEqual(all);
  });

  it('every change is audited as the SDK key that made it', async () => {
    const maker = await create(['sdk_keys:write', 'workspace:read']);
    const made = await create(['workspace:read'], [], maker.token);
    await sdk(maker.token).revokeSdkKey({ id: made.sdkKey!.id });
    const events = (await client(AuditService, ts).listAuditEvents({ resourceId: made.sdkKey!.id, pageSize: 100 })).events;
    expect(events.map((e) => [e.action, e.actor]).sort()).toEqual(
      [
        ['sdk_key.create', maker.sdkKey!.id],
        ['sdk_key.revoke', maker.sdkKey!.id],
      ].sort(),
    );
  });
});
