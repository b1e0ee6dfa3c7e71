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
//          --loadgen auto|h2load|node (auto) --cold-keys N (500) --unknown-keys N (20000)
//          --no-install --wait-quiet S (0: before each scenario, wait up to S seconds
//          for other processes to use less than 25% CPU)
//          --only ID,ID (measure only these rows, e.g. bare-http2,verify-hit-grpc)
//          --cpu-prof DIR (run every server under `node --cpu-prof`, profiles written to DIR)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Action } from '../gen/keyward/v1/key_pb.js';
import {
  CreateKeyRequestSchema,
  CreateKeyResponseSchema,
  KeyService,
  VerifyCode,
  VerifyKeyRequestSchema,
  VerifyKeyResponseSchema,
} from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { issueApiKey } from '../src/credentials/api-key.js';
import { grpcFrame, packBodies, quantile } from './lib.js';
import type { LoadgenConfig, LoadgenResult } from './loadgen.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RUN_TS = path.join(ROOT, 'bin/run-ts.js');
const VERIFY_PATH = '/keyward.v1.KeyService/VerifyKey';
const CREATE_PATH = '/keyward.v1.KeyService/CreateKey';

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '8' },
    streams: { type: 'string', default: '32' },
    loadgen: { type: 'string', default: 'auto' },
    'cold-keys': { type: 'string', default: '500' },
    'unknown-keys': { type: 'string', default: '20000' },
    'no-install': { type: 'boolean', default: false },
    'wait-quiet': { type: 'string', default: '0' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const DURATION_S = Number(argv.duration);
const WARMUP_S = Number(argv.warmup);
const CONNS = Number(argv.connections);
const STREAMS = Number(argv.streams);
const COLD_KEYS = Number(argv['cold-keys']);
const UNKNOWN_KEYS = Number(argv['unknown-keys']);
const WAIT_QUIET_S = Number(argv['wait-quiet']);
const ONLY = argv.only ? new Set(argv.only.split(',')) : null;
// The paced rows run at half of verify-hit-grpc's peak: they need that row.
if (ONLY?.has('verify-hit-grpc-half-peak') || ONLY?.has('bare-http2-same-rate')) ONLY.add('verify-hit-grpc');
/** Whether any of these rows is to be measured (a server none of whose rows is, is not started). */
const wanted = (...ids: string[]) => ONLY === null || ids.some((id) => ONLY.has(id));
const LOADGEN_CHOICE = argv.loadgen as 'auto' | 'h2load' | 'node';
const SERVER_NODE_ARGS = argv['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(argv['cpu-prof'])}`] : [];

const progress = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- cleanup

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void> | void> = [];
let cleaningUp = false;
async function cleanup(): Promise<void> {
  if (cleaningUp) return;
  cleaningUp = true;
  // SIGTERM first: `timeout` passes it on to the load generator it runs.
  const alive = () => [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of alive()) c.kill('SIGTERM');
  for (let i = 0; i < 30 && alive().length; i++) await sleep(100);
  for (const c of alive()) c.kill('SIGKILL');
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch (e) {
      progress(`cleanup: ${(e as Error).message}`);
    }
  }
}
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    progress(`${sig}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- CPU accounting

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a live process has used so far. */
function processCpuS(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Busy and total CPU seconds of the whole machine (all cores) so far. */
function machineCpuS(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

/** CPU used by everything on the machine over `ms`, in % of one core, while the bench is idle. */
async function backgroundCpuPct(ms = 300): Promise<number> {
  const a = machineCpuS();
  const t0 = Date.now();
  await sleep(ms);
  const b = machineCpuS();
  return (100 * (b.busy - a.busy)) / ((Date.now() - t0) / 1000);
}

/** Background CPU (in % of one core) above which a measurement is flagged as disturbed. */
const BUSY_PCT = 25;

/** Waits up to --wait-quiet seconds for the machine to be quiet; returns the last background CPU seen. */
async function waitQuiet(): Promise<number> {
  const deadline = Date.now() + WAIT_QUIET_S * 1000;
  let pct = await backgroundCpuPct();
  if (pct > BUSY_PCT && Date.now() < deadline) progress(`  waiting for other processes to go quiet (${Math.round(pct)}% CPU)`);
  while (pct > BUSY_PCT && Date.now() < deadline) pct = await backgroundCpuPct(1000);
  return pct;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- child processes

interface Server {
  name: string;
  proc: ChildProcess;
  port: number;
  /** Log lines at warn or error level since start (Keyward only). */
  problems: string[];
  stdout: string;
}

const BASE_ENV = (() => {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('KEYWARD_') || k === 'PORT' || k === 'HOST' || k === 'DATABASE_URL') continue;
    env[k] = v;
  }
  return env;
})();

/** Starts a child that announces its port; `portOf` reads it from stdout/stderr text. */
function startServer(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  portOf: (out: string, err: string) => number | undefined,
  timeoutMs = 60_000,
): Promise<Server> {
  const proc = spawn(process.execPath, [...SERVER_NODE_ARGS, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const server: Server = { name, proc, port: 0, problems: [], stdout: '' };
  let out = '';
  let err = '';
  return new Promise<Server>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${timeoutMs} ms`)), timeoutMs);
    const fail = (e: Error) => {
      clearTimeout(timer);
      proc.kill('SIGKILL');
      reject(new Error(`${e.message}\n--- ${name} stderr (tail) ---\n${err.slice(-3000)}`));
    };
    const check = () => {
      if (server.port) return;
      const port = portOf(out, err);
      if (port) {
        server.port = port;
        clearTimeout(timer);
        resolve(server);
      }
    };
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      server.stdout = out;
      check();
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (!server.port) err += d;
      for (const line of d.split('\n')) if (/"level":"(warn|error)"/.test(line)) server.problems.push(line.slice(0, 500));
      if (!server.port && err.length > 1_000_000) err = err.slice(-100_000);
      check();
    });
    proc.once('exit', (code, sig) => {
      children.delete(proc);
      if (!server.port) fail(new Error(`${name} exited (${code ?? sig}) before listening`));
    });
  });
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.proc.once('exit', () => r()));
  s.proc.kill('SIGTERM');
  const t = setTimeout(() => s.proc.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(t);
  children.delete(s.proc);
}

