import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import type { Scope } from '../../gen/keyward/v1/scope_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { newWorkspace, UUID_RE } from '../support/fixtures.js';
import { client, startTestServer, type TestServer } from '../support/server.js';
import { expectError } from '../support/rpc.js';

let ts: TestServer;
let scopes: Client<typeof ScopeService>;
let workspaces: Client<typeof WorkspaceService>;
let keys: Client<typeof KeyService>;

beforeAll(async () => {
  ts = await startTestServer();
  scopes = client(ScopeService, ts);
  workspaces = client(WorkspaceService, ts);
  keys = client(KeyService, ts);
});
afterAll(async () => {
  await ts?.close();
});

async function newScope(workspaceId: string, name: string, description = ''): Promise<Scope> {
  const { scope } = await scopes.createScope({ scope: { workspaceId, name, description } });
  return scope!;
}

/** Lists every scope of a workspace, page by page, returning the pages' sizes too. */
async function listAll(workspaceId: string, pageSize: number) {
  const all: Scope[] = [];
  const sizes: number[] = [];
  let pageToken = '';
  for (let i = 0; i < 100; i++) {
    const res = await scopes.listScopes({ workspaceId, pageSize, pageToken });
    all.push(...res.scopes);
    sizes.push(res.scopes.length);
    if (res.nextPageToken === '') return { all, sizes };
    pageToken = res.nextPageToken;
  }
  throw new Error('paging did not end');
}

describe('ScopeService happy paths', () => {
  it('creates, gets, lists, updates and deletes a scope', async () => {
    const ws = await newWorkspace(ts);
    const before = Date.now();
    const created = await newScope(ws, 'balance_transfers', 'Moving money between balances');
    expect(created.id).toMatch(UUID_RE);
    expect(created.workspaceId).toBe(ws);
    expect(created.name).toBe('balance_transfers');
    expect(created.description).toBe('Moving money between balances');
    expect(created.createTime).toBeDefined();
    expect(created.updateTime).toBeDefined();
    const createMs = timestampDate(created.createTime!).getTime();
    expect(createMs).toBeGreaterThanOrEqual(before - 1000);
    expect(createMs).toBeLessThanOrEqual(Date.now() + 1000);

    const got = (await scopes.getScope({ id: created.id })).scope!;
    expect(got.id).toBe(created.id);
    expect(got.workspaceId).toBe(ws);
    expect(got.name).toBe('balance_transfers');
    expect(got.description).toBe('Moving money between balances');
    expect(timestampDate(got.createTime!).getTime()).toBe(createMs);

    const listed = await scopes.listScopes({ workspaceId: ws });
    expect(listed.scopes.map((s) => s.id)).toEqual([created.id]);
    expect(listed.nextPageToken).toBe('');

    await new Promise((r) => setTimeout(r, 20));
    // Only the masked field changes, even though the message carries another name.
    const desc = (
      await scopes.updateScope({
        scope: { id: created.id, name: 'ignored_name', description: 'new words' },
        updateMask: { paths: ['description'] },
      })
    ).scope!;
    expect(desc.name).toBe('balance_transfers');
    expect(desc.description).toBe('new words');
    expect(desc.workspaceId).toBe(ws);
    expect(timestampDate(desc.updateTime!).getTime()).toBeGreaterThan(timestampDate(created.updateTime!).getTime());
    expect(timestampDate(desc.createTime!).getTime()).toBe(createMs);

    const renamed = (
      await scopes.updateScope({
        scope: { id: created.id, name: 'transfers', description: 'ignored' },
        updateMask: { paths: ['name'] },
      })
    ).scope!;
    expect(renamed.name).toBe('transfers');
    expect(renamed.description).toBe('new words');

    const both = (
      await scopes.updateScope({
        scope: { id: created.id, name: 'transfers.v2', description: '' },
        updateMask: { paths: ['name', 'description'] },
      })
    ).scope!;
    expect(both.name).toBe('transfers.v2');
    expect(both.description).toBe('');
    const reread = (await scopes.getScope({ id: created.id })).scope!;
    expect(reread.name).toBe('transfers.v2');
    expect(reread.description).toBe('');

    await scopes.deleteScope({ id: created.id });
    await expectError(scopes.getScope({ id: created.id }), Code.NotFound);
    expect((await scopes.listScopes({ workspaceId: ws })).scopes).toEqual([]);
  });

  it('accepts names at the edges of the pattern and lists them by name', async () => {
    const ws = await newWorkspace(ts);
    const longest = `z${'a'.repeat(63)}`;
    for (const name of ['a', 'b.c', 'd-e', 'f_g', 'h9', longest]) await newScope(ws, name);
    const { scopes: listed } = await scopes.listScopes({ workspaceId: ws });
    expect(listed.map((s) => s.name)).toEqual(['a', 'b.c', 'd-e', 'f_g', 'h9', longest]);
    expect(listed.every((s) => s.workspaceId === ws)).toBe(true);
  });

  it('lets two workspaces use the same scope name, each seeing only its own', async () => {
    const a = await newWorkspace(ts);
    const b = await newWorkspace(ts);
    const sa = await newScope(a, 'orders');
    const sb = await newScope(b, 'orders');
    expect(sa.id).not.toBe(sb.id);
    expect((await scopes.listScopes({ workspaceId: a })).scopes.map((s) => s.id)).toEqual([sa.id]);
    expect((await scopes.listScopes({ workspaceId: b })).scopes.map((s) => s.id)).toEqual([sb.id]);
    // Deleting one leaves the other.
    await scopes.deleteScope({ id: sa.id });
    expect((await scopes.getScope({ id: sb.id })).scope?.name).toBe('orders');
  });

  it('frees a deleted scope name for reuse', async () => {
    const ws = await newWorkspace(ts);
    const first = await newScope(ws, 'reports');
    await scopes.deleteScope({ id: first.id });
    const second = await newScope(ws, 'reports');
    expect(second.id).not.toBe(first.id);
  });
});

