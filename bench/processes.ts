// The child processes of the bench (servers and load generators), their CPU
// accounting, the scratch directory, and the clean-up at the end or on a signal.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { ROOT, RUN_TS, SERVER_NODE_ARGS, WAIT_QUIET_S, progress } from './options.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- cleanup

const children = new Set<ChildProcess>();
export const cleanups: Array<() => Promise<void> | void> = [];
let cleaningUp = false;
export const isCleaningUp = () => cleaningUp;

export async function cleanup(): Promise<void> {
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

let tmpDir = '';
/** Creates the scratch directory (removed at the end). */
export function makeTmpDir(): void {
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'keyward-bench-'));
  cleanups.push(() => rmSync(tmpDir, { recursive: true, force: true }));
}
/** A path in the scratch directory. */
export const tmpPath = (name: string) => path.join(tmpDir, name);
/** Writes a file in the scratch directory; returns its path. */
export function writeTmp(name: string, data: Uint8Array | string): string {
  const file = tmpPath(name);
  writeFileSync(file, data);
  return file;
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
export function processCpuS(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // With its child processes (KEYWARD_WORKERS): the server is all of them.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK + childrenOf(pid).reduce((a, c) => a + (processCpuS(c) || 0), 0);
  } catch {
    return NaN;
  }
}

/** The processes `pid` started (none when /proc does not say). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Busy and total CPU seconds of the whole machine (all cores) so far. */
export function machineCpuS(): { busy: number; total: number } {
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
export const BUSY_PCT = 25;

/** Waits up to --wait-quiet seconds for the machine to be quiet; returns the last background CPU seen. */
export async function waitQuiet(): Promise<number> {
  const deadline = Date.now() + WAIT_QUIET_S * 1000;
  let pct = await backgroundCpuPct();
  if (pct > BUSY_PCT && Date.now() < deadline) progress(`  waiting for other processes to go quiet (${Math.round(pct)}% CPU)`);
  while (pct > BUSY_PCT && Date.now() < deadline) pct = await backgroundCpuPct(1000);
  return pct;
}

// ---------------------------------------------------------------- servers

export interface Server {
  name: string;
  proc: ChildProcess;
  port: number;
  /** Log lines at warn or error level since start (Keyward only). */
  problems: string[];
  stdout: string;
}

/** This process's environment without Keyward's settings: every child starts from it. */
export const BASE_ENV = (() => {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('KEYWARD_') || k === 'PORT' || k === 'HOST' || k === 'DATABASE_URL') continue;
    env[k] = v;
  }
  return env;
})();

/** Starts a child that announces its port; `portOf` reads it from stdout/stderr text. */
export function startServer(
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

export async function stopServer(s: Server): Promise<void> {
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

/** Starts one of bench/servers/*.ts, which prints `LISTENING <port>`. */
export const startBenchServer = (name: string, file: string) => startServer(name, [RUN_TS, path.join(ROOT, file)], BASE_ENV, listeningLine);

// ---------------------------------------------------------------- commands

export interface Command {
  code: number | null;
  stdout: string;
  stderr: string;
  wallS: number;
}

export function runCommand(cmd: string, args: string[], timeoutS: number, onStderr?: (text: string) => void): Promise<Command> {
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

// ---------------------------------------------------------------- one request, checked

export interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  data: Buffer;
}

export function h2Request(port: number, reqPath: string, headers: Record<string, string>, body: Buffer): Promise<H2Answer> {
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
export function grpcResult(a: H2Answer): { grpcStatus: string; grpcMessage: string; message: Uint8Array } {
  const grpcStatus = String(a.trailers['grpc-status'] ?? a.headers['grpc-status'] ?? `http ${a.status}`);
  const grpcMessage = decodeURIComponent(String(a.trailers['grpc-message'] ?? a.headers['grpc-message'] ?? ''));
  const message = a.data.length >= 5 ? a.data.subarray(5, 5 + a.data.readUInt32BE(1)) : new Uint8Array();
  return { grpcStatus, grpcMessage, message };
}
