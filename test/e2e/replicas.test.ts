import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@connectrpc/connect';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import type { TestDatabase } from '../support/database.js';
import { startReplicas, type Replicas, type ServerProcess } from '../support/process.js';
import { transport } from '../support/server.js';
import { issueApiKey } from '../../src/credentials/api-key.js';

// Two server processes on one Postgres: a change made through one must be
// seen by the other, whose verify cache holds the old answer, within 1 s —
// also after its LISTEN connection was killed. Needs a real Postgres
// (embedded PGlite is single-process).
describe.skipIf(!process.env.DATABASE_URL)('replicas share revocations through LISTEN/NOTIFY', () => {
  let replicas: Replicas;
  let db: TestDatabase;
  let a: ServerProcess;
  let b: ServerProcess;
  let token: string;

  beforeAll(async () => {
    replicas = await startReplicas({ KEYWARD_VERIFY_CACHE_TTL_MS: '600000' });
    ({ db, a, b, token } = replicas);
  }, 90_000);

  afterAll(async () => {
    await replicas?.stop();
  });

  const clients = (url: string) => ({
    ws: createClient(WorkspaceService, transport(url, 'grpc', token)),
    scopes: createClient(ScopeService, transport(url, 'grpc', token)),
    keys: createClient(KeyService, transport(url, 'grpc', token)),
  });

  async function issueKey(wsName: string) {
    const c = clients(a.baseUrl);
    const { workspace } = await c.ws.createWorkspace({ workspace: { name: wsName } });
    await c.scopes.createScope({ scope: { workspaceId: workspace!.id, name: 'orders' } });
    const created = await c.keys.createKey({
      key: { workspaceId: workspace!.id, grants: [{ scope: 'orders', actions: [Action.READ] }] },
    });
    return { id: created.key!.id, secret: created.secret, workspaceId: workspace!.id };
  }

  /** Polls replica B until the key's code changes from VALID; returns how long that took. */
  async function waitUntilNotValid(secret: string, want: VerifyCode): Promise<number> {
    const kb = clients(b.baseUrl).keys;
    const start = Date.now();
    for (;;) {
      const r = await kb.verifyKey({ key: secret, requiredPermissions: ['orders:read'] });
      if (r.code !== VerifyCode.VALID) {
        expect(r.code).toBe(want);
        return Date.now() - start;
      }
      if (Date.now() - start > 5000) throw new Error('replica B still says VALID after 5 s');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Unknown keys a replica answered from its membership filter, without a query. */
  async function filteredOn(baseUrl: string): Promise<number> {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    return Number(/^keyward_verify_cache_total\{result="filtered"\} (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
  }

  async function primeCacheOnB(secret: string) {
    const kb = clients(b.baseUrl).keys;
    for (let i = 0; i < 3; i++) {
      expect((await kb.verifyKey({ key: secret, requiredPermissions: ['orders:read'] })).code).toBe(VerifyCode.VALID);
    }
  }

  it('a revoke through A is REVOKED on B within 1 s', async () => {
    const k = await issueKey('replicas-revoke');
    await primeCacheOnB(k.secret);
    // B answers from its cache: a change written behind Keyward's back is not seen...
    const admin = new pg.Client({ connectionString: db.databaseUrl });
    await admin.connect();
    await admin.query('update api_keys set enabled = false where id = $1', [k.id]);
    await admin.end();
    const kb = clients(b.baseUrl).keys;
    expect((await kb.verifyKey({ key: k.secret, requiredPermissions: ['orders:read'] })).code).toBe(VerifyCode.VALID);
    // ...but one made through A is announced and evicted.
    await clients(a.baseUrl).keys.revokeKey({ id: k.id });
    expect(await waitUntilNotValid(k.secret, VerifyCode.REVOKED)).toBeLessThan(1000);
  });

  it('disable, scope deletion and workspace deletion through A reach B', async () => {
    const ca = clients(a.baseUrl);
    const k1 = await issueKey('replicas-disable');
    await primeCacheOnB(k1.secret);
    await ca.keys.updateKey({ key: { id: k1.id, enabled: false }, updateMask: { paths: ['enabled'] } });
    expect(await waitUntilNotValid(k1.secret, VerifyCode.DISABLED)).toBeLessThan(1000);

    const k2 = await issueKey('replicas-scope');
    await primeCacheOnB(k2.secret);
    const { scopes } = await ca.scopes.listScopes({ workspaceId: k2.workspaceId });
    await ca.scopes.deleteScope({ id: scopes[0]!.id });
    expect(await waitUntilNotValid(k2.secret, VerifyCode.INSUFFICIENT_PERMISSIONS)).toBeLessThan(1000);

    const k3 = await issueKey('replicas-workspace');
    await primeCacheOnB(k3.secret);
    await ca.ws.deleteWorkspace({ id: k3.workspaceId });
    expect(await waitUntilNotValid(k3.secret, VerifyCode.REVOKED)).toBeLessThan(1000);
  });

  it('a key created through A verifies on B at once, though B answers unknown keys from its filter without a query', async () => {
    const c = clients(a.baseUrl);
    const { workspace } = await c.ws.createWorkspace({ workspace: { name: 'replicas-filter' } });
    const kb = clients(b.baseUrl).keys;
    // B's filter answers unknown keys (metrics: result="filtered"), and every fresh key of A is VALID on B right after CreateKey returns.
    const filteredBefore = await filteredOn(b.baseUrl);
    for (let i = 0; i < 20; i++) {
      const created = await c.keys.createKey({ key: { workspaceId: workspace!.id } });
      const [fresh, unknown] = await Promise.all([kb.verifyKey({ key: created.secret }), kb.verifyKey({ key: issueApiKey('kw').plaintext })]);
      expect(fresh.code).toBe(VerifyCode.VALID);
      expect(unknown.code).toBe(VerifyCode.NOT_FOUND);
      // A rotated key's new secret alike.
      const rotated = await c.keys.rotateKey({ id: created.key!.id });
      expect((await kb.verifyKey({ key: rotated.secret })).code).toBe(VerifyCode.VALID);
    }
    expect((await filteredOn(b.baseUrl)) - filteredBefore).toBeGreaterThanOrEqual(20);
  });

  it('after the listeners are killed with pg_terminate_backend, B still sees revocations', async () => {
    const k = await issueKey('replicas-killed');
    await primeCacheOnB(k.secret);
    const admin = new pg.Client({ connectionString: db.databaseUrl });
    await admin.connect();
    try {
      const killed = await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = 'keyward-listener' and datname = current_database()`,
      );
      expect(killed.rowCount).toBeGreaterThanOrEqual(2);
    } finally {
      await admin.end();
    }
    // Right away (listener possibly still reconnecting) and once it is back.
    await clients(a.baseUrl).keys.revokeKey({ id: k.id });
    expect(await waitUntilNotValid(k.secret, VerifyCode.REVOKED)).toBeLessThan(1000);

    await new Promise((r) => setTimeout(r, 500));
    const k2 = await issueKey('replicas-relistened');
    await primeCacheOnB(k2.secret);
    await clients(a.baseUrl).keys.revokeKey({ id: k2.id });
    expect(await waitUntilNotValid(k2.secret, VerifyCode.REVOKED)).toBeLessThan(1000);
    expect(b.stderr()).toContain('change listener lost its connection');
    // The filter was rebuilt when B listened again: keys A made meanwhile verify on B.
    expect(b.stderr()).toMatch(/key filter built[^\n]*"keys":[1-9]/);
    const k3 = await issueKey('replicas-after-rebuild');
    expect((await clients(b.baseUrl).keys.verifyKey({ key: k3.secret, requiredPermissions: ['orders:read'] })).code).toBe(VerifyCode.VALID);
  });
});
