import { randomBytes, randomUUID } from 'node:crypto';
import zlib from 'node:zlib';
import { toJsonString, type MessageInitShape } from '@bufbuild/protobuf';
import { durationFromMs, timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action, KeyState, type ApiKey, type ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';
import {
  GetKeyResponseSchema,
  KeyService,
  ListKeysResponseSchema,
  VerifyCode,
  VerifyKeyResponseSchema,
  type ListKeysRequestSchema,
  type VerifyKeyResponse,
} from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, PROTOCOLS, startTestServer, type TestServer } from '../support/server.js';
import { expectError, rpcError } from '../support/rpc.js';

let ts: TestServer;
let keys: Client<typeof KeyService>;
let scopes: Client<typeof ScopeService>;
let workspaces: Client<typeof WorkspaceService>;

beforeAll(async () => {
  // Usage is written every 100 ms, so last_used_time shows up quickly.
  ts = await startTestServer({ KEYWARD_USAGE_FLUSH_MS: '100' });
  keys = client(KeyService, ts);
  scopes = client(ScopeService, ts);
  workspaces = client(WorkspaceService, ts);
});
afterAll(async () => {
  await ts?.close();
});

// ---------------------------------------------------------------------------
// helpers

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checksum of a key body, computed independently of src/: base62 of zlib's CRC32, 6 chars. */
function checksumOf(body: string): string {
  let n = zlib.crc32(body);
  let out = '';
  while (n > 0) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out.padStart(6, '0');
}

function splitKey(secret: string) {
  const m = /^([a-z][a-z0-9]{0,15})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/.exec(secret);
  if (!m) throw new Error(`not a key: ${secret}`);
  return { prefix: m[1]!, body: m[2]!, checksum: m[3]! };
}

/** A key of the right shape and checksum that was never issued. */
function wellFormedUnknownKey(prefix = 'kw'): string {
  const body = [...randomBytes(43)].map((b) => BASE62[b % 62]).join('');
  return `${prefix}_${body}${checksumOf(body)}`;
}

/** The key with one character of its body changed to another base62 character. */
function typo(secret: string, at: number): string {
  const i = secret.indexOf('_') + 1 + at;
  const c = secret[i]!;
  const replacement = BASE62[(BASE62.indexOf(c) + 1) % 62]!;
  return secret.slice(0, i) + replacement + secret.slice(i + 1);
}

/** A fresh workspace (with the given scopes), so each test is independent of the others. */
async function newWorkspace(opts: { keyPrefix?: string; scopes?: string[] } = {}): Promise<string> {
  const { workspace } = await workspaces.createWorkspace({
    workspace: { name: `keys-${randomUUID()}`, keyPrefix: opts.keyPrefix ?? '' },
  });
  for (const name of opts.scopes ?? []) await scopes.createScope({ scope: { workspaceId: workspace!.id, name } });
  return workspace!.id;
}

async function newKey(key: MessageInitShape<typeof ApiKeySchema>): Promise<{ key: ApiKey; secret: string }> {
  const res = await keys.createKey({ key });
  return { key: res.key!, secret: res.secret };
}

function verify(key: string, requiredPermissions: string[] = [], workspaceId = ''): Promise<VerifyKeyResponse> {
  return keys.verifyKey({ key, requiredPermissions, workspaceId });
}

async function expectVerify(key: string, code: VerifyCode, requiredPermissions: string[] = [], workspaceId = ''): Promise<VerifyKeyResponse> {
  const res = await verify(key, requiredPermissions, workspaceId);
  expect(VerifyCode[res.code]).toBe(VerifyCode[code]);
  expect(res.valid).toBe(code === VerifyCode.VALID);
  if (code === VerifyCode.NOT_FOUND) {
    // Nothing about a key that was not found is revealed.
    expect(res.keyId).toBe('');
    expect(res.workspaceId).toBe('');
    expect(res.permissions).toEqual([]);
  }
  return res;
}

const ms = (t: { seconds: bigint; nanos: number } | undefined) => (t ? timestampDate(t as never).getTime() : undefined);

async function getKey(id: string): Promise<ApiKey> {
  return (await keys.getKey({ id })).key!;
}

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

// ---------------------------------------------------------------------------

