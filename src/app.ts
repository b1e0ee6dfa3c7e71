import type { MikroORM } from '@mikro-orm/postgresql';
import {
  createContextValues,
  createServiceImplSpec,
  type ConnectRouter,
  type Interceptor,
  type MethodImpl,
  type ServiceImpl,
  type ServiceImplSpec,
} from '@connectrpc/connect';
import { compressionBrotli, compressionGzip, connectNodeAdapter } from '@connectrpc/connect-node';
import { KeyService } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { AuditService } from '../gen/keyward/v1/audit_service_pb.js';
import { UsageService } from '../gen/keyward/v1/usage_service_pb.js';
import { WebhookService } from '../gen/keyward/v1/webhook_service_pb.js';
import { AuditLog } from './domain/audit.js';
import { SecurityEventRecorder } from './domain/security-events.js';
import { UsageReports } from './domain/usage.js';
import { Webhooks } from './domain/webhooks.js';
import { auditService } from './rpc/audit-service.js';
import { usageService } from './rpc/usage-service.js';
import { webhookService } from './rpc/webhook-service.js';
import { UsageAnalytics } from './verify/analytics.js';
import { WebhookSender } from './webhooks/sender.js';
import { WebhookWorker } from './webhooks/worker.js';
import { TokenService } from '../gen/keyward/v1/token_service_pb.js';
import { SdkKeyService } from '../gen/keyward/v1/sdk_key_service_pb.js';
import { PortalService } from '../gen/keyward/v1/portal_service_pb.js';
import { PortalAuthenticator } from './auth/portal-auth.js';
import { PortalSessions } from './domain/portal-sessions.js';
import { portalService } from './rpc/portal-service.js';
import { sdkKeyService } from './rpc/sdk-key-service.js';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { ServerReflection as ReflectionV1 } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ReflectionV1Alpha } from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import type { DescService } from '@bufbuild/protobuf';
import { DatabaseProbe } from './health/database-probe.js';
import { lazyDriverPool, type DriverPool } from './db/database.js';
import { httpEndpoints } from './http/endpoints.js';
import { healthService } from './rpc/health-service.js';
import { DescriptorIndex, reflectionV1, reflectionV1Alpha } from './rpc/reflection-service.js';
import { tokenService } from './rpc/token-service.js';
import { SigningKeys } from './tokens/signing-keys.js';
import { TokenIssuer } from './tokens/token-issuer.js';
import { ExchangeThrottle } from './tokens/exchange-throttle.js';
import { TokenChecker } from './tokens/token-checker.js';
import { TokenDenylist } from './tokens/token-denylist.js';
import { DEFAULT_SDK_KEY_AUTH, SdkKeyAuthenticator } from './auth/sdk-key-auth.js';
import { SecretBox } from './credentials/secret-box.js';
import { Keys } from './domain/keys.js';
import { Scopes } from './domain/scopes.js';
import { SdkKeys } from './domain/sdk-keys.js';
import { Workspaces } from './domain/workspaces.js';
import { errorFields, type Logger } from './log.js';
import { peerKey } from './rpc/context.js';
import { TrustedProxies, type ClientAddress } from './auth/client-address.js';
import { authInterceptor, errorInterceptor, PORTAL_METHODS, rpcMetricsInterceptor, tracingInterceptor } from './rpc/interceptors.js';
import { fieldRulesInterceptor } from './rpc/field-rules.js';
import { withPortalCors } from './http/cors.js';
import { RestTranscoder } from './http/rest.js';
import { withRpcMisuseAnswers } from './http/rpc-misuse.js';
import { openApiDocument } from './http/openapi.js';
import { browserApps, type StaticApp } from './http/static-assets.js';
import { binaryParseErrorIsInvalidArgument } from './rpc/parse-errors.js';
import { keyService } from './rpc/key-service.js';
import { scopeService } from './rpc/scope-service.js';
import { workspaceService } from './rpc/workspace-service.js';
import { LastUsedRecorder } from './verify/last-used.js';
import { KeyVerifier, newKeyCache, secretScan, type KeyRecord } from './verify/verifier.js';
import { KeyFilter } from './verify/key-filter.js';
import { Retention } from './domain/retention.js';
import type { ChangeListener } from './db/change-listener.js';
import { VerifyCall } from './verify/verify-call.js';
import type { KeyCache } from './verify/key-cache.js';
import { ChangeBus } from './domain/changes.js';
import { LimitEnforcer } from './verify/limit-enforcer.js';
import { LocalRateLimiter, type RateLimiter } from './verify/rate-limits.js';
import { newRateLimitStats, RedisRateLimiter, type RateLimitStats } from './verify/redis-rate-limiter.js';
import { UsageLimits } from './verify/usage-limits.js';
import type { Config } from './config.js';
import { Metrics } from './metrics/metrics.js';

