// Steps 2 and 3 of VerifyKey for keys that have limits (see KeyService.VerifyKey
// in proto/keyward/v1/key_service.proto): rate limits, then remaining uses.
// Keys without limits never get here.
import type { RateLimitSpec, RefillSpec } from '../domain/limits.js';
import type { RateLimiter, RateOutcome } from './rate-limits.js';
import type { UsageLimits } from './usage-limits.js';
import { NOT_FOUND, type VerifiedKey, type VerifyResult } from './contract.js';

/** The limits of a key as the verify cache keeps them: never the count of remaining uses. */
export interface KeyLimits {
  rateLimits: RateLimitSpec[];
  /** The key has remaining_uses (read from the database on every verification). */
  usageLimited: boolean;
  refill: RefillSpec | null;
}

/** What VerifyKeyResponse reports of the limits, when they were checked. */

const NO_RATE_LIMITS: RateOutcome = Object.freeze({ admitted: true, limits: [], at: 0, shared: false });

export class LimitEnforcer {
  constructor(
    private readonly rateLimiter: RateLimiter,
    private readonly usage: UsageLimits,
  ) {}

  /**
   * The verdict if it can be given without waiting (rate limits in memory, no
   * remaining uses), else undefined, having taken nothing.
   */
  enforceNow(keyId: string, limits: KeyLimits, key: VerifiedKey, cost: number, now: number): VerifyResult | undefined {
    if (limits.usageLimited) return undefined;
    const rate = this.rateLimiter.takeNow(keyId, limits.rateLimits, cost, now);
    if (rate === undefined) return undefined;
    return { code: rate.admitted ? 'valid' : 'rate_limited', key, limits: { rateLimits: rate.limits } };
  }

  async enforce(keyId: string, limits: KeyLimits, key: VerifiedKey, cost: number, now: number): Promise<VerifyResult> {
    const rate = limits.rateLimits.length === 0 ? NO_RATE_LIMITS : await this.rateLimiter.take(keyId, limits.rateLimits, cost, now);
    if (!rate.admitted) return { code: 'rate_limited', key, limits: { rateLimits: rate.limits } };
    if (!limits.usageLimited) return { code: 'valid', key, limits: { rateLimits: rate.limits } };
    let uses: Awaited<ReturnType<UsageLimits['take']>>;
    try {
      uses = await this.usage.take(keyId, limits.refill, cost, now);
    } catch (e) {
      await this.giveBack(keyId, limits, cost, rate);
      throw e;
    }
    if (uses === undefined) {
      // Deleted since it was cached.
      await this.giveBack(keyId, limits, cost, rate);
      return NOT_FOUND;
    }
    if (!uses.admitted) {
      await this.giveBack(keyId, limits, cost, rate);
      const rateLimits = rate.limits.map((l) => ({ ...l, remaining: Math.min(l.limit, l.remaining + cost) }));
      return { code: 'usage_exceeded', key, limits: { rateLimits, remainingUses: uses.remaining ?? undefined } };
    }
    return { code: 'valid', key, limits: { rateLimits: rate.limits, remainingUses: uses.remaining ?? undefined } };
  }

  private async giveBack(keyId: string, limits: KeyLimits, cost: number, rate: RateOutcome): Promise<void> {
    if (rate !== NO_RATE_LIMITS && cost > 0) await this.rateLimiter.refund(keyId, limits.rateLimits, cost, rate);
  }
}
