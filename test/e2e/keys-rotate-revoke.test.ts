// RotateKey (grace periods), RevokeKey and DeleteKey, and what VerifyKey answers after each.
import { randomUUID } from 'node:crypto';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { Action, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { checksumOf, expectVerify, getKey, ms, newKey, newWorkspace, sleep, splitKey } from '../support/fixtures.js';
import { keys, ts, useKeysServer } from '../support/keys-server.js';
import { expectError } from '../support/rpc.js';

useKeysServer();

describe('RotateKey', () => {
  it('issues a new secret; with no grace the old one stops at once', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const { key, secret: old } = await newKey(keys, {
      workspaceId: ws,
      customerId: 'cus',
      grants: [{ scope: 'orders', actions: [Action.READ] }],
      metadata: { m: '1' },
    });
    // Warm any cache with the old secret first.
    await expectVerify(keys, old, VerifyCode.VALID, ['orders:read']);
    const rotated = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(0) });
    expect(rotated.secret).not.toBe(old);
    expect(rotated.secret).toMatch(/^kw_[0-9A-Za-z]{49}$/);
    const parts = splitKey(rotated.secret);
    expect(parts.checksum).toBe(checksumOf(parts.body));
    const k = rotated.key!;
    expect(k.id).toBe(key.id);
    expect(k.maskedKey).toBe(`kw_****${rotated.secret.slice(-4)}`);
    expect(k.maskedKey).not.toBe(key.maskedKey);
    expect(k.start).toBe(`kw_${parts.body.slice(0, 4)}`);
    expect(k.grants).toEqual(key.grants);
    expect(k.metadata).toEqual({ m: '1' });
    expect(k.customerId).toBe('cus');
    expect(k.state).toBe(KeyState.ACTIVE);
    expect((await getKey(keys, key.id)).maskedKey).toBe(k.maskedKey);

    const v = await expectVerify(keys, rotated.secret, VerifyCode.VALID, ['orders:read']);
    expect(v.keyId).toBe(key.id);
    await expectVerify(keys, old, VerifyCode.NOT_FOUND, ['orders:read']);

    // An unset grace_period also ends the previous secret at once.
    const again = await keys.rotateKey({ id: key.id });
    await expectVerify(keys, again.secret, VerifyCode.VALID);
    await expectVerify(keys, rotated.secret, VerifyCode.NOT_FOUND);
    await expectVerify(keys, old, VerifyCode.NOT_FOUND);
  });

  it('keeps the old secret valid for the grace period, then not', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret: old } = await newKey(keys, { workspaceId: ws });
    await expectVerify(keys, old, VerifyCode.VALID);
    // The server's rotation time lies between these two instants.
    const sentAt = Date.now();
    const { secret: fresh } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(2000) });
    const answeredAt = Date.now();
    const oldV = await expectVerify(keys, old, VerifyCode.VALID);
    expect(oldV.keyId).toBe(key.id);
    await expectVerify(keys, fresh, VerifyCode.VALID);
    await sleep(sentAt + 1000 - Date.now());
    await expectVerify(keys, old, VerifyCode.VALID);

    await sleep(answeredAt + 2000 + 200 - Date.now());
    await expectVerify(keys, old, VerifyCode.NOT_FOUND);
    await expectVerify(keys, fresh, VerifyCode.VALID);
  });

  it('ends secrets still in their grace when rotating again without grace', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret: first } = await newKey(keys, { workspaceId: ws });
    const { secret: second } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(60_000) });
    await expectVerify(keys, first, VerifyCode.VALID);
    await expectVerify(keys, second, VerifyCode.VALID);
    const { secret: third } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(0) });
    await expectVerify(keys, first, VerifyCode.NOT_FOUND);
    await expectVerify(keys, second, VerifyCode.NOT_FOUND);
    await expectVerify(keys, third, VerifyCode.VALID);
  });

  it('rejects a negative or too long grace_period', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws });
    await expectError(keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(-1000) }), Code.InvalidArgument, 'grace_period');
    await expectError(keys.rotateKey({ id: key.id, gracePeriod: { seconds: 0n, nanos: -1 } }), Code.InvalidArgument, 'grace_period');
    await expectError(keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(31 * 24 * 3600 * 1000) }), Code.InvalidArgument, 'grace_period');
    // Nothing changed.
    await expectVerify(keys, secret, VerifyCode.VALID);
    expect((await getKey(keys, key.id)).maskedKey).toBe(key.maskedKey);
    // 30 days exactly is allowed.
    const ok = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(30 * 24 * 3600 * 1000) });
    await expectVerify(keys, ok.secret, VerifyCode.VALID);
    await expectVerify(keys, secret, VerifyCode.VALID);
  });

  it('refuses a revoked key and returns NOT_FOUND for an unknown one', async () => {
    const ws = await newWorkspace(ts);
    const { key } = await newKey(keys, { workspaceId: ws });
    await keys.revokeKey({ id: key.id });
    await expectError(keys.rotateKey({ id: key.id }), Code.FailedPrecondition);
    await expectError(keys.rotateKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.rotateKey({ id: '' }), Code.InvalidArgument, 'id');
  });
});

