// UpdateKey: field masks, grants, enabling and disabling, validation, revoked keys.
import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { Action, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { expectVerify, getKey, ms, newKey, newWorkspace, sleep } from '../support/fixtures.js';
import { keys, ts, useKeysServer } from '../support/keys-server.js';
import { expectError } from '../support/rpc.js';
import { client } from '../support/server.js';

useKeysServer();

describe('UpdateKey', () => {
  it('changes only the masked fields', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'billing'] });
    const expire = new Date(Date.now() + 3_600_000);
    const { key, secret } = await newKey(keys, {
      workspaceId: ws,
      customerId: 'c1',
      name: 'n1',
      description: 'd1',
      grants: [{ scope: 'orders', actions: [Action.READ] }],
      metadata: { a: '1', b: '2' },
      expireTime: timestampFromDate(expire),
    });
    const everything = {
      id: key.id,
      customerId: 'c2',
      name: 'n2',
      description: 'd2',
      grants: [{ scope: 'billing', actions: [Action.CREATE, Action.DELETE] }],
      enabled: false,
      metadata: { c: '3' },
      // Ignored whatever the mask: output-only fields.
      workspaceId: randomUUID(),
      maskedKey: 'kw_****XXXX',
      state: KeyState.REVOKED,
    };
    await sleep(5);
    const named = (await keys.updateKey({ key: everything, updateMask: { paths: ['name'] } })).key!;
    expect(named.name).toBe('n2');
    expect(named.customerId).toBe('c1');
    expect(named.description).toBe('d1');
    expect(named.grants).toEqual(key.grants);
    expect(named.enabled).toBe(true);
    expect(named.metadata).toEqual({ a: '1', b: '2' });
    expect(ms(named.expireTime)).toBe(expire.getTime());
    expect(named.workspaceId).toBe(ws);
    expect(named.maskedKey).toBe(key.maskedKey);
    expect(named.start).toBe(key.start);
    expect(named.state).toBe(KeyState.ACTIVE);
    expect(ms(named.createTime)).toBe(ms(key.createTime));
    expect(ms(named.updateTime)!).toBeGreaterThan(ms(key.updateTime)!);

    const two = (await keys.updateKey({ key: everything, updateMask: { paths: ['customer_id', 'description'] } })).key!;
    expect(two.customerId).toBe('c2');
    expect(two.description).toBe('d2');
    expect(two.name).toBe('n2');
    expect(two.metadata).toEqual({ a: '1', b: '2' });

    // Metadata is replaced, not merged.
    const meta = (await keys.updateKey({ key: everything, updateMask: { paths: ['metadata'] } })).key!;
    expect(meta.metadata).toEqual({ c: '3' });
    expect(meta.grants).toEqual(key.grants);

    // An unset expire_time in the mask clears it.
    const noExpiry = (await keys.updateKey({ key: { id: key.id }, updateMask: { paths: ['expire_time'] } })).key!;
    expect(noExpiry.expireTime).toBeUndefined();
    const later = new Date(Date.now() + 7_200_000);
    const withExpiry = (await keys.updateKey({ key: { id: key.id, expireTime: timestampFromDate(later) }, updateMask: { paths: ['expire_time'] } })).key!;
    expect(ms(withExpiry.expireTime)).toBe(later.getTime());

    // GetKey sees all of it, and the secret is untouched.
    const got = await getKey(keys, key.id);
    expect(got.name).toBe('n2');
    expect(got.customerId).toBe('c2');
    expect(got.description).toBe('d2');
    expect(got.metadata).toEqual({ c: '3' });
    expect(ms(got.expireTime)).toBe(later.getTime());
    expect(got.enabled).toBe(true);
    const v = await expectVerify(keys, secret, VerifyCode.VALID, ['orders:read']);
    expect(v.name).toBe('n2');
    expect(v.customerId).toBe('c2');
    expect(v.metadata).toEqual({ c: '3' });
    expect(ms(v.expireTime)).toBe(later.getTime());
  });

  it('replaces grants, which VerifyKey sees at once', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'billing', 'reports'] });
    const { key, secret } = await newKey(keys, {
      workspaceId: ws,
      grants: [
        { scope: 'orders', actions: [Action.READ, Action.UPDATE] },
        { scope: 'reports', actions: [Action.READ] },
      ],
    });
    await expectVerify(keys, secret, VerifyCode.VALID, ['orders:read']);
    const updated = (
      await keys.updateKey({
        key: { id: key.id, grants: [{ scope: 'billing', actions: [Action.CREATE, Action.DELETE] }] },
        updateMask: { paths: ['grants'] },
      })
    ).key!;
    expect(updated.grants.map((g) => g.scope)).toEqual(['billing']);
    expect([...updated.grants[0]!.actions].sort()).toEqual([Action.CREATE, Action.DELETE].sort());
    expect((await getKey(keys, key.id)).grants).toEqual(updated.grants);
    await expectVerify(keys, secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['orders:read']);
    await expectVerify(keys, secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['reports:read']);
    const v = await expectVerify(keys, secret, VerifyCode.VALID, ['billing:create', 'billing:delete']);
    expect(v.permissions).toEqual(['billing:create', 'billing:delete']);

    // Grants can be emptied.
    const emptied = (await keys.updateKey({ key: { id: key.id }, updateMask: { paths: ['grants'] } })).key!;
    expect(emptied.grants).toEqual([]);
    expect((await expectVerify(keys, secret, VerifyCode.VALID)).permissions).toEqual([]);
    await expectVerify(keys, secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['billing:create']);
  });

  it('disables and re-enables a key', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws, customerId: 'cus' });
    await expectVerify(keys, secret, VerifyCode.VALID);
    const off = (await keys.updateKey({ key: { id: key.id, enabled: false }, updateMask: { paths: ['enabled'] } })).key!;
    expect(off.enabled).toBe(false);
    expect(off.state).toBe(KeyState.DISABLED);
    const v = await expectVerify(keys, secret, VerifyCode.DISABLED);
    expect(v.keyId).toBe(key.id);
    expect(v.customerId).toBe('cus');
    expect(v.state).toBe(KeyState.DISABLED);
    expect((await getKey(keys, key.id)).state).toBe(KeyState.DISABLED);
    // Naming `enabled` in the mask without a value is a mistake, not "enable".
    await expectError(keys.updateKey({ key: { id: key.id }, updateMask: { paths: ['enabled'] } }), Code.InvalidArgument, 'key.enabled');
    await expectVerify(keys, secret, VerifyCode.DISABLED);
    const on = (await keys.updateKey({ key: { id: key.id, enabled: true }, updateMask: { paths: ['enabled'] } })).key!;
    expect(on.state).toBe(KeyState.ACTIVE);
    await expectVerify(keys, secret, VerifyCode.VALID);
  });

  it('rejects an empty or unknown mask, bad values, and leaves the key unchanged', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const other = await newWorkspace(ts, { scopes: ['foreign'] });
    const { key } = await newKey(keys, { workspaceId: ws, name: 'orig', grants: [{ scope: 'orders', actions: [Action.READ] }] });
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x' } }), Code.InvalidArgument, 'update_mask');
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x' }, updateMask: { paths: [] } }), Code.InvalidArgument, 'update_mask');
    const binary = client(KeyService, ts, { protocol: 'connect-binary' });
    for (const path of [
      'state',
      'masked_key',
      'start',
      'id',
      'workspace_id',
      'secret',
      'last_used_time',
      'revoke_time',
      'create_time',
      'bogus',
      'key.name',
      'Name',
    ]) {
      await expectError(binary.updateKey({ key: { id: key.id, name: 'x' }, updateMask: { paths: [path] } }), Code.InvalidArgument, 'update_mask');
    }
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x'.repeat(121) }, updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'key.name');
    await expectError(
      keys.updateKey({ key: { id: key.id, expireTime: timestampFromDate(new Date(Date.now() - 1000)) }, updateMask: { paths: ['expire_time'] } }),
      Code.InvalidArgument,
      'key.expire_time',
    );
    await expectError(
      keys.updateKey({
        key: { id: key.id, metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) },
        updateMask: { paths: ['metadata'] },
      }),
      Code.InvalidArgument,
      'key.metadata',
    );
    await expectError(
      keys.updateKey({ key: { id: key.id, grants: [{ scope: 'orders', actions: [] }] }, updateMask: { paths: ['grants'] } }),
      Code.InvalidArgument,
      'key.grants[0].actions',
    );
    // A valid name with an invalid grant in one call: all or nothing.
    await expectError(
      keys.updateKey({
        key: { id: key.id, name: 'changed', grants: [{ scope: 'foreign', actions: [Action.READ] }] },
        updateMask: { paths: ['name', 'grants'] },
      }),
      Code.InvalidArgument,
      'key.grants[0].scope',
    );
    const after = await getKey(keys, key.id);
    expect(after.name).toBe('orig');
    expect(after.grants).toEqual(key.grants);
    expect(ms(after.updateTime)).toBe(ms(key.updateTime));
    expect(other).not.toBe(ws);
  });

  it('returns NOT_FOUND for an unknown key, INVALID_ARGUMENT without an id', async () => {
    await expectError(keys.updateKey({ key: { id: randomUUID(), name: 'x' }, updateMask: { paths: ['name'] } }), Code.NotFound);
    await expectError(keys.updateKey({ key: { name: 'x' }, updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'key.id');
    await expectError(keys.updateKey({ updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'key.id');
  });

  it('refuses to change a revoked key with FAILED_PRECONDITION', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws, name: 'before' });
    await keys.revokeKey({ id: key.id });
    await expectError(keys.updateKey({ key: { id: key.id, name: 'after' }, updateMask: { paths: ['name'] } }), Code.FailedPrecondition);
    // Re-enabling cannot bring it back either.
    await expectError(keys.updateKey({ key: { id: key.id, enabled: true }, updateMask: { paths: ['enabled'] } }), Code.FailedPrecondition);
    expect((await getKey(keys, key.id)).name).toBe('before');
    await expectVerify(keys, secret, VerifyCode.REVOKED);
  });
});
