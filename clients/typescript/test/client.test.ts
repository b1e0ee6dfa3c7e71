// The management client against a real server: plain inputs, paging, errors, retries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../../test/support/server.js';
import { TcpProxy } from '../../../test/support/tcp-proxy.js';
import { Keyward, KeywardError, grantStrings } from '../src/index.js';

let ts: TestServer;
let kw: Keyward;

beforeAll(async () => {
  ts = await startTestServer();
  kw = new Keyward({ baseUrl: ts.baseUrl, sdkKey: ts.adminToken });
});

afterAll(async () => {
  await ts?.close();
});

async function caught(p: Promise<unknown>): Promise<KeywardError> {
  const e = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(KeywardError);
  return e as KeywardError;
}

describe('management', () => {
  it('round trip with plain inputs: workspace, scopes, keys, verify, update, rotate, revoke, delete, usage, audit, webhooks, SDK keys, portal', async () => {
    const ws = await kw.workspaces.create({ name: 'sdk round trip', keyPrefix: 'acme' });
    expect((await kw.workspaces.get(ws.id)).name).toBe('sdk round trip');
    expect((await kw.workspaces.update(ws.id, { name: 'renamed' })).name).toBe('renamed');
    const seenWs: string[] = [];
    for await (const w of kw.workspaces.listAll({ pageSize: 1 })) seenWs.push(w.id);
    expect(seenWs).toContain(ws.id);

    await kw.scopes.create({ workspaceId: ws.id, name: 'balance_transfers', description: 'money' });
    const invoices = await kw.scopes.create({ workspaceId: ws.id, name: 'invoices' });
    expect((await kw.scopes.update(invoices.id, { description: 'bills' })).description).toBe('bills');
    expect((await kw.scopes.list({ workspaceId: ws.id })).items.map((s) => s.name).sort()).toEqual(['balance_transfers', 'invoices']);

    // Scopes with their own actions, and whole-scope grants, in either form.
    const inference = await kw.scopes.create({ workspaceId: ws.id, name: 'inference', actions: ['read', 'write'] });
    await kw.scopes.create({ workspaceId: ws.id, name: 'admin' });
    expect((await kw.scopes.update(inference.id, { actions: ['read', 'write', 'stream'] })).actions).toEqual(['read', 'write', 'stream']);
    const seedKey = await kw.keys.create({ workspaceId: ws.id, grants: ['inference:write', 'admin', { scope: 'inference', actions: ['read', 'stream'] }] });
    expect(grantStrings(seedKey.key.grants)).toEqual(['admin', 'inference:read', 'inference:stream', 'inference:write']);
    expect(seedKey.key.scopes).toEqual(grantStrings(seedKey.key.grants));
    expect((await kw.keys.verify(seedKey.secret, { permissions: ['inference:stream', 'admin:delete'] })).code).toBe('valid');
    await kw.keys.delete(seedKey.key.id);

    const before = Date.now();
    const { key, secret } = await kw.keys.create({
      workspaceId: ws.id,
      customerId: 'cus_42',
      name: 'production',
      grants: ['balance_transfers:read', 'balance_transfers:create', { scope: 'invoices', actions: ['read'] }],
      metadata: { plan: 'pro' },
      expiresInDays: 90,
    });
    expect(secret).toMatch(/^acme_/);
    expect(grantStrings(key.grants)).toEqual(['balance_transfers:create', 'balance_transfers:read', 'invoices:read']);

    const ok = await kw.keys.verify(secret, { permissions: ['balance_transfers:read'] });
    expect(ok).toMatchObject({
      valid: true,
      code: 'valid',
      keyId: key.id,
      workspaceId: ws.id,
      customerId: 'cus_42',
      metadata: { plan: 'pro' },
      state: 'active',
    });
    expect(ok.expireTime!.getTime()).toBeGreaterThanOrEqual(before + 90 * 86_400_000 - 1000);
    expect((await kw.keys.verify(secret, { permissions: ['invoices:delete'] })).code).toBe('insufficient_permissions');
    expect((await kw.keys.verify('acme_nonsense')).code).toBe('not_found');

    // Paging: three more keys, two per page, all of them through the iterator.
    for (let i = 0; i < 3; i++) await kw.keys.create({ workspaceId: ws.id, customerId: 'cus_43', name: `k${i}` });
    const page = await kw.keys.list({ workspaceId: ws.id, customerId: 'cus_43', pageSize: 2 });
    expect(page.items).toHaveLength(2);
    expect(page.nextPageToken).not.toBe('');
    const names: string[] = [];
    for await (const k of kw.keys.listAll({ workspaceId: ws.id, customerId: 'cus_43', pageSize: 2 })) names.push(k.name);
    expect(names.sort()).toEqual(['k0', 'k1', 'k2']);

    const updated = await kw.keys.update(key.id, {
      name: 'prod',
      grants: ['invoices:read'],
      rateLimits: [{ name: 'per_minute', limit: 100, durationMs: 60_000 }],
      remainingUses: 1000,
    });
    expect(updated.name).toBe('prod');
    expect(grantStrings(updated.grants)).toEqual(['invoices:read']);
    expect(updated.remainingUses).toBe(1000n);
    const limited = await kw.keys.verify(secret, { permissions: ['invoices:read'], cost: 5 });
    expect(limited).toMatchObject({ valid: true, remainingUses: 995, rateLimits: [{ name: 'per_minute', limit: 100, remaining: 95, exceeded: false }] });
    expect((await kw.keys.update(key.id, { expireTime: null, remainingUses: null })).expireTime).toBeUndefined();

    const rotated = await kw.keys.rotate(key.id, { gracePeriodMs: 60_000 });
    expect(rotated.secret).not.toBe(secret);
    expect((await kw.keys.verify(rotated.secret)).valid).toBe(true);
    expect((await kw.keys.verify(secret)).valid).toBe(true); // in its grace period
    expect((await kw.keys.revoke(key.id)).revokeTime).toBeDefined();
    expect((await kw.keys.verify(rotated.secret)).code).toBe('revoked');
    expect((await kw.keys.list({ workspaceId: ws.id, state: 'revoked' })).items.map((k) => k.id)).toEqual([key.id]);

    // Verifications are counted in the background: here only the calls' shape.
    expect((await kw.usage.key(key.id, { startTime: new Date(Date.now() - 3_600_000) })).totals).toBeInstanceOf(Array);
    expect((await kw.usage.workspace(ws.id, { startTime: new Date(Date.now() - 3_600_000) })).totals).toBeInstanceOf(Array);
    const actions: string[] = [];
    for await (const e of kw.audit.listAll({ workspaceId: ws.id, resourceId: key.id, pageSize: 2 })) actions.push(e.action);
    expect(actions).toEqual(expect.arrayContaining(['key.create', 'key.update', 'key.rotate', 'key.revoke']));

    const hook = await kw.webhooks.set({ workspaceId: ws.id, url: 'https://hooks.example.com/keyward', expiringNoticeDays: 7 });
    expect(hook.signingSecret).not.toBe('');
    expect((await kw.webhooks.get(ws.id)).url).toBe('https://hooks.example.com/keyward');
    await kw.webhooks.delete(ws.id);

    expect((await kw.sdkKeys.current()).scopes).toEqual(['*']);
    const made = await kw.sdkKeys.create({ name: 'reader', scopes: ['api_keys:read'], workspaceIds: [ws.id] });
    const reader = new Keyward({ baseUrl: ts.baseUrl, sdkKey: made.token });
    expect((await reader.keys.list({ workspaceId: ws.id })).items.length).toBeGreaterThan(0);
    expect((await caught(reader.keys.create({ workspaceId: ws.id, name: 'no' }))).code).toBe('permission_denied');
    expect((await kw.sdkKeys.revoke(made.sdkKey.id)).revokeTime).toBeDefined();
    expect((await caught(reader.keys.list({ workspaceId: ws.id }))).code).toBe('unauthenticated');

    const session = await kw.portal.createSession({ workspaceId: ws.id, customerId: 'cus_42', allowedGrants: ['invoices:read'], ttlSeconds: 600 });
    expect(session.token).toMatch(/^kwp_/);
    expect(session.expireTime.getTime()).toBeGreaterThan(Date.now());

    await kw.keys.delete(key.id);
    expect((await caught(kw.keys.get(key.id))).code).toBe('not_found');
    await kw.workspaces.delete(ws.id);
  });

  it('errors are KeywardError with the code, the field and the request id', async () => {
    const ws = await kw.workspaces.create({ name: 'sdk errors' });
    const e = await caught(kw.keys.create({ workspaceId: ws.id, name: 'x'.repeat(121) }));
    expect(e.code).toBe('invalid_argument');
    expect(e.field).toBe('key.name');
    expect(e.message).toMatch(/^key\.name: /);
    expect(e.requestId).toMatch(/\S/);
    const grant = await caught(kw.keys.create({ workspaceId: ws.id, grants: ['nope:read'] }));
    expect(grant.code).toBe('invalid_argument');
    expect(grant.field).toMatch(/^key\.grants/);
    const missing = await caught(kw.workspaces.get('00000000-0000-0000-0000-000000000000'));
    expect(missing.code).toBe('not_found');
    expect(missing.field).toBeUndefined();
    await kw.scopes.create({ workspaceId: ws.id, name: 'dup' });
    expect((await caught(kw.scopes.create({ workspaceId: ws.id, name: 'dup' }))).code).toBe('already_exists');
    expect((await caught(new Keyward({ baseUrl: ts.baseUrl }).workspaces.list())).code).toBe('unauthenticated');
  });
});

