// The load generators: h2load (Debian's nghttp2-client, installed on demand)
// and bench/loadgen.ts (node:http2 in its own process), behind one LoadSpec.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { packBodies, quantile } from './lib.js';
import type { LoadgenConfig, LoadgenResult } from './loadgen.js';
import { LOADGEN_CHOICE, NO_INSTALL, ROOT, RUN_TS, progress } from './options.js';
import { BASE_ENV, runCommand, tmpPath, writeTmp } from './processes.js';

export interface LoadSpec {
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

export interface LoadResult {
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

/** CPU seconds of the children of `bash`, from its `times` output (last line: children's user and system). */
function childCpuFromTimes(stderr: string): number {
  const lines = stderr.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  const m = [...last.matchAll(/(\d+)m([\d.]+)s/g)];
  if (m.length < 2) return NaN;
  return m.slice(0, 2).reduce((a, x) => a + Number(x[1]) * 60 + Number(x[2]), 0);
}

/**
 * Paced load for h2load: a timing script of warm-up plus duration at `rate`,
 * one request every 1/rate s. h2load's --rps releases each connection's due
 * requests on a timer of at least 10 ms, so load paced that way arrives in
 * bursts; a timing script is replayed by each connection on its own, so a
 * paced run uses one connection (with up to `streams` requests in flight).
 */
function writeTimingScript(spec: LoadSpec, tag: string): string {
  const uri = `http://127.0.0.1:${spec.port}${spec.path}`;
  const n = Math.round(spec.rate! * (spec.warmupS + spec.durationS));
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${((i * 1000) / spec.rate!).toFixed(3)}\t${uri}`);
  return writeTmp(`${tag}.timing`, `${lines.join('\n')}\n`);
}

export async function runH2load(spec: LoadSpec, tag: string): Promise<LoadResult> {
  const logFile = tmpPath(`${tag}.h2load.log`);
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
export async function runNodeLoadgen(spec: LoadSpec, tag: string, onReady: () => void): Promise<LoadResult> {
  const bodiesFile = spec.bodiesFile ?? writeTmp(`${tag}.bodies`, packBodies([readFileSync(spec.bodyFile!)]));
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
  const cfgFile = writeTmp(`${tag}.loadgen.json`, JSON.stringify(cfg));
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

export interface LoadgenChoice {
  loadgen: 'h2load' | 'node';
  /** `h2load --version`, when h2load is used. */
  h2loadVersion: string;
  notes: string[];
}

/** Picks the load generator (--loadgen), installing h2load when it is missing (unless --no-install). */
export async function ensureLoadgen(): Promise<LoadgenChoice> {
  let h2loadVersion = '';
  const h2loadWorks = () => {
    try {
      h2loadVersion = execFileSync('h2load', ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
      return true;
    } catch {
      return false;
    }
  };
  if (LOADGEN_CHOICE === 'node') {
    return { loadgen: 'node', h2loadVersion, notes: ['load generator: bench/loadgen.ts (node:http2, separate process), chosen with --loadgen node'] };
  }
  if (!h2loadWorks() && !NO_INSTALL) {
    progress('h2load not found: installing Debian package nghttp2-client');
    try {
      const env = { ...BASE_ENV, DEBIAN_FRONTEND: 'noninteractive' };
      execFileSync('timeout', ['300', 'apt-get', 'update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'], env });
      execFileSync('timeout', ['300', 'apt-get', 'install', '-y', '-q', 'nghttp2-client'], { stdio: ['ignore', 'ignore', 'inherit'], env });
    } catch (e) {
      progress(`installing nghttp2-client failed: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (h2loadWorks()) return { loadgen: 'h2load', h2loadVersion, notes: [`load generator: ${h2loadVersion} (-t 1: one thread)`] };
  if (LOADGEN_CHOICE === 'h2load') throw new Error('h2load is not available (--loadgen h2load)');
  return {
    loadgen: 'node',
    h2loadVersion,
    notes: [
      "load generator: h2load unavailable (nghttp2-client could not be installed); FALLBACK to bench/loadgen.ts (node:http2 in a separate process). Its numbers are lower than h2load's: it costs more CPU per request.",
    ],
  };
}
