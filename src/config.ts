import { availableParallelism } from 'node:os';
import { isAddressOrNetwork } from './auth/client-address.js';
import { previousSecretsKeysOf, secretsKeyOf } from './credentials/secret-box.js';
import { isLevel, type Level } from './log.js';

export interface Config {
  /** Port for gRPC, gRPC-Web and Connect (h2c and HTTP/1.1). */
  port: number;
  host: string;
  /** Postgres URL; unset selects the embedded database in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  dbPoolSize: number;
  logLevel: Level;
  /** Largest request message accepted, in bytes. */
  maxRequestBytes: number;
  /** Longest deadline a client may ask for; also the deadline of requests that set none. */
  maxRequestTimeoutMs: number;
  /** How often key last-used times are written. */
  usageFlushMs: number;
  /** How long a draining server waits for in-flight requests on SIGTERM. */
  shutdownGraceMs: number;
  /** Verify cache: entries kept, and how long positive and negative answers live at most. */
  verifyCacheSize: number;
  verifyCacheTtlMs: number;
  verifyNegativeTtlMs: number;
  /** Failed SDK key checks (each a bcrypt) one remote address may make at once, and regains per second. */
  sdkKeyFailureBurst: number;
  sdkKeyFailuresPerSecond: number;
  /** The same budget per SDK key id (wrong secrets for one id, from any address). */
  sdkKeyIdFailureBurst: number;
  sdkKeyIdFailuresPerSecond: number;
  /** Peers (addresses, CIDR networks) whose X-Forwarded-For names the caller's address; empty: never read. */
  trustedProxies: string[];
  /** Print an admin SDK key on first start with an empty database. */
  bootstrapAdmin: boolean;
  /** Webhook delivery: how often due events are looked for, first retry delay (doubling), attempts, receiver timeout. */
  webhookPollMs: number;
  webhookRetryBaseMs: number;
  webhookMaxAttempts: number;
  webhookTimeoutMs: number;
  /** Whether webhook receivers may be on loopback, private or link-local addresses. */
  webhookAllowPrivateNetworks: boolean;
  /** Seals JWT signing keys and webhook secrets at rest (src/credentials/secret-box.ts); unset stores them as they are. */
  secretsKey: Buffer | undefined;
  /** Older secrets keys that still open what they sealed (rotation; `keyward secrets reseal` moves values to secretsKey). */
  previousSecretsKeys: Buffer[];
  /** How often keys about to expire are looked for (key.expiring). */
  expiryScanMs: number;
  /** Serve VerifyKey over HTTP/2 with the lean handler of src/rpc/verify-fast-path.ts instead of connect-node. */
  verifyFastPath: boolean;
  /** Serve every other unary RPC called over HTTP/2 with gRPC or Connect with the lean handler of src/rpc/unary-fast-path.ts. */
  unaryFastPath: boolean;
  /** Redis URL for rate limits shared by all replicas; unset keeps them in each process. */
  redisUrl: string | undefined;
  /** Prefix of every Redis key Keyward writes. */
  redisPrefix: string;
  /** How long a Redis command may take before the request is decided locally. */
  redisTimeoutMs: number;
  /** Lifetime of tokens from TokenService/ExchangeKey, and their `iss` and `aud` claims (no `aud` when empty). */
  tokenTtlSeconds: number;
  tokenIssuer: string;
  tokenAudience: string;
  /**
   * Tokens one API key may obtain for itself (TokenService/ExchangeOwnKey) per
   * minute, per process. Failed exchanges from one address are throttled with
   * the budget of failed SDK key checks (sdkKeyFailureBurst, sdkKeyFailuresPerSecond).
   */
  tokenExchangesPerMinute: number;
  /** Origins (`https://app.example.com`) whose pages may embed the customer portal and call its RPCs (CORS). */
  portalOrigins: string[];
  /** Prometheus metrics at /metrics (src/metrics/). */
  metrics: boolean;
  /** Serve /metrics on this port only (kept off the public port); unset serves it on `port`. */
  metricsPort: number | undefined;
  /** OpenTelemetry tracing (src/tracing.ts) from the standard OTEL_ variables; undefined when off. */
  tracing: TracingConfig | undefined;
  /** Server processes on the one port (src/workers.ts); 1 runs the server in this process. */
  workers: number;
  /** Usage counts: hourly for this many days, then daily; deleted after usageRetentionDays (0: never). Audit events deleted after auditRetentionDays (0: never). */
  usageHourlyDays: number;
  usageRetentionDays: number;
  auditRetentionDays: number;
  /** How often retention runs (src/domain/retention.ts). */
  retentionScanMs: number;
}

/** KEYWARD_WORKERS: a number from 1, or `auto` for one per core. */
function workersOf(env: NodeJS.ProcessEnv): number {
  const raw = env.KEYWARD_WORKERS || '1';
  if (raw === 'auto') return availableParallelism();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`KEYWARD_WORKERS must be a number from 1 to 256, or auto, got ${JSON.stringify(raw)}`);
  return n;
}

