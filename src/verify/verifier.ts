import type { MikroORM } from '@mikro-orm/postgresql';
import { hashApiKey, isWellFormedApiKey } from '../credentials/api-key.js';
import { invalidArgument } from '../domain/errors.js';
import { isPermission, keyState, type KeyState } from '../domain/key-state.js';
import type { Principal } from '../domain/principal.js';
import { requireId } from '../domain/validate.js';
import { KeyCache } from './key-cache.js';
import type { UsageAnalytics } from './analytics.js';
import type { LastUsedRecorder } from './usage.js';
import { checkCost, type RefillSpec } from '../domain/limits.js';
import { rateLimitsOf, refillOf } from '../domain/keys.js';
import type { StoredRateLimit } from '../db/entities.js';
import type { KeyLimits, LimitEnforcer, LimitOutcome } from './limits.js';

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

export interface VerifyResult {
  code: VerifyCode;
  key?: VerifiedKey;
  /** For a key with limits, once they were checked: differs from call to call. */
  limits?: LimitOutcome;
}

const MAX_REQUIRED_PERMISSIONS = 100;

// One indexed lookup by secret hash, with the key's permissions as
// `scope:action` strings. Times come back as epoch milliseconds.
const LOOKUP_SQL = `
  select k.id, k.workspace_id, k.customer_id, k.name, k.enabled, k.metadata,
         (extract(epoch from k.expire_time) * 1000)::float8 as expire_ms,
         (extract(epoch from k.revoke_time) * 1000)::float8 as revoke_ms,
         (extract(epoch from s.expire_time) * 1000)::float8 as secret_expire_ms,
         coalesce((select array_agg(sc.name || ':' || a.action order by sc.name, a.action)
                     from api_key_grants g
                     join scopes sc on sc.id = g.scope_id
                     cross join jsonb_array_elements_text(g.actions) as a(action)
                    where g.api_key_id = k.id), '{}') as permissions,
         k.rate_limits, k.remaining_uses is not null as usage_limited,
         k.refill_amount, k.refill_interval, k.refill_day
    from api_key_secrets s
    join api_keys k on k.id = s.api_key_id
   where s.hash = ?`;

interface LookupRow {
  id: string;
  workspace_id: string;
  customer_id: string;
  name: string;
  enabled: boolean;
  metadata: Record<string, string> | string;
  expire_ms: number | null;
  revoke_ms: number | null;
  secret_expire_ms: number | null;
  permissions: string[];
  rate_limits: StoredRateLimit[] | string;
  usage_limited: boolean;
  refill_amount: string | number | null;
  refill_interval: RefillSpec['interval'] | null;
  refill_day: number | null;
}

/** What the database says about one secret: the unit the verify cache keeps. */
export interface KeyRecord {
  id: string;
  workspaceId: string;
  customerId: string;
  name: string;
  enabled: boolean;
  metadata: Record<string, string>;
  expireTime: Date | null;
  revokeTime: Date | null;
  /** When this secret stops verifying (a rotated-out secret), else null. */
  secretExpireMs: number | null;
  permissions: string[];
  permissionSet: ReadonlySet<string>;
  /** The VerifiedKey of each state this record was seen in, made once. */
  views: Partial<Record<KeyState, VerifiedKey>>;
  /** Rate limits and usage limits; null for a key without any. */
  limits: KeyLimits | null;
}

function limitsOf(row: LookupRow): KeyLimits | null {
  const stored: StoredRateLimit[] = typeof row.rate_limits === 'string' ? JSON.parse(row.rate_limits) : row.rate_limits;
  if (stored.length === 0 && !row.usage_limited) return null;
  return {
    rateLimits: rateLimitsOf({ rateLimits: stored }),
    usageLimited: row.usage_limited,
    refill: refillOf({ refillAmount: row.refill_amount === null ? null : Number(row.refill_amount), refillInterval: row.refill_interval, refillDay: row.refill_day }),
  };
}

function viewOf(rec: KeyRecord, state: KeyState): VerifiedKey {
  return (rec.views[state] ??= {
    id: rec.id,
    workspaceId: rec.workspaceId,
    customerId: rec.customerId,
    name: rec.name,
    permissions: rec.permissions,
    metadata: rec.metadata,
    expireTime: rec.expireTime,
    state,
  });
}

function toRecord(row: LookupRow): KeyRecord {
  return {
    id: row.id,
    workspaceId: row.workspace_id,
    customerId: row.customer_id,
    name: row.name,
    enabled: row.enabled,
    metadata: typeof row.metadata === 'string' ? JSON.parse(row.metadata) : row.metadata,
    expireTime: row.expire_ms === null ? null : new Date(row.expire_ms),
    revokeTime: row.revoke_ms === null ? null : new Date(row.revoke_ms),
    secretExpireMs: row.secret_expire_ms,
    permissions: row.permissions,
    permissionSet: new Set(row.permissions),
    views: {},
    limits: limitsOf(row),
  };
}

export function newKeyCache(opts: { maxEntries: number; positiveTtlMs: number; negativeTtlMs: number }) {
  return new KeyCache<KeyRecord>({ ...opts, owner: (r) => ({ keyId: r.id, workspaceId: r.workspaceId }) });
}