describe('ScopeService errors', () => {
  it('CreateScope rejects a missing or malformed workspace_id', async () => {
    await expectError(scopes.createScope({ scope: { name: 'orders' } }), Code.InvalidArgument, 'scope.workspace_id');
    await expectError(scopes.createScope({}), Code.InvalidArgument, 'scope.workspace_id');
    await expectError(scopes.createScope({ scope: { workspaceId: 'not-a-uuid', name: 'orders' } }), Code.InvalidArgument, 'scope.workspace_id');
  });

  it('CreateScope rejects names outside [a-z][a-z0-9_.-]{0,63}', async () => {
    const ws = await newWorkspace(ts);
    const bad = ['', 'Orders', '1orders', '_orders', '.orders', 'has space', 'orders:read', 'ordérs', `a${'b'.repeat(64)}`, 'a/b', 'a\nb'];
    for (const name of bad) {
      await expectError(scopes.createScope({ scope: { workspaceId: ws, name } }), Code.InvalidArgument, 'scope.name');
    }
    expect((await scopes.listScopes({ workspaceId: ws })).scopes).toEqual([]);
  });

  it('CreateScope rejects an overlong description', async () => {
    const ws = await newWorkspace(ts);
    await expectError(
      scopes.createScope({ scope: { workspaceId: ws, name: 'orders', description: 'x'.repeat(1001) } }),
      Code.InvalidArgument,
      'scope.description',
    );
    const ok = await newScope(ws, 'orders', 'x'.repeat(1000));
    expect(ok.description).toHaveLength(1000);
  });

  it('CreateScope rejects a duplicate name with ALREADY_EXISTS', async () => {
    const ws = await newWorkspace(ts);
    const first = await newScope(ws, 'orders', 'first');
    const err = await expectError(scopes.createScope({ scope: { workspaceId: ws, name: 'orders', description: 'second' } }), Code.AlreadyExists, 'scope.name');
    expect(err.rawMessage).toContain('orders');
    const listed = (await scopes.listScopes({ workspaceId: ws })).scopes;
    expect(listed.map((s) => [s.id, s.description])).toEqual([[first.id, 'first']]);
  });

  it('CreateScope returns NOT_FOUND for an unknown or deleted workspace', async () => {
    await expectError(scopes.createScope({ scope: { workspaceId: randomUUID(), name: 'orders' } }), Code.NotFound);
    const ws = await newWorkspace(ts);
    await workspaces.deleteWorkspace({ id: ws });
    await expectError(scopes.createScope({ scope: { workspaceId: ws, name: 'orders' } }), Code.NotFound);
  });

  it('GetScope returns NOT_FOUND for an unknown id and INVALID_ARGUMENT for a bad one', async () => {
    await expectError(scopes.getScope({ id: randomUUID() }), Code.NotFound);
    await expectError(scopes.getScope({ id: '' }), Code.InvalidArgument, 'id');
    await expectError(scopes.getScope({ id: 'nope' }), Code.InvalidArgument, 'id');
  });

  it("hides a deleted workspace's scopes", async () => {
    const ws = await newWorkspace(ts);
    const s = await newScope(ws, 'orders');
    await workspaces.deleteWorkspace({ id: ws });
    await expectError(scopes.getScope({ id: s.id }), Code.NotFound);
    await expectError(scopes.listScopes({ workspaceId: ws }), Code.NotFound);
    await expectError(scopes.updateScope({ scope: { id: s.id, description: 'x' }, updateMask: { paths: ['description'] } }), Code.NotFound);
    await expectError(scopes.deleteScope({ id: s.id }), Code.NotFound);
  });

  it('UpdateScope rejects an empty, unknown or read-only mask path', async () => {
    const ws = await newWorkspace(ts);
    const s = await newScope(ws, 'orders', 'd');
    await expectError(scopes.updateScope({ scope: { id: s.id, name: 'x' } }), Code.InvalidArgument, 'update_mask');
    await expectError(scopes.updateScope({ scope: { id: s.id, name: 'x' }, updateMask: { paths: [] } }), Code.InvalidArgument, 'update_mask');
    // The binary protocol sends paths verbatim (JSON cannot carry 'Name' or 'scope.name' faithfully).
    const binary = client(ScopeService, ts, { protocol: 'connect-binary' });
    for (const path of ['bogus', 'id', 'workspace_id', 'create_time', 'update_time', 'scope.name', 'Name', '', 'name ']) {
      await expectError(
        binary.updateScope({ scope: { id: s.id, name: 'renamed', workspaceId: randomUUID() }, updateMask: { paths: [path] } }),
        Code.InvalidArgument,
        'update_mask',
      );
    }
    // A good path alongside a bad one still fails, and nothing changes.
    await expectError(
      scopes.updateScope({ scope: { id: s.id, name: 'renamed' }, updateMask: { paths: ['name', 'bogus'] } }),
      Code.InvalidArgument,
      'update_mask',
    );
    const after = (await scopes.getScope({ id: s.id })).scope!;
    expect(after.name).toBe('orders');
    expect(after.description).toBe('d');
    expect(after.workspaceId).toBe(ws);
  });

  it('UpdateScope rejects a bad name, a taken name and an unknown id', async () => {
    const ws = await newWorkspace(ts);
    const s = await newScope(ws, 'orders');
    await newScope(ws, 'invoices');
    await expectError(scopes.updateScope({ scope: { id: s.id, name: 'Bad Name' }, updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'scope.name');
    await expectError(scopes.updateScope({ scope: { id: s.id, name: '' }, updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'scope.name');
    await expectError(
      scopes.updateScope({ scope: { id: s.id, description: 'y'.repeat(1001) }, updateMask: { paths: ['description'] } }),
      Code.InvalidArgument,
      'scope.description',
    );
    await expectError(scopes.updateScope({ scope: { id: s.id, name: 'invoices' }, updateMask: { paths: ['name'] } }), Code.AlreadyExists, 'scope.name');
    await expectError(scopes.updateScope({ scope: { id: randomUUID(), name: 'x' }, updateMask: { paths: ['name'] } }), Code.NotFound);
    await expectError(scopes.updateScope({ scope: { name: 'x' }, updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'scope.id');
    expect((await scopes.getScope({ id: s.id })).scope?.name).toBe('orders');
    // Renaming to its own name is not a conflict.
    const same = await scopes.updateScope({ scope: { id: s.id, name: 'orders' }, updateMask: { paths: ['name'] } });
    expect(same.scope?.name).toBe('orders');
  });

  it('DeleteScope returns NOT_FOUND for a missing scope and on a second delete', async () => {
    await expectError(scopes.deleteScope({ id: randomUUID() }), Code.NotFound);
    await expectError(scopes.deleteScope({ id: '' }), Code.InvalidArgument, 'id');
    const ws = await newWorkspace(ts);
    const s = await newScope(ws, 'orders');
    await scopes.deleteScope({ id: s.id });
    await expectError(scopes.deleteScope({ id: s.id }), Code.NotFound);
  });

  it('ListScopes rejects a missing workspace_id and returns NOT_FOUND for an unknown one', async () => {
    await expectError(scopes.listScopes({}), Code.InvalidArgument, 'workspace_id');
    await expectError(scopes.listScopes({ workspaceId: 'xyz' }), Code.InvalidArgument, 'workspace_id');
    await expectError(scopes.listScopes({ workspaceId: randomUUID() }), Code.NotFound);
  });
});

describe('ScopeService under concurrency', () => {
  it('creates a name once when several callers race for it', async () => {
    const ws = await newWorkspace(ts);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => scopes.createScope({ scope: { workspaceId: ws, name: 'race', description: `${i}` } })),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const codes = results.filter((r) => r.status === 'rejected').map((r) => Code[ConnectError.from((r as PromiseRejectedResult).reason).code]);
    expect(ok).toHaveLength(1);
    expect(codes).toEqual(['AlreadyExists', 'AlreadyExists', 'AlreadyExists', 'AlreadyExists']);
    expect((await scopes.listScopes({ workspaceId: ws })).scopes).toHaveLength(1);
  });
});

describe('ScopeService paging', () => {
  it('pages through every scope, by name, without duplicates or omissions', async () => {
    const ws = await newWorkspace(ts);
    const names = ['kiwi', 'apple', 'mango', 'banana', 'cherry', 'fig', 'grape', 'lemon', 'date', 'elder', 'honeydew'];
    for (const n of names) await newScope(ws, n);
    const sorted = [...names].sort();

    const { all, sizes } = await listAll(ws, 3);
    expect(sizes).toEqual([3, 3, 3, 2]);
    expect(all.map((s) => s.name)).toEqual(sorted);
    expect(new Set(all.map((s) => s.id)).size).toBe(names.length);

    // page_size 1 walks one at a time.
    const ones = await listAll(ws, 1);
    expect(ones.all.map((s) => s.name)).toEqual(sorted);
    expect(ones.sizes).toEqual(names.map(() => 1));

    // 0 means the default (50), more than 1000 is clamped: one page here.
    for (const pageSize of [0, 50, 5000]) {
      const res = await scopes.listScopes({ workspaceId: ws, pageSize });
      expect(res.scopes.map((s) => s.name)).toEqual(sorted);
      expect(res.nextPageToken).toBe('');
    }
  });

  it('ends without an empty trailing page when the count is a multiple of the page size', async () => {
    const ws = await newWorkspace(ts);
    for (const n of ['a1', 'a2', 'a3', 'a4']) await newScope(ws, n);
    const { sizes, all } = await listAll(ws, 2);
    expect(sizes).toEqual([2, 2]);
    expect(all.map((s) => s.name)).toEqual(['a1', 'a2', 'a3', 'a4']);
  });

  it('keeps paging correctly when scopes change between pages', async () => {
    const ws = await newWorkspace(ts);
    const made = new Map<string, Scope>();
    for (const n of ['b', 'd', 'f', 'h']) made.set(n, await newScope(ws, n));
    const first = await scopes.listScopes({ workspaceId: ws, pageSize: 2 });
    expect(first.scopes.map((s) => s.name)).toEqual(['b', 'd']);
    // Remove the last one seen and add one before and one after the cursor.
    await scopes.deleteScope({ id: made.get('d')!.id });
    await newScope(ws, 'a');
    await newScope(ws, 'e');
    const rest = await scopes.listScopes({ workspaceId: ws, pageSize: 10, pageToken: first.nextPageToken });
    expect(rest.scopes.map((s) => s.name)).toEqual(['e', 'f', 'h']);
    expect(rest.nextPageToken).toBe('');
  });

  it('rejects a negative page_size', async () => {
    const ws = await newWorkspace(ts);
    await expectError(scopes.listScopes({ workspaceId: ws, pageSize: -1 }), Code.InvalidArgument, 'page_size');
    await expectError(scopes.listScopes({ workspaceId: ws, pageSize: -2147483648 }), Code.InvalidArgument, 'page_size');
  });

  it('rejects garbage and forged page tokens', async () => {
    const ws = await newWorkspace(ts);
    for (const n of ['a', 'b', 'c']) await newScope(ws, n);
    const forged = [
      'garbage',
      '!!!not base64!!!',
      Buffer.from('{"a":"b"}').toString('base64url'),
      Buffer.from('{"a":"b","f":"AAAAAAAAAAAA"}').toString('base64url'),
      Buffer.from('null').toString('base64url'),
      Buffer.from('[1,2]').toString('base64url'),
      Buffer.from('{"a":1,"f":2}').toString('base64url'),
    ];
    for (const pageToken of forged) {
      await expectError(scopes.listScopes({ workspaceId: ws, pageSize: 1, pageToken }), Code.InvalidArgument, 'page_token');
    }
    // The real token still works after all those refusals.
    const first = await scopes.listScopes({ workspaceId: ws, pageSize: 1 });
    const second = await scopes.listScopes({ workspaceId: ws, pageSize: 1, pageToken: first.nextPageToken });
    expect(second.scopes.map((s) => s.name)).toEqual(['b']);
  });

  it('rejects a page token reused with another workspace_id', async () => {
    const a = await newWorkspace(ts);
    const b = await newWorkspace(ts);
    for (const n of ['a', 'b', 'c']) {
      await newScope(a, n);
      await newScope(b, n);
    }
    const first = await scopes.listScopes({ workspaceId: a, pageSize: 1 });
    expect(first.nextPageToken).not.toBe('');
    await expectError(scopes.listScopes({ workspaceId: b, pageSize: 1, pageToken: first.nextPageToken }), Code.InvalidArgument, 'page_token');
    // The page size may change between pages.
    const rest = await scopes.listScopes({ workspaceId: a, pageSize: 5, pageToken: first.nextPageToken });
    expect(rest.scopes.map((s) => s.name)).toEqual(['b', 'c']);
    expect(rest.scopes.every((s) => s.workspaceId === a)).toBe(true);
  });
});

describe('ScopeService and keys', () => {
  it("deleting a scope removes it from keys' grants", async () => {
    const ws = await newWorkspace(ts);
    const orders = await newScope(ws, 'orders');
    await newScope(ws, 'billing');
    const { key, secret } = await keys.createKey({
      key: {
        workspaceId: ws,
        grants: [
          { scope: 'orders', actions: [Action.READ, Action.CREATE] },
          { scope: 'billing', actions: [Action.READ] },
        ],
      },
    });
    const other = await keys.createKey({ key: { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.DELETE] }] } });
    const before = await keys.verifyKey({ key: secret, requiredPermissions: ['orders:read', 'billing:read'] });
    expect(before.code).toBe(VerifyCode.VALID);
    expect(before.permissions).toEqual(['billing:read', 'orders:create', 'orders:read']);

    await scopes.deleteScope({ id: orders.id });

    const got = (await keys.getKey({ id: key!.id })).key!;
    expect(got.grants.map((g) => g.scope)).toEqual(['billing']);
    expect(got.grants[0]!.actions).toEqual([Action.READ]);
    const otherGot = (await keys.getKey({ id: other.key!.id })).key!;
    expect(otherGot.grants).toEqual([]);

    const denied = await keys.verifyKey({ key: secret, requiredPermissions: ['orders:read'] });
    expect(denied.valid).toBe(false);
    expect(denied.code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    expect(denied.keyId).toBe(key!.id);
    expect(denied.permissions).toEqual(['billing:read']);
    const stillOk = await keys.verifyKey({ key: secret, requiredPermissions: ['billing:read'] });
    expect(stillOk.code).toBe(VerifyCode.VALID);

    // A new scope of the same name is a different scope: the old grant does not come back.
    await newScope(ws, 'orders');
    const again = await keys.verifyKey({ key: secret, requiredPermissions: ['orders:read'] });
    expect(again.code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    expect((await keys.getKey({ id: key!.id })).key!.grants.map((g) => g.scope)).toEqual(['billing']);
  });

  it('renaming a scope renames the permission seen by VerifyKey and GetKey', async () => {
    const ws = await newWorkspace(ts);
    const orders = await newScope(ws, 'orders');
    const { key, secret } = await keys.createKey({
      key: { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ, Action.UPDATE] }] },
    });
    expect((await keys.verifyKey({ key: secret, requiredPermissions: ['orders:read'] })).code).toBe(VerifyCode.VALID);

    await scopes.updateScope({ scope: { id: orders.id, name: 'purchases' }, updateMask: { paths: ['name'] } });

    const ok = await keys.verifyKey({ key: secret, requiredPermissions: ['purchases:read', 'purchases:update'] });
    expect(ok.code).toBe(VerifyCode.VALID);
    expect(ok.valid).toBe(true);
    expect(ok.permissions).toEqual(['purchases:read', 'purchases:update']);
    const old = await keys.verifyKey({ key: secret, requiredPermissions: ['orders:read'] });
    expect(old.code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    const got = (await keys.getKey({ id: key!.id })).key!;
    expect(got.grants.map((g) => g.scope)).toEqual(['purchases']);
    // New grants use the new name; the old one is unknown.
    await expectError(
      keys.createKey({ key: { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] } }),
      Code.InvalidArgument,
      'key.grants[0].scope',
    );
  });
});

describe('ScopeService access control', () => {
  it('requires an SDK key with the right scope and workspace', async () => {
    const ws = await newWorkspace(ts);
    const other = await newWorkspace(ts);
    const s = await newScope(ws, 'orders');
    const foreign = await newScope(other, 'orders');

    const anonymous = client(ScopeService, ts, { token: null });
    await expectError(anonymous.getScope({ id: s.id }), Code.Unauthenticated);

    const readOnly = client(ScopeService, ts, { token: await ts.sdkKey(['workspace_scopes:read']) });
    expect((await readOnly.getScope({ id: s.id })).scope?.name).toBe('orders');
    await expectError(readOnly.createScope({ scope: { workspaceId: ws, name: 'x' } }), Code.PermissionDenied);
    await expectError(readOnly.deleteScope({ id: s.id }), Code.PermissionDenied);

    const restricted = client(ScopeService, ts, { token: await ts.sdkKey(['workspace_scopes:read', 'workspace_scopes:write'], [ws]) });
    expect((await restricted.listScopes({ workspaceId: ws })).scopes.map((x) => x.id)).toEqual([s.id]);
    await expectError(restricted.listScopes({ workspaceId: other }), Code.PermissionDenied);
    await expectError(restricted.createScope({ scope: { workspaceId: other, name: 'x' } }), Code.PermissionDenied);
    await expectError(restricted.getScope({ id: foreign.id }), Code.NotFound);
    await expectError(restricted.updateScope({ scope: { id: foreign.id, name: 'x' }, updateMask: { paths: ['name'] } }), Code.NotFound);
    await expectError(restricted.deleteScope({ id: foreign.id }), Code.NotFound);
    expect((await scopes.getScope({ id: foreign.id })).scope?.name).toBe('orders');
  });
});
