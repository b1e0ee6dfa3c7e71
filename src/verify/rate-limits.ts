// Rate limits of keys: fixed windows aligned to the Unix epoch.
//
// A limit of `limit` per `durationMs` counts the costs admitted in the
// window floor(now / durationMs); a request is admitted when, for every limit
// of the key, used + need <= limit (need = cost, at least 1: a cost of 0 checks
// that something is left), and then its cost is added to every limit, or, if
// one limit refuses it, to none. The counters live in this process
// (LocalRateLimiter, exact for one replica) or in Redis (redis-rate-limiter.ts,
// shared by all replicas).
import { needOf, type RateLimitSpec } from '../domain/limits.js';

/** One limit after a request: what VerifyKeyResponse.rate_limits reports. */
export interface RateLimitOutcome {
  name: string;
  limit: number;
  remaining: number;
  /** When the current window ends (epoch ms). */
  resetMs: number;
  /** This limit refused the request. */
  exceeded: boolean;
}

export interface RateOutcome {
  admitted: boolean;
  limits: RateLimitOutcome[];
  /** When it was decided (epoch ms). */
  at: number;
  /** Decided in Redis (shared), not in this process's memory. */
  shared: boolean;
}

export interface RateLimiter {
  /** The outcome if it can be had without waiting (the counters are in memory), else undefined. */
  takeNow(keyId: string, limits: readonly RateLimitSpec[], cost: number, now: number): RateOutcome | undefined;
  /** Admits the request against all limits (taking `cost` from each) or refuses it (taking nothing). */
  take(keyId: string, limits: readonly RateLimitSpec[], cost: number, now: number): Promise<RateOutcome>;
  /** Gives back what an admitted request took (where it was taken, if that window still runs). */
  refund(keyId: string, limits: readonly RateLimitSpec[], cost: number, taken: RateOutcome): Promise<void>;
  /** Connects to where the counters are kept, if that is not this process. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The index of the window `now` falls in. */
export const windowOf = (now: number, durationMs: number) => Math.floor(now / durationMs);

/** When the window `now` falls in ends (epoch ms). */
export const windowEnd = (now: number, durationMs: number) => (windowOf(now, durationMs) + 1) * durationMs;

/**
 * The outcome for counters `used` (one per limit, before the request):
 * admitted if every limit has room for the need, with `used` then including
 * the cost when admitted.
 */
export function outcomeOf(limits: readonly RateLimitSpec[], usedBefore: readonly number[], cost: number, now: number): RateOutcome {
  const need = needOf(cost);
  let admitted = true;
  for (let i = 0; i < limits.length; i++) if (usedBefore[i]! + need > limits[i]!.limit) admitted = false;
  return {
    admitted,
    at: now,
    shared: false,
    limits: limits.map((l, i) => {
      const used = usedBefore[i]! + (admitted ? cost : 0);
      return {
        name: l.name,
        limit: l.limit,
        remaining: Math.max(0, l.limit - used),
        resetMs: windowEnd(now, l.durationMs),
        exceeded: !admitted && usedBefore[i]! + need > l.limit,
      };
    }),
  };
}

interface Counter {
  window: number;
  used: number;
}

const SWEEP_EVERY_MS = 60_000;

/** Counters in this process's memory: exact for one replica. */
export class LocalRateLimiter implements RateLimiter {
  private readonly counters = new Map<string, Counter>();
  private nextSweep = 0;

  private static id(keyId: string, l: RateLimitSpec): string {
    // The duration is part of the identity: a limit whose window changed starts afresh.
    return `${keyId}\n${l.name}\n${l.durationMs}`;
  }

  takeNow(keyId: string, limits: readonly RateLimitSpec[], cost: number, now: number): RateOutcome {
    if (now >= this.nextSweep) this.sweep(now);
    const ids = limits.map((l) => LocalRateLimiter.id(keyId, l));
    const current = limits.map((l, i) => {
      const c = this.counters.get(ids[i]!);
      return c !== undefined && c.window === windowOf(now, l.durationMs) ? c : undefined;
    });
    const outcome = outcomeOf(
      limits,
      current.map((c) => c?.used ?? 0),
      cost,
      now,
    );
    if (outcome.admitted && cost > 0) {
      limits.forEach((l, i) => {
        const c = current[i];
        if (c !== undefined) c.used += cost;
        else this.counters.set(ids[i]!, { window: windowOf(now, l.durationMs), used: cost });
      });
    }
    return outcome;
  }

  take(keyId: string, limits: readonly RateLimitSpec[], cost: number, now: number): Promise<RateOutcome> {
    return Promise.resolve(this.takeNow(keyId, limits, cost, now));
  }

  refundNow(keyId: string, limits: readonly RateLimitSpec[], cost: number, takenAt: number): void {
    for (const l of limits) {
      const c = this.counters.get(LocalRateLimiter.id(keyId, l));
      if (c !== undefined && c.window === windowOf(takenAt, l.durationMs)) c.used = Math.max(0, c.used - cost);
    }
  }

  refund(keyId: string, limits: readonly RateLimitSpec[], cost: number, taken: RateOutcome): Promise<void> {
    this.refundNow(keyId, limits, cost, taken.at);
    return Promise.resolve();
  }

  /** Drops counters of windows that have ended. */
  private sweep(now: number): void {
    this.nextSweep = now + SWEEP_EVERY_MS;
    for (const [id, c] of this.counters) {
      const durationMs = Number(id.slice(id.lastIndexOf('\n') + 1));
      if (c.window < windowOf(now, durationMs)) this.counters.delete(id);
    }
  }

  get size(): number {
    return this.counters.size;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}
}
