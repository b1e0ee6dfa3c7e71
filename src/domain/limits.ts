// Rate limits and usage limits of keys: their rules, shared by management
// (create, update, read) and verification. No protobuf here.
import type { ApiKey } from '../db/entities.js';
import { invalidArgument } from './errors.js';
import { checkPattern } from './validate.js';

const MAX_RATE_LIMITS = 5;
const MAX_RATE_LIMIT = 1e12;
const MIN_WINDOW_MS = 1000;
const MAX_WINDOW_MS = 31 * 24 * 3600 * 1000;
const MAX_USES = 1e15;
const MAX_COST = 1e9;

const LIMIT_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

/** A rate limit: at most `limit` total cost per fixed window of `durationMs`, aligned to the epoch. */
export interface RateLimitSpec {
  name: string;
  limit: number;
  durationMs: number;
}

type RefillInterval = 'daily' | 'monthly';

export interface RefillSpec {
  /** What remaining uses are set to at each refill. */
  amount: number;
  interval: RefillInterval;
  /** Monthly: day of the month, 1..31 (clamped to the month's last day). Daily: null. */
  dayOfMonth: number | null;
}

/** Limits as a request gives them, before checks; NaN stands for a value that was not a number. */
export interface RateLimitInput {
  name: string;
  limit: number;
  /** Undefined when the duration is missing. */
  durationMs: number | undefined;
}

export interface RefillInput {
  amount: number;
  /** Undefined when unspecified; any other string is rejected. */
  interval: string | undefined;
  dayOfMonth: number;
}

/** 10^n, as messages write it. */
const power = (max: number) => `10^${Math.round(Math.log10(max))}`;

function checkCount(field: string, n: number, min: number, max: number): number {
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalidArgument(field, `must be an integer from ${min} to ${power(max)}`);
  return n;
}

export function checkRateLimits(field: string, limits: readonly RateLimitInput[]): RateLimitSpec[] {
  if (limits.length > MAX_RATE_LIMITS) throw invalidArgument(field, `must have at most ${MAX_RATE_LIMITS} entries`);
  const names = new Set<string>();
  return limits.map((l, i) => {
    const f = `${field}[${i}]`;
    checkPattern(`${f}.name`, l.name, LIMIT_NAME_RE, '[a-z0-9][a-z0-9_.-]{0,63}');
    if (names.has(l.name)) throw invalidArgument(`${f}.name`, `duplicates another limit named ${JSON.stringify(l.name)}`);
    names.add(l.name);
    checkCount(`${f}.limit`, l.limit, 1, MAX_RATE_LIMIT);
    if (l.durationMs === undefined) throw invalidArgument(`${f}.duration`, 'is required');
    if (!Number.isSafeInteger(l.durationMs)) throw invalidArgument(`${f}.duration`, 'must be a whole number of milliseconds');
    if (l.durationMs < MIN_WINDOW_MS || l.durationMs > MAX_WINDOW_MS) throw invalidArgument(`${f}.duration`, 'must be from 1 s to 31 days');
    return { name: l.name, limit: l.limit, durationMs: l.durationMs };
  });
}

export function checkRemainingUses(field: string, n: number | undefined): number | null {
  return n === undefined ? null : checkCount(field, n, 0, MAX_USES);
}

export function checkRefill(field: string, r: RefillInput | undefined): RefillSpec | null {
  if (r === undefined) return null;
  checkCount(`${field}.amount`, r.amount, 0, MAX_USES);
  if (r.interval !== 'daily' && r.interval !== 'monthly') throw invalidArgument(`${field}.interval`, 'must be DAILY or MONTHLY');
  if (r.interval === 'daily') {
    if (r.dayOfMonth !== 0) throw invalidArgument(`${field}.day_of_month`, 'is only for MONTHLY refills');
    return { amount: r.amount, interval: 'daily', dayOfMonth: null };
  }
  const day = r.dayOfMonth === 0 ? 1 : r.dayOfMonth;
  if (!Number.isInteger(day) || day < 1 || day > 31) throw invalidArgument(`${field}.day_of_month`, 'must be from 1 to 31');
  return { amount: r.amount, interval: 'monthly', dayOfMonth: day };
}