const listeningLine = (out: string) => {
  const m = /LISTENING (\d+)/.exec(out);
  return m ? Number(m[1]) : undefined;
};

// ---------------------------------------------------------------- one request, checked

interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  data: Buffer;
}

function h2Request(port: number, reqPath: string, headers: Record<string, string>, body: Buffer): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error('no answer within 10 s'));
    }, 10_000);
    session.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    const req = session.request({ ':method': 'POST', ':path': reqPath, ...headers });
    let resHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (resHeaders = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      clearTimeout(timer);
      session.close();
      resolve({ status: Number(resHeaders[':status']), headers: resHeaders, trailers, data: Buffer.concat(chunks) });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      session.destroy();
      reject(e);
    });
    req.end(body);
  });
}

/** The gRPC status and the single response message of a unary gRPC answer. */
function grpcResult(a: H2Answer): { grpcStatus: string; grpcMessage: string; message: Uint8Array } {
  const grpcStatus = String(a.trailers['grpc-status'] ?? a.headers['grpc-status'] ?? `http ${a.status}`);
  const grpcMessage = decodeURIComponent(String(a.trailers['grpc-message'] ?? a.headers['grpc-message'] ?? ''));
  const message = a.data.length >= 5 ? a.data.subarray(5, 5 + a.data.readUInt32BE(1)) : new Uint8Array();
  return { grpcStatus, grpcMessage, message };
}

// ---------------------------------------------------------------- load generators

interface LoadSpec {
  port: number;
  path: string;
  protocol: 'grpc' | 'connect';
  headers: Record<string, string>;
  /** One body for every request (h2load -d) ... */
  bodyFile?: string;
  /** ... or a file of bodies, each sent once (bench/loadgen.ts only). */
  bodiesFile?: string;
  connections: number;
  streams: number;
  durationS: number;
  warmupS: number;
  /** Paced: total requests per second; 0 = as fast as possible. */
  rate?: number;
}

interface LoadResult {
  generator: 'h2load' | 'node';
  rps: number;
  requests: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  /** CPU seconds the load generator used. */
  loadgenCpuS: number;
  detail: string;
}

interface Command {
  code: number | null;
  stdout: string;
  stderr: string;
  wallS: number;
}

function runCommand(cmd: string, args: string[], timeoutS: number, onStderr?: (text: string) => void): Promise<Command> {
  // `timeout` ends it if it hangs; bash's `times` reports the CPU its child used.
  const proc = spawn('timeout', ['-k', '5', String(Math.ceil(timeoutS)), 'bash', '-c', '"$@"; rc=$?; times >&2; exit $rc', 'bash', cmd, ...args], {
    cwd: ROOT,
    env: BASE_ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  const t0 = process.hrtime.bigint();
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    onStderr?.(stderr);
  });
  return new Promise((resolve) => {
    proc.once('close', (code) => {
      children.delete(proc);
      resolve({ code, stdout, stderr, wallS: Number(process.hrtime.bigint() - t0) / 1e9 });
    });
  });
}

/** CPU seconds of the children of `bash`, from its `times` output (last line: children's user and system). */
function childCpuFromTimes(stderr: string): number {
  const lines = stderr.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  const m = [...last.matchAll(/(\d+)m([\d.]+)s/g)];
  if (m.length < 2) return NaN;
  return m.slice(0, 2).reduce((a, x) => a + Number(x[1]) * 60 + Number(x[2]), 0);
}

let tmpDir = '';

/**
 * Paced load for h2load: a timing script of warm-up plus duration at `rate`,
 * one request every 1/rate s. h2load's --rps releases each connection's due
 * requests on a timer of at least 10 ms, so load paced that way arrives in
 * bursts; a timing script is replayed by each connection on its own, so a
 * paced run uses one connection (with up to `streams` requests in flight).
 */
