// Crash rounds: a write load (create, rotate, revoke) from several clients on
// a `keyward serve` process, `kill -9` of that process at a random moment, a
// restart on the same database, and an audit of what the restarted server and
// the database hold against every write the clients saw acknowledged. Used by
// test/e2e/crash-safety.test.ts (a few dozen rounds) and `npm run soak -- --crash`
// (as many as asked for).
//
// Each key belongs to one client, so at most one write per key is in flight
// when the process dies; that write's outcome is unknown, and the audit
// accepts either outcome but nothing in between.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, type Client, ConnectError, Code } from '@connectrpc/connect';
import pg from 'pg';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { adminTokenOf, spawnServer, type ServerProcess } from './process.js';
import { type ProtocolName, transport } from './server.js';

export interface CrashRoundsOptions {
  /** External Postgres database (fresh); undefined runs on the embedded database in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  rounds: number;
  /** Concurrent clients (default 4), alternating gRPC and Connect. */
  clients?: number;
  /** The kill comes at a random moment up to this many milliseconds (default 1000) after the round's first few writes were acknowledged. */
  killWithinMs?: number;
  /** Seeds the random choices (default: random); printed so that a run can be replayed. */
  seed?: number;
  log?: (line: string) => void;
}

export interface CrashRoundsReport {
  seed: number;
  rounds: number;
  /** Writes acknowledged to the clients, by kind. */
  acknowledged: { create: number; rotate: number; revoke: number };
  /** Writes in flight at a kill (outcome unknown), and how many of them turned out applied. */
  inFlight: number;
  inFlightApplied: number;
  /** Milliseconds from spawning a server on the crashed database until it listened, per round. */
  restartMs: number[];
  /** Everything that broke a promise; empty when all held. */
  violations: string[];
}

interface KnownSecret {
  secret: string;
  /** False once a rotation without grace period deleted it. */
  live: boolean;
}

type Pending = { op: 'rotate'; graceS: number } | { op: 'revoke' };

interface KeyModel {
  id: string;
  name: string;
  secrets: KnownSecret[];
  revoked: boolean;
  /** Acknowledged rotations. */
  rotations: number;
  /** The write in flight when the server died, if any. */
  pending?: Pending;
}

const SCOPES = ['alpha', 'beta'];
const GRANTS = [
  { scope: 'alpha', actions: [Action.READ] },
  { scope: 'beta', actions: [Action.READ, Action.UPDATE] },
];
const NAME_PREFIX = 'crash-';

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Kills the server with SIGKILL (no shutdown of any kind) and waits until it is gone. */
async function killHard(server: ServerProcess): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const gone = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGKILL');
  await gone;
}

/** A direct connection to the database the server uses (the embedded one is reached at the address the server published). */
async function connectSql(opts: CrashRoundsOptions): Promise<pg.Client> {
  const url = opts.databaseUrl ?? (JSON.parse(readFileSync(join(opts.dataDir, 'server.json'), 'utf8')) as { url: string }).url;
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {}); // the server may die under it
  await c.connect();
  return c;
}

/** What the database holds of each key whose name starts with `namePrefix`, with the count of its grants, secrets and audit records by action. */
export interface KeyAuditRow {
  id: string;
  name: string;
  revoked: boolean;
  remainingUses: string | null;
  grants: number;
  secrets: number;
  creates: number;
  rotates: number;
  revokes: number;
}

/** Reads every key named `namePrefix...` with its grants, secrets and audit records (key.create, key.rotate, key.revoke), straight from the database. */
export async function keyAuditRows(sql: pg.Client, namePrefix: string): Promise<KeyAuditRow[]> {
  const { rows } = await sql.query<KeyAuditRow>(
    `select k.id, k.name, k.revoke_time is not null as revoked, k.remaining_uses::text as "remainingUses",
            (select count(*)::int from api_key_grants g where g.api_key_id = k.id) as grants,
            (select count(*)::int from api_key_secrets s where s.api_key_id = k.id) as secrets,
            (select count(*)::int from audit_events a where a.resource_id = k.id::text and a.action = 'key.create') as creates,
            (select count(*)::int from audit_events a where a.resource_id = k.id::text and a.action = 'key.rotate') as rotates,
            (select count(*)::int from audit_events a where a.resource_id = k.id::text and a.action = 'key.revoke') as revokes
       from api_keys k where k.name like $1`,
    [`${namePrefix}%`],
  );
  return rows;
}

