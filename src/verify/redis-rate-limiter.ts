// Rate limits shared by all replicas through Redis (REDIS_URL).
//
// A Lua script reads every counter of the key's limits and, only if all have
// room, adds the cost to all: Redis runs a script atomically, so replicas can
// never together admit more than a limit. Requests of one key that arrive
// together share one run of it, which admits them in order as separate runs
// would.
// Counters are named `{prefix}rl:{<key id>}:<limit name>:<duration ms>:<window>`
// (the braces keep a key's counters in one Redis Cluster slot) and expire
// when their window has ended.
//
// If Redis cannot be reached (not connected, or a command fails or times
// out), the request is decided by this process's LocalRateLimiter instead:
// VerifyKey keeps answering, each replica enforcing the limits on its own.
// That is logged once per outage, and counted in `stats`. The timeout is
// checked only after the event loop has read what arrived meanwhile, so that
// a busy process does not mistake its own lag for Redis's.
import { Redis } from 'ioredis';
import { needOf, type RateLimitSpec } from '../domain/limits.js';
import type { Logger } from '../log.js';
import { PerKeyBatches } from './per-key-batches.js';
import { LocalRateLimiter, outcomeOf, windowEnd, windowOf, type RateLimiter, type RateOutcome } from './rate-limits.js';

// KEYS: one counter per limit. ARGV: cost, need, n, then per limit its limit
// and the time its counter expires (ms). Takes n requests of one key, in
// order: exactly as n runs of a one-request script would, each admitted if
// every counter has room for it after those admitted before it (so the first
// k are, and no later one). Returns {k, used before, ...}.
const TAKE_LUA = `
local cost = tonumber(ARGV[1])
local need = tonumber(ARGV[2])
local k = tonumber(ARGV[3])
local used = {}
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  local room = tonumber(ARGV[2 + 2 * i]) - need - used[i]
  local fit = k
  if room < 0 then fit = 0 elseif cost > 0 then fit = math.floor(room / cost) + 1 end
  if fit < k then k = fit end
end
if k > 0 and cost > 0 then
  for i = 1, #KEYS do
    redis.call('INCRBY', KEYS[i], k * cost)
    redis.call('PEXPIREAT', KEYS[i], ARGV[3 + 2 * i])
  end
end
table.insert(used, 1, k)
return used
`;

// KEYS: counters; ARGV: cost. Takes the cost back from the counters that still exist.
const REFUND_LUA = `
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    local left = tonumber(v) - tonumber(ARGV[1])
    if left < 0 then left = 0 end
    redis.call('SET', KEYS[i], left, 'KEEPTTL')
  end
end
return 1
`;

/** A counter outlives its window by this much, for clocks a little apart. */
const EXPIRY_SLACK_MS = 5000;

