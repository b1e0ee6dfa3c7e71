import { secretsKeyOf } from './credentials/secret-box.js';
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
  /** How often keys about to expire are looked for (key.expiring). */
  expiryScanMs: number;
  /** Serve VerifyKey over HTTP/2 with the lean handler of src/rpc/verify-fast-path.ts instead of connect-node. */
  verifyFastPath: boolean;
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
    expiryScanMs: int(env, 'KEYWARD_EXPIRY_SCAN_MS', 60_000, 10),
    sdkKeyFailureBurst: int(env, 'KEYWARD_SDK_KEY_FAILURE_BURST', 20, 1),
    sdkKeyFailuresPerSecond: rate(env, 'KEYWARD_SDK_KEY_FAILURES_PER_SECOND', 2),
    bootstrapAdmin: env.KEYWARD_BOOTSTRAP_ADMIN !== 'false',
    verifyFastPath: env.KEYWARD_VERIFY_FAST_PATH !== 'false',
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
  };
}
