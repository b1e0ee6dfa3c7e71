// VerifyKey: every answer code, over every protocol, request validation and last_used_time.
import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { Action, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { expectVerify, getKey, ms, newKey, newWorkspace, sleep, typo, wellFormedUnknownKey } from '../support/fixtures.js';
import { keys, ts, useKeysServer, workspaces } from '../support/keys-server.js';
import { expectError, rpcError } from '../support/rpc.js';
import { client, PROTOCOLS } from '../support/server.js';

useKeysServer();

describe('VerifyKey', () => {
  it('answers VALID with the key, its permissions and metadata', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'balance_transfers'] });
    const expire = new Date(Date.now() + 86_400_000);
    const { key, secret } = await newKey(keys, {
      workspaceId: ws,
      customerId: 'cus_42',
      name: 'gateway test',
      grants: [
        { scope: 'orders', actions: [Action.UPDATE, Action.READ] },
        { scope: 'balance_transfers', actions: [Action.CREATE] },
      ],
      metadata: { tier: 'gold', 'x-ünï': 'çødé' },
      expireTime: timestampFromDate(expire),
    });
    const v = await expectVerify(keys, secret, VerifyCode.VALID, ['orders:read', 'balance_transfers:create']);
    expect(v.keyId).toBe(key.id);
    expect(v.workspaceId).toBe(ws);
    expect(v.customerId).toBe('cus_42');
    expect(v.name).toBe('gateway test');
    expect(v.permissions).toEqual(['balance_transfers:create', 'orders:read', 'orders:update']);
    expect(v.metadata).toEqual({ tier: 'gold', 'x-ünï': 'çødé' });
    expect(ms(v.expireTime)).toBe(expire.getTime());
    expect(v.state).toBe(KeyState.ACTIVE);
    // No required permission: just a valid key. Repeated permissions are fine.
    await expectVerify(keys, secret, VerifyCode.VALID);
    await expectVerify(keys, secret, VerifyCode.VALID, ['orders:read', 'orders:read']);
    // Its own workspace_id is fine.
    await expectVerify(keys, secret, VerifyCode.VALID, ['orders:update'], ws);
  });

  it('answers the same over every protocol', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const { key, secret } = await newKey(keys, { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    for (const protocol of PROTOCOLS) {
      const c = client(KeyService, ts, { protocol });
      const ok = await c.verifyKey({ key: secret, requiredPermissions: ['orders:read'] });
      expect([protocol, ok.code, ok.valid, ok.keyId]).toEqual([protocol, VerifyCode.VALID, true, key.id]);
      const denied = await c.verifyKey({ key: secret, requiredPermissions: ['orders:delete'] });
      expect([protocol, denied.code, denied.valid]).toEqual([protocol, VerifyCode.INSUFFICIENT_PERMISSIONS, false]);
      const missing = await c.verifyKey({ key: wellFormedUnknownKey() });
      expect([protocol, missing.code, missing.valid]).toEqual([protocol, VerifyCode.NOT_FOUND, false]);
      const err = await rpcError(c.verifyKey({ key: '' }));
      expect([protocol, Code[err.code]]).toEqual([protocol, 'InvalidArgument']);
    }
  });

  it('answers INSUFFICIENT_PERMISSIONS when any required permission is missing', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'billing'] });
    const { key, secret } = await newKey(keys, { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    for (const required of [['orders:create'], ['orders:read', 'billing:read'], ['billing:read'], ['unknown_scope:read']]) {
      const v = await expectVerify(keys, secret, VerifyCode.INSUFFICIENT_PERMISSIONS, required);
      expect(v.keyId).toBe(key.id);
      expect(v.permissions).toEqual(['orders:read']);
      expect(v.state).toBe(KeyState.ACTIVE);
    }
  });

  it('answers NOT_FOUND for garbage, a typo, a wrong prefix and a well-formed unknown key', async () => {
    const ws = await newWorkspace(ts);
    const { secret } = await newKey(keys, { workspaceId: ws });
    await expectVerify(keys, secret, VerifyCode.VALID);
    const candidates = [
      'garbage',
      'kw_',
      'kw_short',
      `${secret}x`,
      secret.slice(0, -1),
      secret.toUpperCase(),
      ` ${secret}`,
      `Bearer ${secret}`,
      'x'.repeat(10_000),
      typo(secret, 0),
      typo(secret, 20),
      typo(secret, 42),
      typo(secret, 45), // in the checksum
      `zz${secret.slice(secret.indexOf('_'))}`, // same body and checksum, another prefix
      wellFormedUnknownKey(),
      wellFormedUnknownKey('acme'),
    ];
    for (const c of candidates) {
      expect(c).not.toBe(secret);
      await expectVerify(keys, c, VerifyCode.NOT_FOUND);
    }
    await expectVerify(keys, secret, VerifyCode.VALID);
  });

  it("answers NOT_FOUND for another workspace's key when workspace_id is set", async () => {
    const a = await newWorkspace(ts);
    const b = await newWorkspace(ts);
    const { secret } = await newKey(keys, { workspaceId: a });
    await expectVerify(keys, secret, VerifyCode.NOT_FOUND, [], b);
    await expectVerify(keys, secret, VerifyCode.NOT_FOUND, [], randomUUID());
    await expectVerify(keys, secret, VerifyCode.VALID, [], a);
    await expectVerify(keys, secret, VerifyCode.VALID);
  });

  it('rejects a bad request with INVALID_ARGUMENT naming the field', async () => {
    const ws = await newWorkspace(ts);
    const { secret } = await newKey(keys, { workspaceId: ws });
    await expectError(keys.verifyKey({ key: '' }), Code.InvalidArgument, 'key');
    await expectError(keys.verifyKey({ key: '', requiredPermissions: ['orders:read'] }), Code.InvalidArgument, 'key');
    for (const bad of ['orders:', ':read', 'orders:READ', 'Orders:read', 'orders:9x', 'orders:read:x', 'orders read', '']) {
      await expectError(keys.verifyKey({ key: secret, requiredPermissions: [bad] }), Code.InvalidArgument, 'required_permissions[0]');
    }
    await expectError(keys.verifyKey({ key: secret, requiredPermissions: ['orders:read', 'No pe'] }), Code.InvalidArgument, 'required_permissions[1]');
    // Malformed permissions are refused even when the key itself would be NOT_FOUND.
    await expectError(keys.verifyKey({ key: 'garbage', requiredPermissions: ['No pe'] }), Code.InvalidArgument, 'required_permissions[0]');
    // A bare scope and an action no scope declares are permission strings: simply not granted.
    for (const notGranted of ['orders', 'orders:write']) {
      expect((await keys.verifyKey({ key: secret, requiredPermissions: [notGranted] })).code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    }
    await expectError(
      keys.verifyKey({ key: secret, requiredPermissions: Array.from({ length: 101 }, (_, i) => `s${i}:read`) }),
      Code.InvalidArgument,
      'required_permissions',
    );
    await expectError(keys.verifyKey({ key: secret, workspaceId: 'not-a-uuid' }), Code.InvalidArgument, 'workspace_id');
  });

  it('answers DISABLED and EXPIRED, REVOKED winning over both', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const { key, secret } = await newKey(keys, { workspaceId: ws, enabled: false, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    const v = await expectVerify(keys, secret, VerifyCode.DISABLED, ['orders:read']);
    expect(v.keyId).toBe(key.id);
    expect(v.permissions).toEqual(['orders:read']);
    // Disabled wins over a missing permission.
    await expectVerify(keys, secret, VerifyCode.DISABLED, ['orders:delete']);
    await keys.revokeKey({ id: key.id });
    await expectVerify(keys, secret, VerifyCode.REVOKED, ['orders:read']);
  });

  it('answers REVOKED for every key of a deleted workspace', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const one = await newKey(keys, { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    const two = await newKey(keys, { workspaceId: ws, enabled: false });
    const three = await newKey(keys, { workspaceId: ws });
    await keys.revokeKey({ id: three.key.id });
    const survivorWs = await newWorkspace(ts);
    const survivor = await newKey(keys, { workspaceId: survivorWs });
    await expectVerify(keys, one.secret, VerifyCode.VALID, ['orders:read']);
    await expectVerify(keys, two.secret, VerifyCode.DISABLED);

    await workspaces.deleteWorkspace({ id: ws });

    const v = await expectVerify(keys, one.secret, VerifyCode.REVOKED, ['orders:read']);
    expect(v.keyId).toBe(one.key.id);
    expect(v.state).toBe(KeyState.REVOKED);
    await expectVerify(keys, two.secret, VerifyCode.REVOKED);
    await expectVerify(keys, three.secret, VerifyCode.REVOKED);
    await expectVerify(keys, survivor.secret, VerifyCode.VALID);
    // The workspace and its keys are gone from management.
    await expectError(keys.getKey({ id: one.key.id }), Code.NotFound);
    await expectError(keys.listKeys({ workspaceId: ws }), Code.NotFound);
  });

  it('records last_used_time after a VALID verification, and only then', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const used = await newKey(keys, { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    const alsoUsed = await newKey(keys, { workspaceId: ws });
    const denied = await newKey(keys, { workspaceId: ws });
    const disabled = await newKey(keys, { workspaceId: ws, enabled: false });
    expect((await getKey(keys, used.key.id)).lastUsedTime).toBeUndefined();

    await expectVerify(keys, denied.secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['orders:read']);
    await expectVerify(keys, disabled.secret, VerifyCode.DISABLED);
    const before = Date.now();
    // Two uses close together (usually written by one flush).
    await Promise.all([expectVerify(keys, used.secret, VerifyCode.VALID, ['orders:read']), expectVerify(keys, alsoUsed.secret, VerifyCode.VALID)]);
    const after = Date.now();

    // Usually one flush writes both; a flush between the two verifications writes them one after the other.
    let lastUsed: number | undefined;
    let alsoLastUsed: number | undefined;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      lastUsed = ms((await getKey(keys, used.key.id)).lastUsedTime);
      alsoLastUsed = ms((await getKey(keys, alsoUsed.key.id)).lastUsedTime);
      if (lastUsed !== undefined && alsoLastUsed !== undefined) break;
      await sleep(50);
    }
    expect(lastUsed, 'last_used_time should appear within 3 s').toBeDefined();
    expect(lastUsed!).toBeGreaterThanOrEqual(before - 1000);
    expect(lastUsed!).toBeLessThanOrEqual(after + 1000);
    expect(alsoLastUsed).toBeDefined();
    expect(alsoLastUsed!).toBeGreaterThanOrEqual(before - 1000);
    // The others were not used successfully, so nothing was recorded for them.
    expect((await getKey(keys, denied.key.id)).lastUsedTime).toBeUndefined();
    expect((await getKey(keys, disabled.key.id)).lastUsedTime).toBeUndefined();

    // A later use moves it forward, never back.
    await sleep(50);
    await expectVerify(keys, used.secret, VerifyCode.VALID);
    const deadline2 = Date.now() + 3000;
    let later = lastUsed;
    while (Date.now() < deadline2) {
      later = ms((await getKey(keys, used.key.id)).lastUsedTime);
      if (later! > lastUsed!) break;
      await sleep(50);
    }
    expect(later!).toBeGreaterThan(lastUsed!);
  });
});