/** The configuration the app uses: all of it but where it listens, its database, its logs and its processes (src/server.ts, src/cli.ts). */
export type AppOptions = Omit<
  Config,
  | 'port'
  | 'host'
  | 'databaseUrl'
  | 'dataDir'
  | 'dbPoolSize'
  | 'logLevel'
  | 'shutdownGraceMs'
  | 'bootstrapAdmin'
  | 'verifyFastPath'
  | 'unaryFastPath'
  | 'workers'
>;

/** Keyward's own services: every call needs an SDK key. */
export const KEYWARD_SERVICES: readonly DescService[] = [
  WorkspaceService,
  ScopeService,
  KeyService,
  TokenService,
  UsageService,
  AuditService,
  WebhookService,
  SdkKeyService,
  PortalService,
];

/**
 * gRPC's standard services, served without an SDK key: health checking (for
 * load balancers and orchestrators) and server reflection (the schema, which
 * proto/ publishes anyway). Never any data.
 */
export const STANDARD_SERVICES: readonly DescService[] = [Health, ReflectionV1, ReflectionV1Alpha];

/** URL paths of every RPC served (Keyward's and gRPC's standard services). */
const RPC_PATHS: ReadonlySet<string> = new Set([...KEYWARD_SERVICES, ...STANDARD_SERVICES].flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)));

/** URL paths of the RPCs a portal token may call: the only ones answered cross-origin (with their REST paths). */
const PORTAL_PATHS: ReadonlySet<string> = new Set([...PORTAL_METHODS].map((m) => `/${m.parent.typeName}/${m.name}`));

/** A service with its implementation, checked against its descriptor (connect's own function does not tie the two). */
function implSpec<T extends DescService>(service: T, impl: Partial<ServiceImpl<T>>): ServiceImplSpec {
  return createServiceImplSpec<T>(service, impl);
}

