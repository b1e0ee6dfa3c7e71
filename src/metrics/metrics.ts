// Prometheus metrics (GET /metrics, text exposition format): VerifyKey's own
// families (verify-metrics.ts, recorded without labels on the hot path), the
// management RPCs (recorded by rpcMetricsInterceptor), and gauges read from
// the parts that keep their own counters when a scrape asks: the change
// listener, Redis, SDK-key authentication, the webhook outbox, and the
// process itself (prom-client's default metrics).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { VerifyMetrics, type VerifyLookupStats } from './verify-metrics.js';

/** What the gauges read, each when a scrape asks. */
export interface MetricsSources {
  cacheStats(): VerifyLookupStats;
  rateLimitStats(): { redis: boolean; redisUp: boolean; redisDecisions: number; localFallbacks: number; redisOutages: number };
  sdkKeyAuthStats(): { failures: number; throttled: number };
  /** Webhook events by state: pending (to be delivered), delivered, failed (given up). */
  webhookEvents(): Promise<{ pending: number; delivered: number; failed: number; oldestPendingSeconds: number }>;
  /** Connections of the database pool: in use, idle and callers waiting for one; undefined when not known. */
  databasePool(): { used: number; free: number; pending: number } | undefined;
}

/** RPC latency buckets, in seconds: management calls take milliseconds, not microseconds. */
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  readonly verify: VerifyMetrics;
  readonly registry = new Registry();
  private readonly rpcTotal: Counter<'service' | 'method' | 'code'>;
  private readonly rpcDuration: Histogram<'service' | 'method'>;
  private listening = 0;
  private notifications = 0;
  /** The webhook outbox as read once per scrape (one query for both of its families). */
  private outbox = { pending: 0, delivered: 0, failed: 0, oldestPendingSeconds: 0 };

  constructor(private readonly sources: MetricsSources) {
    this.verify = new VerifyMetrics(() => sources.cacheStats());
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.rpcTotal = new Counter({
      name: 'keyward_rpc_total',
      help: 'RPCs answered, by service, method and code.',
      labelNames: ['service', 'method', 'code'],
      registers,
    });
    this.rpcDuration = new Histogram({
      name: 'keyward_rpc_duration_seconds',
      help: 'Time an RPC took on the server, by service and method.',
      labelNames: ['service', 'method'],
      buckets: RPC_BUCKETS,
      registers,
    });
    const self = this;
    new Gauge({
      name: 'keyward_change_listener_connected',
      help: '1 while this process listens to the change feed (LISTEN/NOTIFY) of a shared database, else 0.',
      registers,
      collect() {
        this.set(self.listening);
      },
    });
    new Counter({
      name: 'keyward_change_notifications_total',
      help: 'Change notifications received from other processes.',
      registers,
      collect() {
        this.reset();
        this.inc(self.notifications);
      },
    });
    new Counter({
      name: 'keyward_rate_limit_decisions_total',
      help: 'Rate-limited requests decided in Redis (where="redis"), or by this process alone while Redis was unreachable (where="local_fallback").',
      labelNames: ['where'],
      registers,
      collect() {
        const s = sources.rateLimitStats();
        this.reset();
        this.inc({ where: 'redis' }, s.redisDecisions);
        this.inc({ where: 'local_fallback' }, s.localFallbacks);
      },
    });
    new Counter({
      name: 'keyward_redis_outages_total',
      help: 'Times Redis became unreachable.',
      registers,
      collect() {
        this.reset();
        this.inc(sources.rateLimitStats().redisOutages);
      },
    });
    new Gauge({
      name: 'keyward_redis_up',
      help: '1 while Redis answers (REDIS_URL set), 0 while it does not; absent without REDIS_URL.',
      registers,
      collect() {
        const s = sources.rateLimitStats();
        this.reset();
        if (s.redis) this.set(s.redisUp ? 1 : 0);
      },
    });
    new Counter({
      name: 'keyward_sdk_key_auth_failures_total',
      help: 'SDK keys refused (missing, malformed, unknown, revoked, a wrong secret).',
      registers,
      collect() {
        this.reset();
        this.inc(sources.sdkKeyAuthStats().failures);
      },
    });
    new Counter({
      name: 'keyward_sdk_key_throttled_total',
      help: 'SDK-key checks refused because their address, or their SDK key id, failed too many (RESOURCE_EXHAUSTED, 429).',
      registers,
      collect() {
        this.reset();
        this.inc(sources.sdkKeyAuthStats().throttled);
      },
    });
    new Gauge({
      name: 'keyward_webhook_events',
      help: 'Webhook events in the outbox, by state: pending (to be delivered), delivered, failed (given up).',
      labelNames: ['state'],
      registers,
      collect() {
        const e = self.outbox;
        this.set({ state: 'pending' }, e.pending);
        this.set({ state: 'delivered' }, e.delivered);
        this.set({ state: 'failed' }, e.failed);
      },
    });
    new Gauge({
      name: 'keyward_webhook_oldest_pending_seconds',
      help: 'Age of the oldest webhook event not yet delivered (0 when none): how far delivery lags.',
      registers,
      collect() {
        this.set(self.outbox.oldestPendingSeconds);
      },
    });
    new Gauge({
      name: 'keyward_database_pool_connections',
      help: 'Connections of the database pool: in use, idle, and callers waiting for one.',
      labelNames: ['state'],
      registers,
      collect() {
        const p = sources.databasePool();
        this.reset();
        if (!p) return;
        this.set({ state: 'used' }, p.used);
        this.set({ state: 'free' }, p.free);
        this.set({ state: 'waiting' }, p.pending);
      },
    });
  }

  /** The change listener connected (true) or lost its connection (false). */
  listeningChanged(listening: boolean): void {
    this.listening = listening ? 1 : 0;
  }

  changeReceived(): void {
    this.notifications++;
  }

  rpcAnswered(service: string, method: string, code: string, seconds: number): void {
    this.rpcTotal.inc({ service, method, code });
    this.rpcDuration.observe({ service, method }, seconds);
  }

  /** Everything, in the Prometheus text format. */
  async text(): Promise<string> {
    this.outbox = await this.sources.webhookEvents();
    return (await this.registry.metrics()) + this.verify.text();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