/** Where spans go and which are kept. */
export interface TracingConfig {
  /** `otlp`: OTLP/HTTP (JSON) to `endpoint`; `console`: printed to stdout (for trying it out). */
  exporter: 'otlp' | 'console';
  endpoint: string;
  serviceName: string;
  /** More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`: key=value,key=value). */
  resourceAttributes: Record<string, string>;
  sampler: 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';
  /** The ratio of the traceidratio samplers, 0 to 1. */
  samplerRatio: number;
  /** How long finished spans wait before they are sent in a batch. */
  scheduleDelayMs: number;
}

const SAMPLERS: readonly TracingConfig['sampler'][] = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
];

/**
 * Tracing is off unless configured the standard way: OTEL_TRACES_EXPORTER
 * names an exporter (otlp or console), or an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT with
 * /v1/traces appended). OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none
 * turn it off.
 */
function tracingOf(env: NodeJS.ProcessEnv): TracingConfig | undefined {
  if (env.OTEL_SDK_DISABLED === 'true') return undefined;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, '');
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (base ? `${base}/v1/traces` : undefined);
  const exporter = env.OTEL_TRACES_EXPORTER || (endpoint ? 'otlp' : 'none');
  if (exporter === 'none') return undefined;
  if (exporter !== 'otlp' && exporter !== 'console') throw new Error(`OTEL_TRACES_EXPORTER must be otlp, console or none, got ${JSON.stringify(exporter)}`);
  const sampler = env.OTEL_TRACES_SAMPLER || 'parentbased_always_on';
  if (!SAMPLERS.includes(sampler as TracingConfig['sampler']))
    throw new Error(`OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(sampler)}`);
  return {
    exporter,
    endpoint: endpoint ?? 'http://localhost:4318/v1/traces',
    serviceName: env.OTEL_SERVICE_NAME || 'keyward',
    resourceAttributes: resourceAttributesOf(env.OTEL_RESOURCE_ATTRIBUTES ?? ''),
    sampler: sampler as TracingConfig['sampler'],
    samplerRatio: numberSetting(env, 'OTEL_TRACES_SAMPLER_ARG', 1, (n) => n >= 0 && n <= 1, 'a number from 0 to 1'),
    scheduleDelayMs: int(env, 'OTEL_BSP_SCHEDULE_DELAY', 5000, 0),
  };
}

/** `key=value,key=value` with percent-encoded values, as OTEL_RESOURCE_ATTRIBUTES is written. */
function resourceAttributesOf(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`OTEL_RESOURCE_ATTRIBUTES must be key=value pairs separated by commas, got ${JSON.stringify(pair)}`);
    out[pair.slice(0, eq).trim()] = decodeURIComponent(pair.slice(eq + 1).trim());
  }
  return out;
}

const ORIGIN_RE = /^https?:\/\/[^/\s?#]+$/;

/** A comma-separated list of origins, each `scheme://host[:port]` without a path. */
function origins(env: NodeJS.ProcessEnv, name: string): string[] {
  const list = (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const o of list) {
    if (!ORIGIN_RE.test(o))
      throw new Error(`${name} must be a comma-separated list of origins such as https://app.example.com (no path), got ${JSON.stringify(o)}`);
  }
  return list;
}

/** Comma-separated IP addresses and CIDR networks (`10.0.0.1, 10.1.0.0/16, fd00::/8`). */
function trustedProxies(env: NodeJS.ProcessEnv, name: string): string[] {
  const list = (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const e of list) {
    if (!isAddressOrNetwork(e))
      throw new Error(`${name} must be a comma-separated list of IP addresses or CIDR networks (10.0.0.0/8), got ${JSON.stringify(e)}`);
  }
  return list;
}

/** The number in `env[name]`, or `dflt` when unset or empty; throws naming the variable and `shape` when `ok` refuses it. */
function numberSetting(env: NodeJS.ProcessEnv, name: string, dflt: number, ok: (n: number) => boolean, shape: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!ok(n)) throw new Error(`${name} must be ${shape}, got ${JSON.stringify(raw)}`);
  return n;
}

const int = (env: NodeJS.ProcessEnv, name: string, dflt: number, min = 0) =>
  numberSetting(env, name, dflt, (n) => Number.isInteger(n) && n >= min, `an integer >= ${min}`);

/** A port number, or undefined when unset or empty. */
function optionalPort(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const n = numberSetting(env, name, Number.NaN, (v) => Number.isInteger(v) && v >= 1 && v <= 65_535, 'a port number (1 to 65535)');
  return Number.isNaN(n) ? undefined : n;
}

