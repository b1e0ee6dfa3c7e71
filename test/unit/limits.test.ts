import { describe, expect, it } from 'vitest';
import { checkCost, checkRateLimits, checkRefill, lastRefillAt, nextRefillAt, usageAt } from '../../src/domain/limits.js';
import { LocalRateLimiter, outcomeOf, windowEnd, windowOf } from '../../src/verify/rate-limits.js';

const t = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const SECOND = 1000;
const DAY = 24 * 3600 * SECOND;

describe('fixed windows', () => {
  it('are aligned to the epoch', () => {
    expect(windowOf(0, SECOND)).toBe(0);
    expect(windowOf(999, SECOND)).toBe(0);
    expect(windowOf(1000, SECOND)).toBe(1);
    expect(iso(windowEnd(t('2026-03-10T17:45:12.345Z'), DAY))).toBe('2026-03-11T00:00:00.000Z');
    expect(iso(windowEnd(t('2026-03-10T17:45:12.345Z'), 60 * SECOND))).toBe('2026-03-10T17:46:00.000Z');
    // The last millisecond of a window belongs to it; its end starts the next.
    expect(windowEnd(t('2026-03-10T23:59:59.999Z'), DAY)).toBe(t('2026-03-11T00:00:00.000Z'));
    expect(windowEnd(t('2026-03-11T00:00:00.000Z'), DAY)).toBe(t('2026-03-12T00:00:00.000Z'));
  });

  it('admit when every limit has room for the cost (at least 1), reporting each limit', () => {
    const limits = [
      { name: 'a', limit: 10, durationMs: SECOND },
      { name: 'b', limit: 3, durationMs: DAY },
    ];
    const now = t('2026-01-01T12:00:00.500Z');
    expect(outcomeOf(limits, [5, 1], 2, now)).toEqual({
      admitted: true,
      at: now,
      shared: false,
      limits: [
        { name: 'a', limit: 10, remaining: 3, resetMs: t('2026-01-01T12:00:01Z'), exceeded: false },
        { name: 'b', limit: 3, remaining: 0, resetMs: t('2026-01-02T00:00:00Z'), exceeded: false },
      ],
    });
    const refused = outcomeOf(limits, [5, 2], 2, now);
    expect([refused.admitted, refused.limits.map((l) => [l.remaining, l.exceeded])]).toEqual([
      false,
      [
        [5, false],
        [1, true],
      ],
    ]);
    // Cost 0 needs 1 left and takes nothing.
    expect(outcomeOf(limits, [9, 2], 0, now).admitted).toBe(true);
    expect(outcomeOf(limits, [10, 2], 0, now).limits[0]).toMatchObject({ remaining: 0, exceeded: true });
  });
});

describe('LocalRateLimiter', () => {
  const limits = [
    { name: 'burst', limit: 2, durationMs: SECOND },
    { name: 'daily', limit: 3, durationMs: DAY },
  ];

  it('takes from all limits or none, starts each window afresh, gives back', () => {
    const rl = new LocalRateLimiter();
    const at = t('2026-01-01T00:00:00.100Z');
    const codes = (now: number, cost = 1) => rl.takeNow('k', limits, cost, now).admitted;
    expect([codes(at), codes(at), codes(at)]).toEqual([true, true, false]);
    // Refused by burst: daily untouched (2 of 3 used).
    const next = at + SECOND;
    expect(rl.takeNow('k', limits, 0, next).limits.map((l) => l.remaining)).toEqual([2, 1]);
    const taken = rl.takeNow('k', limits, 1, next);
    expect(taken.admitted).toBe(true);
    expect(codes(next)).toBe(false); // daily spent
    rl.refundNow('k', limits, 1, taken.at);
    expect(rl.takeNow('k', limits, 0, next).limits.map((l) => l.remaining)).toEqual([2, 1]);
    // Other keys and the next day are separate.
    expect(codes(next + DAY)).toBe(true);
    expect(rl.takeNow('other', limits, 2, next).admitted).toBe(true);
  });

  it('forgets windows that have ended', () => {
    const rl = new LocalRateLimiter();
    const at = t('2026-01-01T00:00:00Z');
    rl.takeNow('k', limits, 1, at);
    expect(rl.size).toBe(2);
    rl.takeNow('j', [], 1, at + 2 * DAY);
    expect(rl.size).toBe(0);
  });
});

