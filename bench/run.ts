// `npm run bench`: Keyward's VerifyKey against the runtime's limit, measured
// side by side in one run on this machine (DESIGN.md, "Verify at gateway speed").
//
// Every server is a child process on its own loopback port, started for its
// scenarios and stopped after them; the load generator (h2load, or
// bench/loadgen.ts) is another process. Nothing but 127.0.0.1 is contacted.
// Targets are reported as PASS/MISS and never change the exit code: it is
// non-zero only when the harness could not measure (a server that does not
// start, a scenario whose answers are wrong, a load generator that fails).
//
// Options: --duration S (5) --warmup S (2) --connections N (8) --streams N (32)
//          --loadgen auto|h2load|node (auto) --cold-keys N (50000) --unknown-keys N (100000)
//          --no-install --wait-quiet S (0: before each scenario, wait up to S seconds
//          for other processes to use less than 25% CPU)
//          --only ID,ID (measure only these rows, e.g. bare-http2,verify-hit-grpc)
//          --cpu-prof DIR (run every server under `node --cpu-prof`, profiles written to DIR)
//
// The rows are declared in bench/scenarios.ts; this file measures them one by
// one (bench/generators.ts runs the load) and bench/report.ts prints them.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { grpcFrame, packBodies } from './lib.js';
import { ensureLoadgen, runH2load, runNodeLoadgen, type LoadSpec } from './generators.js';
import { CONNS, DURATION_S, ONLY, ROOT, STREAMS, WARMUP_S, progress, wanted } from './options.js';
import {
  BUSY_PCT,
  cleanup,
  grpcResult,
  h2Request,
  isCleaningUp,
  machineCpuS,
  makeTmpDir,
  processCpuS,
  stopServer,
  waitQuiet,
  writeTmp,
  type Server,
} from './processes.js';
import { fmtMs, fmtNum, noMeasurement, report, type Row } from './report.js';
import { CONNECT_HEADERS, GRPC_HEADERS, SERVER_GROUPS, expect, type Context, type RunState, type Scenario, type ServerGroup } from './scenarios.js';

const ONE_AT_A_TIME = { connections: 1, streams: 1, durationS: 3, warmupS: 1 };
/** Paced rows run for --duration, and at least this long. */
const PACED_MIN_DURATION_S = 8;

const rows: Row[] = [];
let harnessBroken = false;
let loadgen: 'h2load' | 'node' = 'h2load';

/** A scenario made concrete: its server, the load generator's spec and the check of its answer. */
interface Measurement {
  id: string;
  title: string;
  server: Server;
  spec: LoadSpec;
  /** Sends the exact request the load generator sends; throws if the answer is wrong, else says what it was. */
  check: () => Promise<string>;
  /** A latency row (paced, or one request at a time): no ratio to bare http2's peak. */
  latency: boolean;
  notes: string[];
}

function measurement(sc: Scenario<Context>, c: Context, server: Server, rate: number | undefined, run: RunState): Measurement {
  const protocol = sc.protocol ?? 'grpc';
  const reqPath = `/keyward.v1.KeyService/${sc.method ?? 'VerifyKey'}`;
  const headers = protocol === 'grpc' ? GRPC_HEADERS(c.token) : CONNECT_HEADERS(c.token);
  const frame = (m: Uint8Array) => (protocol === 'grpc' ? grpcFrame(m) : Buffer.from(m));
  const body = frame(sc.message(c));
  const load = sc.load === 'one-at-a-time' ? ONE_AT_A_TIME : { connections: CONNS, streams: STREAMS, durationS: DURATION_S, warmupS: WARMUP_S, ...sc.load };
  const spec: LoadSpec = { port: server.port, path: reqPath, protocol, headers, ...load };
  // h2load sends one body; distinct bodies, each sent once, need bench/loadgen.ts.
  if (sc.eachOnce) spec.bodiesFile = writeTmp(`${sc.id}.each-once.bodies`, packBodies(sc.eachOnce(c).map(frame)));
  else spec.bodyFile = writeTmp(`${sc.id}.body`, body);
  if (rate !== undefined) Object.assign(spec, { rate, connections: 1, durationS: Math.max(DURATION_S, PACED_MIN_DURATION_S) });
  const check = async () => {
    const a = await h2Request(server.port, reqPath, headers, sc.freshCheck ? frame(sc.message(c)) : body);
    if (protocol === 'connect') {
      expect(a.status === 200, `HTTP ${a.status} ${a.data.toString('utf8').slice(0, 200)}`);
      return sc.answer ? `HTTP 200, ${sc.answer(a.data)}` : 'HTTP 200';
    }
    const r = grpcResult(a);
    expect(r.grpcStatus === '0', `grpc-status ${r.grpcStatus} ${r.grpcMessage}`);
    return sc.answer ? sc.answer(r.message) : 'grpc-status 0';
  };
  return { id: sc.id, title: sc.title, server, spec, check, latency: sc.load === 'one-at-a-time', notes: sc.notes?.(c, run) ?? [] };
}

