// ListKeys: ordering, paging, filters by customer and by state, page token checks.
import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { KeyState, type ApiKey } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode, type ListKeysRequestSchema } from '../../gen/keyward/v1/key_service_pb.js';
import { expectVerify, getKey, ms, newKey, newWorkspace, sleep, verify } from '../support/fixtures.js';
import { keys, ts, useKeysServer, workspaces } from '../support/keys-server.js';
import { expectError } from '../support/rpc.js';
import { client } from '../support/server.js';

useKeysServer();

/** Every key the request lists, page by page, with the pages' sizes. */
async function listAll(req: MessageInitShape<typeof ListKeysRequestSchema>, pageSize: number) {
  const all: ApiKey[] = [];
  const sizes: number[] = [];
  let pageToken = '';
  for (let i = 0; i < 200; i++) {
    const res = await keys.listKeys({ ...req, pageSize, pageToken });
    all.push(...res.keys);
    sizes.push(res.keys.length);
    if (res.nextPageToken === '') return { all, sizes };
    pageToken = res.nextPageToken;
  }
  throw new Error('paging did not end');
}

describe('ListKeys', () => {
  it('lists oldest first and pages through every key without duplicates or omissions', async () => {
    const ws = await newWorkspace(ts);
    const created: string[] = [];
    for (let i = 0; i < 11; i++) created.push((await newKey(keys, { workspaceId: ws, name: `k${i}` })).key.id);
    // Another workspace's keys never show up.
    const other = await newWorkspace(ts);
    await newKey(keys, { workspaceId: other });

    const { all, sizes } = await listAll({ workspaceId: ws }, 4);
    expect(sizes).toEqual([4, 4, 3]);
    const ids = all.map((k) => k.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual([...created].sort());
    // Oldest first: ids (time-ordered) ascend and create times never go back.
    expect(ids).toEqual([...ids].sort());
    for (let i = 1; i < all.length; i++) expect(ms(all[i]!.createTime)!).toBeGreaterThanOrEqual(ms(all[i - 1]!.createTime)!);
    expect(all.every((k) => k.workspaceId === ws && k.maskedKey.startsWith('kw_****'))).toBe(true);

    const ones = await listAll({ workspaceId: ws }, 1);
    expect(ones.all.map((k) => k.id)).toEqual(ids);
    const exact = await listAll({ workspaceId: ws }, 11);
    expect(exact.sizes).toEqual([11]);
    for (const pageSize of [0, 1000, 100_000]) {
      const res = await keys.listKeys({ workspaceId: ws, pageSize });
      expect(res.keys.map((k) => k.id)).toEqual(ids);
      expect(res.nextPageToken).toBe('');
    }
  });

  it('filters by customer_id, also across pages', async () => {
    const ws = await newWorkspace(ts);
    const a: string[] = [];
    const b: string[] = [];
    for (let i = 0; i < 5; i++) {
      a.push((await newKey(keys, { workspaceId: ws, customerId: 'cus_a' })).key.id);
      if (i < 2) b.push((await newKey(keys, { workspaceId: ws, customerId: 'cus_b' })).key.id);
    }
    await newKey(keys, { workspaceId: ws });
    const pagedA = await listAll({ workspaceId: ws, customerId: 'cus_a' }, 2);
    expect(pagedA.sizes).toEqual([2, 2, 1]);
    expect(pagedA.all.map((k) => k.id)).toEqual(a);
    expect(pagedA.all.every((k) => k.customerId === 'cus_a')).toBe(true);
    expect((await keys.listKeys({ workspaceId: ws, customerId: 'cus_b' })).keys.map((k) => k.id)).toEqual(b);
    expect((await keys.listKeys({ workspaceId: ws, customerId: 'cus_nobody' })).keys).toEqual([]);
    expect((await keys.listKeys({ workspaceId: ws })).keys).toHaveLength(8);
  });

  it('filters by state: ACTIVE, DISABLED, REVOKED and EXPIRED', async () => {
    const ws = await newWorkspace(ts);
    const active = await newKey(keys, { workspaceId: ws, customerId: 'c1', name: 'active' });
    const disabled = await newKey(keys, { workspaceId: ws, customerId: 'c1', name: 'disabled', enabled: false });
    const revoked = await newKey(keys, { workspaceId: ws, customerId: 'c2', name: 'revoked' });
    await keys.revokeKey({ id: revoked.key.id });
    // Everything that must happen before the expiry is kept short and after this point.
    const expireAt = Date.now() + 1500;
    const expireTime = timestampFromDate(new Date(expireAt));
    const expiring = await newKey(keys, { workspaceId: ws, customerId: 'c2', name: 'expiring', expireTime });
    // Disabled and expired reads as EXPIRED; revoked and expired as REVOKED.
    const disabledExpiring = await newKey(keys, { workspaceId: ws, name: 'disabled+expiring', enabled: false, expireTime });
    const revokedExpiring = await newKey(keys, { workspaceId: ws, name: 'revoked+expiring', expireTime });
    await keys.revokeKey({ id: revokedExpiring.key.id });
    const names = async (state: KeyState, customerId = '') => (await keys.listKeys({ workspaceId: ws, state, customerId })).keys.map((k) => k.name);

    // Before the expiry.
    const [activeNow, disabledNow, revokedNow, expiredNow, allNow, verifiedNow, gotNow] = await Promise.all([
      names(KeyState.ACTIVE),
      names(KeyState.DISABLED),
      names(KeyState.REVOKED),
      names(KeyState.EXPIRED),
      names(KeyState.UNSPECIFIED),
      verify(keys, expiring.secret),
      getKey(keys, expiring.key.id),
    ]);
    expect(Date.now(), 'the checks before the expiry took too long').toBeLessThan(expireAt);
    expect(activeNow).toEqual(['active', 'expiring']);
    expect(disabledNow).toEqual(['disabled', 'disabled+expiring']);
    expect(revokedNow).toEqual(['revoked', 'revoked+expiring']);
    expect(expiredNow).toEqual([]);
    expect(allNow).toHaveLength(6);
    expect(verifiedNow.code).toBe(VerifyCode.VALID);
    expect(gotNow.state).toBe(KeyState.ACTIVE);

    await sleep(expireAt - Date.now() + 200);

    expect(await names(KeyState.ACTIVE)).toEqual(['active']);
    expect(await names(KeyState.DISABLED)).toEqual(['disabled']);
    expect(await names(KeyState.REVOKED)).toEqual(['revoked', 'revoked+expiring']);
    expect(await names(KeyState.EXPIRED)).toEqual(['expiring', 'disabled+expiring']);
    // State and customer filters combine.
    expect(await names(KeyState.EXPIRED, 'c2')).toEqual(['expiring']);
    expect(await names(KeyState.ACTIVE, 'c2')).toEqual([]);
    expect(await names(KeyState.DISABLED, 'c1')).toEqual(['disabled']);
    const listedExpired = (await keys.listKeys({ workspaceId: ws, state: KeyState.EXPIRED })).keys;
    expect(listedExpired.every((k) => k.state === KeyState.EXPIRED)).toBe(true);

    // Verify and GetKey agree with the listing (a verification cached before the expiry does not outlive it).
    const v = await expectVerify(keys, expiring.secret, VerifyCode.EXPIRED);
    expect(v.keyId).toBe(expiring.key.id);
    expect(v.state).toBe(KeyState.EXPIRED);
    expect(ms(v.expireTime)).toBe(expireAt);
    expect((await getKey(keys, expiring.key.id)).state).toBe(KeyState.EXPIRED);
    await expectVerify(keys, disabledExpiring.secret, VerifyCode.EXPIRED);
    await expectVerify(keys, revokedExpiring.secret, VerifyCode.REVOKED);
    await expectVerify(keys, active.secret, VerifyCode.VALID);
    await expectVerify(keys, disabled.secret, VerifyCode.DISABLED);
    await expectVerify(keys, revoked.secret, VerifyCode.REVOKED);
  });

  it('rejects a page token used with changed filters, a garbage token and a negative page_size', async () => {
    const ws = await newWorkspace(ts);
    const other = await newWorkspace(ts);
    for (let i = 0; i < 3; i++) {
      await newKey(keys, { workspaceId: ws, customerId: 'c' });
      await newKey(keys, { workspaceId: other, customerId: 'c' });
    }
    const first = await keys.listKeys({ workspaceId: ws, pageSize: 1 });
    expect(first.nextPageToken).not.toBe('');
    const token = first.nextPageToken;
    await expectError(keys.listKeys({ workspaceId: ws, customerId: 'c', pageSize: 1, pageToken: token }), Code.InvalidArgument, 'page_token');
    await expectError(keys.listKeys({ workspaceId: ws, state: KeyState.ACTIVE, pageSize: 1, pageToken: token }), Code.InvalidArgument, 'page_token');
    await expectError(keys.listKeys({ workspaceId: other, pageSize: 1, pageToken: token }), Code.InvalidArgument, 'page_token');

    const filtered = await keys.listKeys({ workspaceId: ws, customerId: 'c', state: KeyState.ACTIVE, pageSize: 1 });
    await expectError(keys.listKeys({ workspaceId: ws, pageSize: 1, pageToken: filtered.nextPageToken }), Code.InvalidArgument, 'page_token');
    await expectError(keys.listKeys({ workspaceId: ws, customerId: 'c', pageSize: 1, pageToken: filtered.nextPageToken }), Code.InvalidArgument, 'page_token');
    await expectError(
      keys.listKeys({ workspaceId: ws, customerId: 'c', state: KeyState.REVOKED, pageSize: 1, pageToken: filtered.nextPageToken }),
      Code.InvalidArgument,
      'page_token',
    );

    for (const pageToken of ['garbage', '%%%', Buffer.from('{"a":"x","f":"y"}').toString('base64url'), Buffer.from('"str"').toString('base64url')]) {
      await expectError(keys.listKeys({ workspaceId: ws, pageToken }), Code.InvalidArgument, 'page_token');
    }
    await expectError(keys.listKeys({ workspaceId: ws, pageSize: -1 }), Code.InvalidArgument, 'page_size');
    await expectError(
      client(KeyService, ts, { protocol: 'connect-binary' }).listKeys({ workspaceId: ws, state: 99 as KeyState }),
      Code.InvalidArgument,
      'state',
    );

    // The token still works with the filters it was issued for, even with another page size.
    const rest = await keys.listKeys({ workspaceId: ws, pageSize: 10, pageToken: token });
    expect(rest.keys).toHaveLength(2);
    expect(rest.nextPageToken).toBe('');
    const restFiltered = await keys.listKeys({ workspaceId: ws, customerId: 'c', state: KeyState.ACTIVE, pageSize: 10, pageToken: filtered.nextPageToken });
    expect(restFiltered.keys).toHaveLength(2);
  });

  it('rejects a missing workspace_id and returns NOT_FOUND for an unknown one', async () => {
    await expectError(keys.listKeys({}), Code.InvalidArgument, 'workspace_id');
    await expectError(keys.listKeys({ workspaceId: 'bad' }), Code.InvalidArgument, 'workspace_id');
    await expectError(keys.listKeys({ workspaceId: randomUUID() }), Code.NotFound);
    const ws = await newWorkspace(ts);
    await workspaces.deleteWorkspace({ id: ws });
    await expectError(keys.listKeys({ workspaceId: ws }), Code.NotFound);
  });
});
