// Tokens from ExchangeKey end with their key in Keyward's own verifier
// (forward auth): revoking, deleting or disabling a key refuses the tokens it
// was exchanged for before they expire, on every replica (the change feed
// carries the key's id, each replica reads its state into a denylist bounded
// by the token TTL, and reloads it when it starts and when its change
// listener listens again). Tokens of other keys, and of a rotated key, pass.
import pg from 'pg';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { httpRequest, newKey, sleep } from '../support/fixtures.js';
import { recordSecret } from '../support/hygiene.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

// Long enough that no token expires during a test, and that the verifier's
// remembered key states (KEYWARD_VERIFY_CACHE_TTL_MS) never expire by themselves.
const ENV = { KEYWARD_TOKEN_TTL_SECONDS: '600', KEYWARD_VERIFY_CACHE_TTL_MS: '600000' };

interface Fixture {
  ws: string;
  gatewayKey: string;
}

async function fixture(ts: TestServer): Promise<Fixture> {
  const ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'token-revocation' } })).workspace!.id;
  await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'orders' } });
  return { ws, gatewayKey: await ts.sdkKey(['api_keys:verify']) };
}

const key = (ts: TestServer, f: Fixture) => newKey(ts, { workspaceId: f.ws, customerId: 'cus_1', grants: [{ scope: 'orders', actions: [Action.READ] }] });

/** ExchangeKey on `ts`: the key's token. */
async function mint(ts: TestServer, f: Fixture, secret: string): Promise<string> {
  const r = await client(TokenService, ts, { token: f.gatewayKey }).exchangeKey({ key: secret });
  expect(r.code, 'ExchangeKey').toBe(VerifyCode.VALID);
  recordSecret(r.token);
  return r.token;
}

/** Forward auth on `ts` with the token, as a gateway sends it: `200 valid` or `401 revoked`. */
async function authorize(ts: TestServer, f: Fixture, jwt: string): Promise<string> {
  const r = await httpRequest(`${ts.baseUrl}/v1/authorize`, {
    headers: { authorization: `Bearer ${jwt}`, 'x-keyward-sdk-key': f.gatewayKey, 'x-keyward-permissions': 'orders:read' },
  });
  return `${r.status} ${r.headers['x-keyward-code']}`;
}

/** Asks until the answer is `want` (a replica hears a change a little later); fails after 10 s. */
async function until(ask: () => Promise<string>, want: string): Promise<string> {
  const start = Date.now();
  for (;;) {
    const got = await ask();
    if (got === want || Date.now() - start > 10_000) return got;
    await sleep(20);
  }
}

/** Forward auth with the token, then whether the denylist refused it (its count passed `before`). */
async function deniedFromList(ts: TestServer, f: Fixture, jwt: string, before: number): Promise<string> {
  const answer = await authorize(ts, f, jwt);
  return ts.internals.tokenChecker.stats.denied > before ? 'denied' : answer;
}

