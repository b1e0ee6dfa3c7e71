// What VerifyKey answers, as every caller of src/verify sees it: the stock
// RPC handler, the HTTP/2 fast path, forward auth, token exchange. Types
// only, and the one answer that tells nothing about a key.
import type { KeyState } from '../domain/key-state.js';
import type { RateLimitOutcome } from './rate-limits.js';

export type VerifyCode =
  | 'valid'
  | 'not_found'
  | 'disabled'
  | 'expired'
  | 'revoked'
  | 'insufficient_permissions'
  | 'rate_limited'
  | 'usage_exceeded';

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

export interface VerifyResult {
  code: VerifyCode;
  key?: VerifiedKey;
  /** For a key with limits, once they were checked: differs from call to call. */
  limits?: LimitOutcome;
}

/** The answer for every key that is not there; shared, never changed. */
export const NOT_FOUND: VerifyResult = Object.freeze({ code: 'not_found' });