async function measure(m: Measurement): Promise<void> {
  const spec = m.spec;
  const load = spec.rate
    ? `${spec.connections} conn${spec.connections === 1 ? '' : 's'}, paced ${Math.round(spec.rate)} req/s`
    : spec.connections === 1 && spec.streams === 1
      ? '1x1, one at a time'
      : `${spec.connections}x${spec.streams}${spec.bodiesFile ? ', each body once' : ''}`;
  const row: Row = {
    id: m.id,
    kind: m.latency || spec.rate ? 'latency' : 'peak',
    scenario: m.title,
    server: m.server.name,
    protocol: spec.protocol === 'grpc' ? 'gRPC' : 'Connect binary',
    generator: spec.bodiesFile || loadgen === 'node' ? 'node' : 'h2load',
    load,
    ...noMeasurement(),
    notes: [...m.notes],
  };
  progress(`${m.id}: ${m.title} (${load})`);
  try {
    if (isCleaningUp()) throw new Error('stopped');
    const answerBefore = await m.check();
    row.cpuPct.backgroundBefore = await waitQuiet();
    const problemsBefore = m.server.problems.length;
    const snap = () => ({ server: processCpuS(m.server.proc.pid), machine: machineCpuS().busy, ns: process.hrtime.bigint() });
    const q0 = await verifyQueries(m.server.port);
    let s0 = snap();
    const res = row.generator === 'node' ? await runNodeLoadgen(spec, m.id, () => (s0 = snap())) : await runH2load(spec, m.id);
    const s1 = snap();
    const q1 = await verifyQueries(m.server.port);
    if (q0 && q1 && q1.verifies > q0.verifies) row.dbQueriesPerVerify = (q1.queries - q0.queries) / (q1.verifies - q0.verifies);
    const wallS = Number(s1.ns - s0.ns) / 1e9;
    const pct = (s: number) => Math.round((100 * s) / wallS);
    row.cpuPct.server = pct(s1.server - s0.server);
    row.cpuPct.loadgen = pct(res.loadgenCpuS);
    row.cpuPct.other = Math.max(0, pct(s1.machine - s0.machine - (s1.server - s0.server) - res.loadgenCpuS));
    // CPU over the whole run (warm-up included) / requests at the measured rate.
    if (res.rps > 0) row.serverUsPerReq = ((s1.server - s0.server) / wallS / res.rps) * 1e6;
    Object.assign(row, {
      rps: res.rps,
      p50Ms: res.p50Ms,
      p99Ms: res.p99Ms,
      meanMs: res.meanMs,
      maxMs: res.maxMs,
      requests: res.requests,
      failed: res.failed,
    });
    const answerAfter = await m.check();
    row.notes.unshift(
      answerBefore === answerAfter ? `answer checked before and after: ${answerBefore}` : `answer before: ${answerBefore}; after: ${answerAfter}`,
    );
    if (res.failed > 0 && res.detail) row.notes.push(res.detail);
    const problems = m.server.problems.slice(problemsBefore);
    if (problems.length) row.notes.push(`server logged ${problems.length} warn/error lines, first: ${problems[0]}`);
    if (res.failed > 0) row.notes.push(`${res.failed} requests failed`);
    if (row.cpuPct.backgroundBefore > BUSY_PCT)
      row.notes.push(`machine busy just before the run: ${Math.round(row.cpuPct.backgroundBefore)}% CPU used by other processes`);
    progress(
      `  ${fmtNum(res.rps)} req/s, p50 ${fmtMs(res.p50Ms)} ms, p99 ${fmtMs(res.p99Ms)} ms; CPU % server ${row.cpuPct.server}, loadgen ${row.cpuPct.loadgen}, other ${row.cpuPct.other}`,
    );
  } catch (e) {
    row.error = (e as Error).message;
    harnessBroken = true;
    progress(`  FAILED: ${row.error}`);
  }
  rows.push(row);
}

