// Chaos soak (`npm run soak -- --chaos`): two `keyward serve` replicas on a
// private PostgreSQL (test/support/private-postgres.ts) and a private Redis
// (test/support/private-redis.ts), a mixed load of VerifyKey and
// create/rotate/revoke from a few clients per replica, and faults at fixed
// moments of the run: replica B stopped (SIGTERM) and restarted, PostgreSQL
// stopped (fast) and started, replica A killed (kill -9) and restarted, Redis
// stopped and started, PostgreSQL killed (kill -9) and started. Checked
// while it runs: an acknowledged revocation is never answered VALID after it
// (on the replica that made it at once, on the other after the change feed's
// second), and no call fails with a code other than UNAVAILABLE,
// DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED. Checked at the end, with
// everything up: every acknowledged write is in the database, verifies as
// acknowledged on both replicas and has its audit record; nothing
// unacknowledged is half there; no VALID was answered without a use taken.
// Prints calls by kind and code, each fault's recovery times and PASS/FAIL
// per invariant; returns 1 on any violation.
import { Code, ConnectError, createClient, type Client } from '@connectrpc/connect';
import pg from 'pg';
import { Action } from '../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { keyAuditRows } from '../test/support/crash-rounds.js';
import { PrivatePostgres } from '../test/support/private-postgres.js';
import { PrivateRedis } from '../test/support/private-redis.js';
import { adminTokenOf, spawnServer, type ServerProcess } from '../test/support/process.js';
import { transport } from '../test/support/server.js';

const NAME_PREFIX = 'chaos-';
const GRANTS = [{ scope: 'things', actions: [Action.READ] }];
const PERMISSIONS = ['things:read'];
const INITIAL_USES = 1_000_000n;
/** A tight limit, so that some verifications are RATE_LIMITED and Redis counts on every one. */
const RATE_LIMITS = [{ name: 'per_second', limit: 5n, duration: { seconds: 1n } }];
const SEED_KEYS = 30;
const WORKERS_PER_REPLICA = 3;
const CALL = { timeoutMs: 5000 };
/** How long the other replica may take to hear of a revocation through the change feed. */
const FEED_GRACE_MS = 1000;
/** How long a fault keeps PostgreSQL or Redis down. */
const DOWN_MS = 3000;
/** Codes a failed call may have: anything else (INTERNAL, UNKNOWN, ...) breaks a promise. */
const ALLOWED_ERRORS = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted]);

interface Replica {
  name: 'A' | 'B';
  server: ServerProcess | undefined;
  K: Client<typeof KeyService> | undefined;
  /** Bumped when the process is killed: calls begun before were cut off by it. */
  generation: number;
}

interface ModelKey {
  id: string;
  name: string;
  /** The worker that writes to this key (one write in flight per key at most). */
  owner: number;
  secrets: { secret: string; live: boolean }[];
  revoked: boolean;
  /** When the revocation was acknowledged, and by which replica. */
  revokedAt?: { ms: number; by: Replica['name'] };
  rotations: number;
  /** A write whose outcome is unknown (it failed): the key takes no more writes, and the audit settles it. */
  unknown?: { op: 'rotate'; graceS: number } | { op: 'revoke' };
  /** VALID answers seen for any of its secrets: each must have taken a use. */
  valid: number;
  /** Writes begun on this key, and whether one is in flight: a verification that overlaps one may see its effect. */
  writes: number;
  writing: boolean;
}

interface Fault {
  name: string;
  startMs: number;
  endMs: number;
  /** Per replica: first management call and first verification that succeeded after the fault ended. */
  recovered: Record<string, { mgmt?: number; verify?: number }>;
  /** Redis only: when a replica wrote a rate-limit counter to the restarted server. */
  redisUsedMs?: number;
}