/** Checks the request itself; a bad key is an answer, a bad request an error. */
export function checkVerifyInput(input: VerifyInput): void {
  if (input.key === '') throw invalidArgument('key', 'is required');
  if (input.requiredPermissions.length > MAX_REQUIRED_PERMISSIONS) {
    throw invalidArgument('required_permissions', `must have at most ${MAX_REQUIRED_PERMISSIONS} entries`);
  }
  const perms = input.requiredPermissions;
  for (let i = 0; i < perms.length; i++) {
    if (!isPermission(perms[i]!)) throw invalidArgument(`required_permissions[${i}]`, 'must be scope:action with action read, create, update or delete');
  }
  if (input.workspaceId !== '') requireId('workspace_id', input.workspaceId);
  if (input.cost !== undefined) checkCost(input.cost);
}

/** The answer for every key that is not there; shared, never changed. */
const NOT_FOUND: VerifyResult = Object.freeze({ code: 'not_found' });

function hasAll(granted: ReadonlySet<string>, required: readonly string[]): boolean {
  for (let i = 0; i < required.length; i++) if (!granted.has(required[i]!)) return false;
  return true;
}

export class KeyVerifier {
  constructor(
    private readonly orm: MikroORM,
    private readonly cache: KeyCache<KeyRecord>,
    private readonly usage: LastUsedRecorder,
    private readonly limits: LimitEnforcer,
    private readonly analytics: UsageAnalytics,
  ) {}

  private async lookup(hash: string): Promise<KeyRecord | null> {
    const rows = await this.orm.em.fork().execute<LookupRow[]>(LOOKUP_SQL, [hash]);
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /**
   * Checks the caller and the request. Returns the key's hash to look up, or
   * the answer itself for a malformed key (which costs no cache or database
   * lookup).
   */
  private admit(p: Principal, input: VerifyInput): string | VerifyResult {
    p.requireScope('api_keys:verify');
    checkVerifyInput(input);
    if (input.workspaceId !== '') p.requireWorkspace(input.workspaceId);
    return isWellFormedApiKey(input.key) ? hashApiKey(input.key) : this.analytics.count(p, input.workspaceId, NOT_FOUND, Date.now());
  }

  /**
   * The verdict, if it can be given without waiting: from the request alone
   * or from the cache. Undefined when verify() has to load the key. Throws
   * what verify() rejects with. Lets the VerifyKey fast path answer a cache
   * hit without a promise. Undefined too for a key whose limits must be
   * checked in Redis or the database (nothing is consumed then).
   */
  verifyNow(p: Principal, input: VerifyInput): VerifyResult | undefined {
    const hash = this.admit(p, input);
    if (typeof hash !== 'string') return hash;
    const rec = this.cache.peek(hash);
    return rec === undefined ? undefined : this.decide(p, input, rec, Date.now(), true);
  }

  async verify(p: Principal, input: VerifyInput): Promise<VerifyResult> {
    const hash = this.admit(p, input);
    if (typeof hash !== 'string') return hash;
    const rec = await this.cache.get(hash, () => this.lookup(hash));
    return this.decide(p, input, rec, Date.now(), false);
  }

  /**
   * The verdict for what the database (or the cache) says about the key,
   * counted for usage analytics. For a key with limits it may have to wait;
   * `sync` (from verifyNow) asks for an answer only if none is needed, else
   * undefined, having consumed and counted nothing.
   */
  private decide(p: Principal, input: VerifyInput, rec: KeyRecord | null, now: number, sync: true): VerifyResult | undefined;
  private decide(p: Principal, input: VerifyInput, rec: KeyRecord | null, now: number, sync: false): VerifyResult | Promise<VerifyResult>;
  private decide(p: Principal, input: VerifyInput, rec: KeyRecord | null, now: number, sync: boolean): VerifyResult | Promise<VerifyResult> | undefined {
    const verdict = this.judge(p, input, rec, now, sync);
    if (verdict === undefined) return undefined;
    if (verdict instanceof Promise) return verdict.then((v) => this.analytics.count(p, input.workspaceId, v, now));
    return this.analytics.count(p, input.workspaceId, verdict, now);
  }

  private judge(p: Principal, input: VerifyInput, rec: KeyRecord | null, now: number, sync: boolean): VerifyResult | Promise<VerifyResult> | undefined {
    if (!rec || (rec.secretExpireMs !== null && rec.secretExpireMs <= now)) return NOT_FOUND;
    if (!p.canSee(rec.workspaceId) || (input.workspaceId !== '' && rec.workspaceId !== input.workspaceId)) return NOT_FOUND;
    const state = keyState(rec, now);
    const key = viewOf(rec, state);
    if (state !== 'active') return { code: state, key };
    if (!hasAll(rec.permissionSet, input.requiredPermissions)) return { code: 'insufficient_permissions', key };
    if (rec.limits !== null) {
      const cost = input.cost ?? 1;
      return sync ? this.limits.enforceNow(rec.id, rec.limits, key, cost, now) : this.limits.enforce(rec.id, rec.limits, key, cost, now);
    }
    this.usage.touch(rec.id, now);
    return { code: 'valid', key };
  }
}