describe('CreateKey', () => {
  it('issues a key with its secret once, in the documented format', async () => {
    const ws = await newWorkspace({ scopes: ['orders', 'billing'] });
    const expire = new Date(Date.now() + 3_600_000);
    expire.setMilliseconds(123);
    const before = Date.now();
    const { key, secret } = await newKey({
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
    const v = await expectVerify(secret, VerifyCode.VALID, ['orders:read', 'billing:read']);
    expect(toJsonString(VerifyKeyResponseSchema, v)).not.toContain(parts.body);
  });

  it('applies defaults to a minimal key', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws });
    expect(key.enabled).toBe(true);
    expect(key.state).toBe(KeyState.ACTIVE);
    expect(key.name).toBe('');
    expect(key.customerId).toBe('');
    expect(key.grants).toEqual([]);
    expect(key.metadata).toEqual({});
    expect(key.expireTime).toBeUndefined();
    const v = await expectVerify(secret, VerifyCode.VALID);
    expect(v.permissions).toEqual([]);
    await expectVerify(secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['anything:read']);
  });

  it('issues a different secret every time', async () => {
    const ws = await newWorkspace();
    const secrets = new Set<string>();
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const { key, secret } = await newKey({ workspaceId: ws });
      secrets.add(secret);
      ids.add(key.id);
    }
    expect(secrets.size).toBe(5);
    expect(ids.size).toBe(5);
  });

  it('can create a disabled key', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws, enabled: false });
    expect(key.enabled).toBe(false);
    expect(key.state).toBe(KeyState.DISABLED);
    const v = await expectVerify(secret, VerifyCode.DISABLED);
    expect(v.keyId).toBe(key.id);
    expect(v.state).toBe(KeyState.DISABLED);
  });

  it("uses the workspace's key_prefix, and a changed prefix only for later keys", async () => {
    const ws = await newWorkspace({ keyPrefix: 'acme' });
    const first = await newKey({ workspaceId: ws });
    expect(first.secret).toMatch(/^acme_[0-9A-Za-z]{49}$/);
    expect(first.key.maskedKey).toBe(`acme_****${first.secret.slice(-4)}`);
    expect(first.key.start).toBe(`acme_${splitKey(first.secret).body.slice(0, 4)}`);
    await expectVerify(first.secret, VerifyCode.VALID);

    await workspaces.updateWorkspace({ workspace: { id: ws, keyPrefix: 'zed9' }, updateMask: { paths: ['key_prefix'] } });
    const second = await newKey({ workspaceId: ws });
    expect(second.secret.startsWith('zed9_')).toBe(true);
    expect(second.key.maskedKey.startsWith('zed9_****')).toBe(true);
    await expectVerify(second.secret, VerifyCode.VALID);
    // The old key keeps verifying under its old prefix.
    await expectVerify(first.secret, VerifyCode.VALID);
    expect((await getKey(first.key.id)).maskedKey).toBe(first.key.maskedKey);
  });

  it('issues Openlayer-style keys for a prefix ending in a hyphen (sk-ol-), masked with it', async () => {
    const ws = await newWorkspace({ keyPrefix: 'sk-ol-' });
    const k = await newKey({ workspaceId: ws });
    expect(k.secret).toMatch(/^sk-ol-[0-9A-Za-z]{49}$/);
    expect(k.key.maskedKey).toBe(`sk-ol-****${k.secret.slice(-4)}`);
    expect(k.key.start).toBe(k.secret.slice(0, 10));
    await expectVerify(k.secret, VerifyCode.VALID);
    // A typo in the checksum is refused before any lookup, as for any key.
    await expectVerify(k.secret.slice(0, -1) + (k.secret.endsWith('A') ? 'B' : 'A'), VerifyCode.NOT_FOUND);
    const bad = await workspaces.createWorkspace({ workspace: { name: 'bad-prefix', keyPrefix: '-sk' } }).catch((e: unknown) => e);
    expect(String(bad)).toMatch(/workspace\.key_prefix: must match \[a-z\]\[a-z0-9-\]\{0,15\}/);
  });

  it('merges duplicate actions and duplicate grants of one scope', async () => {
    const ws = await newWorkspace({ scopes: ['orders', 'billing'] });
    const { key, secret } = await newKey({
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
    const v = await expectVerify(secret, VerifyCode.VALID, ['orders:delete']);
    expect(v.permissions).toEqual(['billing:update', 'orders:create', 'orders:delete', 'orders:read']);
    const got = await getKey(key.id);
    expect(got.grants).toEqual(key.grants);
  });

  it('accepts metadata at its limits', async () => {
    const ws = await newWorkspace();
    const metadata: Record<string, string> = {};
    for (let i = 0; i < 63; i++) metadata[`k${i}`] = `v${i}`;
    metadata['k'.repeat(128)] = 'v'.repeat(1024);
    const { key } = await newKey({ workspaceId: ws, metadata });
    expect(Object.keys(key.metadata)).toHaveLength(64);
    expect((await getKey(key.id)).metadata).toEqual(metadata);
  });

  it('accepts name, customer_id and description at their limits', async () => {
    const ws = await newWorkspace();
    const { key } = await newKey({ workspaceId: ws, name: 'n'.repeat(120), customerId: 'c'.repeat(255), description: 'd'.repeat(1000) });
    const got = await getKey(key.id);
    expect(got.name).toHaveLength(120);
    expect(got.customerId).toHaveLength(255);
    expect(got.description).toHaveLength(1000);
  });

  it('rejects bad fields, naming them', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const other = await newWorkspace({ scopes: ['elsewhere'] });
    const bad: [MessageInitShape<typeof ApiKeySchema>, string][] = [
      [{ workspaceId: ws, name: 'x'.repeat(121) }, 'key.name'],
      [{ workspaceId: ws, customerId: 'c'.repeat(256) }, 'key.customer_id'],
      [{ workspaceId: ws, description: 'd'.repeat(1001) }, 'key.description'],
      [{ workspaceId: ws, grants: [{ scope: 'elsewhere', actions: [Action.READ] }] }, 'key.grants[0].scope'],
      [{ workspaceId: ws, grants: [{ scope: 'nope', actions: [Action.READ] }] }, 'key.grants[0].scope'],
      [
        { workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }, { scope: 'elsewhere', actions: [Action.READ] }] },
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
    const ws = await newWorkspace();
    await workspaces.deleteWorkspace({ id: ws });
    await expectError(keys.createKey({ key: { workspaceId: ws } }), Code.NotFound);
  });
});

