// What a key is made from (KeyInput) and how callers see one (KeyView): the
// types src/domain/keys.ts and its helpers (key-fields, key-import,
// key-insert) share.
import type { ApiKey } from '../db/entities.js';
import type { KeyState } from './key-state.js';
import type { RateLimitInput, RateLimitSpec, RefillInput, RefillSpec, UsageState } from './limits.js';
import type { GrantSpec } from './permissions.js';

export interface KeyInput {
  workspaceId: string;
  customerId: string;
  name: string;
  description: string;
  grants: GrantSpec[];
  /** Permission strings (ApiKey.scopes), merged with grants. */
  permissions: string[];
  /** Undefined on create means enabled. */
  enabled?: boolean;
  metadata: Record<string, string>;
  expireTime?: Date;
  rateLimits: RateLimitInput[];
  /** Undefined: unlimited. */
  remainingUses?: number;
  /** Undefined: no refill. */
  refill?: RefillInput;
}

/** A key as callers see it: the row, its grants by scope name, and its state. */
export interface KeyView {
  key: ApiKey;
  grants: GrantSpec[];
  state: KeyState;
  rateLimits: RateLimitSpec[];
  /** Remaining uses with any due refill applied; null when unlimited. */
  usage: UsageState | null;
  refill: RefillSpec | null;
}