describe('RevokeKey', () => {
  it('revokes at once and for good; revoking again changes nothing', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const { key, secret } = await newKey(keys, { workspaceId: ws, customerId: 'cus', grants: [{ scope: 'orders', actions: [Action.READ] }] });
    await expectVerify(keys, secret, VerifyCode.VALID, ['orders:read']);
    const before = Date.now();
    const revoked = (await keys.revokeKey({ id: key.id })).key!;
    expect(revoked.state).toBe(KeyState.REVOKED);
    expect(revoked.revokeTime).toBeDefined();
    const revokeMs = ms(revoked.revokeTime)!;
    expect(revokeMs).toBeGreaterThanOrEqual(before - 1000);
    expect(revokeMs).toBeLessThanOrEqual(Date.now() + 1000);

    const v = await expectVerify(keys, secret, VerifyCode.REVOKED, ['orders:read']);
    expect(v.keyId).toBe(key.id);
    expect(v.workspaceId).toBe(ws);
    expect(v.customerId).toBe('cus');
    expect(v.state).toBe(KeyState.REVOKED);
    // Revocation wins over a missing permission.
    await expectVerify(keys, secret, VerifyCode.REVOKED, ['orders:delete']);

    const got = await getKey(keys, key.id);
    expect(got.state).toBe(KeyState.REVOKED);
    expect(ms(got.revokeTime)).toBe(revokeMs);

    await sleep(5);
    const again = (await keys.revokeKey({ id: key.id })).key!;
    expect(again.state).toBe(KeyState.REVOKED);
    expect(ms(again.revokeTime)).toBe(revokeMs);
    expect(ms(again.updateTime)).toBe(ms(revoked.updateTime));
  });

  it('also revokes a previous secret still in its grace period', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret: old } = await newKey(keys, { workspaceId: ws });
    const { secret: fresh } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(60_000) });
    await expectVerify(keys, old, VerifyCode.VALID);
    await keys.revokeKey({ id: key.id });
    await expectVerify(keys, old, VerifyCode.REVOKED);
    await expectVerify(keys, fresh, VerifyCode.REVOKED);
  });

  it('returns NOT_FOUND for an unknown key', async () => {
    await expectError(keys.revokeKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.revokeKey({ id: 'x' }), Code.InvalidArgument, 'id');
  });
});

describe('DeleteKey', () => {
  it('deletes the key: it no longer verifies, reads or lists', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws });
    const keep = await newKey(keys, { workspaceId: ws });
    await expectVerify(keys, secret, VerifyCode.VALID);
    await keys.deleteKey({ id: key.id });
    await expectVerify(keys, secret, VerifyCode.NOT_FOUND);
    await expectError(keys.getKey({ id: key.id }), Code.NotFound);
    await expectError(keys.deleteKey({ id: key.id }), Code.NotFound);
    await expectError(keys.revokeKey({ id: key.id }), Code.NotFound);
    await expectError(keys.rotateKey({ id: key.id }), Code.NotFound);
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x' }, updateMask: { paths: ['name'] } }), Code.NotFound);
    expect((await keys.listKeys({ workspaceId: ws })).keys.map((k) => k.id)).toEqual([keep.key.id]);
    await expectVerify(keys, keep.secret, VerifyCode.VALID);
  });

  it('deletes a revoked key and all its secrets', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret: old } = await newKey(keys, { workspaceId: ws });
    const { secret: fresh } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(60_000) });
    await keys.revokeKey({ id: key.id });
    await keys.deleteKey({ id: key.id });
    await expectVerify(keys, old, VerifyCode.NOT_FOUND);
    await expectVerify(keys, fresh, VerifyCode.NOT_FOUND);
  });

  it('returns NOT_FOUND for an unknown key', async () => {
    await expectError(keys.deleteKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.deleteKey({ id: '' }), Code.InvalidArgument, 'id');
  });
});