/** Everything a request can reach, built once per process. */
export class App {
  private readonly workspaces: Workspaces;
  private readonly scopes: Scopes;
  readonly keys: Keys;
  readonly sdkKeys: SdkKeys;
  readonly auth: SdkKeyAuthenticator;
  private readonly portalSessions: PortalSessions;
  private readonly portalAuth: PortalAuthenticator;
  private readonly lastUsed: LastUsedRecorder;
  readonly analytics: UsageAnalytics;
  readonly securityEvents: SecurityEventRecorder;
  readonly usageReports: UsageReports;
  private readonly auditLog: AuditLog;
  readonly secrets: SecretBox;
  private readonly webhooks: Webhooks;
  private readonly webhookWorker: WebhookWorker;
  private readonly verifier: KeyVerifier;
  /** The one VerifyKey boundary every transport goes through. */
  readonly verifyCall: VerifyCall;
  readonly changes: ChangeBus;
  /** The caller's address of a request (X-Forwarded-For only from KEYWARD_TRUSTED_PROXIES), for every transport. */
  readonly clientAddress: ClientAddress;
  readonly keyCache: KeyCache<KeyRecord>;
  /** Which key secrets exist: unknown keys are answered without a query (src/verify/key-filter.ts). */
  readonly keyFilter: KeyFilter;
  /** Remaining uses of keys, taken in batches (src/verify/usage-limits.ts). */
  readonly usageLimits: UsageLimits;
  /** Usage counts rolled up and deleted, audit events deleted, when due. */
  readonly retention: Retention;
  readonly signingKeys: SigningKeys;
  private readonly tokens: TokenIssuer;
  /** Throttles ExchangeOwnKey per key and per address. */
  private readonly exchangeThrottle: ExchangeThrottle;
  /** Checks exchanged tokens offline for forward auth (signature, claims, the key's state). */
  readonly tokenChecker: TokenChecker;
  readonly probe: DatabaseProbe;
  /** VerifyKey calls the HTTP/2 fast path answered, and calls it handed to connect-node. */
  readonly fastPathStats = { served: 0, handedOver: 0 };
  /** Other unary calls the unary fast path answered, and calls it handed to connect-node. */
  readonly unaryFastPathStats = { served: 0, handedOver: 0 };
  /** Where rate limits were decided, and Redis outages. */
  readonly rateLimitStats: RateLimitStats;
  private readonly rateLimiter: RateLimiter;
  /** The console and the portal, served on the RPC port. */
  readonly browserApps: StaticApp[];
  /** Prometheus metrics; undefined with KEYWARD_METRICS=false. */
  readonly metrics: Metrics | undefined;
  /** VerifyKey's metrics, recorded by the transports. */
  get verifyMetrics() {
    return this.metrics?.verify;
  }
  /** /metrics on the RPC port, unless KEYWARD_METRICS_PORT serves it apart. */
  get metricsOnMainPort(): boolean {
    return this.opts.metricsPort === undefined;
  }
  /** The database pool, for its gauges; known once startBackground() has run. */
  private pool: { totalCount: number; idleCount: number; waitingCount: number } | undefined;
  /** The driver's pool, asked for once (VerifyKey's statements, the pool gauges). */
  private readonly driverPool: () => Promise<DriverPool>;

