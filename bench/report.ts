// The rows of a run and what is printed and written of them: the table, the
// targets (PASS/MISS), the notes, and bench/results/latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CONNS, ROOT, STREAMS } from './options.js';
import { BUSY_PCT } from './processes.js';

export interface Row {
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
  /** Database round trips per verification (lookups, change-feed barriers, remaining-uses writes), from Keyward's /metrics; null for other rows. */
  dbQueriesPerVerify: number | null;
  requests: number;
  failed: number;
  cpuPct: { server: number; loadgen: number; other: number; backgroundBefore: number };
  notes: string[];
  error?: string;
}

/** The fields of a row before (or without) a measurement; a new object each time, as rows fill them in. */
export const noMeasurement = () =>
  ({
    rps: null,
    p50Ms: null,
    p99Ms: null,
    meanMs: null,
    maxMs: null,
    ratioToBare: null,
    serverUsPerReq: null,
    dbQueriesPerVerify: null,
    requests: 0,
    failed: 0,
    cpuPct: { server: NaN, loadgen: NaN, other: NaN, backgroundBefore: NaN },
  }) satisfies Partial<Row>;

export const fmtNum = (n: number | null) => (n === null || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US'));
export const fmtMs = (n: number | null) => (n === null || !Number.isFinite(n) ? '-' : n < 10 ? n.toFixed(2) : n.toFixed(1));

/** Prints the report on stdout and writes it to bench/results/latest.json; fills in each row's ratio to bare http2. */
export function report(rows: Row[], meta: Record<string, unknown>, loadgenNotes: string[], loadgen: 'h2load' | 'node', started: number): void {
  const bare = rows.find((r) => r.id === 'bare-http2')?.rps ?? null;
  for (const r of rows) r.ratioToBare = bare && r.rps !== null && r.kind === 'peak' ? r.rps / bare : null;
  const get = (id: string) => rows.find((r) => r.id === id);
  const hit = get('verify-hit-grpc');
  const peak = hit?.rps ?? null;
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
  const ratio = (id: string) => (get(id)?.rps != null && bare != null ? get(id)!.rps! / bare : null);
  const ratioRow = (id: string, min: number, what: string) => ({
    target: `${what} >= ${min.toFixed(2)} x bare http2`,
    pass: ratio(id) === null ? null : ratio(id)! >= min,
    value:
      ratio(id) === null
        ? 'not measured'
        : `${ratio(id)!.toFixed(3)} x (${fmtNum(get(id)!.rps)} req/s, ${get(id)!.dbQueriesPerVerify?.toFixed(4) ?? '-'} db queries a verification)`,
  });
  const rate = (id: string, min: number, what: string, per = 1) => ({
    target: `${what} >= ${fmtNum(min)}/s`,
    pass: get(id)?.rps == null ? null : get(id)!.rps! * per >= min,
    value: get(id)?.rps == null ? 'not measured' : `${fmtNum(get(id)!.rps! * per)}/s`,
  });
  targets.push(
    ratioRow('verify-miss-distinct', 0.6, 'never-issued keys (membership filter)'),
    // The same path with h2load as the generator: a never-issued key is answered by the filter every time, never cached.
    ratioRow('verify-miss-unknown', 0.6, 'a never-issued key again and again (membership filter, h2load)'),
    ratioRow('verify-hit-ratelimited-redis', 0.5, 'rate-limited key (Redis)'),
    ratioRow('verify-hit-remaining-uses-hot', 0.25, 'key with remaining uses, 256 at a time'),
    rate('create-key', 1500, 'CreateKey'),
    rate('create-key-2-workers', 1500, 'CreateKey, KEYWARD_WORKERS=2'),
    rate('import-keys', 20_000, 'ImportKeys, keys', 1000),
  );
  meta.totalS = Math.round((Date.now() - started) / 1000);
  meta.notes = [
    ...loadgenNotes,
    `2 cores: the load generator and the server share them; cpu% columns say who used what (100 = one core; "other" = database, kernel and anything else running).`,
    `db q/verify = database round trips per verification during the row, from Keyward's /metrics (key lookup queries, change-feed barriers, remaining-uses statements).`,
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
  out.push(
    `src at ${(meta.git as { commit: string }).commit}${(meta.git as { srcDirty: boolean }).srcDirty ? ' + uncommitted changes' : ''}; ${meta.fastPathInSource ? 'KEYWARD_VERIFY_FAST_PATH is read by src/' : 'KEYWARD_VERIFY_FAST_PATH is NOT read by src/: both Keyward instances run the same code'}`,
  );
  const busiest = Math.max(0, ...rows.map((r) => r.cpuPct.backgroundBefore).filter(Number.isFinite));
  meta.maxBackgroundCpuPct = Math.round(busiest);
  if (busiest > BUSY_PCT) {
    out.push(
      `WARNING: other processes used up to ${Math.round(busiest)}% CPU (100 = one core) just before some scenarios: those numbers are disturbed; rerun on a quiet machine.`,
    );
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
      `info  server CPU per request (us): bare ${bareUs.toFixed(0)}, grpc-js empty ${us('grpc-js-empty')?.toFixed(0) ?? '-'}, connect-node empty ${us('connect-node-empty')?.toFixed(0) ?? '-'}, VerifyKey hit ${hitUs.toFixed(0)}, stock path ${us('verify-hit-grpc-stock')?.toFixed(0) ?? '-'}, two workers ${us('verify-hit-grpc-2-workers')?.toFixed(0) ?? '-'}`,
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
  process.stdout.write(`${out.join('\n')}\n`);

  const resultsDir = path.join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nJSON (also in bench/results/latest.json):\n${JSON.stringify(result)}\n`);
}

function table(rs: Row[]): string {
  const head = ['scenario', 'protocol', 'gen', 'load', 'req/s', 'p50 ms', 'p99 ms', 'x bare', 'srv us/req', 'db q/verify', 'cpu% srv/gen/other'];
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
    r.dbQueriesPerVerify === null ? '-' : r.dbQueriesPerVerify.toFixed(r.dbQueriesPerVerify < 0.01 && r.dbQueriesPerVerify > 0 ? 4 : 2),
    Number.isFinite(r.cpuPct.server) ? `${r.cpuPct.server}/${r.cpuPct.loadgen}/${r.cpuPct.other}` : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([4, 5, 6, 7, 8, 9, 10]);
  const line = (cells: string[]) => `| ${cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (right.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');
}