describe('GetKey', () => {
  it('returns NOT_FOUND for an unknown key and INVALID_ARGUMENT for a bad id', async () => {
    await expectError(keys.getKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.getKey({ id: '' }), Code.InvalidArgument, 'id');
    await expectError(keys.getKey({ id: 'kw_abc' }), Code.InvalidArgument, 'id');
  });
});

describe('ListKeys', () => {
  it('lists oldest first and pages through every key without duplicates or omissions', async () => {
    const ws = await newWorkspace();
    const created: string[] = [];
    for (let i = 0; i < 11; i++) created.push((await newKey({ workspaceId: ws, name: `k${i}` })).key.id);
    // Another workspace's keys never show up.
    const other = await newWorkspace();
    await newKey({ workspaceId: other });

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
    const ws = await newWorkspace();
    const a: string[] = [];
    const b: string[] = [];
    for (let i = 0; i < 5; i++) {
      a.push((await newKey({ workspaceId: ws, customerId: 'cus_a' })).key.id);
      if (i < 2) b.push((await newKey({ workspaceId: ws, customerId: 'cus_b' })).key.id);
    }
    await newKey({ workspaceId: ws });
    const pagedA = await listAll({ workspaceId: ws, customerId: 'cus_a' }, 2);
    expect(pagedA.sizes).toEqual([2, 2, 1]);
    expect(pagedA.all.map((k) => k.id)).toEqual(a);
    expect(pagedA.all.every((k) => k.customerId === 'cus_a')).toBe(true);
    expect((await keys.listKeys({ workspaceId: ws, customerId: 'cus_b' })).keys.map((k) => k.id)).toEqual(b);
    expect((await keys.listKeys({ workspaceId: ws, customerId: 'cus_nobody' })).keys).toEqual([]);
    expect((await keys.listKeys({ workspaceId: ws })).keys).toHaveLength(8);
  });

  it('filters by state: ACTIVE, DISABLED, REVOKED and EXPIRED', async () => {
    const ws = await newWorkspace();
    const active = await newKey({ workspaceId: ws, customerId: 'c1', name: 'active' });
    const disabled = await newKey({ workspaceId: ws, customerId: 'c1', name: 'disabled', enabled: false });
    const revoked = await newKey({ workspaceId: ws, customerId: 'c2', name: 'revoked' });
    await keys.revokeKey({ id: revoked.key.id });
    // Everything that must happen before the expiry is kept short and after this point.
    const expireAt = Date.now() + 1500;
    const expireTime = timestampFromDate(new Date(expireAt));
    const expiring = await newKey({ workspaceId: ws, customerId: 'c2', name: 'expiring', expireTime });
    // Disabled and expired reads as EXPIRED; revoked and expired as REVOKED.
    const disabledExpiring = await newKey({ workspaceId: ws, name: 'disabled+expiring', enabled: false, expireTime });
    const revokedExpiring = await newKey({ workspaceId: ws, name: 'revoked+expiring', expireTime });
    await keys.revokeKey({ id: revokedExpiring.key.id });
    const names = async (state: KeyState, customerId = '') =>
      (await keys.listKeys({ workspaceId: ws, state, customerId })).keys.map((k) => k.name);

    // Before the expiry.
    const [activeNow, disabledNow, revokedNow, expiredNow, allNow, verifiedNow, gotNow] = await Promise.all([
      names(KeyState.ACTIVE),
      names(KeyState.DISABLED),
      names(KeyState.REVOKED),
      names(KeyState.EXPIRED),
      names(KeyState.UNSPECIFIED),
      verify(expiring.secret),
      getKey(expiring.key.id),
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
    const v = await expectVerify(expiring.secret, VerifyCode.EXPIRED);
    expect(v.keyId).toBe(expiring.key.id);
    expect(v.state).toBe(KeyState.EXPIRED);
    expect(ms(v.expireTime)).toBe(expireAt);
    expect((await getKey(expiring.key.id)).state).toBe(KeyState.EXPIRED);
    await expectVerify(disabledExpiring.secret, VerifyCode.EXPIRED);
    await expectVerify(revokedExpiring.secret, VerifyCode.REVOKED);
    await expectVerify(active.secret, VerifyCode.VALID);
    await expectVerify(disabled.secret, VerifyCode.DISABLED);
    await expectVerify(revoked.secret, VerifyCode.REVOKED);
  });

  it('rejects a page token used with changed filters, a garbage token and a negative page_size', async () => {
    const ws = await newWorkspace();
    const other = await newWorkspace();
    for (let i = 0; i < 3; i++) {
      await newKey({ workspaceId: ws, customerId: 'c' });
      await newKey({ workspaceId: other, customerId: 'c' });
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
    await expectError(client(KeyService, ts, { protocol: 'connect-binary' }).listKeys({ workspaceId: ws, state: 99 as KeyState }), Code.InvalidArgument, 'state');

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
    const ws = await newWorkspace();
    await workspaces.deleteWorkspace({ id: ws });
    await expectError(keys.listKeys({ workspaceId: ws }), Code.NotFound);
  });
});

describe('UpdateKey', () => {
  it('changes only the masked fields', async () => {
    const ws = await newWorkspace({ scopes: ['orders', 'billing'] });
    const expire = new Date(Date.now() + 3_600_000);
    const { key, secret } = await newKey({
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
    const got = await getKey(key.id);
    expect(got.name).toBe('n2');
    expect(got.customerId).toBe('c2');
    expect(got.description).toBe('d2');
    expect(got.metadata).toEqual({ c: '3' });
    expect(ms(got.expireTime)).toBe(later.getTime());
    expect(got.enabled).toBe(true);
    const v = await expectVerify(secret, VerifyCode.VALID, ['orders:read']);
    expect(v.name).toBe('n2');
    expect(v.customerId).toBe('c2');
    expect(v.metadata).toEqual({ c: '3' });
    expect(ms(v.expireTime)).toBe(later.getTime());
  });

  it('replaces grants, which VerifyKey sees at once', async () => {
    const ws = await newWorkspace({ scopes: ['orders', 'billing', 'reports'] });
    const { key, secret } = await newKey({
      workspaceId: ws,
      grants: [
        { scope: 'orders', actions: [Action.READ, Action.UPDATE] },
        { scope: 'reports', actions: [Action.READ] },
      ],
    });
    await expectVerify(secret, VerifyCode.VALID, ['orders:read']);
    const updated = (await keys.updateKey({
      key: { id: key.id, grants: [{ scope: 'billing', actions: [Action.CREATE, Action.DELETE] }] },
      updateMask: { paths: ['grants'] },
    })).key!;
    expect(updated.grants.map((g) => g.scope)).toEqual(['billing']);
    expect([...updated.grants[0]!.actions].sort()).toEqual([Action.CREATE, Action.DELETE].sort());
    expect((await getKey(key.id)).grants).toEqual(updated.grants);
    await expectVerify(secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['orders:read']);
    await expectVerify(secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['reports:read']);
    const v = await expectVerify(secret, VerifyCode.VALID, ['billing:create', 'billing:delete']);
    expect(v.permissions).toEqual(['billing:create', 'billing:delete']);

    // Grants can be emptied.
    const emptied = (await keys.updateKey({ key: { id: key.id }, updateMask: { paths: ['grants'] } })).key!;
    expect(emptied.grants).toEqual([]);
    expect((await expectVerify(secret, VerifyCode.VALID)).permissions).toEqual([]);
    await expectVerify(secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['billing:create']);
  });

  it('disables and re-enables a key', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws, customerId: 'cus' });
    await expectVerify(secret, VerifyCode.VALID);
    const off = (await keys.updateKey({ key: { id: key.id, enabled: false }, updateMask: { paths: ['enabled'] } })).key!;
    expect(off.enabled).toBe(false);
    expect(off.state).toBe(KeyState.DISABLED);
    const v = await expectVerify(secret, VerifyCode.DISABLED);
    expect(v.keyId).toBe(key.id);
    expect(v.customerId).toBe('cus');
    expect(v.state).toBe(KeyState.DISABLED);
    expect((await getKey(key.id)).state).toBe(KeyState.DISABLED);
    // Naming `enabled` in the mask without a value is a mistake, not "enable".
    await expectError(keys.updateKey({ key: { id: key.id }, updateMask: { paths: ['enabled'] } }), Code.InvalidArgument, 'key.enabled');
    await expectVerify(secret, VerifyCode.DISABLED);
    const on = (await keys.updateKey({ key: { id: key.id, enabled: true }, updateMask: { paths: ['enabled'] } })).key!;
    expect(on.state).toBe(KeyState.ACTIVE);
    await expectVerify(secret, VerifyCode.VALID);
  });

  it('rejects an empty or unknown mask, bad values, and leaves the key unchanged', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const other = await newWorkspace({ scopes: ['foreign'] });
    const { key } = await newKey({ workspaceId: ws, name: 'orig', grants: [{ scope: 'orders', actions: [Action.READ] }] });
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x' } }), Code.InvalidArgument, 'update_mask');
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x' }, updateMask: { paths: [] } }), Code.InvalidArgument, 'update_mask');
    const binary = client(KeyService, ts, { protocol: 'connect-binary' });
    for (const path of ['state', 'masked_key', 'start', 'id', 'workspace_id', 'secret', 'last_used_time', 'revoke_time', 'create_time', 'bogus', 'key.name', 'Name']) {
      await expectError(binary.updateKey({ key: { id: key.id, name: 'x' }, updateMask: { paths: [path] } }), Code.InvalidArgument, 'update_mask');
    }
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x'.repeat(121) }, updateMask: { paths: ['name'] } }), Code.InvalidArgument, 'key.name');
    await expectError(
      keys.updateKey({ key: { id: key.id, expireTime: timestampFromDate(new Date(Date.now() - 1000)) }, updateMask: { paths: ['expire_time'] } }),
      Code.InvalidArgument,
      'key.expire_time',
    );
    await expectError(
      keys.updateKey({ key: { id: key.id, metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, updateMask: { paths: ['metadata'] } }),
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
    const after = await getKey(key.id);
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
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws, name: 'before' });
    await keys.revokeKey({ id: key.id });
    await expectError(keys.updateKey({ key: { id: key.id, name: 'after' }, updateMask: { paths: ['name'] } }), Code.FailedPrecondition);
    // Re-enabling cannot bring it back either.
    await expectError(keys.updateKey({ key: { id: key.id, enabled: true }, updateMask: { paths: ['enabled'] } }), Code.FailedPrecondition);
    expect((await getKey(key.id)).name).toBe('before');
    await expectVerify(secret, VerifyCode.REVOKED);
  });
});

describe('RotateKey', () => {
  it('issues a new secret; with no grace the old one stops at once', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const { key, secret: old } = await newKey({
      workspaceId: ws,
      customerId: 'cus',
      grants: [{ scope: 'orders', actions: [Action.READ] }],
      metadata: { m: '1' },
    });
    // Warm any cache with the old secret first.
    await expectVerify(old, VerifyCode.VALID, ['orders:read']);
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
    expect((await getKey(key.id)).maskedKey).toBe(k.maskedKey);

    const v = await expectVerify(rotated.secret, VerifyCode.VALID, ['orders:read']);
    expect(v.keyId).toBe(key.id);
    await expectVerify(old, VerifyCode.NOT_FOUND, ['orders:read']);

    // An unset grace_period also ends the previous secret at once.
    const again = await keys.rotateKey({ id: key.id });
    await expectVerify(again.secret, VerifyCode.VALID);
    await expectVerify(rotated.secret, VerifyCode.NOT_FOUND);
    await expectVerify(old, VerifyCode.NOT_FOUND);
  });

  it('keeps the old secret valid for the grace period, then not', async () => {
    const ws = await newWorkspace();
    const { key, secret: old } = await newKey({ workspaceId: ws });
    await expectVerify(old, VerifyCode.VALID);
    // The server's rotation time lies between these two instants.
    const sentAt = Date.now();
    const { secret: fresh } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(2000) });
    const answeredAt = Date.now();
    const oldV = await expectVerify(old, VerifyCode.VALID);
    expect(oldV.keyId).toBe(key.id);
    await expectVerify(fresh, VerifyCode.VALID);
    await sleep(sentAt + 1000 - Date.now());
    await expectVerify(old, VerifyCode.VALID);

    await sleep(answeredAt + 2000 + 200 - Date.now());
    await expectVerify(old, VerifyCode.NOT_FOUND);
    await expectVerify(fresh, VerifyCode.VALID);
  });

  it('ends secrets still in their grace when rotating again without grace', async () => {
    const ws = await newWorkspace();
    const { key, secret: first } = await newKey({ workspaceId: ws });
    const { secret: second } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(60_000) });
    await expectVerify(first, VerifyCode.VALID);
    await expectVerify(second, VerifyCode.VALID);
    const { secret: third } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(0) });
    await expectVerify(first, VerifyCode.NOT_FOUND);
    await expectVerify(second, VerifyCode.NOT_FOUND);
    await expectVerify(third, VerifyCode.VALID);
  });

  it('rejects a negative or too long grace_period', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws });
    await expectError(keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(-1000) }), Code.InvalidArgument, 'grace_period');
    await expectError(keys.rotateKey({ id: key.id, gracePeriod: { seconds: 0n, nanos: -1 } }), Code.InvalidArgument, 'grace_period');
    await expectError(keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(31 * 24 * 3600 * 1000) }), Code.InvalidArgument, 'grace_period');
    // Nothing changed.
    await expectVerify(secret, VerifyCode.VALID);
    expect((await getKey(key.id)).maskedKey).toBe(key.maskedKey);
    // 30 days exactly is allowed.
    const ok = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(30 * 24 * 3600 * 1000) });
    await expectVerify(ok.secret, VerifyCode.VALID);
    await expectVerify(secret, VerifyCode.VALID);
  });

  it('refuses a revoked key and returns NOT_FOUND for an unknown one', async () => {
    const ws = await newWorkspace();
    const { key } = await newKey({ workspaceId: ws });
    await keys.revokeKey({ id: key.id });
    await expectError(keys.rotateKey({ id: key.id }), Code.FailedPrecondition);
    await expectError(keys.rotateKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.rotateKey({ id: '' }), Code.InvalidArgument, 'id');
  });
});

