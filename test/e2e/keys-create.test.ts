// CreateKey (the secret, its format, defaults, prefixes, limits, validation) and GetKey.
import { randomUUID } from 'node:crypto';
import { toJsonString, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { Action, KeyState, type ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';
import { GetKeyResponseSchema, ListKeysResponseSchema, VerifyCode, VerifyKeyResponseSchema } from '../../gen/keyward/v1/key_service_pb.js';
import { checksumOf, expectVerify, getKey, ms, newKey, newWorkspace, splitKey, UUID_RE } from '../support/fixtures.js';
import { keys, ts, useKeysServer, workspaces } from '../support/keys-server.js';
import { client } from '../support/server.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { expectError } from '../support/rpc.js';

useKeysServer();

describe('CreateKey', () => {
  it('issues a key with its secret once, in the documented format', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'billing'] });
    const expire = new Date(Date.now() + 3_600_000);
    expire.setMilliseconds(123);
    const before = Date.now();
    const { key, secret } = await newKey(keys, {
      workspaceId: ws,
      customerId: 'cus_123',
      name: 'Production key',
      description: 'used by the checkout service',
      grants: [
        { scope: 'orders', actions: [Action.READ, Action.CREATE] },
        { scope: 'billing', actions: [Action.READ] },
      ],
      metadata: { plan: 'pro', region: 'eu-west-1', emoji: 'ключ 🔑' },
      expireTime: timestampFromDate(expire),
    });

    // The secret: {prefix}_{43 base62}{6 base62 checksum}.
    expect(secret).toMatch(/^kw_[0-9A-Za-z]{43}[0-9A-Za-z]{6}$/);
    const parts = splitKey(secret);
    expect(parts.prefix).toBe('kw');
    expect(parts.checksum).toBe(checksumOf(parts.body));

    expect(key.id).toMatch(UUID_RE);
    expect(key.workspaceId).toBe(ws);
    expect(key.customerId).toBe('cus_123');
    expect(key.name).toBe('Production key');
    expect(key.description).toBe('used by the checkout service');
    expect(key.enabled).toBe(true);
    expect(key.state).toBe(KeyState.ACTIVE);
    expect(key.maskedKey).toBe(`kw_****${secret.slice(-4)}`);
    expect(key.start).toBe(`kw_${parts.body.slice(0, 4)}`);
    expect(key.metadata).toEqual({ plan: 'pro', region: 'eu-west-1', emoji: 'ключ 🔑' });
    expect(ms(key.expireTime)).toBe(expire.getTime());
    expect(key.lastUsedTime).toBeUndefined();
    expect(key.revokeTime).toBeUndefined();
    expect(ms(key.createTime)).toBeGreaterThanOrEqual(before - 1000);
    expect(ms(key.createTime)).toBeLessThanOrEqual(Date.now() + 1000);
    expect(ms(key.updateTime)).toBeGreaterThanOrEqual(ms(key.createTime)!);
    // Grants come back sorted by scope.
    expect(key.grants.map((g) => g.scope)).toEqual(['billing', 'orders']);
    expect(key.grants[0]!.actions).toEqual([Action.READ]);
    expect([...key.grants[1]!.actions].sort()).toEqual([Action.READ, Action.CREATE].sort());

    // GetKey returns the same key without the secret.
    const got = await keys.getKey({ id: key.id });
    const json = toJsonString(GetKeyResponseSchema, got);
    expect(json).not.toContain(secret);
    expect(json).not.toContain(parts.body);
    const k = got.key!;
    expect(k.id).toBe(key.id);
    expect(k.maskedKey).toBe(key.maskedKey);
    expect(k.start).toBe(key.start);
    expect(k.customerId).toBe('cus_123');
    expect(k.name).toBe('Production key');
    expect(k.description).toBe('used by the checkout service');
    expect(k.grants).toEqual(key.grants);
    expect(k.metadata).toEqual(key.metadata);
    expect(k.enabled).toBe(true);
    expect(k.state).toBe(KeyState.ACTIVE);
    expect(ms(k.expireTime)).toBe(expire.getTime());
    expect(ms(k.createTime)).toBe(ms(key.createTime));

    // ListKeys does not reveal it either.
    const listed = await keys.listKeys({ workspaceId: ws });
    expect(listed.keys.map((x) => x.id)).toEqual([key.id]);
    expect(toJsonString(ListKeysResponseSchema, listed)).not.toContain(parts.body);

    // And the secret verifies.
    const v = await expectVerify(keys, secret, VerifyCode.VALID, ['orders:read', 'billing:read']);
    expect(toJsonString(VerifyKeyResponseSchema, v)).not.toContain(parts.body);
  });

  it('applies defaults to a minimal key', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws });
    expect(key.enabled).toBe(true);
    expect(key.state).toBe(KeyState.ACTIVE);
    expect(key.name).toBe('');
    expect(key.customerId).toBe('');
    expect(key.grants).toEqual([]);
    expect(key.metadata).toEqual({});
    expect(key.expireTime).toBeUndefined();
    const v = await expectVerify(keys, secret, VerifyCode.VALID);
    expect(v.permissions).toEqual([]);
    await expectVerify(keys, secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['anything:read']);
  });

  it('issues a different secret every time', async () => {
    const ws = await newWorkspace(ts);
    const secrets = new Set<string>();
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { key, secret } = await newKey(keys, { workspaceId: ws });
      secrets.add(secret);
      ids.add(key.id);
    }
    expect(secrets.size).toBe(5);
    expect(ids.size).toBe(5);
  });

  it('can create a disabled key', async () => {
    const ws = await newWorkspace(ts);
    const { key, secret } = await newKey(keys, { workspaceId: ws, enabled: false });
    expect(key.enabled).toBe(false);
    expect(key.state).toBe(KeyState.DISABLED);
    const v = await expectVerify(keys, secret, VerifyCode.DISABLED);
    expect(v.keyId).toBe(key.id);
    expect(v.state).toBe(KeyState.DISABLED);
  });

  it("uses the workspace's key_prefix, and a changed prefix only for later keys", async () => {
    const ws = await newWorkspace(ts, { keyPrefix: 'acme' });
    const first = await newKey(keys, { workspaceId: ws });
    expect(first.secret).toMatch(/^acme_[0-9A-Za-z]{49}$/);
    expect(first.key.maskedKey).toBe(`acme_****${first.secret.slice(-4)}`);
    expect(first.key.start).toBe(`acme_${splitKey(first.secret).body.slice(0, 4)}`);
    await expectVerify(keys, first.secret, VerifyCode.VALID);

    await workspaces.updateWorkspace({ workspace: { id: ws, keyPrefix: 'zed9' }, updateMask: { paths: ['key_prefix'] } });
    const second = await newKey(keys, { workspaceId: ws });
    expect(second.secret.startsWith('zed9_')).toBe(true);
    expect(second.key.maskedKey.startsWith('zed9_****')).toBe(true);
    await expectVerify(keys, second.secret, VerifyCode.VALID);
    // The old key keeps verifying under its old prefix.
    await expectVerify(keys, first.secret, VerifyCode.VALID);
    expect((await getKey(keys, first.key.id)).maskedKey).toBe(first.key.maskedKey);
  });

  it('issues Openlayer-style keys for a prefix ending in a hyphen (sk-ol-), masked with it', async () => {
    const ws = await newWorkspace(ts, { keyPrefix: 'sk-ol-' });
    const k = await newKey(keys, { workspaceId: ws });
    expect(k.secret).toMatch(/^sk-ol-[0-9A-Za-z]{49}$/);
    expect(k.key.maskedKey).toBe(`sk-ol-****${k.secret.slice(-4)}`);
    expect(k.key.start).toBe(k.secret.slice(0, 10));
    await expectVerify(keys, k.secret, VerifyCode.VALID);
    // A typo in the checksum is refused before any lookup, as for any key.
    await expectVerify(keys, k.secret.slice(0, -1) + (k.secret.endsWith('A') ? 'B' : 'A'), VerifyCode.NOT_FOUND);
    const bad = await workspaces.createWorkspace({ workspace: { name: 'bad-prefix', keyPrefix: '-sk' } }).catch((e: unknown) => e);
    expect(String(bad)).toMatch(/workspace\.key_prefix: must match \[a-z\]\[a-z0-9-\]\{0,15\}/);
  });

  it('merges duplicate actions and duplicate grants of one scope', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders', 'billing'] });
    const { key, secret } = await newKey(keys, {
      workspaceId: ws,
      grants: [
        { scope: 'orders', actions: [Action.DELETE, Action.READ, Action.READ] },
        { scope: 'billing', actions: [Action.UPDATE] },
        { scope: 'orders', actions: [Action.CREATE, Action.DELETE] },
      ],
    });
    expect(key.grants.map((g) => g.scope)).toEqual(['billing', 'orders']);
    const orders = key.grants[1]!.actions;
    expect(new Set(orders).size).toBe(orders.length);
    expect([...orders].sort()).toEqual([Action.READ, Action.CREATE, Action.DELETE].sort());
    const v = await expectVerify(keys, secret, VerifyCode.VALID, ['orders:delete']);
    expect(v.permissions).toEqual(['billing:update', 'orders:create', 'orders:delete', 'orders:read']);
    const got = await getKey(keys, key.id);
    expect(got.grants).toEqual(key.grants);
  });

  it('accepts metadata at its limits', async () => {
    const ws = await newWorkspace(ts);
    const metadata: Record<string, string> = {};
    for (let i = 0; i < 63; i++) metadata[`k${i}`] = `v${i}`;
    metadata['k'.repeat(128)] = 'v'.repeat(1024);
    const { key } = await newKey(keys, { workspaceId: ws, metadata });
    expect(Object.keys(key.metadata)).toHaveLength(64);
    expect((await getKey(keys, key.id)).metadata).toEqual(metadata);
  });

  it('accepts name, customer_id and description at their limits', async () => {
    const ws = await newWorkspace(ts);
    const { key } = await newKey(keys, { workspaceId: ws, name: 'n'.repeat(120), customerId: 'c'.repeat(255), description: 'd'.repeat(1000) });
    const got = await getKey(keys, key.id);
    expect(got.name).toHaveLength(120);
    expect(got.customerId).toHaveLength(255);
    expect(got.description).toHaveLength(1000);
  });

  it('rejects bad fields, naming them', async () => {
    const ws = await newWorkspace(ts, { scopes: ['orders'] });
    const other = await newWorkspace(ts, { scopes: ['elsewhere'] });
    const bad: [MessageInitShape<typeof ApiKeySchema>, string][] = [
      [{ workspaceId: ws, name: 'x'.repeat(121) }, 'key.name'],
      [{ workspaceId: ws, customerId: 'c'.repeat(256) }, 'key.customer_id'],
      [{ workspaceId: ws, description: 'd'.repeat(1001) }, 'key.description'],
      [{ workspaceId: ws, grants: [{ scope: 'elsewhere', actions: [Action.READ] }] }, 'key.grants[0].scope'],
      [{ workspaceId: ws, grants: [{ scope: 'nope', actions: [Action.READ] }] }, 'key.grants[0].scope'],
      [
        {
          workspaceId: ws,
          grants: [
            { scope: 'orders', actions: [Action.READ] },
            { scope: 'elsewhere', actions: [Action.READ] },
          ],
        },
        'key.grants[1].scope',
      ],
      [{ workspaceId: ws, grants: [{ scope: '', actions: [Action.READ] }] }, 'key.grants[0].scope'],
      [{ workspaceId: ws, grants: [{ scope: 'orders', actions: [] }] }, 'key.grants[0].actions'],
      [{ workspaceId: ws, grants: [{ scope: 'orders' }] }, 'key.grants[0].actions'],
      [{ workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.UNSPECIFIED] }] }, 'key.grants[0].actions'],
      [{ workspaceId: ws, expireTime: timestampFromDate(new Date(Date.now() - 60_000)) }, 'key.expire_time'],
      [{ workspaceId: ws, expireTime: timestampFromDate(new Date(Date.now() - 1)) }, 'key.expire_time'],
      [{ workspaceId: '' }, 'key.workspace_id'],
      [{ workspaceId: 'not-a-uuid' }, 'key.workspace_id'],
      [{ workspaceId: ws, metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, 'key.metadata'],
      [{ workspaceId: ws, metadata: { ['k'.repeat(129)]: 'v' } }, 'key.metadata key'],
      [{ workspaceId: ws, metadata: { big: 'v'.repeat(1025) } }, 'key.metadata["big"]'],
      [{ workspaceId: ws, metadata: { '': 'v' } }, 'key.metadata'],
    ];
    for (const [key, field] of bad) {
      await expectError(keys.createKey({ key }), Code.InvalidArgument, field);
    }
    await expectError(keys.createKey({}), Code.InvalidArgument, 'key.workspace_id');
    // Nothing was created by the failed calls.
    expect((await keys.listKeys({ workspaceId: ws })).keys).toEqual([]);
    expect((await keys.listKeys({ workspaceId: other })).keys).toEqual([]);
  });

  it('returns NOT_FOUND for an unknown or deleted workspace', async () => {
    await expectError(keys.createKey({ key: { workspaceId: randomUUID() } }), Code.NotFound);
    const ws = await newWorkspace(ts);
    await workspaces.deleteWorkspace({ id: ws });
    await expectError(keys.createKey({ key: { workspaceId: ws } }), Code.NotFound);
  });
});