/** A positive number, fractions allowed (a rate such as 0.1 a second). */
const rate = (env: NodeJS.ProcessEnv, name: string, dflt: number) => numberSetting(env, name, dflt, (n) => Number.isFinite(n) && n > 0, 'a number > 0');

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const logLevel = env.KEYWARD_LOG_LEVEL || 'info';
  if (!isLevel(logLevel)) throw new Error('KEYWARD_LOG_LEVEL must be debug, info, warn or error');
  return {
    port: int(env, 'PORT', 8080),
    host: env.HOST || '0.0.0.0',
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.KEYWARD_DATA_DIR || '.keyward',
    dbPoolSize: int(env, 'KEYWARD_DB_POOL_SIZE', 10, 1),
    logLevel,
    maxRequestBytes: int(env, 'KEYWARD_MAX_REQUEST_BYTES', 1024 * 1024, 1024),
    maxRequestTimeoutMs: int(env, 'KEYWARD_MAX_REQUEST_TIMEOUT_MS', 30_000, 1),
    usageFlushMs: int(env, 'KEYWARD_USAGE_FLUSH_MS', 5000, 10),
    shutdownGraceMs: int(env, 'KEYWARD_SHUTDOWN_GRACE_MS', 10_000, 0),
    verifyCacheSize: int(env, 'KEYWARD_VERIFY_CACHE_SIZE', 100_000, 0),
    verifyCacheTtlMs: int(env, 'KEYWARD_VERIFY_CACHE_TTL_MS', 10_000, 0),
    verifyNegativeTtlMs: int(env, 'KEYWARD_VERIFY_NEGATIVE_TTL_MS', 5000, 0),
    webhookPollMs: int(env, 'KEYWARD_WEBHOOK_POLL_MS', 1000, 10),
    webhookRetryBaseMs: int(env, 'KEYWARD_WEBHOOK_RETRY_BASE_MS', 10_000, 1),
    webhookMaxAttempts: int(env, 'KEYWARD_WEBHOOK_MAX_ATTEMPTS', 10, 1),
    webhookTimeoutMs: int(env, 'KEYWARD_WEBHOOK_TIMEOUT_MS', 10_000, 100),
    webhookAllowPrivateNetworks: env.KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS === 'true',
    secretsKey: secretsKeyOf(env.KEYWARD_SECRETS_KEY),
    previousSecretsKeys: previousSecretsKeysOf(env.KEYWARD_SECRETS_KEY_PREVIOUS, secretsKeyOf(env.KEYWARD_SECRETS_KEY)),
    expiryScanMs: int(env, 'KEYWARD_EXPIRY_SCAN_MS', 60_000, 10),
    sdkKeyFailureBurst: int(env, 'KEYWARD_SDK_KEY_FAILURE_BURST', 20, 1),
    sdkKeyFailuresPerSecond: rate(env, 'KEYWARD_SDK_KEY_FAILURES_PER_SECOND', 2),
    sdkKeyIdFailureBurst: int(env, 'KEYWARD_SDK_KEY_ID_FAILURE_BURST', 10, 1),
    sdkKeyIdFailuresPerSecond: rate(env, 'KEYWARD_SDK_KEY_ID_FAILURES_PER_SECOND', 1),
    trustedProxies: trustedProxies(env, 'KEYWARD_TRUSTED_PROXIES'),
    bootstrapAdmin: env.KEYWARD_BOOTSTRAP_ADMIN !== 'false',
    verifyFastPath: env.KEYWARD_VERIFY_FAST_PATH !== 'false',
    unaryFastPath: env.KEYWARD_UNARY_FAST_PATH !== 'false',
    redisUrl: env.REDIS_URL || undefined,
    redisPrefix: env.KEYWARD_REDIS_PREFIX ?? 'keyward:',
    redisTimeoutMs: int(env, 'KEYWARD_REDIS_TIMEOUT_MS', 1000, 1),
    tokenTtlSeconds: int(env, 'KEYWARD_TOKEN_TTL_SECONDS', 300, 1),
    tokenIssuer: env.KEYWARD_TOKEN_ISSUER || 'keyward',
    tokenAudience: env.KEYWARD_TOKEN_AUDIENCE || '',
    tokenExchangesPerMinute: int(env, 'KEYWARD_TOKEN_EXCHANGES_PER_MINUTE', 60, 1),
    metrics: env.KEYWARD_METRICS !== 'false',
    metricsPort: optionalPort(env, 'KEYWARD_METRICS_PORT'),
    portalOrigins: origins(env, 'KEYWARD_PORTAL_ORIGINS'),
    tracing: tracingOf(env),
    workers: workersOf(env),
    usageHourlyDays: int(env, 'KEYWARD_USAGE_HOURLY_DAYS', 92, 1),
    usageRetentionDays: int(env, 'KEYWARD_USAGE_RETENTION_DAYS', 400, 0),
    auditRetentionDays: int(env, 'KEYWARD_AUDIT_RETENTION_DAYS', 400, 0),
    retentionScanMs: int(env, 'KEYWARD_RETENTION_SCAN_MS', 3_600_000, 1000),
  };
}