export async function runChaos(seconds: number, log: (line: string) => void): Promise<number> {
  const pgc = await PrivatePostgres.create();
  const redis = await PrivateRedis.create().catch(async (e) => {
    await pgc.cleanup();
    throw e;
  });
  const databaseUrl = pgc.url('keyward');
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redis.url };
  const replicas: Replica[] = [
    { name: 'A', server: undefined, K: undefined, generation: 0 },
    { name: 'B', server: undefined, K: undefined, generation: 0 },
  ];
  try {
    await pgc.sql('create database keyward');
    const started = await Promise.allSettled([
      spawnServer({ ...env, KEYWARD_BOOTSTRAP_ADMIN: 'true' }, { startTimeoutMs: 120_000 }),
      spawnServer(env, { startTimeoutMs: 120_000 }),
    ]);
    started.forEach((s, i) => {
      if (s.status === 'fulfilled') replicas[i]!.server = s.value;
    });
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const token = adminTokenOf(replicas[0]!.server!);
    const attach = (r: Replica) => (r.K = createClient(KeyService, transport(r.server!.baseUrl, 'grpc', token)));
    replicas.forEach(attach);
    const setup = transport(replicas[0]!.server!.baseUrl, 'grpc', token);
    const ws = (await createClient(WorkspaceService, setup).createWorkspace({ workspace: { name: 'chaos' } })).workspace!.id;
    await createClient(ScopeService, setup).createScope({ scope: { workspaceId: ws, name: 'things' } });

    const keys = new Map<string, ModelKey>();
    const unknownCreates = new Set<string>();
    const workers = replicas.length * WORKERS_PER_REPLICA;
    let names = 0;
    const keyInit = (name: string) => ({ workspaceId: ws, name, grants: GRANTS, rateLimits: RATE_LIMITS, remainingUses: INITIAL_USES });
    for (let i = 0; i < SEED_KEYS; i++) {
      const name = `${NAME_PREFIX}${++names}`;
      const r = await replicas[0]!.K!.createKey({ key: keyInit(name) });
      keys.set(r.key!.id, {
        id: r.key!.id,
        name,
        owner: i % workers,
        secrets: [{ secret: r.secret, live: true }],
        revoked: false,
        rotations: 0,
        valid: 0,
        writes: 0,
        writing: false,
      });
    }

    // Outcomes: calls[kind][code]; failures with a code not allowed; successes in time, for the recovery times.
    const calls: Record<string, Record<string, number>> = {};
    const cutOff: Record<string, number> = {};
    const badCodes: string[] = [];
    const wrongAnswers: string[] = [];
    const revokedValid: string[] = [];
    /** VALID answers of the other replica within FEED_GRACE_MS of a revocation (the change feed's window; shown, not a violation). */
    let validInGrace = 0;
    const successes: { ms: number; replica: string; kind: 'mgmt' | 'verify' }[] = [];
    const acknowledged = { create: 0, rotate: 0, revoke: 0 };
    const tally = (kind: string, code: string) => {
      const k = (calls[kind] ??= {});
      k[code] = (k[code] ?? 0) + 1;
    };
    /** Runs one call on replica `r`, tallies it, and returns its result or the ConnectError. */
    const call = async <T>(kind: string, r: Replica, f: (K: Client<typeof KeyService>) => Promise<T>, codeOf: (t: T) => string) => {
      const generation = r.generation;
      const begun = Date.now();
      try {
        const res = await f(r.K!);
        tally(kind, codeOf(res));
        successes.push({ ms: Date.now(), replica: r.name, kind: kind.startsWith('verify') ? 'verify' : 'mgmt' });
        return { ok: true as const, res, begun };
      } catch (e) {
        const err = ConnectError.from(e);
        if (r.generation !== generation) {
          // The replica was killed under this call: whatever the client library made of the cut connection.
          cutOff[`${kind} ${Code[err.code]}`] = (cutOff[`${kind} ${Code[err.code]}`] ?? 0) + 1;
        } else {
          tally(kind, Code[err.code]!);
          if (!ALLOWED_ERRORS.has(err.code)) badCodes.push(`${kind} on ${r.name}: ${Code[err.code]} ${err.rawMessage.slice(0, 200)}`);
        }
        return { ok: false as const, err, begun };
      }
    };
    const verifyCode = (r: { code: VerifyCode }) => VerifyCode[r.code]!;
    const ok = () => 'OK';

    let stopped = false;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];

    const worker = async (w: number) => {
      const r = replicas[w % replicas.length]!;
      while (!stopped) {
        if (!r.server) {
          await sleep(50); // the replica is being restarted
          continue;
        }
        const roll = Math.random();
        const all = [...keys.values()].filter((k) => !k.revoked && !k.unknown);
        const own = all.filter((k) => k.owner === w);
        if (roll < 0.8 || (roll >= 0.88 && own.length === 0)) {
          const k = pick(all);
          const s = k && pick(k.secrets.filter((x) => x.live));
          if (!k || !s) continue;
          const quiet = !k.writing;
          const writes = k.writes;
          const out = await call('verify', r, (K) => K.verifyKey({ key: s.secret, requiredPermissions: PERMISSIONS }, CALL), verifyCode);
          if (out.ok && out.res.code === VerifyCode.VALID) k.valid++;
          // A live secret of a key no write touched meanwhile is VALID (or RATE_LIMITED), on either replica, however new.
          const code = out.ok ? out.res.code : undefined;
          if (code !== undefined && code !== VerifyCode.VALID && code !== VerifyCode.RATE_LIMITED && quiet && !k.writing && k.writes === writes)
            wrongAnswers.push(`key ${k.id} on ${r.name}: a live secret verifies ${VerifyCode[code]}`);
        } else if (roll < 0.88) {
          const name = `${NAME_PREFIX}${++names}`;
          unknownCreates.add(name);
          const out = await call('create', r, (K) => K.createKey({ key: keyInit(name) }, CALL), ok);
          if (out.ok) {
            unknownCreates.delete(name);
            const id = out.res.key!.id;
            keys.set(id, {
              id,
              name,
              owner: w,
              secrets: [{ secret: out.res.secret, live: true }],
              revoked: false,
              rotations: 0,
              valid: 0,
              writes: 0,
              writing: false,
            });
            acknowledged.create++;
          }
        } else if (roll < 0.95) {
          const k = pick(own)!;
          k.writes++;
          k.writing = true;
          const graceS = Math.random() < 0.5 ? 0 : 3600;
          const out = await call('rotate', r, (K) => K.rotateKey({ id: k.id, gracePeriod: { seconds: BigInt(graceS) } }, CALL), ok);
          if (out.ok) {
            applyRotation(k, graceS);
            k.secrets.push({ secret: out.res.secret, live: true });
            acknowledged.rotate++;
          } else k.unknown = { op: 'rotate', graceS };
          k.writing = false;
        } else {
          const k = pick(own)!;
          k.writes++;
          k.writing = true;
          const out = await call('revoke', r, (K) => K.revokeKey({ id: k.id }, CALL), ok);
          if (out.ok) {
            k.revoked = true;
            k.revokedAt = { ms: Date.now(), by: r.name };
            acknowledged.revoke++;
          } else k.unknown = { op: 'revoke' };
          k.writing = false;
        }
      }
    };
    // The live check: every acknowledged revocation, verified on both replicas every 200 ms.
    const revokedCheck = async () => {
      while (!stopped) {
        const revoked = [...keys.values()].filter((k) => k.revokedAt);
        for (const r of replicas) {
          if (!r.server) continue;
          for (const k of revoked) {
            for (const s of k.secrets) {
              const out = await call('verify revoked', r, (K) => K.verifyKey({ key: s.secret, requiredPermissions: PERMISSIONS }, CALL), verifyCode);
              const since = out.begun - k.revokedAt!.ms;
              if (out.ok && out.res.code === VerifyCode.VALID) k.valid++;
              if (out.ok && out.res.code === VerifyCode.VALID && r.name !== k.revokedAt!.by && since <= FEED_GRACE_MS) validInGrace++;
              else if (out.ok && out.res.code === VerifyCode.VALID)
                revokedValid.push(`key ${k.id} VALID on ${r.name} ${since} ms after its revocation was acknowledged by ${k.revokedAt!.by}`);
            }
          }
        }
        await sleep(200);
      }
    };

    // The faults, at fixed fractions of the run.
    const faults: Fault[] = [];
    const restartReplica = async (r: Replica, signal: 'SIGTERM' | 'SIGKILL') => {
      const s = r.server!;
      r.server = undefined;
      if (signal === 'SIGKILL') r.generation++;
      const gone = new Promise((res) => s.child.once('exit', res));
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill(signal);
        await gone;
      }
      const next = await spawnServer(env, { startTimeoutMs: 120_000 });
      r.server = next;
      attach(r);
    };
    const schedule: { at: number; name: string; run: () => Promise<void> }[] = [
      { at: 0.12, name: 'replica B: SIGTERM, restart', run: () => restartReplica(replicas[1]!, 'SIGTERM') },
      {
        at: 0.3,
        name: 'PostgreSQL: fast stop, start',
        run: async () => {
          await pgc.stop();
          await sleep(DOWN_MS);
          await pgc.start();
        },
      },
      { at: 0.45, name: 'replica A: kill -9, restart', run: () => restartReplica(replicas[0]!, 'SIGKILL') },
      {
        at: 0.6,
        name: 'Redis: stop, start (empty)',
        run: async () => {
          await redis.stop();
          await sleep(DOWN_MS);
          await redis.start();
        },
      },
      {
        at: 0.72,
        name: 'PostgreSQL: kill -9, start',
        run: async () => {
          await pgc.kill();
          await sleep(DOWN_MS);
          await pgc.start();
        },
      },
    ];
    const t0 = Date.now();
    const chaos = async () => {
      for (const f of schedule) {
        const wait = t0 + f.at * seconds * 1000 - Date.now();
        if (wait > 0) await sleep(wait);
        if (stopped) return;
        const fault: Fault = { name: f.name, startMs: Date.now(), endMs: 0, recovered: {} };
        log(`chaos: ${((fault.startMs - t0) / 1000).toFixed(1)} s: ${f.name}`);
        await f.run();
        fault.endMs = Date.now();
        faults.push(fault);
        // The next fault waits until both replicas answered again, so that each recovery is measured alone.
        const until = Date.now() + 60_000;
        const back = () =>
          replicas.every((r) =>
            (['mgmt', 'verify'] as const).every((kind) => successes.some((x) => x.replica === r.name && x.kind === kind && x.ms >= fault.endMs)),
          );
        while (!stopped && !back() && Date.now() < until) await sleep(50);
        if (f.name.startsWith('Redis')) {
          while (!stopped && (await redis.keyCount().catch(() => 0)) === 0) await sleep(50);
          if (!stopped) fault.redisUsedMs = Date.now() - fault.endMs;
        }
      }
    };
    const load = Promise.all([...Array.from({ length: workers }, (_, w) => worker(w)), revokedCheck()]);
    let faultError = '';
    const faultsDone = chaos().catch((e: Error) => {
      faultError = `a fault could not be applied or repaired: ${e.message.slice(0, 500)}`;
    });
    await sleep(seconds * 1000);
    await faultsDone; // a slow restart extends the run rather than being cut short
    // A little load after the last fault, so that its recovery is seen.
    await sleep(3000);
    stopped = true;
    await load;
    const runS = (Date.now() - t0) / 1000;

    for (const f of faults) {
      for (const r of replicas) {
        const after = successes.filter((s) => s.replica === r.name && s.ms >= f.endMs);
        const first = (kind: 'mgmt' | 'verify') => after.find((s) => s.kind === kind)?.ms;
        const m = first('mgmt');
        const v = first('verify');
        f.recovered[r.name] = { mgmt: m === undefined ? undefined : m - f.endMs, verify: v === undefined ? undefined : v - f.endMs };
      }
    }
    const exited = replicas.filter((r) => !r.server || r.server.child.exitCode !== null || r.server.child.signalCode !== null);

    // The audit, with everything up.
    const audit = await auditAll();
    const validTotal = [...keys.values()].reduce((a, k) => a + k.valid, 0);

    // The report.
    const out = (s: string) => log(s);
    out('');
    out(`chaos soak: ${runS.toFixed(0)} s (KEYWARD_SOAK_SECONDS=${seconds}), 2 replicas x ${WORKERS_PER_REPLICA} clients, private PostgreSQL and Redis`);
    out(
      `  acknowledged writes: ${acknowledged.create} creates, ${acknowledged.rotate} rotations, ${acknowledged.revoke} revocations (plus ${SEED_KEYS} keys made before the load)`,
    );
    out(`  writes with an unknown outcome (failed during a fault): ${audit.unknown.applied} applied, ${audit.unknown.notApplied} not`);
    out('');
    const codes = [...new Set(Object.values(calls).flatMap((c) => Object.keys(c)))].sort();
    const kinds = Object.keys(calls).sort();
    const w = Math.max(14, ...kinds.map((k) => k.length));
    out(`  ${'calls'.padEnd(w)} ${codes.map((c) => c.padStart(Math.max(8, c.length))).join(' ')}  ${'total'.padStart(7)}`);
    for (const k of kinds) {
      const row = codes.map((c) => String(calls[k]![c] ?? 0).padStart(Math.max(8, c.length)));
      const total = Object.values(calls[k]!).reduce((a, b) => a + b, 0);
      out(`  ${k.padEnd(w)} ${row.join(' ')}  ${String(total).padStart(7)}`);
    }
    if (Object.keys(cutOff).length > 0)
      out(
        `  cut off by a kill -9 of their replica (any code): ${Object.entries(cutOff)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
    out('');
    out('  fault                             down      A mgmt  A verify    B mgmt  B verify  (recovery after the fault ended)');
    const ms = (n: number | undefined) => (n === undefined ? 'never' : `${n} ms`).padStart(9);
    for (const f of faults) {
      const a = f.recovered.A!;
      const b = f.recovered.B!;
      out(`  ${f.name.padEnd(32)} ${ms(f.endMs - f.startMs)} ${ms(a.mgmt)} ${ms(a.verify)} ${ms(b.mgmt)} ${ms(b.verify)}`);
      if (f.redisUsedMs !== undefined) out(`    (rate-limit counters written to the restarted Redis after ${f.redisUsedMs} ms)`);
    }
    out('');
    const recoveredAll =
      faults.length === schedule.length && faults.every((f) => Object.values(f.recovered).every((x) => x.mgmt !== undefined && x.verify !== undefined));
    const invariants: [string, string[]][] = [
      [
        `every fault ran and both replicas recovered from each (${faults.length}/${schedule.length} faults)`,
        recoveredAll && !faultError ? [] : [faultError || 'a replica never answered after a fault'],
      ],
      ['no replica process died except by the faults', exited.map((r) => `replica ${r.name} exited`)],
      ['failed calls only UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED', badCodes],
      ['a live secret of a key no write touched meanwhile verifies VALID or RATE_LIMITED on both replicas', wrongAnswers],
      [`an acknowledged revocation never VALID afterwards (other replica: after ${FEED_GRACE_MS} ms; VALID within it: ${validInGrace})`, revokedValid],
      ['every acknowledged write in the database, verifying as acknowledged on both replicas', audit.state],
      ['an audit record for every acknowledged write (and none for a write not made)', audit.trail],
      ['nothing unacknowledged half there, no key never asked for', audit.half],
      [`no VALID without a use taken (${validTotal} VALID answers, ${audit.usesTaken} uses taken)`, audit.uses],
    ];
    let failed = 0;
    for (const [name, violations] of invariants) {
      out(`  ${violations.length === 0 ? 'PASS' : 'FAIL'}  ${name}`);
      for (const v of violations.slice(0, 20)) out(`          ${v}`);
      if (violations.length > 20) out(`          ... and ${violations.length - 20} more`);
      if (violations.length > 0) failed++;
    }
    out(failed === 0 ? 'chaos soak: no violations' : `chaos soak: ${failed} invariants violated`);
    return failed === 0 ? 0 : 1;

    function applyRotation(k: ModelKey, graceS: number): void {
      k.rotations++;
      if (graceS === 0) for (const s of k.secrets) s.live = false;
    }

    /** Every key against the database, its audit trail and both replicas; writes of unknown outcome settled by the database. */
    async function auditAll() {
      const result = {
        state: [] as string[],
        trail: [] as string[],
        half: [] as string[],
        uses: [] as string[],
        usesTaken: 0n,
        unknown: { applied: 0, notApplied: 0 },
      };
      // Both replicas answer management calls and verifications again (the last fault may be just over).
      const until = Date.now() + 120_000;
      for (const r of replicas) {
        for (;;) {
          const probe = await r.K!.listKeys({ workspaceId: ws, pageSize: 1 }, CALL).then(
            () => true,
            () => false,
          );
          if (probe) break;
          if (Date.now() > until) throw new Error(`replica ${r.name} does not answer after the run`);
          await sleep(200);
        }
      }
      const sql = new pg.Client({ connectionString: databaseUrl });
      sql.on('error', () => {});
      await sql.connect();
      let rows: Awaited<ReturnType<typeof keyAuditRows>>;
      try {
        rows = await keyAuditRows(sql, NAME_PREFIX);
      } finally {
        await sql.end().catch(() => {});
      }
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const row of rows) {
        if (!keys.has(row.id) && !unknownCreates.has(row.name)) result.half.push(`key ${row.id} (${row.name}) exists but was never asked for`);
        if (row.grants !== GRANTS.length) result.half.push(`key ${row.id} has ${row.grants} grants, not ${GRANTS.length}`);
        if (row.secrets < 1) result.half.push(`key ${row.id} has no secret`);
        if (row.creates !== 1) result.trail.push(`key ${row.id} has ${row.creates} key.create audit records`);
        if (row.revokes !== (row.revoked ? 1 : 0))
          result.trail.push(`key ${row.id} is ${row.revoked ? '' : 'not '}revoked with ${row.revokes} key.revoke records`);
      }
      for (const name of unknownCreates) rows.some((r) => r.name === name) ? result.unknown.applied++ : result.unknown.notApplied++;
      for (const k of keys.values()) {
        const row = byId.get(k.id);
        if (!row) {
          result.state.push(`acknowledged key ${k.id} (${k.name}) is missing`);
          continue;
        }
        if (k.unknown) {
          const applied = k.unknown.op === 'revoke' ? row.revoked : row.rotates === k.rotations + 1;
          if (applied) {
            result.unknown.applied++;
            if (k.unknown.op === 'revoke') k.revoked = true;
            else {
              applyRotation(k, k.unknown.graceS);
              k.secrets.push({ secret: '', live: true }); // issued, but its secret never reached the client
            }
          } else result.unknown.notApplied++;
        }
        if (row.revoked !== k.revoked)
          result.state.push(`key ${k.id} is ${row.revoked ? '' : 'not '}revoked in the database; acknowledged: ${k.revoked ? '' : 'not '}revoked`);
        if (row.rotates !== k.rotations) result.trail.push(`key ${k.id} has ${row.rotates} key.rotate records; acknowledged: ${k.rotations}`);
        for (const r of replicas) {
          for (const s of k.secrets) {
            if (!s.secret) continue;
            let res = await r.K!.verifyKey({ key: s.secret, requiredPermissions: PERMISSIONS });
            // A live secret may meet its rate limit here (every secret of a key is verified in turn): wait for the next window.
            for (let i = 0; i < 3 && res.code === VerifyCode.RATE_LIMITED; i++) {
              await sleep(1000);
              res = await r.K!.verifyKey({ key: s.secret, requiredPermissions: PERMISSIONS });
            }
            if (res.code === VerifyCode.VALID) k.valid++;
            const want = k.revoked ? (s.live ? VerifyCode.REVOKED : undefined) : s.live ? VerifyCode.VALID : undefined;
            if (want !== undefined && res.code !== want)
              result.state.push(
                `key ${k.id} on ${r.name}: a ${s.live ? 'live' : 'rotated-out'} secret verifies ${VerifyCode[res.code]}, not ${VerifyCode[want]}`,
              );
            if (want === undefined && res.code === VerifyCode.VALID)
              result.state.push(`key ${k.id} on ${r.name}: a ${k.revoked ? 'revoked key' : 'rotated-out secret'} verifies VALID`);
          }
        }
      }
      // The final verifications took uses: compare against the database read after them.
      const sql2 = new pg.Client({ connectionString: databaseUrl });
      sql2.on('error', () => {});
      await sql2.connect();
      try {
        for (const row of await keyAuditRows(sql2, NAME_PREFIX)) {
          const k = keys.get(row.id);
          const taken = INITIAL_USES - BigInt(row.remainingUses ?? '0');
          result.usesTaken += taken;
          if (k && BigInt(k.valid) > taken) result.uses.push(`key ${k.id}: ${k.valid} VALID answers, ${taken} uses taken`);
        }
      } finally {
        await sql2.end().catch(() => {});
      }
      return result;
    }
  } finally {
    for (const r of replicas) await r.server?.stop();
    await redis.cleanup();
    await pgc.cleanup();
  }
}