describe('retries', () => {
  let proxy: TcpProxy;
  let attempts = 0;
  let flaky: Keyward;

  beforeAll(async () => {
    proxy = await new TcpProxy('127.0.0.1', ts.server.port).start();
    flaky = new Keyward({
      baseUrl: `http://127.0.0.1:${proxy.port}`,
      sdkKey: ts.adminToken,
      httpVersion: '1.1',
      retries: 4,
      // Counts each attempt (interceptors run inside the retries); the proxy lets the third through.
      interceptors: [
        (next) => (req) => {
          attempts++;
          if (attempts === 3) proxy.set('pass');
          return next(req);
        },
      ],
    });
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it('a read is retried while the connection is refused, and then succeeds', async () => {
    const ws = await kw.workspaces.create({ name: 'retry target' });
    attempts = 0;
    proxy.set('refuse');
    expect((await flaky.workspaces.get(ws.id)).id).toBe(ws.id);
    expect(attempts).toBe(3);
    // The verify of a key is retried too.
    attempts = 0;
    proxy.set('refuse');
    expect((await flaky.keys.verify('kw_nonsense')).code).toBe('not_found');
    expect(attempts).toBe(3);
  });

  it('a create is never retried: it fails with unavailable after one attempt', async () => {
    const ws = await kw.workspaces.create({ name: 'no retry' });
    attempts = 0;
    proxy.set('refuse');
    const e = await caught(flaky.keys.create({ workspaceId: ws.id, name: 'once' }));
    expect(e.code).toBe('unavailable');
    expect(attempts).toBe(1);
    const rotate = await caught(flaky.keys.rotate('00000000-0000-0000-0000-000000000000'));
    expect(rotate.code).toBe('unavailable');
    expect(attempts).toBe(2);
    proxy.set('pass');
    expect((await kw.keys.list({ workspaceId: ws.id })).items).toHaveLength(0);
  });

  it('a closed port, over HTTP/2: unavailable once the retries are spent', async () => {
    const closed = new TcpProxy('127.0.0.1', ts.server.port);
    await closed.start();
    const port = closed.port;
    await closed.close();
    const started = Date.now();
    const e = await caught(new Keyward({ baseUrl: `http://127.0.0.1:${port}`, sdkKey: ts.adminToken, retries: 2 }).workspaces.list());
    expect(e.code).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