  constructor(
    readonly orm: MikroORM,
    readonly log: Logger,
    readonly opts: AppOptions,
    /** Whether other processes share the database (announce changes to them). */
    shared: boolean,
    /** With a shared database: the change feed's listener, for its barriers (src/db/change-listener.ts). */
    private readonly feed?: Pick<ChangeListener, 'barrier' | 'barriersSent'>,
  ) {
    if (shared && feed === undefined) throw new Error('a shared database needs the change feed');
    this.changes = new ChangeBus(shared);
    this.clientAddress = new TrustedProxies(opts.trustedProxies).clientAddress;
    this.workspaces = new Workspaces(orm, this.changes);
    this.scopes = new Scopes(orm, this.changes);
    // VerifyKey's statements and the writes of new keys run on the driver's pool, without the ORM.
    this.driverPool = lazyDriverPool(orm, { inlineValues: !shared });
    this.keys = new Keys(orm, this.changes, this.driverPool);
    this.sdkKeys = new SdkKeys(orm, this.changes);
    this.securityEvents = new SecurityEventRecorder(orm, log, opts.usageFlushMs);
    this.auth = new SdkKeyAuthenticator(
      orm,
      {
        ...DEFAULT_SDK_KEY_AUTH,
        failureBurst: opts.sdkKeyFailureBurst,
        failuresPerSecond: opts.sdkKeyFailuresPerSecond,
        idFailureBurst: opts.sdkKeyIdFailureBurst,
        idFailuresPerSecond: opts.sdkKeyIdFailuresPerSecond,
      },
      (subject) =>
        this.securityEvents.note({ kind: 'sdk_key.auth_failed', actor: 'unauthenticated', resourceType: 'sdk_key', resourceId: subject, workspaceId: null }),
    );
    this.portalSessions = new PortalSessions(orm);
    this.portalAuth = new PortalAuthenticator(
      (tokenHash) => this.portalSessions.find(tokenHash),
      () =>
        this.securityEvents.note({
          kind: 'portal_session.auth_failed',
          actor: 'unauthenticated',
          resourceType: 'portal_session',
          resourceId: 'unknown',
          workspaceId: null,
        }),
    );
    this.lastUsed = new LastUsedRecorder(orm, log, opts.usageFlushMs);
    this.analytics = new UsageAnalytics(orm, log, opts.usageFlushMs, this.securityEvents);
    this.usageReports = new UsageReports(orm);
    this.retention = new Retention(
      orm,
      {
        usageHourlyDays: opts.usageHourlyDays,
        usageRetentionDays: opts.usageRetentionDays,
        auditRetentionDays: opts.auditRetentionDays,
        scanMs: opts.retentionScanMs,
      },
      log,
    );
    this.auditLog = new AuditLog(orm);
    this.secrets = new SecretBox(opts.secretsKey, opts.previousSecretsKeys);
    const webhookSender = new WebhookSender({
      timeoutMs: opts.webhookTimeoutMs,
      allowPrivateNetworks: opts.webhookAllowPrivateNetworks,
      secrets: this.secrets,
    });
    this.webhooks = new Webhooks(orm, this.secrets, (target, eventId, payload) => webhookSender.send(target, eventId, payload));
    this.webhookWorker = new WebhookWorker(orm, log, {
      pollMs: opts.webhookPollMs,
      retryBaseMs: opts.webhookRetryBaseMs,
      maxAttempts: opts.webhookMaxAttempts,
      timeoutMs: opts.webhookTimeoutMs,
      expiryScanMs: opts.expiryScanMs,
      sender: webhookSender,
    });
    this.keyCache = newKeyCache({
      maxEntries: opts.verifyCacheSize,
      positiveTtlMs: opts.verifyCacheTtlMs,
      negativeTtlMs: opts.verifyNegativeTtlMs,
    });
    this.rateLimitStats = newRateLimitStats(opts.redisUrl !== undefined);
    this.rateLimiter =
      opts.redisUrl === undefined
        ? new LocalRateLimiter()
        : new RedisRateLimiter(opts.redisUrl, opts.redisPrefix, log, this.rateLimitStats, opts.redisTimeoutMs);
    const pool = this.driverPool;
    this.usageLimits = new UsageLimits(pool);
    const limits = new LimitEnforcer(this.rateLimiter, this.usageLimits);
    this.keyFilter = new KeyFilter({
      ...secretScan(orm),
      barrier: feed && (() => feed.barrier()),
      onBuilt: (b) => log.info('key filter built', b),
      onBuildFailed: (e) => log.warn('key filter not built; unknown keys are looked up until it is', errorFields(e)),
    });
    this.verifier = new KeyVerifier(pool, this.keyCache, this.keyFilter, this.lastUsed, limits, this.analytics, {
      // The database's own statement timeout, and a second for the answer to come back.
      lookupTimeoutMs: opts.maxRequestTimeoutMs + 1000,
    });
    this.verifyCall = new VerifyCall({ authenticate: (authorization, address) => this.auth.authenticate(authorization, address), verifier: this.verifier });
    const tokenTtlMs = opts.tokenTtlSeconds * 1000;
    this.signingKeys = new SigningKeys(orm, this.changes, { tokenTtlMs, secrets: this.secrets });
    this.exchangeThrottle = new ExchangeThrottle({
      perKeyPerMinute: opts.tokenExchangesPerMinute,
      failureBurst: opts.sdkKeyFailureBurst,
      failuresPerSecond: opts.sdkKeyFailuresPerSecond,
    });
    const tokenOpts = { ttlMs: tokenTtlMs, issuer: opts.tokenIssuer, audience: opts.tokenAudience };
    this.tokens = new TokenIssuer(this.verifier, this.signingKeys, tokenOpts, this.exchangeThrottle);
    this.tokenChecker = new TokenChecker(orm, this.signingKeys, tokenOpts, {
      stateTtlMs: opts.verifyCacheTtlMs,
      denylist: new TokenDenylist(orm, log, { tokenTtlMs }),
    });
    this.probe = new DatabaseProbe(orm);
    this.browserApps = browserApps(opts.portalOrigins);
    this.metrics = opts.metrics
      ? new Metrics({
          cacheStats: () => {
            const { bytes, keys } = this.keyFilter.size;
            return {
              ...this.keyCache.stats,
              filtered: this.keyFilter.stats.absent,
              barriers: this.feed?.barriersSent ?? 0,
              lookupQueries: this.verifier.lookupStats.queries,
              filterBytes: bytes,
              filterKeys: keys,
              usageStatements: this.usageLimits.stats.statements,
              usageTakes: this.usageLimits.stats.takes,
            };
          },
          rateLimitStats: () => this.rateLimitStats,
          sdkKeyAuthStats: () => this.auth.stats,
          webhookEvents: () => this.webhooks.outboxStats(),
          databasePool: () => this.pool && { used: this.pool.totalCount - this.pool.idleCount, free: this.pool.idleCount, pending: this.pool.waitingCount },
        })
      : undefined;
    this.changes.subscribe((c) => {
      if (c.secrets) for (const h of c.secrets) this.keyFilter.add(h);
      if (c.keys) this.keyCache.evictKeys(c.keys);
      if (c.workspace) this.keyCache.evictWorkspace(c.workspace);
      if (c.keys) this.tokenChecker.evictKeys(c.keys);
      if (c.workspace) this.tokenChecker.evictWorkspace(c.workspace);
      if (c.sdkKey) this.auth.forget(c.sdkKey);
      if (c.signingKey) {
        this.signingKeys.forget();
        this.tokenChecker.forgetJwks();
      }
    });
  }