function writeTimingScript(spec: LoadSpec, tag: string): string {
  const file = path.join(tmpDir, `${tag}.timing`);
  const uri = `http://127.0.0.1:${spec.port}${spec.path}`;
  const n = Math.round(spec.rate! * (spec.warmupS + spec.durationS));
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${((i * 1000) / spec.rate!).toFixed(3)}\t${uri}`);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function runH2load(spec: LoadSpec, tag: string): Promise<LoadResult> {
  const logFile = path.join(tmpDir, `${tag}.h2load.log`);
  const paced = Boolean(spec.rate);
  const args = ['-t', '1', '-m', String(spec.streams), '-d', spec.bodyFile!, `--log-file=${logFile}`];
  if (paced && spec.connections !== 1) throw new Error('a paced h2load run uses one connection');
  if (paced) args.push('-c', '1', `--timing-script-file=${writeTimingScript(spec, tag)}`);
  else args.push('-c', String(spec.connections), '-D', String(spec.durationS), '--warm-up-time', String(spec.warmupS));
  for (const [k, v] of Object.entries(spec.headers)) args.push('-H', `${k}: ${v}`);
  if (!paced) args.push(`http://127.0.0.1:${spec.port}${spec.path}`);
  const r = await runCommand('h2load', args, spec.durationS + spec.warmupS + 30);
  const fin = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(r.stdout);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(r.stdout);
  if (r.code !== 0 || !fin || !reqs) {
    throw new Error(`h2load failed (exit ${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  }
  // Per-request log: start (µs since the epoch), HTTP status, µs to the end
  // of the response. h2load logs only the measurement phase of a timed run;
  // of a paced run, the requests started after the warm-up are kept.
  const entries: { start: number; status: string; us: number }[] = [];
  if (existsSync(logFile)) {
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (!line) continue;
      const [start, status, us] = line.split('\t');
      entries.push({ start: Number(start), status: status!, us: Number(us) });
    }
    rmSync(logFile, { force: true });
  }
  let measured = entries;
  let rps = Number(fin[2]);
  if (paced && entries.length > 0) {
    const first = entries.reduce((m, e) => Math.min(m, e.start), Infinity);
    const from = first + spec.warmupS * 1e6;
    measured = entries.filter((e) => e.start >= from);
    const last = measured.reduce((m, e) => Math.max(m, e.start), from);
    rps = last > from ? measured.length / ((last - from) / 1e6) : NaN;
  }
  const lat: number[] = [];
  let bad = 0;
  for (const e of measured) {
    if (e.status === '200') lat.push(e.us / 1000);
    else if (e.status !== '0') bad++; // 0: still in flight when the run stopped
  }
  const sorted = Float64Array.from(lat).sort();
  const statusLine = /status codes: .*/.exec(r.stdout)?.[0] ?? '';
  return {
    generator: 'h2load',
    rps,
    requests: paced ? lat.length : Number(reqs[4]),
    failed: Number(reqs[5]) + Number(reqs[6]) + Number(reqs[7]) + bad,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : NaN,
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    loadgenCpuS: childCpuFromTimes(r.stderr),
    detail: statusLine,
  };
}

/** `onReady` is called once the generator has connected, just before it starts sending. */
async function runNodeLoadgen(spec: LoadSpec, tag: string, onReady: () => void): Promise<LoadResult> {
  let bodiesFile = spec.bodiesFile;
  if (!bodiesFile) {
    bodiesFile = path.join(tmpDir, `${tag}.bodies`);
    writeFileSync(bodiesFile, packBodies([readFileSync(spec.bodyFile!)]));
  }
  const cfg: LoadgenConfig = {
    origin: `http://127.0.0.1:${spec.port}`,
    path: spec.path,
    headers: spec.headers,
    bodiesFile,
    protocol: spec.protocol,
    connections: spec.connections,
    streams: spec.streams,
    once: Boolean(spec.bodiesFile),
    durationS: spec.durationS,
    warmupS: spec.warmupS,
    rate: spec.rate ?? 0,
  };
  const cfgFile = path.join(tmpDir, `${tag}.loadgen.json`);
  writeFileSync(cfgFile, JSON.stringify(cfg));
  let ready = false;
  const r = await runCommand(process.execPath, [RUN_TS, path.join(ROOT, 'bench/loadgen.ts'), cfgFile], spec.durationS + spec.warmupS + 60, (err) => {
    if (!ready && err.includes('READY')) {
      ready = true;
      onReady();
    }
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`node load generator failed (exit ${r.code}):\n${r.stderr.slice(-2000)}`);
  const res = JSON.parse(line) as LoadgenResult;
  return {
    generator: 'node',
    rps: res.rps,
    requests: res.requests,
    failed: res.failed + res.dropped,
    p50Ms: res.p50Ms,
    p99Ms: res.p99Ms,
    meanMs: res.meanMs,
    maxMs: res.maxMs,
    loadgenCpuS: res.cpuS,
    detail: `statuses ${JSON.stringify(res.statuses)}${res.dropped ? `, ${res.dropped} not sent (all streams busy)` : ''}`,
  };
}

// ---------------------------------------------------------------- scenarios and results

interface Row {
  id: string;
  /** peak: as fast as the server goes; latency: paced or one at a time. */
  kind: 'peak' | 'latency';
  scenario: string;
  server: string;
  protocol: string;
  generator: string;
  load: string;
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  maxMs: number | null;
  ratioToBare: number | null;
  /** Server CPU per request (µs): less sensitive than req/s to other load on the machine. */
  serverUsPerReq: number | null;
  requests: number;
  failed: number;
  cpuPct: { server: number; loadgen: number; other: number; backgroundBefore: number };
  notes: string[];
  error?: string;
}

const rows: Row[] = [];
let harnessBroken = false;
let loadgen: 'h2load' | 'node' = 'h2load';
let h2loadVersion = '';

interface Scenario {
  id: string;
  title: string;
  server: Server;
  spec: LoadSpec;
  /** Check one answer with the exact request the load generator sends; throws if it is wrong. */
  check: () => Promise<string>;
  /** Use bench/loadgen.ts even when h2load is available. */
  forceNode?: boolean;
  /** A latency row (paced, or one request at a time): no ratio to bare http2's peak. */
  latency?: boolean;
  notes?: string[];
}

/** The fields of a row before (or without) a measurement; a new object each time, as rows fill them in. */
const noMeasurement = () => ({
  rps: null,
  p50Ms: null,
  p99Ms: null,
  meanMs: null,
  maxMs: null,
  ratioToBare: null,
  serverUsPerReq: null,
  requests: 0,
  failed: 0,
  cpuPct: { server: NaN, loadgen: NaN, other: NaN, backgroundBefore: NaN },
}) satisfies Partial<Row>;

async function measure(sc: Scenario): Promise<Row> {
  const spec = sc.spec;
  const load = spec.rate
    ? `${spec.connections} conn${spec.connections === 1 ? '' : 's'}, paced ${Math.round(spec.rate)} req/s`
    : spec.connections === 1 && spec.streams === 1
      ? '1x1, one at a time'
      : `${spec.connections}x${spec.streams}${spec.bodiesFile ? ', each body once' : ''}`;
  const row: Row = {
    id: sc.id,
    kind: sc.latency || spec.rate ? 'latency' : 'peak',
    scenario: sc.title,
    server: sc.server.name,
    protocol: spec.protocol === 'grpc' ? 'gRPC' : 'Connect binary',
    generator: sc.forceNode || loadgen === 'node' ? 'node' : 'h2load',
    load,
    ...noMeasurement(),
    notes: [...(sc.notes ?? [])],
  };
  if (ONLY && !ONLY.has(sc.id)) return row;
  progress(`${sc.id}: ${sc.title} (${load})`);
  try {
    if (cleaningUp) throw new Error('stopped');
    const answerBefore = await sc.check();
    row.cpuPct.backgroundBefore = await waitQuiet();
    const problemsBefore = sc.server.problems.length;
    const snap = () => ({ server: processCpuS(sc.server.proc.pid), machine: machineCpuS().busy, ns: process.hrtime.bigint() });
    let s0 = snap();
    const res = row.generator === 'node' ? await runNodeLoadgen(spec, sc.id, () => (s0 = snap())) : await runH2load(spec, sc.id);
    const s1 = snap();
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
    const answerAfter = await sc.check();
    row.notes.unshift(answerBefore === answerAfter ? `answer checked before and after: ${answerBefore}` : `answer before: ${answerBefore}; after: ${answerAfter}`);
    if (res.failed > 0 && res.detail) row.notes.push(res.detail);
    const problems = sc.server.problems.slice(problemsBefore);
    if (problems.length) row.notes.push(`server logged ${problems.length} warn/error lines, first: ${problems[0]}`);
    if (res.failed > 0) row.notes.push(`${res.failed} requests failed`);
    if (row.cpuPct.backgroundBefore > BUSY_PCT) row.notes.push(`machine busy just before the run: ${Math.round(row.cpuPct.backgroundBefore)}% CPU used by other processes`);
    progress(`  ${fmtNum(res.rps)} req/s, p50 ${fmtMs(res.p50Ms)} ms, p99 ${fmtMs(res.p99Ms)} ms; CPU % server ${row.cpuPct.server}, loadgen ${row.cpuPct.loadgen}, other ${row.cpuPct.other}`);
  } catch (e) {
    row.error = (e as Error).message;
    harnessBroken = true;
    progress(`  FAILED: ${row.error}`);
  }
  rows.push(row);
  return row;
}

const fmtNum = (n: number | null) => (n === null || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US'));
const fmtMs = (n: number | null) => (n === null || !Number.isFinite(n) ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1));

function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(`wrong answer: ${what}`);
}

// ---------------------------------------------------------------- load generator

async function ensureLoadgen(): Promise<string[]> {
  const notes: string[] = [];
  const h2loadWorks = () => {
    try {
      h2loadVersion = execFileSync('h2load', ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
      return true;
    } catch {
      return false;
    }
  };
  if (LOADGEN_CHOICE === 'node') {
    loadgen = 'node';
    notes.push('load generator: bench/loadgen.ts (node:http2, separate process), chosen with --loadgen node');
    return notes;
  }
  if (!h2loadWorks() && !argv['no-install']) {
    progress('h2load not found: installing Debian package nghttp2-client');
    try {
      const env = { ...BASE_ENV, DEBIAN_FRONTEND: 'noninteractive' };
      execFileSync('timeout', ['300', 'apt-get', 'update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
      execFileSync('timeout', ['300', 'apt-get', 'install', '-y', '-q', 'nghttp2-client'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    } catch (e) {
      progress(`installing nghttp2-client failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (h2loadWorks()) {
    loadgen = 'h2load';
    notes.push(`load generator: ${h2loadVersion} (-t 1: one thread)`);
  } else {
    if (LOADGEN_CHOICE === 'h2load') throw new Error('h2load is not available (--loadgen h2load)');
    loadgen = 'node';
    notes.push('load generator: h2load unavailable (nghttp2-client could not be installed); FALLBACK to bench/loadgen.ts (node:http2 in a separate process). Its numbers are lower than h2load\'s: it costs more CPU per request.');
  }
  return notes;
}

// ---------------------------------------------------------------- Keyward

interface Keyward extends Server {
  adminToken: string;
}

async function freshDatabase(label: string): Promise<{ env: NodeJS.ProcessEnv; description: string }> {
  const base = process.env.DATABASE_URL;
  if (base) {
    const name = `keyward_bench_${label}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
    await admin.connect();
    try {
      await admin.query(`create database ${name}`);
    } finally {
      await admin.end();
    }
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    });
    const url = new URL(base);
    url.pathname = `/${name}`;
    return { env: { DATABASE_URL: url.toString() }, description: `PostgreSQL (fresh database ${name}, dropped at the end)` };
  }
  const dir = path.join(tmpDir, `keyward-${label}`);
  return { env: { KEYWARD_DATA_DIR: dir }, description: 'embedded PGlite (fresh data dir, removed at the end)' };
}

async function startKeyward(name: string, label: string, extraEnv: NodeJS.ProcessEnv): Promise<Keyward & { database: string }> {
  const db = await freshDatabase(label);
  const env: NodeJS.ProcessEnv = {
    ...BASE_ENV,
    ...db.env,
    PORT: '0',
    HOST: '127.0.0.1',
    KEYWARD_LOG_LEVEL: 'info',
    KEYWARD_BOOTSTRAP_ADMIN: 'true',
    KEYWARD_SHUTDOWN_GRACE_MS: '2000',
    ...extraEnv,
  };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  let adminToken = '';
  const server = await startServer(name, [path.join(ROOT, 'bin/keyward.js'), 'serve'], env, (out, err) => {
    adminToken ||= /^\s+(kws_\S+)\s*$/m.exec(out)?.[1] ?? '';
    for (const line of err.split('\n')) {
      if (!line.includes('keyward listening')) continue;
      try {
        const port = (JSON.parse(line) as { port?: number }).port;
        // The admin key is printed before the server listens.
        if (port && adminToken) return port;
      } catch {
        /* not a log line */
      }
    }
    return undefined;
  }, 120_000);
  if (!adminToken) throw new Error(`${name}: no admin SDK key on stdout`);
  return { ...server, adminToken, database: db.description };
}

interface Fixture {
  workspaceId: string;
  secret: string;
  /** Secrets of keys created for the cold scenario, never verified before it. */
  coldSecrets: string[];
}

async function setUp(kw: Keyward, coldKeys: number): Promise<Fixture> {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set('authorization', `Bearer ${kw.adminToken}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${kw.port}`, httpVersion: '2', useBinaryFormat: true, interceptors: [auth] });
  const ws = (await createClient(WorkspaceService, transport).createWorkspace({ workspace: { name: 'bench', keyPrefix: 'bench' } })).workspace!;
  await createClient(ScopeService, transport).createScope({ scope: { workspaceId: ws.id, name: 'balance_transfers' } });
  const keys = createClient(KeyService, transport);
  const newKey = async (name: string) =>
    (
      await keys.createKey({
        key: { workspaceId: ws.id, customerId: 'cus_bench', name, grants: [{ scope: 'balance_transfers', actions: [Action.READ] }] },
      })
    ).secret;
  const secret = await newKey('bench');
  const coldSecrets: string[] = [];
  if (coldKeys > 0) {
    const t0 = Date.now();
    const deadline = t0 + 15_000;
    let n = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (n < coldKeys && Date.now() < deadline) {
          n++;
          coldSecrets.push(await newKey(`cold ${n}`));
        }
      }),
    );
    progress(`  created ${coldSecrets.length} keys for the cold scenario in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { workspaceId: ws.id, secret, coldSecrets };
}

// ---------------------------------------------------------------- bodies and checks

const GRPC_HEADERS = (token: string) => ({ 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${token}` });
const CONNECT_HEADERS = (token: string) => ({ 'content-type': 'application/proto', 'connect-protocol-version': '1', authorization: `Bearer ${token}` });

function verifyMessage(key: string): Uint8Array {
  return toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key, requiredPermissions: ['balance_transfers:read'] }));
}