export async function runCrashRounds(opts: CrashRoundsOptions): Promise<CrashRoundsReport> {
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = random(seed);
  const log = opts.log ?? (() => {});
  const killWithinMs = opts.killWithinMs ?? 1000;
  const clientCount = opts.clients ?? 4;
  const env = { DATABASE_URL: opts.databaseUrl ?? '', KEYWARD_DATA_DIR: opts.dataDir };
  const report: CrashRoundsReport = {
    seed,
    rounds: 0,
    acknowledged: { create: 0, rotate: 0, revoke: 0 },
    inFlight: 0,
    inFlightApplied: 0,
    restartMs: [],
    violations: [],
  };
  const keys = new Map<string, KeyModel>();
  /** Names of creates that were in flight at a kill: such a key may exist, but only whole. */
  const unacknowledgedNames = new Set<string>();
  /** Keys whose create was cut off by a kill but had committed (their secret never reached the client). */
  const unacknowledgedKeys = new Set<string>();
  let nameCounter = 0;
  log(`crash rounds: seed ${seed}, ${opts.rounds} rounds, ${clientCount} clients, ${opts.databaseUrl ? 'PostgreSQL' : 'embedded PGlite'}`);

  let server: ServerProcess | undefined = await spawnServer({ ...env, KEYWARD_BOOTSTRAP_ADMIN: 'true' }, { startTimeoutMs: 90_000 });
  const token = adminTokenOf(server);
  try {
    const setup = transport(server.baseUrl, 'grpc', token);
    const ws = (await createClient(WorkspaceService, setup).createWorkspace({ workspace: { name: 'crash rounds' } })).workspace!.id;
    for (const name of SCOPES) await createClient(ScopeService, setup).createScope({ scope: { workspaceId: ws, name } });

    for (let round = 1; round <= opts.rounds; round++) {
      const touched = new Set<string>();
      const killAt = rand() * killWithinMs;
      let killed = false;
      // The kill waits for a few acknowledged writes, however slow the machine is, so that every round has writes to lose.
      let acks = 0;
      let underWay: () => void = () => {};
      const loadUnderWay = new Promise<void>((r) => (underWay = r));
      const acked = () => {
        if (++acks === clientCount) underWay();
      };
      const clients = Array.from({ length: clientCount }, (_, i) => {
        const protocol: ProtocolName = i % 2 === 0 ? 'grpc' : 'connect-binary';
        return createClient(KeyService, transport(server!.baseUrl, protocol, token));
      });
      const worker = async (w: number, K: Client<typeof KeyService>) => {
        const mine = () => [...keys.values()].filter((k) => k.name.startsWith(`${NAME_PREFIX}w${w}-`) && !k.revoked && !k.pending);
        while (!killed) {
          const own = mine();
          const roll = rand();
          let what = '';
          try {
            if (own.length === 0 || roll < 0.4) {
              const name = `${NAME_PREFIX}w${w}-${++nameCounter}`;
              what = `create ${name}`;
              unacknowledgedNames.add(name);
              const r = await K.createKey({ key: { workspaceId: ws, name, grants: GRANTS } });
              unacknowledgedNames.delete(name);
              keys.set(r.key!.id, { id: r.key!.id, name, secrets: [{ secret: r.secret, live: true }], revoked: false, rotations: 0 });
              touched.add(r.key!.id);
              report.acknowledged.create++;
              acked();
            } else {
              const k = own[Math.floor(rand() * own.length)]!;
              touched.add(k.id);
              if (roll < 0.8) {
                const graceS = rand() < 0.5 ? 0 : 3600;
                what = `rotate ${k.id} (grace ${graceS} s)`;
                k.pending = { op: 'rotate', graceS };
                const r = await K.rotateKey({ id: k.id, gracePeriod: { seconds: BigInt(graceS), nanos: 0 } });
                applyRotation(k, graceS);
                k.secrets.push({ secret: r.secret, live: true });
                report.acknowledged.rotate++;
                acked();
              } else {
                what = `revoke ${k.id}`;
                k.pending = { op: 'revoke' };
                await K.revokeKey({ id: k.id });
                k.revoked = true;
                report.acknowledged.revoke++;
                acked();
              }
              k.pending = undefined;
            }
          } catch (e) {
            if (!killed) {
              const err = ConnectError.from(e);
              report.violations.push(`round ${round}: ${what} failed before the kill: ${Code[err.code]} ${err.rawMessage}`);
            }
            return; // this write's outcome is unknown now; the client stops
          }
        }
      };
      // One call per client first (a fresh process checks the SDK key once, slowly: bcrypt), so that the kill falls into the writes.
      await Promise.all(clients.map((K) => K.listKeys({ workspaceId: ws, pageSize: 1 })));
      const load = Promise.all(clients.map((K, w) => worker(w, K)));
      await Promise.race([loadUnderWay, load]);
      await new Promise((r) => setTimeout(r, killAt));
      killed = true; // from here on a failed call is one the kill cut off
      await killHard(server);
      server = undefined;
      await load;

      const t0 = Date.now();
      try {
        server = await spawnServer(env, { startTimeoutMs: 90_000 });
      } catch (e) {
        report.violations.push(`round ${round}: the server did not start on the crashed database: ${(e as Error).message.slice(-2000)}`);
        break;
      }
      report.restartMs.push(Date.now() - t0);
      report.rounds = round;
      for (const k of keys.values()) if (k.pending) touched.add(k.id);
      const before = report.violations.length;
      const last = round === opts.rounds;
      // After the last round every key is audited again: a later crash must not have undone an earlier write.
      await audit(server, last ? new Set(keys.keys()) : touched, `round ${round}`);
      log(
        `round ${round}: killed ${Math.round(killAt)} ms into the load; restarted in ${report.restartMs.at(-1)} ms; ${keys.size} keys, ${report.inFlight} in flight so far, ${report.violations.length} violations`,
      );
      for (const line of report.violations.slice(before)) log(`  ${line}`);
    }
    await server?.stop();
    server = undefined;
  } finally {
    if (server) await killHard(server);
  }
  return report;

  function applyRotation(k: KeyModel, graceS: number): void {
    k.rotations++;
    if (graceS === 0) for (const s of k.secrets) s.live = false;
  }

  /** Checks the restarted server and its database against the model; settles writes that were in flight. */
  async function audit(srv: ServerProcess, ids: Set<string>, where: string): Promise<void> {
    const v = (m: string) => report.violations.push(`${where}: ${m}`);
    const sql = await connectSql(opts);
    try {
      const rows = await keyAuditRows(sql, NAME_PREFIX);
      const byId = new Map(rows.map((r) => [r.id, r]));
      // Nothing is half there: every key row, acknowledged or not, has its grants, a secret and its audit records.
      for (const r of rows) {
        if (!keys.has(r.id) && !unacknowledgedKeys.has(r.id)) {
          if (unacknowledgedNames.has(r.name)) unacknowledgedKeys.add(r.id);
          else v(`key ${r.id} (${r.name}) exists but was never created`);
        }
        if (r.grants !== GRANTS.length) v(`key ${r.id} has ${r.grants} grants, not ${GRANTS.length}`);
        if (r.secrets < 1) v(`key ${r.id} has no secret`);
        if (r.creates !== 1) v(`key ${r.id} has ${r.creates} key.create audit records`);
        if (r.revokes !== (r.revoked ? 1 : 0)) v(`key ${r.id} is ${r.revoked ? '' : 'not '}revoked with ${r.revokes} key.revoke audit records`);
      }
      // An unacknowledged create is settled: the key is there whole (checked above) or not at all.
      report.inFlight += unacknowledgedNames.size;
      report.inFlightApplied += rows.filter((r) => unacknowledgedNames.has(r.name)).length;
      unacknowledgedNames.clear();

      const K = createClient(KeyService, transport(srv.baseUrl, 'grpc', token));
      for (const id of ids) {
        const k = keys.get(id)!;
        const row = byId.get(id);
        if (!row) {
          v(`acknowledged key ${id} (${k.name}) is missing`);
          keys.delete(id);
          continue;
        }
        // The write in flight happened or did not, judged by its audit record, which commits with it.
        if (k.pending) {
          report.inFlight++;
          const applied = k.pending.op === 'revoke' ? row.revoked : row.rotates === k.rotations + 1;
          if (applied) {
            report.inFlightApplied++;
            if (k.pending.op === 'revoke') k.revoked = true;
            else {
              applyRotation(k, k.pending.graceS);
              k.secrets.push({ secret: '', live: true }); // issued, but its secret never reached the client
            }
          }
          k.pending = undefined;
        }
        if (row.revoked !== k.revoked)
          v(`key ${id} is ${row.revoked ? 'revoked' : 'not revoked'} in the database; acknowledged: ${k.revoked ? 'revoked' : 'not revoked'}`);
        if (row.rotates !== k.rotations) v(`key ${id} has ${row.rotates} rotations in the audit trail; acknowledged: ${k.rotations}`);
        for (const s of k.secrets) {
          if (!s.secret) continue;
          const res = await K.verifyKey({ key: s.secret, requiredPermissions: ['alpha:read', 'beta:update'] });
          const want = k.revoked ? (s.live ? VerifyCode.REVOKED : undefined) : s.live ? VerifyCode.VALID : undefined;
          if (want !== undefined && res.code !== want)
            v(`key ${id}: a ${s.live ? 'live' : 'rotated-out'} secret verifies ${VerifyCode[res.code]}, not ${VerifyCode[want]}`);
          if (want === undefined && res.code === VerifyCode.VALID) v(`key ${id}: a ${k.revoked ? 'revoked key' : 'rotated-out secret'} verifies VALID`);
        }
      }
    } finally {
      await sql.end().catch(() => {});
    }
  }
}
