// Database faults, as the server sees them: a TCP proxy between the server and
// Postgres is cut (connections reset and refused) or blackholed (accepted,
// never answered), and restored; backends are killed with
// pg_terminate_backend. The shared Postgres itself is never touched.
//
// Needs DATABASE_URL: the embedded PGlite shares one session across
// connections, so a proxy in front of it cannot stand for a real outage.
import { Code, ConnectError } from '@connectrpc/connect';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { newKey, sleep } from '../support/fixtures.js';
import { client, startTestServer, type TestServer } from '../support/server.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const DATABASE_URL = process.env.DATABASE_URL;
/** Also the database statement and query timeout. */
const MAX_REQUEST_TIMEOUT_MS = 3000;

let ts: TestServer;
let proxy: TcpProxy;
let direct: pg.Client;
let W: ReturnType<typeof client<typeof WorkspaceService>>;
let K: ReturnType<typeof client<typeof KeyService>>;
let ws: string;

/** The code a call ended with ('OK' on success) and how long it took. */
async function timed(p: Promise<unknown>): Promise<{ code: string; ms: number }> {
  const t0 = Date.now();
  try {
    await p;
    return { code: 'OK', ms: Date.now() - t0 };
  } catch (e) {
    return { code: Code[ConnectError.from(e).code]!, ms: Date.now() - t0 };
  }
}

const faultKey = () => newKey(K, { workspaceId: ws, name: 'fault' });

/** Waits until the server answers a management call again, by itself; returns how long that took. */
async function recovery(limitMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < limitMs) {
    if ((await timed(W.getWorkspace({ id: ws }))).code === 'OK') return Date.now() - t0;
    await sleep(100);
  }
  throw new Error(`the server did not recover within ${limitMs} ms`);
}

describe.skipIf(!DATABASE_URL)('database faults', () => {
  beforeAll(async () => {
    const target = new URL(DATABASE_URL!);
    proxy = await new TcpProxy(target.hostname, Number(target.port || 5432)).start();
    ts = await startTestServer({ KEYWARD_MAX_REQUEST_TIMEOUT_MS: String(MAX_REQUEST_TIMEOUT_MS) }, { mapDatabaseUrl: (u) => proxy.url(u) });
    direct = new pg.Client({ connectionString: ts.databaseUrl });
    await direct.connect();
    W = client(WorkspaceService, ts, { protocol: 'grpc' });
    K = client(KeyService, ts, { protocol: 'grpc' });
    ws = (await W.createWorkspace({ workspace: { name: 'faults' } })).workspace!.id;
  });

  afterAll(async () => {
    proxy?.set('pass');
    await direct?.end();
    await ts?.close();
    await proxy?.close();
  });

  it('Postgres gone: management calls answer UNAVAILABLE at once, a cached key is not VALID, and the server recovers by itself', async () => {
    const key = await faultKey();
    expect((await K.verifyKey({ key: key.secret })).code).toBe(VerifyCode.VALID); // now cached

    proxy.set('refuse');
    await sleep(100);
    for (const call of [W.getWorkspace({ id: ws }), W.listWorkspaces({}), K.createKey({ key: { workspaceId: ws, name: 'x' } }), K.revokeKey({ id: key.id })]) {
      const r = await timed(call);
      expect(r.code).toBe('Unavailable');
      expect(r.ms).toBeLessThan(1000);
    }
    // The change listener is down, so the cache is off: the key cannot be checked, and verification fails closed.
    for (let i = 0; i < 5; i++) {
      const r = await timed(K.verifyKey({ key: key.secret }));
      expect(r.code).toBe('Unavailable');
      expect(r.ms).toBeLessThan(1000);
    }

    // Meanwhile another replica revokes the key.
    await direct.query('update api_keys set revoke_time = now() where id = $1', [key.id]);

    proxy.set('pass');
    const took = await recovery(15_000);
    console.log(`recovered ${took} ms after Postgres came back`);
    // The revocation made while this replica could not hear it is seen: nothing stale was kept.
    const v = await K.verifyKey({ key: key.secret });
    expect(v.code).toBe(VerifyCode.REVOKED);
    expect((await faultKey()).secret).toMatch(/^kw_/);
  });

  it('Postgres blackholed: no call hangs past its deadline or the statement timeout, and the server recovers', async () => {
    const key = await faultKey();
    proxy.set('blackhole');
    // With a client deadline: answered by then.
    const withDeadline = await timed(W.getWorkspace({ id: ws }, { timeoutMs: 1500 }));
    expect(['DeadlineExceeded', 'Unavailable']).toContain(withDeadline.code);
    expect(withDeadline.ms).toBeLessThan(2500);
    const verify = await timed(K.verifyKey({ key: key.secret }, { timeoutMs: 1500 }));
    expect(['DeadlineExceeded', 'Unavailable']).toContain(verify.code);
    expect(verify.ms).toBeLessThan(2500);
    // Without one: UNAVAILABLE once the connect or query timeout passes.
    const [a, b] = await Promise.all([timed(W.getWorkspace({ id: ws })), timed(K.createKey({ key: { workspaceId: ws, name: 'y' } }))]);
    console.log('blackholed without a deadline:', JSON.stringify([a, b]));
    for (const r of [a, b]) {
      expect(r.code).toBe('Unavailable');
      expect(r.ms).toBeLessThan(MAX_REQUEST_TIMEOUT_MS + 6000);
    }
    proxy.set('pass');
    await recovery(15_000);
    expect((await K.verifyKey({ key: key.secret })).code).toBe(VerifyCode.VALID);
  });

  it('every backend of the server killed (pool and change listener): it recovers and still hears revocations', async () => {
    const key = await faultKey();
    expect((await K.verifyKey({ key: key.secret })).code).toBe(VerifyCode.VALID);
    const { rowCount } = await direct.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
    );
    expect(rowCount).toBeGreaterThan(0);
    await recovery(10_000);
    // The listener is back (and the cache on again) within its backoff; a revocation by another replica is heard.
    await sleep(1500);
    expect((await K.verifyKey({ key: key.secret })).code).toBe(VerifyCode.VALID);
    await direct.query('begin');
    await direct.query('update api_keys set revoke_time = now() where id = $1', [key.id]);
    await direct.query(`select pg_notify('keyward_changes', $1)`, [JSON.stringify({ keys: [key.id] })]);
    await direct.query('commit');
    const t0 = Date.now();
    let code = VerifyCode.VALID;
    while (Date.now() - t0 < 3000 && code === VerifyCode.VALID) {
      code = (await K.verifyKey({ key: key.secret })).code;
      if (code === VerifyCode.VALID) await sleep(20);
    }
    expect(code).toBe(VerifyCode.REVOKED);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