/**
 * Verifications answered and the database round trips they made, from a
 * Keyward's /metrics; null for a server without them (the baselines, or
 * metrics off).
 */
async function verifyQueries(port: number): Promise<{ verifies: number; queries: number } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    if (!res.ok) return null;
    const text = await res.text();
    const sum = (re: RegExp) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
    return {
      verifies: sum(/^keyward_verify_total\{[^}]*\} (\S+)$/gm),
      queries:
        sum(/^keyward_verify_lookup_queries_total (\S+)$/gm) +
        sum(/^keyward_change_barriers_total (\S+)$/gm) +
        sum(/^keyward_remaining_uses_statements_total (\S+)$/gm),
    };
  } catch {
    return null;
  }
}

/** Starts the group's server, measures its wanted rows in order, stops it; a server that fails to start or set up becomes one ERROR row. */
async function runGroup(g: ServerGroup, run: RunState): Promise<void> {
  if (!wanted(...g.scenarios.map((sc) => sc.id)) || (g.when && !g.when(run))) return;
  let server: Server | undefined;
  try {
    server = await g.start(run);
    const c = await g.prepare(server, run);
    for (const sc of g.scenarios) {
      if ((ONLY && !ONLY.has(sc.id)) || sc.skip?.(c)) continue;
      const rate = sc.pace ? sc.pace(run) : undefined;
      if (rate === null) continue;
      await measure(measurement(sc, c, server, rate, run));
    }
  } catch (e) {
    failedRow(g.failure, e);
  } finally {
    if (server) await stopServer(server);
  }
}

function failedRow(f: ServerGroup['failure'], e: unknown): void {
  harnessBroken = true;
  const msg = (e as Error)?.message ?? String(e);
  progress(`${f.id} FAILED: ${msg}`);
  rows.push({
    id: f.id,
    kind: 'peak',
    scenario: f.title,
    server: f.server,
    protocol: '-',
    generator: '-',
    load: '-',
    ...noMeasurement(),
    notes: [],
    error: msg.slice(0, 4000),
  });
}

// ---------------------------------------------------------------- the run

function gitInfo(): { commit: string; srcDirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return { commit, srcDirty: dirty };
  } catch {
    return { commit: 'unknown', srcDirty: false };
  }
}

function fastPathInSource(): boolean {
  try {
    execFileSync('grep', ['-rqs', 'KEYWARD_VERIFY_FAST_PATH', path.join(ROOT, 'src')]);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  makeTmpDir();
  const meta: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadavgAtStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    git: gitInfo(),
    fastPathInSource: fastPathInSource(),
    durationS: DURATION_S,
    warmupS: WARMUP_S,
    concurrency: `${CONNS} connections x ${STREAMS} streams`,
  };
  const choice = await ensureLoadgen();
  loadgen = choice.loadgen;
  meta.loadgen = loadgen === 'h2load' ? choice.h2loadVersion : 'bench/loadgen.ts (node:http2)';
  const run: RunState = { meta, rps: (id) => rows.find((r) => r.id === id)?.rps ?? null };
  for (const g of SERVER_GROUPS) await runGroup(g, run);
  report(rows, meta, choice.notes, loadgen, started);
}

main()
  .catch((e: unknown) => {
    harnessBroken = true;
    progress(`bench failed: ${(e as Error)?.stack ?? String(e)}`);
  })
  .finally(async () => {
    await cleanup();
    process.exit(harnessBroken ? 1 : 0);
  });
