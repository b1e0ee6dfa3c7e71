// A small HTTP/2 load generator in its own process, used by bench/run.ts
//  - as the fallback when h2load (Debian's nghttp2-client) is unavailable;
//  - for the scenarios h2load cannot express: a different request body for
//    every request (cold VerifyKey over many distinct keys, each verified once).
//    Over gRPC those go as raw HTTP/2 frames (bench/raw-h2.ts), at a fraction
//    of node:http2's client CPU, which used to be the bottleneck of the rows.
// Usage: node bin/run-ts.js bench/loadgen.ts <config.json>
// Prints one JSON line (LoadgenResult) on stdout.
//
// Latency is measured per request with process.hrtime.bigint(), from the
// moment the request is handed to node:http2 to the end of its response
// (trailers included). In paced mode requests are released on a 1 ms tick, so
// a request is never timed from before it was actually sent.
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { quantile, readBodies } from './lib.js';
import { RAW_MAX_BODY, RawH2Connection } from './raw-h2.js';

export interface LoadgenConfig {
  /** e.g. http://127.0.0.1:8080 */
  origin: string;
  path: string;
  headers: Record<string, string>;
  /** Files of request bodies: each body preceded by its length as a 4-byte big-endian integer. */
  bodiesFile: string;
  /** grpc: success is grpc-status 0; connect: success is HTTP 200. */
  protocol: 'grpc' | 'connect';
  connections: number;
  /** Requests in flight per connection at most. */
  streams: number;
  /** Send each body at most once (no warm-up); stop when all are answered or durationS has passed. */
  once: boolean;
  durationS: number;
  warmupS: number;
  /** Total requests per second to release (paced mode); 0 = as fast as possible (closed loop). */
  rate: number;
}

export interface LoadgenResult {
  requests: number;
  ok: number;
  failed: number;
  /** Count of each grpc-status (grpc) or HTTP status (connect) seen. */
  statuses: Record<string, number>;
  elapsedS: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
  /** CPU seconds this process used from READY to the end. */
  cpuS: number;
  /** Paced mode: requests not sent because every connection had `streams` in flight. */
  dropped: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadgenConfig;
  const bodies = readBodies(cfg.bodiesFile);
  if (bodies.length === 0) throw new Error('no request bodies');
  // Raw frames carry a body in one DATA frame within the first stream window: small bodies only (not ImportKeys').
  if (cfg.once && cfg.protocol === 'grpc' && bodies.every((b) => b.length <= RAW_MAX_BODY)) return runRaw(cfg, bodies);

  const sessions: http2.ClientHttp2Session[] = [];
  for (let i = 0; i < cfg.connections; i++) {
    const s = http2.connect(cfg.origin);
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    sessions.push(s);
  }
  const inflight = new Array<number>(cfg.connections).fill(0);
  const reqHeaders = { ':method': 'POST', ':path': cfg.path, ...cfg.headers };