  private serviceSpecs: ServiceImplSpec[] | undefined;

  /** Every service Keyward serves, with its implementation (made once): connect-node's routes and the unary fast path's. */
  services(): ServiceImplSpec[] {
    if (this.serviceSpecs) return this.serviceSpecs;
    const served = [...KEYWARD_SERVICES, ...STANDARD_SERVICES];
    const index = new DescriptorIndex(served);
    this.serviceSpecs = [
      implSpec(WorkspaceService, workspaceService(this.workspaces)),
      implSpec(ScopeService, scopeService(this.scopes)),
      implSpec(KeyService, keyService(this.keys, this.verifyCall, this.opts.maxRequestTimeoutMs, this.verifyMetrics)),
      implSpec(UsageService, usageService(this.usageReports)),
      implSpec(AuditService, auditService(this.auditLog)),
      implSpec(WebhookService, webhookService(this.webhooks)),
      implSpec(TokenService, tokenService(this.tokens)),
      implSpec(SdkKeyService, sdkKeyService(this.sdkKeys)),
      implSpec(PortalService, portalService(this.portalSessions)),
      implSpec(
        Health,
        healthService(
          this.probe,
          served.map((s) => s.typeName),
        ),
      ),
      implSpec(ReflectionV1, reflectionV1(index)),
      implSpec(ReflectionV1Alpha, reflectionV1Alpha(index)),
    ];
    return this.serviceSpecs;
  }

  routes = (router: ConnectRouter): void => {
    for (const spec of this.services()) {
      for (const m of Object.values(spec.methods)) router.rpc(m.method, m.impl as MethodImpl<typeof m.method>);
    }
  };

  /** Starts the background work: batched writes of usage and security events, webhook delivery. */
  async startBackground(): Promise<void> {
    await this.rateLimiter.start();
    // What ended tokens before this process started (a listener's reconnect reloads it too).
    await this.tokenChecker.loadDenylist();
    if (this.metrics) this.pool = await this.driverPool();
    this.lastUsed.start();
    this.analytics.start();
    this.securityEvents.start();
    this.webhookWorker.start();
    this.retention.start();
  }