describe('RevokeKey', () => {
  it('revokes at once and for good; revoking again changes nothing', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const { key, secret } = await newKey({ workspaceId: ws, customerId: 'cus', grants: [{ scope: 'orders', actions: [Action.READ] }] });
    await expectVerify(secret, VerifyCode.VALID, ['orders:read']);
    const before = Date.now();
    const revoked = (await keys.revokeKey({ id: key.id })).key!;
    expect(revoked.state).toBe(KeyState.REVOKED);
    expect(revoked.revokeTime).toBeDefined();
    const revokeMs = ms(revoked.revokeTime)!;
    expect(revokeMs).toBeGreaterThanOrEqual(before - 1000);
    expect(revokeMs).toBeLessThanOrEqual(Date.now() + 1000);

    const v = await expectVerify(secret, VerifyCode.REVOKED, ['orders:read']);
    expect(v.keyId).toBe(key.id);
    expect(v.workspaceId).toBe(ws);
    expect(v.customerId).toBe('cus');
    expect(v.state).toBe(KeyState.REVOKED);
    // Revocation wins over a missing permission.
    await expectVerify(secret, VerifyCode.REVOKED, ['orders:delete']);

    const got = await getKey(key.id);
    expect(got.state).toBe(KeyState.REVOKED);
    expect(ms(got.revokeTime)).toBe(revokeMs);

    await sleep(5);
    const again = (await keys.revokeKey({ id: key.id })).key!;
    expect(again.state).toBe(KeyState.REVOKED);
    expect(ms(again.revokeTime)).toBe(revokeMs);
    expect(ms(again.updateTime)).toBe(ms(revoked.updateTime));
  });

  it('also revokes a previous secret still in its grace period', async () => {
    const ws = await newWorkspace();
    const { key, secret: old } = await newKey({ workspaceId: ws });
    const { secret: fresh } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(60_000) });
    await expectVerify(old, VerifyCode.VALID);
    await keys.revokeKey({ id: key.id });
    await expectVerify(old, VerifyCode.REVOKED);
    await expectVerify(fresh, VerifyCode.REVOKED);
  });

  it('returns NOT_FOUND for an unknown key', async () => {
    await expectError(keys.revokeKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.revokeKey({ id: 'x' }), Code.InvalidArgument, 'id');
  });
});