/** Checks a VerifyKey cost; undefined means 1. */
export function checkCost(cost: number | undefined): number {
  if (cost === undefined) return 1;
  if (!Number.isSafeInteger(cost) || cost < 0 || cost > MAX_COST) throw invalidArgument('cost', `must be an integer from 0 to ${power(MAX_COST)}`);
  return cost;
}

/**
 * What a request of `cost` needs left in a limit: the cost itself, and at
 * least 1 for a cost of 0 (a check that something is left).
 */
export const needOf = (cost: number) => (cost > 0 ? cost : 1);

// --- refill dates -----------------------------------------------------------

const DAY_MS = 24 * 3600 * 1000;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
}

/** 00:00 UTC of `day` (clamped to the month's last day) in the month `month` of `year` (may be out of 0..11). */
function monthlyRefillAt(year: number, month: number, day: number): number {
  const first = new Date(Date.UTC(year, month, 1));
  const y = first.getUTCFullYear();
  const m = first.getUTCMonth();
  return Date.UTC(y, m, Math.min(day, daysInMonth(y, m)));
}

/** The latest refill time at or before `now` (epoch ms). */
export function lastRefillAt(refill: Pick<RefillSpec, 'interval' | 'dayOfMonth'>, now: number): number {
  if (refill.interval === 'daily') return Math.floor(now / DAY_MS) * DAY_MS;
  const d = new Date(now);
  const day = refill.dayOfMonth ?? 1;
  const thisMonth = monthlyRefillAt(d.getUTCFullYear(), d.getUTCMonth(), day);
  return thisMonth <= now ? thisMonth : monthlyRefillAt(d.getUTCFullYear(), d.getUTCMonth() - 1, day);
}

/** The first refill time after `now` (epoch ms). */
export function nextRefillAt(refill: Pick<RefillSpec, 'interval' | 'dayOfMonth'>, now: number): number {
  if (refill.interval === 'daily') return (Math.floor(now / DAY_MS) + 1) * DAY_MS;
  const d = new Date(now);
  const day = refill.dayOfMonth ?? 1;
  const thisMonth = monthlyRefillAt(d.getUTCFullYear(), d.getUTCMonth(), day);
  return thisMonth > now ? thisMonth : monthlyRefillAt(d.getUTCFullYear(), d.getUTCMonth() + 1, day);
}

export interface UsageState {
  remainingUses: number;
  lastRefillTime: Date | null;
}

/**
 * A key's uses with any refill due at `now` applied: what reads show and what
 * VerifyKey starts from. A refill is due when a refill time has passed since
 * the last one (or since remaining_uses was set).
 */
export function usageAt(stored: UsageState, refill: RefillSpec | null, now: number): UsageState {
  if (refill === null || stored.lastRefillTime === null) return stored;
  const due = lastRefillAt(refill, now);
  if (stored.lastRefillTime.getTime() >= due) return stored;
  return { remainingUses: refill.amount, lastRefillTime: new Date(due) };
}

/** A key's rate limits, from its stored column. */
export function rateLimitsOf(key: Pick<ApiKey, 'rateLimits'>): RateLimitSpec[] {
  return key.rateLimits.map((l) => ({ name: l.name, limit: l.limit, durationMs: l.duration_ms }));
}

/** A key's refill, from its columns; null without one. */
export function refillOf(key: Pick<ApiKey, 'refillAmount' | 'refillInterval' | 'refillDay'>): RefillSpec | null {
  if (key.refillAmount === null || key.refillInterval === null) return null;
  return { amount: Number(key.refillAmount), interval: key.refillInterval as RefillSpec['interval'], dayOfMonth: key.refillDay ?? null };
}