  /** Stops it, writing what is still gathered in memory. */
  async stopBackground(): Promise<void> {
    await this.retention.stop();
    await this.webhookWorker.stop();
    await Promise.all([this.lastUsed.stop(), this.analytics.stop()]);
    // After analytics: uses of revoked keys it counted are security events too.
    await this.securityEvents.stop();
    await this.rateLimiter.close();
  }

  private openApi: string | undefined;

  /** The OpenAPI document of the Connect JSON API (GET /openapi.json), made once. */
  openApiJson(): string {
    this.openApi ??= JSON.stringify(openApiDocument(KEYWARD_SERVICES), null, 2);
    return this.openApi;
  }

  private rpcInterceptors: Interceptor[] | undefined;

  /** What every RPC passes through, outermost first (connect-node, REST and the unary fast path alike). */
  interceptors(): Interceptor[] {
    this.rpcInterceptors ??= [
      ...(this.opts.tracing ? [tracingInterceptor()] : []),
      ...(this.metrics ? [rpcMetricsInterceptor(this.metrics)] : []),
      errorInterceptor(this.log),
      authInterceptor(this.auth, this.portalAuth, new Set(STANDARD_SERVICES.map((s) => s.typeName))),
      // After auth: an unauthenticated caller learns nothing about its fields.
      fieldRulesInterceptor(),
    ];
    return this.rpcInterceptors;
  }

  /** The request handler for both the HTTP/2 and the HTTP/1.1 server. */
  handler(shutdownSignal?: AbortSignal) {
    const interceptors = this.interceptors();
    // REST paths (google.api.http in proto/) reach the same handlers through the same interceptors.
    const { jsonOptions, readMaxBytes } = this.protocolOptions();
    const rest = new RestTranscoder({
      services: KEYWARD_SERVICES,
      routes: this.routes,
      interceptors,
      requestGate: binaryParseErrorIsInvalidArgument,
      readMaxBytes,
      jsonOptions,
      shutdownSignal,
      retryAfterSeconds: () => this.auth.throttledRetryAfterSeconds,
      clientAddress: this.clientAddress,
    });
    const rpc = connectNodeAdapter({
      routes: this.routes,
      interceptors,
      // Paths that are no RPC: REST paths, forward auth, JWKS, /healthz, /readyz.
      fallback: httpEndpoints(this, rest),
      // Invalid protobuf bytes are the caller's mistake, not INTERNAL.
      requestGate: binaryParseErrorIsInvalidArgument,
      // Failed SDK key checks are throttled per caller address.
      contextValues: (req) => createContextValues().set(peerKey, this.clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for'])),
      ...this.protocolOptions(),
      shutdownSignal,
    });
    const isPortalPath = (path: string) => PORTAL_PATHS.has(path) || rest.router.has(path, (r) => PORTAL_METHODS.has(r.method));
    return withPortalCors(this.opts.portalOrigins, isPortalPath, withRpcMisuseAnswers(RPC_PATHS, rpc));
  }

  /** Limits and encodings of every protocol handler; the VerifyKey fast path uses the same. */
  protocolOptions() {
    return {
      // connect-node's default, spelled out so the fast path negotiates alike.
      acceptCompression: [compressionGzip, compressionBrotli],
      // connect-node reads up to 4 GiB by default.
      readMaxBytes: this.opts.maxRequestBytes,
      // No maxTimeoutMs: a deadline longer than KEYWARD_MAX_REQUEST_TIMEOUT_MS is
      // served (VerifyKey honours at most that; the database statement timeout
      // bounds every other RPC), not refused as connect-node would.
      // A misspelled field must not pass silently: `{"requiredPermission": [...]}`
      // would otherwise verify with no permission check at all.
      jsonOptions: { ignoreUnknownFields: false },
    };
  }
}