describe('DeleteKey', () => {
  it('deletes the key: it no longer verifies, reads or lists', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws });
    const keep = await newKey({ workspaceId: ws });
    await expectVerify(secret, VerifyCode.VALID);
    await keys.deleteKey({ id: key.id });
    await expectVerify(secret, VerifyCode.NOT_FOUND);
    await expectError(keys.getKey({ id: key.id }), Code.NotFound);
    await expectError(keys.deleteKey({ id: key.id }), Code.NotFound);
    await expectError(keys.revokeKey({ id: key.id }), Code.NotFound);
    await expectError(keys.rotateKey({ id: key.id }), Code.NotFound);
    await expectError(keys.updateKey({ key: { id: key.id, name: 'x' }, updateMask: { paths: ['name'] } }), Code.NotFound);
    expect((await keys.listKeys({ workspaceId: ws })).keys.map((k) => k.id)).toEqual([keep.key.id]);
    await expectVerify(keep.secret, VerifyCode.VALID);
  });

  it('deletes a revoked key and all its secrets', async () => {
    const ws = await newWorkspace();
    const { key, secret: old } = await newKey({ workspaceId: ws });
    const { secret: fresh } = await keys.rotateKey({ id: key.id, gracePeriod: durationFromMs(60_000) });
    await keys.revokeKey({ id: key.id });
    await keys.deleteKey({ id: key.id });
    await expectVerify(old, VerifyCode.NOT_FOUND);
    await expectVerify(fresh, VerifyCode.NOT_FOUND);
  });

  it('returns NOT_FOUND for an unknown key', async () => {
    await expectError(keys.deleteKey({ id: randomUUID() }), Code.NotFound);
    await expectError(keys.deleteKey({ id: '' }), Code.InvalidArgument, 'id');
  });
});

