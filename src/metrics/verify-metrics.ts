// VerifyKey's metrics, recorded on the hot path: a count per path, protocol
// and code, and a latency histogram per path, measured on the server from the
// request's headers to the answer handed to the socket. Recording is a few
// typed-array increments (no labels hashed, no objects made); the Prometheus
// text is written only when /metrics is scraped.

/** Where a verification was answered. */
export type VerifyPath = 'fast' | 'stock' | 'forward_auth';
const PATHS: readonly VerifyPath[] = ['fast', 'stock', 'forward_auth'];
const PATH_INDEX: Record<VerifyPath, number> = { fast: 0, stock: 1, forward_auth: 2 };

/** How it came: gRPC, gRPC-Web, Connect, or plain HTTP (forward auth, REST). */
export type VerifyProtocol = 'grpc' | 'grpc_web' | 'connect' | 'http';
const PROTOCOLS: readonly VerifyProtocol[] = ['grpc', 'grpc_web', 'connect', 'http'];
const PROTOCOL_INDEX: Record<VerifyProtocol, number> = { grpc: 0, grpc_web: 1, connect: 2, http: 3 };

/** Verify codes, then the RPC errors a call can end with instead of a verdict, then forward auth's own answers. */
const CODES = [
  'valid',
  'not_found',
  'disabled',
  'expired',
  'revoked',
  'insufficient_permissions',
  'rate_limited',
  'usage_exceeded',
  'invalid_argument',
  'unauthenticated',
  'permission_denied',
  'resource_exhausted',
  'deadline_exceeded',
  'unavailable',
  'internal',
  'missing_key',
  'invalid_token',
  'gateway_unauthenticated',
  'gateway_permission_denied',
  'gateway_throttled',
  'other',
] as const;
const CODE_INDEX: Record<string, number> = Object.fromEntries(CODES.map((c, i) => [c, i]));
const OTHER = CODES.length - 1;

/** The verify cache's and the membership filter's counters. */
export interface VerifyLookupStats {
  hits: number;
  negativeHits: number;
  misses: number;
  /** Unknown keys answered by the membership filter. */
  filtered: number;
  /** Change-feed barriers sent (notifications). */
  barriers: number;
  /** Lookup queries run (each reads the keys of several misses). */
  lookupQueries: number;
  filterBytes: number;
  filterKeys: number;
  /** Remaining-uses statements run, and the takes they decided (more takes than statements: concurrent ones went together). */
  usageStatements: number;
  usageTakes: number;
}

/** Upper bounds of the latency buckets, in seconds: from 25 µs (a cached verification) to 2.5 s. */
const VERIFY_BUCKETS = [25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5];

export class VerifyMetrics {
  private readonly counts = new Float64Array(PATHS.length * PROTOCOLS.length * CODES.length);
  /** Per path: a count per bucket (not cumulative), then +Inf. */
  private readonly buckets = new Float64Array(PATHS.length * (VERIFY_BUCKETS.length + 1));
  private readonly sums = new Float64Array(PATHS.length);
  /** Verify cache and membership filter outcomes, read from their own counters at scrape time. */
  constructor(private readonly cacheStats: () => VerifyLookupStats) {}

  /** One verification answered with `code` after `seconds` on the server. */
  record(path: VerifyPath, protocol: VerifyProtocol, code: string, seconds: number): void {
    const p = PATH_INDEX[path];
    const c = CODE_INDEX[code] ?? OTHER;
    this.counts[(p * PROTOCOLS.length + PROTOCOL_INDEX[protocol]) * CODES.length + c]!++;
    let b = 0;
    while (b < VERIFY_BUCKETS.length && seconds > VERIFY_BUCKETS[b]!) b++;
    this.buckets[p * (VERIFY_BUCKETS.length + 1) + b]!++;
    this.sums[p]! += seconds;
  }

  /** The families in the Prometheus text format. */
  text(): string {
    const out: string[] = [
      '# HELP keyward_verify_total API key verifications answered, by code (a verify code, or the error that ended the call), protocol and path.',
      '# TYPE keyward_verify_total counter',
    ];
    PATHS.forEach((path, p) => {
      PROTOCOLS.forEach((protocol, r) => {
        CODES.forEach((code, c) => {
          const n = this.counts[(p * PROTOCOLS.length + r) * CODES.length + c]!;
          if (n > 0) out.push(`keyward_verify_total{code="${code}",protocol="${protocol}",path="${path}"} ${n}`);
        });
      });
    });
    out.push(
      '# HELP keyward_verify_duration_seconds Time from a verification request to its answer, measured on the server.',
      '# TYPE keyward_verify_duration_seconds histogram',
    );
    PATHS.forEach((path, p) => {
      let cumulative = 0;
      VERIFY_BUCKETS.forEach((le, b) => {
        cumulative += this.buckets[p * (VERIFY_BUCKETS.length + 1) + b]!;
        out.push(`keyward_verify_duration_seconds_bucket{path="${path}",le="${le}"} ${cumulative}`);
      });
      cumulative += this.buckets[p * (VERIFY_BUCKETS.length + 1) + VERIFY_BUCKETS.length]!;
      out.push(`keyward_verify_duration_seconds_bucket{path="${path}",le="+Inf"} ${cumulative}`);
      out.push(`keyward_verify_duration_seconds_sum{path="${path}"} ${this.sums[p]}`);
      out.push(`keyward_verify_duration_seconds_count{path="${path}"} ${cumulative}`);
    });
    const cache = this.cacheStats();
    out.push(
      '# HELP keyward_verify_cache_total Verify cache lookups: a cached key (hit), a cached "no such key" (negative), a key the membership filter knows was never issued (filtered, no query), or a database lookup (miss).',
      '# TYPE keyward_verify_cache_total counter',
      `keyward_verify_cache_total{result="hit"} ${cache.hits - cache.negativeHits}`,
      `keyward_verify_cache_total{result="negative"} ${cache.negativeHits}`,
      `keyward_verify_cache_total{result="filtered"} ${cache.filtered}`,
      `keyward_verify_cache_total{result="miss"} ${cache.misses}`,
      '# HELP keyward_verify_lookup_queries_total Queries that read keys on verify cache misses (one reads every miss that arrived together).',
      '# TYPE keyward_verify_lookup_queries_total counter',
      `keyward_verify_lookup_queries_total ${cache.lookupQueries}`,
      '# HELP keyward_verify_filter_bytes Memory of the membership filter of issued keys.',
      '# TYPE keyward_verify_filter_bytes gauge',
      `keyward_verify_filter_bytes ${cache.filterBytes}`,
      '# HELP keyward_verify_filter_keys Secrets the membership filter holds.',
      '# TYPE keyward_verify_filter_keys gauge',
      `keyward_verify_filter_keys ${cache.filterKeys}`,
      '# HELP keyward_change_barriers_total Change-feed barriers sent (a shared database): one notification each, shared by every unknown key whose "not found" waited for it.',
      '# TYPE keyward_change_barriers_total counter',
      `keyward_change_barriers_total ${cache.barriers}`,
      '# HELP keyward_remaining_uses_statements_total Statements that took remaining uses (one per batch of concurrent verifications of a key).',
      '# TYPE keyward_remaining_uses_statements_total counter',
      `keyward_remaining_uses_statements_total ${cache.usageStatements}`,
      '# HELP keyward_remaining_uses_takes_total Verifications of keys with remaining uses decided by those statements.',
      '# TYPE keyward_remaining_uses_takes_total counter',
      `keyward_remaining_uses_takes_total ${cache.usageTakes}`,
    );
    return `${out.join('\n')}\n`;
  }
}