function writeBody(name: string, body: Uint8Array): string {
  const file = path.join(tmpDir, name);
  writeFileSync(file, body);
  return file;
}

function grpcCheck(port: number, reqPath: string, headers: Record<string, string>, body: Buffer, verify?: (message: Uint8Array) => string) {
  return async () => {
    const r = grpcResult(await h2Request(port, reqPath, headers, body));
    expect(r.grpcStatus === '0', `grpc-status ${r.grpcStatus} ${r.grpcMessage}`);
    return verify ? verify(r.message) : 'grpc-status 0';
  };
}

const expectVerify = (code: VerifyCode) => (message: Uint8Array) => {
  const res = fromBinary(VerifyKeyResponseSchema, message);
  expect(res.code === code && res.valid === (code === VerifyCode.VALID), `VerifyKey answered valid=${res.valid} code=${VerifyCode[res.code]}, expected ${VerifyCode[code]}`);
  return `grpc-status 0, ${VerifyCode[res.code]}`;
};

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
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'keyward-bench-'));
  cleanups.push(() => rmSync(tmpDir, { recursive: true, force: true }));
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
  const notes = await ensureLoadgen();
  meta.loadgen = loadgen === 'h2load' ? h2loadVersion : 'bench/loadgen.ts (node:http2)';

  const common = { connections: CONNS, streams: STREAMS, durationS: DURATION_S, warmupS: WARMUP_S };
  const ONE_AT_A_TIME = { connections: 1, streams: 1, durationS: 3, warmupS: 1 };
  const halfPeakDurationS = Math.max(DURATION_S, 8);
  // Baselines get the same request as Keyward: a well-formed key (they never look at it).
  const placeholderToken = `kws_00000000-0000-0000-0000-000000000000_${'x'.repeat(40)}`;
  const baselineBody = writeBody('baseline.bin', grpcFrame(verifyMessage(issueApiKey('bench').plaintext)));
  const baselineSpec = (port: number): LoadSpec => ({
    ...common,
    port,
    path: VERIFY_PATH,
    protocol: 'grpc',
    headers: GRPC_HEADERS(placeholderToken),
    bodyFile: baselineBody,
  });
  const baselineCheck = (port: number) => grpcCheck(port, VERIFY_PATH, GRPC_HEADERS(placeholderToken), readFileSync(baselineBody));

  // (a) (b) (c): the runtime's limit and two empty handlers.
  for (const [id, title, file] of [
    ['bare-http2', 'bare node:http2 gRPC responder', 'bench/servers/bare-http2.ts'],
    ['grpc-js-empty', '@grpc/grpc-js, empty VerifyKey', 'bench/servers/grpc-js-empty.ts'],
    ['connect-node-empty', 'connect-node, empty VerifyKey', 'bench/servers/connect-empty.ts'],
  ] as const) {
    if (!wanted(id, `${id}-1x1`)) continue;
    let server: Server | undefined;
    try {
      server = await startServer(id, [RUN_TS, path.join(ROOT, file)], BASE_ENV, listeningLine);
      await measure({ id, title, server, spec: baselineSpec(server.port), check: baselineCheck(server.port) });
      if (id === 'bare-http2') {
        await measure({
          id: 'bare-http2-1x1',
          title: 'bare node:http2, one request at a time',
          server,
          spec: { ...baselineSpec(server.port), ...ONE_AT_A_TIME },
          check: baselineCheck(server.port),
          latency: true,
        });
      }
    } catch (e) {
      failedRow(id, title, id, e);
    } finally {
      if (server) await stopServer(server);
    }
  }

  // (d) Keyward as configured by default (KEYWARD_VERIFY_FAST_PATH unset).
  let peak: number | null = null;
  if (wanted('verify-hit-grpc', 'verify-hit-grpc-1x1', 'verify-hit-connect', 'verify-miss-unknown', 'verify-miss-distinct', 'verify-cold', 'create-key')) {
    let kw: (Keyward & { database: string }) | undefined;
    try {
      progress('starting Keyward (KEYWARD_VERIFY_FAST_PATH unset)');
      kw = await startKeyward('keyward', 'fast', {});
      meta.database = kw.database;
      const fx = await setUp(kw, COLD_KEYS);
      const tok = kw.adminToken;
      const hitMsg = verifyMessage(fx.secret);
      const hitGrpc = Buffer.from(grpcFrame(hitMsg));
      const hitBody = writeBody('hit.grpc.bin', hitGrpc);
      const hitConnect = writeBody('hit.connect.bin', hitMsg);
      const unknownGrpc = grpcFrame(verifyMessage(issueApiKey('bench').plaintext));
      const unknownBody = writeBody('unknown.grpc.bin', unknownGrpc);
      const grpcSpec = (body: string): LoadSpec => ({ ...common, port: kw!.port, path: VERIFY_PATH, protocol: 'grpc', headers: GRPC_HEADERS(tok), bodyFile: body });
      const hitCheck = grpcCheck(kw.port, VERIFY_PATH, GRPC_HEADERS(tok), hitGrpc, expectVerify(VerifyCode.VALID));

      const hit = await measure({ id: 'verify-hit-grpc', title: 'Keyward VerifyKey, cache hit', server: kw, spec: grpcSpec(hitBody), check: hitCheck });
      peak = hit.rps;
      if (peak) {
        const rate = peak / 2;
        await measure({
          id: 'verify-hit-grpc-half-peak',
          title: 'Keyward VerifyKey, cache hit, at half of peak',
          server: kw,
          spec: { ...grpcSpec(hitBody), rate, connections: 1, durationS: halfPeakDurationS },
          check: hitCheck,
          notes: [`target rate ${Math.round(rate)} req/s = half of the measured peak ${Math.round(peak)}`],
        });
      }
      await measure({
        id: 'verify-hit-grpc-1x1',
        title: 'Keyward VerifyKey, cache hit, one request at a time',
        server: kw,
        spec: { ...grpcSpec(hitBody), ...ONE_AT_A_TIME },
        check: hitCheck,
        latency: true,
      });
      await measure({
        id: 'verify-hit-connect',
        title: 'Keyward VerifyKey, cache hit',
        server: kw,
        spec: { ...common, port: kw.port, path: VERIFY_PATH, protocol: 'connect', headers: CONNECT_HEADERS(tok), bodyFile: hitConnect },
        check: async () => {
          const a = await h2Request(kw!.port, VERIFY_PATH, CONNECT_HEADERS(tok), Buffer.from(hitMsg));
          expect(a.status === 200, `HTTP ${a.status} ${a.data.toString('utf8').slice(0, 200)}`);
          return `HTTP 200, ${expectVerify(VerifyCode.VALID)(a.data)}`;
        },
      });
      await measure({
        id: 'verify-miss-unknown',
        title: 'Keyward VerifyKey, unknown well-formed key (one key: negative cache)',
        server: kw,
        spec: grpcSpec(unknownBody),
        check: grpcCheck(kw.port, VERIFY_PATH, GRPC_HEADERS(tok), unknownGrpc, expectVerify(VerifyCode.NOT_FOUND)),
      });
      // h2load sends one body; distinct keys, each sent once, need bench/loadgen.ts.
      const distinctUnknown = Array.from({ length: UNKNOWN_KEYS }, () => grpcFrame(verifyMessage(issueApiKey('bench').plaintext)));
      const unknownsFile = path.join(tmpDir, 'unknown-distinct.bodies');
      writeFileSync(unknownsFile, packBodies(distinctUnknown));
      await measure({
        id: 'verify-miss-distinct',
        title: 'Keyward VerifyKey, distinct unknown well-formed keys (1 query each)',
        server: kw,
        forceNode: true,
        spec: { ...grpcSpec(unknownBody), bodyFile: undefined, bodiesFile: unknownsFile },
        check: grpcCheck(kw.port, VERIFY_PATH, GRPC_HEADERS(tok), Buffer.from(grpcFrame(verifyMessage(issueApiKey('bench').plaintext))), expectVerify(VerifyCode.NOT_FOUND)),
        notes: [`${distinctUnknown.length} distinct keys with valid checksums, never issued, each verified once`],
      });
      if (fx.coldSecrets.length > 1) {
        // The first cold key is spent on the checks; the others are each verified exactly once.
        const [probe, ...cold] = fx.coldSecrets;
        const coldFile = path.join(tmpDir, 'cold.bodies');
        writeFileSync(coldFile, packBodies(cold.map((s) => grpcFrame(verifyMessage(s)))));
        await measure({
          id: 'verify-cold',
          title: 'Keyward VerifyKey, cold: valid keys not in cache (1 query each)',
          server: kw,
          forceNode: true,
          spec: { ...grpcSpec(hitBody), bodyFile: undefined, bodiesFile: coldFile },
          check: grpcCheck(kw.port, VERIFY_PATH, GRPC_HEADERS(tok), Buffer.from(grpcFrame(verifyMessage(probe!))), expectVerify(VerifyCode.VALID)),
          notes: [`${cold.length} distinct valid keys created beforehand, each verified once`],
        });
      }
      const createMsg = grpcFrame(
        toBinary(
          CreateKeyRequestSchema,
          create(CreateKeyRequestSchema, {
            key: { workspaceId: fx.workspaceId, customerId: 'cus_bench_create', name: 'bench create', grants: [{ scope: 'balance_transfers', actions: [Action.READ] }] },
          }),
        ),
      );
      await measure({
        id: 'create-key',
        title: 'Keyward CreateKey (management write)',
        server: kw,
        spec: { ...common, connections: 4, streams: 4, port: kw.port, path: CREATE_PATH, protocol: 'grpc', headers: GRPC_HEADERS(tok), bodyFile: writeBody('create.grpc.bin', createMsg) },
        check: grpcCheck(kw.port, CREATE_PATH, GRPC_HEADERS(tok), createMsg, (m) => {
          const res = fromBinary(CreateKeyResponseSchema, m);
          expect(res.secret.startsWith('bench_') && !!res.key?.id, 'CreateKey returned no key or secret');
          return 'grpc-status 0, key created';
        }),
      });
    } catch (e) {
      failedRow('keyward', 'Keyward (default path)', 'keyward', e);
    } finally {
      if (kw) await stopServer(kw);
    }
  }

  // (e) Keyward on the stock connect-node path.
  if (wanted('verify-hit-grpc-stock')) {
    let kw: (Keyward & { database: string }) | undefined;
    try {
      progress('starting Keyward (KEYWARD_VERIFY_FAST_PATH=false)');
      kw = await startKeyward('keyward-stock', 'stock', { KEYWARD_VERIFY_FAST_PATH: 'false' });
      const fx = await setUp(kw, 0);
      const hitGrpc = Buffer.from(grpcFrame(verifyMessage(fx.secret)));
      await measure({
        id: 'verify-hit-grpc-stock',
        title: 'Keyward VerifyKey, cache hit, stock path (FAST_PATH=false)',
        server: kw,
        spec: { ...common, port: kw.port, path: VERIFY_PATH, protocol: 'grpc', headers: GRPC_HEADERS(kw.adminToken), bodyFile: writeBody('stock.grpc.bin', hitGrpc) },
        check: grpcCheck(kw.port, VERIFY_PATH, GRPC_HEADERS(kw.adminToken), hitGrpc, expectVerify(VerifyCode.VALID)),
      });
    } catch (e) {
      failedRow('keyward-stock', 'Keyward (stock path)', 'keyward-stock', e);
    } finally {
      if (kw) await stopServer(kw);
    }
  }

  // (a) again: the same paced load against bare http2, the floor of what the
  // load generator and the runtime add to latency at that rate.
  if (peak) {
    let server: Server | undefined;
    try {
      server = await startServer('bare-http2', [RUN_TS, path.join(ROOT, 'bench/servers/bare-http2.ts')], BASE_ENV, listeningLine);
      await measure({
        id: 'bare-http2-same-rate',
        title: 'bare node:http2 at the rate of the half-peak row',
        server,
        spec: { ...baselineSpec(server.port), rate: peak / 2, connections: 1, durationS: halfPeakDurationS },
        check: baselineCheck(server.port),
        notes: ['the latency floor of this load generator and runtime at that rate'],
      });
    } catch (e) {
      failedRow('bare-http2-same-rate', 'bare node:http2 at the half-peak rate', 'bare-http2', e);
    } finally {
      if (server) await stopServer(server);
    }
  }

  // ------------------------------------------------------------ report
  const bare = rows.find((r) => r.id === 'bare-http2')?.rps ?? null;
  for (const r of rows) r.ratioToBare = bare && r.rps !== null && r.kind === 'peak' ? r.rps / bare : null;
  const get = (id: string) => rows.find((r) => r.id === id);
  const hit = get('verify-hit-grpc');
  const grpcjs = get('grpc-js-empty');
  const half = get('verify-hit-grpc-half-peak');
  const targets = [
    {
      target: 'cached VerifyKey gRPC >= 0.70 x bare http2',
      pass: hit?.rps != null && bare != null ? hit.rps >= 0.7 * bare : null,
      value: hit?.rps != null && bare != null ? `${(hit.rps / bare).toFixed(3)} x (${fmtNum(hit.rps)} vs ${fmtNum(bare)} req/s)` : 'not measured',
    },
    {
      target: 'cached VerifyKey gRPC > grpc-js empty handler',
      pass: hit?.rps != null && grpcjs?.rps != null ? hit.rps > grpcjs.rps : null,
      value: hit?.rps != null && grpcjs?.rps != null ? `${fmtNum(hit.rps)} vs ${fmtNum(grpcjs.rps)} req/s` : 'not measured',
    },
    {
      target: 'p99 <= 1 ms for cached VerifyKey at half of peak',
      pass: half?.p99Ms != null ? half.p99Ms <= 1 : null,
      value:
        half?.p99Ms != null
          ? `p99 ${fmtMs(half.p99Ms)} ms at ${fmtNum(half.rps)} req/s (paced at ${fmtNum(peak! / 2)}, half of the peak; the generator sent ${Math.round((100 * half.rps!) / (peak! / 2))}% of that), client-side; floor (bare http2, same generator and rate): p99 ${fmtMs(get('bare-http2-same-rate')?.p99Ms ?? null)} ms; one request at a time: p99 ${fmtMs(get('verify-hit-grpc-1x1')?.p99Ms ?? null)} ms (bare ${fmtMs(get('bare-http2-1x1')?.p99Ms ?? null)} ms)`
          : 'not measured',
    },
  ];
  meta.totalS = Math.round((Date.now() - started) / 1000);
  meta.notes = [
    ...notes,
    `2 cores: the load generator and the server share them; cpu% columns say who used what (100 = one core; "other" = database, kernel and anything else running).`,
    `srv us/req = server process CPU per request${process.env.DATABASE_URL ? ' (the PostgreSQL server\'s CPU is in "other")' : ' (embedded PGlite runs inside the server process, so it is included)'}.`,
    loadgen === 'h2load'
      ? `paced rows: one connection, requests sent one every 1/rate s from an h2load timing script (open loop; a request h2load sends late is timed from when it was sent); the bare-http2-same-rate row shows what the generator and the runtime cost on their own at that rate.`
      : `paced rows: bench/loadgen.ts releases due requests every 1 ms; the bare-http2-same-rate row shows what the generator and the runtime cost on their own.`,
    `p50/p99 are client-side (h2load --log-file or bench/loadgen.ts), from request start to end of response; at full load they are queueing times of ${CONNS * STREAMS} requests in flight.`,
  ];
  const result = { meta, scenarios: rows, targets };

  const out: string[] = [];
  out.push('');
  out.push(`Keyward bench: ${meta.date}, node ${process.version}, ${meta.cpus} CPUs, ${meta.loadgen}, ${meta.database ?? 'no database'}`);
  out.push(`src at ${(meta.git as { commit: string }).commit}${(meta.git as { srcDirty: boolean }).srcDirty ? ' + uncommitted changes' : ''}; ${meta.fastPathInSource ? 'KEYWARD_VERIFY_FAST_PATH is read by src/' : 'KEYWARD_VERIFY_FAST_PATH is NOT read by src/: both Keyward instances run the same code'}`);
  const busiest = Math.max(0, ...rows.map((r) => r.cpuPct.backgroundBefore).filter(Number.isFinite));
  meta.maxBackgroundCpuPct = Math.round(busiest);
  if (busiest > BUSY_PCT) {
    out.push(`WARNING: other processes used up to ${Math.round(busiest)}% CPU (100 = one core) just before some scenarios: those numbers are disturbed; rerun on a quiet machine.`);
  }
  out.push('');
  out.push(table(rows));
  out.push('');
  for (const t of targets) out.push(`${t.pass === null ? 'MISS' : t.pass ? 'PASS' : 'MISS'}  ${t.target}: ${t.value}`);
  const us = (id: string) => get(id)?.serverUsPerReq ?? null;
  const bareUs = us('bare-http2');
  const hitUs = us('verify-hit-grpc');
  if (bareUs && hitUs) {
    const cpuInfo = [
      `info  server CPU per request (us): bare ${bareUs.toFixed(0)}, grpc-js empty ${us('grpc-js-empty')?.toFixed(0) ?? '-'}, connect-node empty ${us('connect-node-empty')?.toFixed(0) ?? '-'}, VerifyKey hit ${hitUs.toFixed(0)}, stock path ${us('verify-hit-grpc-stock')?.toFixed(0) ?? '-'}`,
      `info  by CPU per request, cached VerifyKey gRPC = ${(bareUs / hitUs).toFixed(2)} x bare http2 (the req/s ratio one would get if each had a core to itself)`,
    ];
    out.push(...cpuInfo);
    meta.cpuNormalizedHitToBare = Number((bareUs / hitUs).toFixed(3));
  }
  out.push('');
  for (const r of rows) {
    const n = r.error ? [`ERROR: ${r.error.split('\n')[0]}`, ...r.notes] : r.notes;
    out.push(`${r.id}: ${n.join('; ')}`);
  }
  for (const n of meta.notes as string[]) out.push(`note: ${n}`);
  out.push(`total time ${meta.totalS} s`);
  process.stdout.write(out.join('\n') + '\n');

  const resultsDir = path.join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, 'latest.json'), JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(`\nJSON (also in bench/results/latest.json):\n${JSON.stringify(result)}\n`);
}