describe('VerifyKey', () => {
  it('answers VALID with the key, its permissions and metadata', async () => {
    const ws = await newWorkspace({ scopes: ['orders', 'balance_transfers'] });
    const expire = new Date(Date.now() + 86_400_000);
    const { key, secret } = await newKey({
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
    const v = await expectVerify(secret, VerifyCode.VALID, ['orders:read', 'balance_transfers:create']);
    expect(v.keyId).toBe(key.id);
    expect(v.workspaceId).toBe(ws);
    expect(v.customerId).toBe('cus_42');
    expect(v.name).toBe('gateway test');
    expect(v.permissions).toEqual(['balance_transfers:create', 'orders:read', 'orders:update']);
    expect(v.metadata).toEqual({ tier: 'gold', 'x-ünï': 'çødé' });
    expect(ms(v.expireTime)).toBe(expire.getTime());
    expect(v.state).toBe(KeyState.ACTIVE);
    // No required permission: just a valid key. Repeated permissions are fine.
    await expectVerify(secret, VerifyCode.VALID);
    await expectVerify(secret, VerifyCode.VALID, ['orders:read', 'orders:read']);
    // Its own workspace_id is fine.
    await expectVerify(secret, VerifyCode.VALID, ['orders:update'], ws);
  });

  it('answers the same over every protocol', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const { key, secret } = await newKey({ workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
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
    const ws = await newWorkspace({ scopes: ['orders', 'billing'] });
    const { key, secret } = await newKey({ workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    for (const required of [['orders:create'], ['orders:read', 'billing:read'], ['billing:read'], ['unknown_scope:read']]) {
      const v = await expectVerify(secret, VerifyCode.INSUFFICIENT_PERMISSIONS, required);
      expect(v.keyId).toBe(key.id);
      expect(v.permissions).toEqual(['orders:read']);
      expect(v.state).toBe(KeyState.ACTIVE);
    }
  });

  it('answers NOT_FOUND for garbage, a typo, a wrong prefix and a well-formed unknown key', async () => {
    const ws = await newWorkspace();
    const { secret } = await newKey({ workspaceId: ws });
    await expectVerify(secret, VerifyCode.VALID);
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
      await expectVerify(c, VerifyCode.NOT_FOUND);
    }
    await expectVerify(secret, VerifyCode.VALID);
  });

  it("answers NOT_FOUND for another workspace's key when workspace_id is set", async () => {
    const a = await newWorkspace();
    const b = await newWorkspace();
    const { secret } = await newKey({ workspaceId: a });
    await expectVerify(secret, VerifyCode.NOT_FOUND, [], b);
    await expectVerify(secret, VerifyCode.NOT_FOUND, [], randomUUID());
    await expectVerify(secret, VerifyCode.VALID, [], a);
    await expectVerify(secret, VerifyCode.VALID);
  });

  it('rejects a bad request with INVALID_ARGUMENT naming the field', async () => {
    const ws = await newWorkspace();
    const { secret } = await newKey({ workspaceId: ws });
    await expectError(keys.verifyKey({ key: '' }), Code.InvalidArgument, 'key');
    await expectError(keys.verifyKey({ key: '', requiredPermissions: ['orders:read'] }), Code.InvalidArgument, 'key');
    for (const bad of ['orders', 'orders:', ':read', 'orders:READ', 'Orders:read', 'orders:write', 'orders:read:x', 'orders read', '']) {
      await expectError(keys.verifyKey({ key: secret, requiredPermissions: [bad] }), Code.InvalidArgument, 'required_permissions[0]');
    }
    await expectError(keys.verifyKey({ key: secret, requiredPermissions: ['orders:read', 'nope'] }), Code.InvalidArgument, 'required_permissions[1]');
    // Malformed permissions are refused even when the key itself would be NOT_FOUND.
    await expectError(keys.verifyKey({ key: 'garbage', requiredPermissions: ['nope'] }), Code.InvalidArgument, 'required_permissions[0]');
    await expectError(
      keys.verifyKey({ key: secret, requiredPermissions: Array.from({ length: 101 }, (_, i) => `s${i}:read`) }),
      Code.InvalidArgument,
      'required_permissions',
    );
    await expectError(keys.verifyKey({ key: secret, workspaceId: 'not-a-uuid' }), Code.InvalidArgument, 'workspace_id');
  });

  it('answers DISABLED and EXPIRED, REVOKED winning over both', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const { key, secret } = await newKey({ workspaceId: ws, enabled: false, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    const v = await expectVerify(secret, VerifyCode.DISABLED, ['orders:read']);
    expect(v.keyId).toBe(key.id);
    expect(v.permissions).toEqual(['orders:read']);
    // Disabled wins over a missing permission.
    await expectVerify(secret, VerifyCode.DISABLED, ['orders:delete']);
    await keys.revokeKey({ id: key.id });
    await expectVerify(secret, VerifyCode.REVOKED, ['orders:read']);
  });

  it('answers REVOKED for every key of a deleted workspace', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const one = await newKey({ workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    const two = await newKey({ workspaceId: ws, enabled: false });
    const three = await newKey({ workspaceId: ws });
    await keys.revokeKey({ id: three.key.id });
    const survivorWs = await newWorkspace();
    const survivor = await newKey({ workspaceId: survivorWs });
    await expectVerify(one.secret, VerifyCode.VALID, ['orders:read']);
    await expectVerify(two.secret, VerifyCode.DISABLED);

    await workspaces.deleteWorkspace({ id: ws });

    const v = await expectVerify(one.secret, VerifyCode.REVOKED, ['orders:read']);
    expect(v.keyId).toBe(one.key.id);
    expect(v.state).toBe(KeyState.REVOKED);
    await expectVerify(two.secret, VerifyCode.REVOKED);
    await expectVerify(three.secret, VerifyCode.REVOKED);
    await expectVerify(survivor.secret, VerifyCode.VALID);
    // The workspace and its keys are gone from management.
    await expectError(keys.getKey({ id: one.key.id }), Code.NotFound);
    await expectError(keys.listKeys({ workspaceId: ws }), Code.NotFound);
  });

  it('records last_used_time after a VALID verification, and only then', async () => {
    const ws = await newWorkspace({ scopes: ['orders'] });
    const used = await newKey({ workspaceId: ws, grants: [{ scope: 'orders', actions: [Action.READ] }] });
    const alsoUsed = await newKey({ workspaceId: ws });
    const denied = await newKey({ workspaceId: ws });
    const disabled = await newKey({ workspaceId: ws, enabled: false });
    expect((await getKey(used.key.id)).lastUsedTime).toBeUndefined();

    await expectVerify(denied.secret, VerifyCode.INSUFFICIENT_PERMISSIONS, ['orders:read']);
    await expectVerify(disabled.secret, VerifyCode.DISABLED);
    const before = Date.now();
    // Two uses in one flush window are written together.
    await Promise.all([expectVerify(used.secret, VerifyCode.VALID, ['orders:read']), expectVerify(alsoUsed.secret, VerifyCode.VALID)]);
    const after = Date.now();

    let lastUsed: number | undefined;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      lastUsed = ms((await getKey(used.key.id)).lastUsedTime);
      if (lastUsed !== undefined) break;
      await sleep(50);
    }
    expect(lastUsed, 'last_used_time should appear within 3 s').toBeDefined();
    expect(lastUsed!).toBeGreaterThanOrEqual(before - 1000);
    expect(lastUsed!).toBeLessThanOrEqual(after + 1000);
    const alsoLastUsed = ms((await getKey(alsoUsed.key.id)).lastUsedTime);
    expect(alsoLastUsed).toBeDefined();
    expect(alsoLastUsed!).toBeGreaterThanOrEqual(before - 1000);
    // The others were not used successfully, so nothing was recorded for them.
    expect((await getKey(denied.key.id)).lastUsedTime).toBeUndefined();
    expect((await getKey(disabled.key.id)).lastUsedTime).toBeUndefined();

    // A later use moves it forward, never back.
    await sleep(50);
    await expectVerify(used.secret, VerifyCode.VALID);
    const deadline2 = Date.now() + 3000;
    let later = lastUsed;
    while (Date.now() < deadline2) {
      later = ms((await getKey(used.key.id)).lastUsedTime);
      if (later! > lastUsed!) break;
      await sleep(50);
    }
    expect(later!).toBeGreaterThan(lastUsed!);
  });
});

describe('KeyService under concurrency', () => {
  it('serializes concurrent changes of one key without errors', async () => {
    const ws = await newWorkspace({ scopes: ['orders', 'billing'] });
    const { key } = await newKey({ workspaceId: ws });
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
    const got = await getKey(key.id);
    expect(names).toContain(got.name);
    // The grants belong to one whole update, never a mix.
    expect(got.grants).toHaveLength(1);
    expect(got.grants[0]!.scope).toBe(Number(got.name.slice(-1)) % 2 ? 'orders' : 'billing');
  });

  it('leaves exactly one secret after concurrent rotations without grace', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws });
    const rotations = await Promise.all([1, 2, 3].map(() => keys.rotateKey({ id: key.id })));
    const codes = await Promise.all([secret, ...rotations.map((r) => r.secret)].map(async (s) => (await verify(s)).code));
    expect(codes.filter((c) => c === VerifyCode.VALID)).toHaveLength(1);
    expect(codes.filter((c) => c === VerifyCode.NOT_FOUND)).toHaveLength(3);
    const valid = rotations[codes.indexOf(VerifyCode.VALID) - 1]!;
    expect((await getKey(key.id)).maskedKey).toBe(valid.key!.maskedKey);
  });

  it('revokes once under concurrent revocations', async () => {
    const ws = await newWorkspace();
    const { key, secret } = await newKey({ workspaceId: ws });
    const results = await Promise.all([1, 2, 3, 4].map(() => keys.revokeKey({ id: key.id })));
    const times = new Set(results.map((r) => ms(r.key!.revokeTime)));
    expect(times.size).toBe(1);
    await expectVerify(secret, VerifyCode.REVOKED);
  });
});

describe('KeyService access control', () => {
  it('requires an SDK key with the right scope and workspace', async () => {
    const ws = await newWorkspace();
    const other = await newWorkspace();
    const mine = await newKey({ workspaceId: ws });
    const foreign = await newKey({ workspaceId: other });

    const anonymous = client(KeyService, ts, { token: null });
    await expectError(anonymous.verifyKey({ key: mine.secret }), Code.Unauthenticated);
    await expectError(anonymous.getKey({ id: mine.key.id }), Code.Unauthenticated);
    const wrongToken = client(KeyService, ts, { token: `kws_${randomUUID()}_${'a'.repeat(43)}` });
    await expectError(wrongToken.verifyKey({ key: mine.secret }), Code.Unauthenticated);
    // An API key is not an SDK key.
    const apiKeyAsToken = client(KeyService, ts, { token: mine.secret });
    await expectError(apiKeyAsToken.verifyKey({ key: mine.secret }), Code.Unauthenticated);

    const verifier = client(KeyService, ts, { token: await ts.sdkKey(['api_keys:verify']) });
    await expectVerify(mine.secret, VerifyCode.VALID);
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
    await expectVerify(foreign.secret, VerifyCode.VALID);
  });
});