type LimitRedis = Redis & {
  keywardTake(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  keywardRefund(numKeys: number, ...args: (string | number)[]): Promise<number>;
};

export interface RateLimitStats {
  /** Whether Redis is in use (REDIS_URL set). */
  redis: boolean;
  /** Whether Redis is currently reachable. */
  redisUp: boolean;
  /** Requests decided in Redis. */
  redisDecisions: number;
  /** Requests decided by this process alone because Redis could not be reached. */
  localFallbacks: number;
  /** Times Redis became unreachable. */
  redisOutages: number;
}

export function newRateLimitStats(redis: boolean): RateLimitStats {
  return { redis, redisUp: redis, redisDecisions: 0, localFallbacks: 0, redisOutages: 0 };
}

/** A request waiting for its key's script run. */
interface Take {
  keyId: string;
  limits: readonly RateLimitSpec[];
  cost: number;
  now: number;
  counters: string[];
  resolve(outcome: RateOutcome): void;
}

export class RedisRateLimiter implements RateLimiter {
  private readonly redis: LimitRedis;
  /** Requests of one key's counters and cost that arrive together go in one script run (group commit). */
  private readonly batches = new PerKeyBatches<Take>((takes) => this.decide(takes));
  private readonly local = new LocalRateLimiter();
  /** Whether the current outage has been logged. */
  private down = false;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly log: Logger,
    private readonly stats: RateLimitStats,
    private readonly timeoutMs: number,
  ) {
    this.redis = new Redis(url, {
      // Fail at once rather than queue while disconnected: the local limiter answers meanwhile.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(100 * times, 2000),
      lazyConnect: false,
      // The scripts of one event-loop turn go to Redis in one write (a pipeline), not one each.
      enableAutoPipelining: true,
    }) as LimitRedis;
    this.redis.defineCommand('keywardTake', { lua: TAKE_LUA });
    this.redis.defineCommand('keywardRefund', { lua: REFUND_LUA });
    // ioredis reports every failed reconnection attempt; one log line per outage is enough.
    this.redis.on('error', (e: Error) => this.unreachable(e.message));
    this.redis.on('ready', () => this.reachable());
  }

  /** Waits (up to the connect timeout) for the first connection, so that the first requests are decided in Redis. */
  async start(): Promise<void> {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, 2000);
      this.redis.on('ready', done);
    });
    if ((this.redis.status as string) !== 'ready') this.unreachable(`connection ${this.redis.status}`);
  }

  private reachable(): void {
    this.stats.redisUp = true;
    if (!this.down) return;
    this.down = false;
    this.log.info('redis reachable again: rate limits are shared by all replicas again');
  }

  private unreachable(reason: string): void {
    this.stats.redisUp = false;
    if (this.down) return;
    this.down = true;
    this.stats.redisOutages++;
    this.log.warn('redis unreachable: each replica enforces rate limits on its own until it is back', { error: reason });
  }

  private counters(keyId: string, limits: readonly RateLimitSpec[], at: number): string[] {
    return limits.map((l) => `${this.prefix}rl:{${keyId}}:${l.name}:${l.durationMs}:${windowOf(at, l.durationMs)}`);
  }

  /** Decided locally only while Redis is known to be down; else the caller waits for take(). */
  takeNow(keyId: string, limits: readonly RateLimitSpec[], cost: number, now: number): RateOutcome | undefined {
    if (this.redis.status === 'ready') return undefined;
    this.unreachable(`connection ${this.redis.status}`);
    this.stats.localFallbacks++;
    return this.local.takeNow(keyId, limits, cost, now);
  }

  /**
   * Takes `cost` from the key's limits in Redis. Requests of one key (same
   * counters, limits and cost) that arrive while its script runs wait for it and then
   * go as one script run (group commit): on a busy key one round trip decides
   * many, exactly as one each would.
   */
  take(keyId: string, limits: readonly RateLimitSpec[], cost: number, now: number): Promise<RateOutcome> {
    const local = this.takeNow(keyId, limits, cost, now);
    if (local !== undefined) return Promise.resolve(local);
    const counters = this.counters(keyId, limits, now);
    // One batch: the same counters, limits and cost (a key's limits may change between two requests).
    const batch = `${cost}|${counters.join('|')}|${limits.map((l) => l.limit).join('|')}`;
    return new Promise((resolve) => this.batches.add(batch, { keyId, limits, cost, now, counters, resolve }));
  }

  private async decide(takes: Take[]): Promise<void> {
    const { limits, cost, now, counters } = takes[0]!;
    const args: (string | number)[] = [...counters, cost, needOf(cost), takes.length];
    for (const l of limits) args.push(l.limit, windowEnd(now, l.durationMs) + EXPIRY_SLACK_MS);
    let reply: number[] | undefined;
    try {
      reply = await this.withTimeout(this.redis.keywardTake(limits.length, ...args));
      if (reply === undefined) throw new Error(`no answer within ${this.timeoutMs} ms`);
    } catch (e) {
      this.unreachable((e as Error).message);
      for (const t of takes) {
        this.stats.localFallbacks++;
        t.resolve(this.local.takeNow(t.keyId, t.limits, t.cost, t.now));
      }
      return;
    }
    if (this.down) this.reachable();
    const admitted = Number(reply[0]);
    takes.forEach((t, i) => {
      this.stats.redisDecisions++;
      // The counters as this request found them: after the requests admitted before it.
      const before = limits.map((_, j) => Number(reply[j + 1]) + Math.min(i, admitted) * cost);
      const outcome = outcomeOf(limits, before, cost, t.now);
      outcome.shared = true;
      t.resolve(outcome);
    });
  }

  async refund(keyId: string, limits: readonly RateLimitSpec[], cost: number, taken: RateOutcome): Promise<void> {
    if (cost === 0) return;
    if (!taken.shared) {
      this.local.refundNow(keyId, limits, cost, taken.at);
      return;
    }
    try {
      await this.withTimeout(this.redis.keywardRefund(limits.length, ...this.counters(keyId, limits, taken.at), cost));
    } catch (e) {
      // The request was refused anyway; its cost stays counted until the window ends.
      this.unreachable((e as Error).message);
    }
  }

  /**
   * The command's answer, or undefined when it has none after the timeout.
   * The timeout fires in the timers phase of the event loop, before the poll
   * phase reads the socket; deciding in the check phase (setImmediate) after
   * it lets an answer that already arrived win.
   */
  private withTimeout<T>(command: Promise<T>): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(
        () =>
          setImmediate(() => {
            if (settled) return;
            settled = true;
            resolve(undefined);
          }),
        this.timeoutMs,
      );
      command.then(
        (v) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          reject(e);
        },
      );
    });
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