function failedRow(id: string, title: string, server: string, e: unknown): void {
  harnessBroken = true;
  const msg = (e as Error)?.message ?? String(e);
  progress(`${id} FAILED: ${msg}`);
  rows.push({
    id,
    kind: 'peak',
    scenario: title,
    server,
    protocol: '-',
    generator: '-',
    load: '-',
    ...noMeasurement(),
    notes: [],
    error: msg.slice(0, 4000),
  });
}

function table(rs: Row[]): string {
  const head = ['scenario', 'protocol', 'gen', 'load', 'req/s', 'p50 ms', 'p99 ms', 'x bare', 'srv us/req', 'cpu% srv/gen/other'];
  const body = rs.map((r) => [
    r.id,
    r.protocol,
    r.generator,
    r.load,
    r.error ? 'ERROR' : fmtNum(r.rps),
    fmtMs(r.p50Ms),
    fmtMs(r.p99Ms),
    r.ratioToBare === null ? '-' : r.ratioToBare.toFixed(2),
    r.serverUsPerReq === null || !Number.isFinite(r.serverUsPerReq) ? '-' : r.serverUsPerReq.toFixed(0),
    Number.isFinite(r.cpuPct.server) ? `${r.cpuPct.server}/${r.cpuPct.loadgen}/${r.cpuPct.other}` : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([4, 5, 6, 7, 8, 9]);
  const line = (cells: string[]) => '| ' + cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (right.has(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|', ...body.map(line)].join('\n');
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