describe('CreateKey after the workspace changed', () => {
  // The server remembers each workspace's key prefix and scopes between
  // creates; every write checks them, so a change is seen by the next create.
  it('sees a new key prefix, a renamed or deleted scope and a newly declared action', async () => {
    const ws = await newWorkspace(ts, { keyPrefix: 'old' });
    const scopes = client(ScopeService, ts);
    const s = (await scopes.createScope({ scope: { workspaceId: ws, name: 'models', actions: ['read', 'train'] } })).scope!;
    const gone = (await scopes.createScope({ scope: { workspaceId: ws, name: 'gone' } })).scope!;
    const before = await newKey(keys, { workspaceId: ws, scopes: ['models:train', 'gone:read'] });
    expect(before.secret).toMatch(/^old_/);

    await workspaces.updateWorkspace({ workspace: { id: ws, keyPrefix: 'new' }, updateMask: { paths: ['key_prefix'] } });
    expect((await newKey(keys, { workspaceId: ws, scopes: ['models:train'] })).secret).toMatch(/^new_/);

    await scopes.updateScope({ scope: { id: s.id, actions: ['read', 'train', 'deploy'] }, updateMask: { paths: ['actions'] } });
    const deployer = await newKey(keys, { workspaceId: ws, scopes: ['models:deploy'] });
    expect(deployer.key.scopes).toEqual(['models:deploy']);
    await expectVerify(ts, deployer.secret, VerifyCode.VALID, ['models:deploy']);

    await scopes.updateScope({ scope: { id: s.id, name: 'ml' }, updateMask: { paths: ['name'] } });
    await expectError(keys.createKey({ key: { workspaceId: ws, scopes: ['models:train'] } }), Code.InvalidArgument, 'key.scopes[0]');
    expect((await newKey(keys, { workspaceId: ws, scopes: ['ml:train'] })).key.scopes).toEqual(['ml:train']);

    await keys.revokeKey({ id: before.id });
    await scopes.deleteScope({ id: gone.id });
    await expectError(keys.createKey({ key: { workspaceId: ws, scopes: ['gone:read'] } }), Code.InvalidArgument, 'key.scopes[0]');
  });
});