describe('refill dates', () => {
  const daily = { interval: 'daily' as const, dayOfMonth: null };
  const monthly = (day: number) => ({ interval: 'monthly' as const, dayOfMonth: day });

  it('daily: 00:00 UTC', () => {
    expect(iso(lastRefillAt(daily, t('2026-05-17T13:00:00Z')))).toBe('2026-05-17T00:00:00.000Z');
    expect(iso(nextRefillAt(daily, t('2026-05-17T13:00:00Z')))).toBe('2026-05-18T00:00:00.000Z');
    expect(iso(lastRefillAt(daily, t('2026-05-17T00:00:00Z')))).toBe('2026-05-17T00:00:00.000Z');
  });

  it('monthly: on the day, clamped to the last day of shorter months', () => {
    expect(iso(lastRefillAt(monthly(15), t('2026-05-17T13:00:00Z')))).toBe('2026-05-15T00:00:00.000Z');
    expect(iso(lastRefillAt(monthly(20), t('2026-05-17T13:00:00Z')))).toBe('2026-04-20T00:00:00.000Z');
    expect(iso(lastRefillAt(monthly(31), t('2026-05-17T13:00:00Z')))).toBe('2026-04-30T00:00:00.000Z');
    expect(iso(lastRefillAt(monthly(31), t('2026-03-01T00:00:00Z')))).toBe('2026-02-28T00:00:00.000Z');
    expect(iso(lastRefillAt(monthly(30), t('2028-03-01T00:00:00Z')))).toBe('2028-02-29T00:00:00.000Z');
    expect(iso(nextRefillAt(monthly(31), t('2026-01-31T00:00:00Z')))).toBe('2026-02-28T00:00:00.000Z');
    expect(iso(nextRefillAt(monthly(31), t('2026-02-28T00:00:00Z')))).toBe('2026-03-31T00:00:00.000Z');
    expect(iso(nextRefillAt(monthly(1), t('2026-12-05T00:00:00Z')))).toBe('2027-01-01T00:00:00.000Z');
    expect(iso(lastRefillAt(monthly(5), t('2027-01-02T00:00:00Z')))).toBe('2026-12-05T00:00:00.000Z');
  });

  it('usageAt applies a refill due since the last one, once', () => {
    const refill = { amount: 50, ...monthly(1) };
    const stored = { remainingUses: 3, lastRefillTime: new Date('2026-04-20T10:00:00Z') };
    expect(usageAt(stored, refill, t('2026-04-30T00:00:00Z'))).toEqual(stored);
    expect(usageAt(stored, refill, t('2026-05-02T00:00:00Z'))).toEqual({ remainingUses: 50, lastRefillTime: new Date('2026-05-01T00:00:00Z') });
    expect(usageAt(stored, null, t('2027-01-01T00:00:00Z'))).toEqual(stored);
  });
});

describe('checks', () => {
  it('name the field', () => {
    expect(() => checkCost(-1)).toThrow(/^cost: /);
    expect(() => checkCost(1.5)).toThrow(/^cost: /);
    expect(() => checkCost(2e9)).toThrow('cost: must be an integer from 0 to 10^9');
    expect(checkCost(undefined)).toBe(1);
    expect(checkCost(0)).toBe(0);
    expect(() => checkRateLimits('f', [{ name: 'a', limit: 1, durationMs: NaN }])).toThrow('f[0].duration: must be a whole number of milliseconds');
    expect(() => checkRefill('r', { amount: 1, interval: 'monthly', dayOfMonth: 0 })).not.toThrow();
    expect(checkRefill('r', { amount: 1, interval: 'monthly', dayOfMonth: 0 })).toEqual({ amount: 1, interval: 'monthly', dayOfMonth: 1 });
  });
});
