// What VerifyKey answers, as every caller of src/verify sees it: the stock
// RPC handler, the HTTP/2 fast path, forward auth, token exchange. Types
// only, and the one answer that tells nothing about a key.
import type { KeyState } from '../domain/key-state.js';
import type { RateLimitOutcome } from './rate-limits.js';

export type VerifyCode = 'valid' | 'not_found' | 'disabled' | 'expired' | 'revoked' | 'insufficient_permissions' | 'rate_limited' | 'usage_exceeded';

export interface VerifyInput {
  key: string;
  requiredPermissions: string[];
  workspaceId: string;
  /** What the request costs a key with limits; undefined means 1. */
  cost?: number;
}

/**
 * What is known of a found key; absent when the code is not_found. One object
 * per cached record and state, shared by every verification that answers
 * with it: read it, never change it.
 */
export interface VerifiedKey {
  id: string;
  workspaceId: string;
  customerId: string;
  name: string;
  permissions: string[];
  metadata: Record<string, string>;
  expireTime: Date | null;
  state: KeyState;
}

/** Where a key with limits stands after a verification. */
export interface LimitOutcome {
  rateLimits: RateLimitOutcome[];
  remainingUses?: number;
}

/** What VerifyKey answers: a key found (with what is known of it), or not. */
export type VerifyResult = FoundKeyResult | NotFoundResult;

export interface FoundKeyResult {
  code: Exclude<VerifyCode, 'not_found'>;
  key: VerifiedKey;
  /** For a key with limits, once they were checked: differs from call to call. */
  limits?: LimitOutcome;
}

/** Nothing about a key: no key, no limits. */
export interface NotFoundResult {
  code: 'not_found';
  key?: undefined;
  limits?: undefined;
}

/** The answer for every key that is not there; shared, never changed. */
export const NOT_FOUND: NotFoundResult = Object.freeze({ code: 'not_found' });