describe('tokens of a revoked, deleted or disabled key (one server, then restarted)', () => {
  let db: TestDatabase;
  let ts: TestServer | undefined;

  beforeAll(async () => {
    db = await createTestDatabase({ persistent: true });
  });

  afterAll(async () => {
    await ts?.close();
    await db?.drop();
  });

  it('are refused before they expire, from the denylist and after a restart; other keys and a rotated key keep theirs', async () => {
    ts = await startTestServer(ENV, { db });
    const f = await fixture(ts);
    const K = client(KeyService, ts);
    const [revoked, deleted, disabled, rotated, other] = await Promise.all([key(ts, f), key(ts, f), key(ts, f), key(ts, f), key(ts, f)]);
    const tokens = {
      revoked: await mint(ts, f, revoked.secret),
      deleted: await mint(ts, f, deleted.secret),
      disabled: await mint(ts, f, disabled.secret),
      rotated: await mint(ts, f, rotated.secret),
      other: await mint(ts, f, other.secret),
    };
    for (const t of Object.values(tokens)) expect(await authorize(ts, f, t)).toBe('200 valid');

    await K.revokeKey({ id: revoked.id });
    await K.deleteKey({ id: deleted.id });
    await K.updateKey({ key: { id: disabled.id, enabled: false }, updateMask: { paths: ['enabled'] } });
    await K.rotateKey({ id: rotated.id, gracePeriod: durationFromMs(0) });

    // At once on the server that made the change ...
    expect(await authorize(ts, f, tokens.revoked)).toBe('401 revoked');
    expect(await authorize(ts, f, tokens.deleted)).toBe('401 not_found');
    expect(await authorize(ts, f, tokens.disabled)).toBe('401 disabled');
    // ... while a rotated key's token (same key id, a new secret) and another key's pass.
    expect(await authorize(ts, f, tokens.rotated)).toBe('200 valid');
    expect(await authorize(ts, f, tokens.other)).toBe('200 valid');

    // The denylist answers without reading the key's state (it is filled from the change just after its commit).
    const stats = ts.internals.tokenChecker.stats;
    const lookups = stats.stateLookups;
    const denied = stats.denied;
    expect(await until(() => deniedFromList(ts!, f, tokens.revoked, denied), 'denied')).toBe('denied');
    expect(await authorize(ts, f, tokens.deleted)).toBe('401 not_found');
    expect(stats.stateLookups).toBe(lookups);

    // A disabled key is a pause: enabled again, its unexpired tokens pass again.
    await K.updateKey({ key: { id: disabled.id, enabled: true }, updateMask: { paths: ['enabled'] } });
    expect(await until(() => authorize(ts!, f, tokens.disabled), '200 valid')).toBe('200 valid');

    // A new process on the same database loads what ended tokens within their lifetime, before any request.
    await ts.close();
    ts = await startTestServer(ENV, { db });
    const fresh = ts.internals.tokenChecker.stats;
    expect(await authorize(ts, f, tokens.revoked)).toBe('401 revoked');
    expect(await authorize(ts, f, tokens.deleted)).toBe('401 not_found');
    expect(ts.logs.filter((l) => l.includes('token denylist'))).toEqual([]);
    expect(fresh.denied).toBe(2);
    expect(fresh.stateLookups).toBe(0);
    expect(await authorize(ts, f, tokens.other)).toBe('200 valid');
    expect(await authorize(ts, f, tokens.disabled)).toBe('200 valid');
  }, 60_000);
});

// Two replicas in this process on one Postgres, each with its own change
// listener (embedded PGlite is single-process).
describe.skipIf(!process.env.DATABASE_URL)('tokens across replicas', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let f: Fixture;

  beforeAll(async () => {
    db = await createTestDatabase();
    a = await startTestServer(ENV, { db });
    b = await startTestServer(ENV, { db });
    f = await fixture(a);
  }, 60_000);

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await db?.drop();
  });

  it('a key revoked on replica A: its token is refused by replica B, from B’s denylist; another key’s token passes', async () => {
    const [k, other] = [await key(a, f), await key(a, f)];
    const token = await mint(a, f, k.secret);
    const otherToken = await mint(a, f, other.secret);
    expect(await authorize(b, f, token)).toBe('200 valid');
    expect(await authorize(b, f, otherToken)).toBe('200 valid');

    await client(KeyService, a).revokeKey({ id: k.id });
    expect(await until(() => authorize(b, f, token), '401 revoked')).toBe('401 revoked');
    expect(await authorize(b, f, otherToken)).toBe('200 valid');
    const denied = b.internals.tokenChecker.stats.denied;
    expect(await until(() => deniedFromList(b, f, token, denied), 'denied')).toBe('denied');
  });

  it('a revocation B did not hear (written behind Keyward’s back) is found when B’s listener reconnects', async () => {
    const k = await key(a, f);
    const token = await mint(a, f, k.secret);
    // B remembers the key's state as active.
    expect(await authorize(b, f, token)).toBe('200 valid');
    const admin = new pg.Client({ connectionString: db.databaseUrl });
    await admin.connect();
    try {
      // No change is announced: B keeps its answer ...
      await admin.query('update api_keys set revoke_time = now(), update_time = now() where id = $1', [k.id]);
      expect(await authorize(b, f, token)).toBe('200 valid');
      // ... until its listener loses the connection and listens again.
      const killed = await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = 'keyward-listener' and datname = current_database()`,
      );
      expect(killed.rowCount).toBeGreaterThanOrEqual(2);
    } finally {
      await admin.end();
    }
    expect(await until(() => authorize(b, f, token), '401 revoked')).toBe('401 revoked');
    expect(b.logs.join('\n')).toContain('change listener lost its connection');
  });
});
