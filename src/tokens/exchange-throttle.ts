import { boundedSet, bucketOf, type Bucket } from '../auth/token-bucket.js';
import { resourceExhausted } from '../domain/errors.js';

export interface ExchangeThrottleOptions {
  /** Successful exchanges one API key may make per minute (a bucket of this size, refilled at this rate). */
  perKeyPerMinute: number;
  /** Failed exchanges (unknown, disabled, expired, revoked keys) one remote address may make at once ... */
  failureBurst: number;
  /** ... and how many more it regains per second. */
  failuresPerSecond: number;
  /** Bound on the addresses, keys and remembered keys kept (the oldest are dropped). */
  maxEntries?: number;
}

/**
 * Throttles TokenService/ExchangeOwnKey, which takes no SDK key, in memory
 * (per process):
 * - per remote address, a token bucket of failed exchanges: an address whose
 *   bucket is empty is refused before its key is looked up, unless the key
 *   exchanged successfully before (a customer behind the same NAT as a
 *   guesser keeps working);
 * - per API key, a token bucket of successful exchanges: `perKeyPerMinute`
 *   at once, refilled at `perKeyPerMinute` a minute. A client that refreshes
 *   its token shortly before expiry needs one a TTL.
 */
export class ExchangeThrottle {
  private readonly failures = new Map<string, Bucket>();
  private readonly perKey = new Map<string, Bucket>();
  /** SHA-256 hashes of API keys that exchanged successfully, for an address that is throttled. */
  private readonly known = new Map<string, true>();
  private readonly maxEntries: number;
  readonly stats = { throttledAddresses: 0, throttledKeys: 0 };

  constructor(private readonly opts: ExchangeThrottleOptions) {
    this.maxEntries = opts.maxEntries ?? 10_000;
  }

  /** Seconds a throttled address waits at most for its next attempt. */
  get addressRetryAfterSeconds(): number {
    return Math.ceil(1 / this.opts.failuresPerSecond);
  }

  /** Seconds a throttled key waits at most for its next exchange. */
  get keyRetryAfterSeconds(): number {
    return Math.ceil(60 / this.opts.perKeyPerMinute);
  }

  /** Throws RESOURCE_EXHAUSTED when `source` may not try now (its failures are spent and the key is not known). */
  checkAddress(source: string, keyHash: string, now = Date.now()): void {
    if (this.known.has(keyHash)) return;
    const b = bucketOf(this.failures, source, this.opts.failureBurst, this.opts.failuresPerSecond, now);
    if (b.tokens < 1) {
      this.stats.throttledAddresses++;
      throw resourceExhausted(`too many failed token exchanges from this address; try again in ${this.addressRetryAfterSeconds} s`);
    }
  }

  /** Records a failed exchange from `source`. */
  failed(source: string, now = Date.now()): void {
    const b = bucketOf(this.failures, source, this.opts.failureBurst, this.opts.failuresPerSecond, now);
    b.tokens = Math.max(0, b.tokens - 1);
    boundedSet(this.failures, source, b, this.maxEntries);
  }

  /** Takes one exchange from the key's budget, or throws RESOURCE_EXHAUSTED; remembers the key as known. */
  takeForKey(keyId: string, keyHash: string, now = Date.now()): void {
    const perSecond = this.opts.perKeyPerMinute / 60;
    const b = bucketOf(this.perKey, keyId, this.opts.perKeyPerMinute, perSecond, now);
    if (b.tokens < 1) {
      this.stats.throttledKeys++;
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / perSecond));
      throw resourceExhausted(
        `too many token exchanges for this API key (at most ${this.opts.perKeyPerMinute} a minute); ` +
          `reuse the token until shortly before its expire_time, or try again in ${wait} s`,
      );
    }
    b.tokens -= 1;
    boundedSet(this.perKey, keyId, b, this.maxEntries);
    boundedSet(this.known, keyHash, true, this.maxEntries);
  }
}
