// Soak: two Keyward processes on one database (loopback only), a bounded mix
// of VerifyKey and management calls against both, then a report of
// throughput, errors and each server's memory growth.
//
//   npm run soak                       # 3 minutes
//   KEYWARD_SOAK_SECONDS=30 npm run soak
//
// Uses DATABASE_URL's server (a fresh database, dropped at the end) when set;
// otherwise one embedded database, so the second process is left out (an
// embedded database has one owner).
//
//   npm run soak -- --crash            # 200 kill -9 rounds (KEYWARD_SOAK_CRASH_ROUNDS)
//
// runs the crash rounds of test/e2e/crash-safety.test.ts instead: write load,
// kill -9 of the server, restart, audit of every acknowledged write.
//
//   npm run soak -- --chaos            # 60 s (KEYWARD_SOAK_SECONDS)
//
// runs bench/chaos.ts instead: two replicas on a private PostgreSQL and Redis
// under mixed load, with replica restarts (SIGTERM, kill -9) and PostgreSQL
// and Redis restarts; calls by code, recovery times, an audit of every
// acknowledged write.
import { createClient } from '@connectrpc/connect';
import { Action } from '../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { runChaos } from './chaos.js';
import { runCrashRounds } from '../test/support/crash-rounds.js';
import { createTestDatabase } from '../test/support/database.js';
import { adminTokenOf, rssMb, spawnServer, type ServerProcess } from '../test/support/process.js';
import { transport } from '../test/support/server.js';

if (process.argv.includes('--crash')) process.exit(await crashSoak());
if (process.argv.includes('--chaos')) process.exit(await runChaos(Number(process.env.KEYWARD_SOAK_SECONDS || 60), console.log));

const SECONDS = Number(process.env.KEYWARD_SOAK_SECONDS || 180);
const CONCURRENCY = Number(process.env.KEYWARD_SOAK_CONCURRENCY || 16);

const db = await createTestDatabase({ persistent: true });
const servers: ServerProcess[] = [];
try {
  const env = { DATABASE_URL: db.databaseUrl ?? '', KEYWARD_DATA_DIR: db.dataDir };
  servers.push(await spawnServer({ ...env, KEYWARD_BOOTSTRAP_ADMIN: 'true' }));
  if (db.databaseUrl) servers.push(await spawnServer(env));
  const token = adminTokenOf(servers[0]!);
  const clients = servers.map((s) => {
    const t = transport(s.baseUrl, 'grpc', token);
    return { W: createClient(WorkspaceService, t), S: createClient(ScopeService, t), K: createClient(KeyService, t) };
  });
  const c0 = clients[0]!;
  const ws = (await c0.W.createWorkspace({ workspace: { name: 'soak' } })).workspace!.id;
  await c0.S.createScope({ scope: { workspaceId: ws, name: 'things' } });
  const keys: { id: string; secret: string }[] = [];
  for (let i = 0; i < 50; i++) {
    const r = await c0.K.createKey({ key: { workspaceId: ws, name: `k${i}`, grants: [{ scope: 'things', actions: [Action.READ] }] } });
    keys.push({ id: r.key!.id, secret: r.secret });
  }
  const rssStart = servers.map((s) => rssMb(s.child.pid!));
  const counts: Record<string, number> = {};
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  const deadline = Date.now() + SECONDS * 1000;
  let n = 0;
  const worker = async (w: number) => {
    while (Date.now() < deadline) {
      const c = clients[n++ % clients.length]!;
      const k = keys[Math.floor(Math.random() * keys.length)]!;
      const roll = Math.random();
      let op = 'verify';
      try {
        if (roll < 0.9) {
          const r = await c.K.verifyKey({ key: k.secret, requiredPermissions: ['things:read'] });
          if (r.code !== VerifyCode.VALID) count(`verify ${VerifyCode[r.code]}`);
        } else if (roll < 0.94) {
          op = 'update';
          await c.K.updateKey({ key: { id: k.id, description: `w${w}` }, updateMask: { paths: ['description'] } });
        } else if (roll < 0.96) {
          op = 'rotate';
          // A long grace period: the old secret keeps verifying.
          await c.K.rotateKey({ id: k.id, gracePeriod: { seconds: 3600n } });
        } else if (roll < 0.98) {
          op = 'list';
          await c.K.listKeys({ workspaceId: ws, pageSize: 20 });
        } else {
          op = 'create+delete';
          const r = await c.K.createKey({ key: { workspaceId: ws, name: 'short-lived' } });
          await c.K.deleteKey({ id: r.key!.id });
        }
        count(op);
      } catch (e) {
        count(`${op} error: ${(e as Error).message.slice(0, 80)}`);
      }
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  const secs = (Date.now() - t0) / 1000;
  const rssEnd = servers.map((s) => rssMb(s.child.pid!));
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const errors = Object.entries(counts).filter(([k]) => k.includes('error') || k.startsWith('verify '));
  console.log(`soak: ${secs.toFixed(0)} s, ${servers.length} server process(es), ${CONCURRENCY} concurrent callers`);
  console.log(`  ${total} calls, ${(total / secs).toFixed(0)} calls/s`);
  for (const [k, v] of Object.entries(counts).sort()) console.log(`  ${k}: ${v}`);
  servers.forEach((_s, i) =>
    console.log(`  server ${i}: RSS ${rssStart[i]!.toFixed(0)} MB -> ${rssEnd[i]!.toFixed(0)} MB (${(rssEnd[i]! - rssStart[i]!).toFixed(0)} MB)`),
  );
  console.log(errors.length === 0 ? 'soak: no errors' : `soak: ${errors.reduce((a, [, v]) => a + v, 0)} errors`);
  process.exitCode = errors.length === 0 ? 0 : 1;
} finally {
  for (const s of servers) await s.stop();
  await db.drop();
}

/** `--crash`: kill -9 rounds on one database; exit code 1 if any acknowledged write was lost or any key is half there. */
async function crashSoak(): Promise<number> {
  const rounds = Number(process.env.KEYWARD_SOAK_CRASH_ROUNDS || 200);
  const seed = process.env.KEYWARD_CRASH_SEED ? Number(process.env.KEYWARD_CRASH_SEED) : undefined;
  const crashDb = await createTestDatabase({ persistent: true });
  try {
    const report = await runCrashRounds({ databaseUrl: crashDb.databaseUrl, dataDir: crashDb.dataDir, rounds, seed, log: console.log });
    const restart = [...report.restartMs].sort((a, b) => a - b);
    console.log(
      `crash soak: ${report.rounds} rounds (seed ${report.seed}); acknowledged ${JSON.stringify(report.acknowledged)}; ${report.inFlight} writes cut off by a kill (${report.inFlightApplied} of them applied)`,
    );
    console.log(`  restart after kill -9: median ${restart[restart.length >> 1] ?? 0} ms, max ${restart.at(-1) ?? 0} ms`);
    for (const v of report.violations) console.log(`  VIOLATION ${v}`);
    console.log(
      report.violations.length === 0 && report.rounds === rounds ? 'crash soak: no violations' : `crash soak: ${report.violations.length} violations`,
    );
    return report.violations.length === 0 && report.rounds === rounds ? 0 : 1;
  } finally {
    await crashDb.drop();
  }
}