  // The runner starts its CPU accounting when it reads this line.
  process.stderr.write('READY\n');
  const cpu0 = process.cpuUsage();
  const startNs = process.hrtime.bigint();
  const warmupEndNs = cfg.once ? startNs : startNs + BigInt(Math.round(cfg.warmupS * 1e9));
  const endNs = warmupEndNs + BigInt(Math.round(cfg.durationS * 1e9));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let next = 0;
  let stopping = false;
  let lastDoneNs = startNs;
  let outstanding = 0;
  let dropped = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));

  const send = (conn: number) => {
    const body = bodies[next % bodies.length]!;
    next++;
    inflight[conn]!++;
    outstanding++;
    const t0 = process.hrtime.bigint();
    let status = '';
    const req = sessions[conn]!.request(reqHeaders);
    req.on('response', (h) => {
      if (cfg.protocol === 'connect') status = String(h[':status']);
      else if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
      else if (h[':status'] !== 200) status = `http ${h[':status']}`;
    });
    req.on('trailers', (t) => {
      if (cfg.protocol === 'grpc' && t['grpc-status'] !== undefined) status = String(t['grpc-status']);
    });
    req.on('data', () => {});
    const done = () => {
      const t1 = process.hrtime.bigint();
      inflight[conn]!--;
      outstanding--;
      const s = status || 'none';
      const counted = cfg.once ? t1 <= endNs : t0 >= warmupEndNs && t1 <= endNs;
      if (counted) {
        statuses[s] = (statuses[s] ?? 0) + 1;
        const good = cfg.protocol === 'connect' ? s === '200' : s === '0';
        if (good) ok++;
        else failed++;
        latencies.push(Number(t1 - t0) / 1e6);
        if (t1 > lastDoneNs) lastDoneNs = t1;
      }
      onSlotFree(conn);
    };
    req.on('close', done);
    req.on('error', () => {
      status = status || 'error';
    });
    req.end(body);
  };

  const onSlotFree = (conn: number) => {
    if (cfg.once) {
      if (next < bodies.length && process.hrtime.bigint() < endNs) send(conn);
      else if (outstanding === 0) finish();
      return;
    }
    if (stopping) {
      if (outstanding === 0) finish();
      return;
    }
    if (cfg.rate === 0) send(conn);
  };

  if (cfg.rate > 0 && !cfg.once) {
    // Paced: release the requests that are due every millisecond, round-robin.
    let released = 0;
    let rr = 0;
    const tick = setInterval(() => {
      const now = process.hrtime.bigint();
      if (now >= endNs) {
        stopping = true;
        clearInterval(tick);
        if (outstanding === 0) finish();
        return;
      }
      const due = Math.floor((Number(now - startNs) / 1e9) * cfg.rate) - released;
      for (let i = 0; i < due; i++) {
        let tries = 0;
        while (inflight[rr]! >= cfg.streams && tries < cfg.connections) {
          rr = (rr + 1) % cfg.connections;
          tries++;
        }
        released++;
        if (inflight[rr]! >= cfg.streams) {
          dropped++; // every connection full
          continue;
        }
        send(rr);
        rr = (rr + 1) % cfg.connections;
      }
    }, 1);
  } else {
    for (let c = 0; c < cfg.connections; c++) {
      for (let i = 0; i < cfg.streams; i++) {
        if (cfg.once && next >= bodies.length) break;
        send(c);
      }
    }
    if (!cfg.once) {
      setTimeout(
        () => {
          stopping = true;
          if (outstanding === 0) finish();
        },
        Number(endNs - startNs) / 1e6,
      );
    }
  }

  await finished;
  for (const s of sessions) s.close();
  const cpu = process.cpuUsage(cpu0);
  const elapsedS = cfg.once ? Number(lastDoneNs - startNs) / 1e9 : cfg.durationS;
  const sorted = Float64Array.from(latencies).sort();
  const sum = latencies.reduce((a, b) => a + b, 0);
  const result: LoadgenResult = {
    requests: latencies.length,
    ok,
    failed,
    statuses,
    elapsedS,
    rps: latencies.length / elapsedS,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: latencies.length ? sum / latencies.length : NaN,
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    cpuS: (cpu.user + cpu.system) / 1e6,
    dropped,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/**
 * Each body once over gRPC, as raw HTTP/2 frames (bench/raw-h2.ts): the
 * closed loop of the node:http2 path below, at a fraction of its CPU.
 */
async function runRaw(cfg: LoadgenConfig, bodies: Buffer[]): Promise<void> {
  const conns = await Promise.all(Array.from({ length: cfg.connections }, () => RawH2Connection.connect(cfg.origin, cfg.path, cfg.headers)));
  process.stderr.write('READY\n');
  const cpu0 = process.cpuUsage();
  const startNs = process.hrtime.bigint();
  const endNs = startNs + BigInt(Math.round(cfg.durationS * 1e9));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let next = 0;
  let lastDoneNs = startNs;
  const worker = async (conn: RawH2Connection) => {
    while (next < bodies.length && process.hrtime.bigint() < endNs) {
      const body = bodies[next++]!;
      const t0 = process.hrtime.bigint();
      const o = await conn.request(body);
      const t1 = process.hrtime.bigint();
      if (t1 > endNs) break;
      statuses[o.status] = (statuses[o.status] ?? 0) + 1;
      if (o.ok) ok++;
      else failed++;
      latencies.push(Number(t1 - t0) / 1e6);
      lastDoneNs = t1;
    }
  };
  await Promise.all(conns.flatMap((c) => Array.from({ length: cfg.streams }, () => worker(c))));
  for (const c of conns) c.close();
  const cpu = process.cpuUsage(cpu0);
  const elapsedS = Number(lastDoneNs - startNs) / 1e9;
  const sorted = Float64Array.from(latencies).sort();
  const result: LoadgenResult = {
    requests: latencies.length,
    ok,
    failed,
    statuses,
    elapsedS,
    rps: latencies.length / elapsedS,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: latencies.length ? latencies.reduce((a, b) => a + b, 0) / latencies.length : Number.NaN,
    maxMs: sorted.length ? sorted[sorted.length - 1]! : Number.NaN,
    cpuS: (cpu.user + cpu.system) / 1e6,
    dropped: 0,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`loadgen: ${(e as Error)?.message ?? String(e)}\n`);
    process.exit(1);
  },
);