describe('CreateKey under load', () => {
  it('writes concurrent creates in several workspaces together, each key in its own workspace with its grants and audit event', async () => {
    const wss = await Promise.all(Array.from({ length: 4 }, (_, i) => newWorkspace(ts, { keyPrefix: `p${i}`, scopes: ['orders', `only${i}`] })));
    const before = ts.internals.keys.writeStats;
    const start = { ...before };
    const made = await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const w = i % 4;
        return newKey(keys, { workspaceId: wss[w]!, name: `k${i}`, scopes: [`orders:${i % 2 ? 'read' : 'update'}`, `only${w}`] }).then((k) => ({ ...k, i, w }));
      }),
    );
    const stats = ts.internals.keys.writeStats;
    expect(stats.writes - start.writes).toBe(60);
    expect(stats.statements - start.statements, 'creates arriving together share statements').toBeLessThan(60);
    for (const k of made) {
      expect(k.secret.startsWith(`p${k.w}_`)).toBe(true);
      expect(k.key.workspaceId).toBe(wss[k.w]);
      expect(k.key.name).toBe(`k${k.i}`);
      expect([...k.key.scopes].sort()).toEqual([`only${k.w}`, `orders:${k.i % 2 ? 'read' : 'update'}`].sort());
    }
    for (const k of made.slice(0, 8)) await expectVerify(ts, k.secret, VerifyCode.VALID, [`only${k.w}`]);
    for (const [w, ws] of wss.entries()) {
      const listed = (await keys.listKeys({ workspaceId: ws, pageSize: 100 })).keys;
      expect(listed.map((k) => k.id).sort()).toEqual(
        made
          .filter((k) => k.w === w)
          .map((k) => k.id)
          .sort(),
      );
    }
    const audited = await ts.sql<{ resource_id: string; workspace_id: string }[]>(
      `select resource_id, workspace_id from audit_events where action = 'key.create' and resource_id in (?)`,
      [made.map((k) => k.id)],
    );
    expect(audited.length).toBe(60);
    for (const a of audited) expect(a.workspace_id).toBe(made.find((k) => k.id === a.resource_id)!.key.workspaceId);
  });
});

describe('GetKey', () => {
  it('returns NOT_FOUND for an unknown key and INVALID_ARGUMENT for a bad id', async () => {
    await expectError(keys.getKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.getKey({ id: '' }), Code.InvalidArgument, 'id');
    await expectError(keys.getKey({ id: 'kw_abc' }), Code.InvalidArgument, 'id');
  });
});
