// KeyService's SDK-key access control, and concurrent updates, rotations and revocations of one key.
import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { expectVerify, getKey, ms, newKey, newWorkspace, verify } from '../support/fixtures.js';
import { keys, ts, useKeysServer } from '../support/keys-server.js';
import { expectError } from '../support/rpc.js';
import { client } from '../support/server.js';

useKeysServer();

describe('KeyService under concurrency', () => {
  it('serializes concurrent changes of one key without errors', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'billing'] });
    const { key } = await newKey(keys, { workspaceId: ws });
    const names = Array.from({ length: 6 }, (_, i) => `name-${i}`);
    const results = await Promise.allSettled(
      names.map((name, i) =>
        keys.updateKey({
          key: { id: key.id, name, grants: [{ scope: i % 2 ? 'orders' : 'billing', actions: [Action.READ] }] },
          updateMask: { paths: ['name', 'grants'] },
        }),
      ),
    );
    const failures = results.filter((r) => r.status === 'rejected').map((r) => ConnectError.from((r as PromiseRejectedResult).reason).message);
    expect(failures).toEqual([]);
    const got = await getKey(keys, key.id);
    expect(names).toContain(got.name);
    // The grants belong to one whole update, never a mix.
    expect(got.grants).toHaveLength(1);
    expect(got.grants[0]!.scope).toBe(Number(got.name.slice(-1)) % 2 ? 'orders' : 'billing');
  });

  it('leaves exactly one secret after concurrent rotations without grace', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws });
    const rotations = await Promise.all([1, 2, 3].map(() => keys.rotateKey({ id: key.id })));
    const codes = await Promise.all([secret, ...rotations.map((r) => r.secret)].map(async (s) => (await verify(keys, s)).code));
    expect(codes.filter((c) => c === VerifyCode.VALID)).toHaveLength(1);
    expect(codes.filter((c) => c === VerifyCode.NOT_FOUND)).toHaveLength(3);
    const valid = rotations[codes.indexOf(VerifyCode.VALID) - 1]!;
    expect((await getKey(keys, key.id)).maskedKey).toBe(valid.key!.maskedKey);
  });

  it('revokes once under concurrent revocations', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws });
    const results = await Promise.all([1, 2, 3, 4].map(() => keys.revokeKey({ id: key.id })));
    const times = new Set(results.map((r) => ms(r.key!.revokeTime)));
    expect(times.size).toBe(1);
    await expectVerify(keys, secret, VerifyCode.REVOKED);
  });
});

describe('KeyService access control', () => {
  it('requires an SDK key with the right scope and workspace', async () => {
    const ws = await newWorkspace(ts);
    const other = await newWorkspace(ts);
    const mine = await newKey(keys, { workspaceId: ws });
    const foreign = await newKey(keys, { workspaceId: other });

    const anonymous = client(KeyService, ts, { token: null });
    await expectError(anonymous.verifyKey({ key: mine.secret }), Code.Unauthenticated);
    await expectError(anonymous.getKey({ id: mine.key.id }), Code.Unauthenticated);
    const wrongToken = client(KeyService, ts, { token: `kws_${randomUUID()}_${'a'.repeat(43)}` });
    await expectError(wrongToken.verifyKey({ key: mine.secret }), Code.Unauthenticated);
    // An API key is not an SDK key.
    const apiKeyAsToken = client(KeyService, ts, { token: mine.secret });
    await expectError(apiKeyAsToken.verifyKey({ key: mine.secret }), Code.Unauthenticated);

    const verifier = client(KeyService, ts, { token: await ts.sdkKey(['api_keys:verify']) });
    await expectVerify(keys, mine.secret, VerifyCode.VALID);
    expect((await verifier.verifyKey({ key: mine.secret })).code).toBe(VerifyCode.VALID);
    await expectError(verifier.getKey({ id: mine.key.id }), Code.PermissionDenied);
    await expectError(verifier.createKey({ key: { workspaceId: ws } }), Code.PermissionDenied);

    const reader = client(KeyService, ts, { token: await ts.sdkKey(['api_keys:read']) });
    expect((await reader.getKey({ id: mine.key.id })).key?.id).toBe(mine.key.id);
    await expectError(reader.verifyKey({ key: mine.secret }), Code.PermissionDenied);
    await expectError(reader.revokeKey({ id: mine.key.id }), Code.PermissionDenied);
    await expectError(reader.deleteKey({ id: mine.key.id }), Code.PermissionDenied);
    await expectError(reader.rotateKey({ id: mine.key.id }), Code.PermissionDenied);

    const restricted = client(KeyService, ts, { token: await ts.sdkKey(['api_keys:read', 'api_keys:write', 'api_keys:verify'], [ws]) });
    expect((await restricted.verifyKey({ key: mine.secret })).code).toBe(VerifyCode.VALID);
    const hidden = await restricted.verifyKey({ key: foreign.secret });
    expect(hidden.code).toBe(VerifyCode.NOT_FOUND);
    expect(hidden.keyId).toBe('');
    await expectError(restricted.verifyKey({ key: foreign.secret, workspaceId: other }), Code.PermissionDenied);
    await expectError(restricted.getKey({ id: foreign.key.id }), Code.NotFound);
    await expectError(restricted.revokeKey({ id: foreign.key.id }), Code.NotFound);
    await expectError(restricted.deleteKey({ id: foreign.key.id }), Code.NotFound);
    await expectError(restricted.rotateKey({ id: foreign.key.id }), Code.NotFound);
    await expectError(restricted.updateKey({ key: { id: foreign.key.id, name: 'x' }, updateMask: { paths: ['name'] } }), Code.NotFound);
    await expectError(restricted.createKey({ key: { workspaceId: other } }), Code.PermissionDenied);
    await expectError(restricted.listKeys({ workspaceId: other }), Code.PermissionDenied);
    // The foreign key was not touched.
    await expectVerify(keys, foreign.secret, VerifyCode.VALID);
  });
});
