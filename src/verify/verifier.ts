import type { MikroORM } from '@mikro-orm/postgresql';
import { hashApiKey, isVerifiableKey } from '../credentials/api-key.js';
import { invalidArgument } from '../domain/errors.js';
import { keyState, type KeyState } from '../domain/key-state.js';
import { grantsAll, isPermission } from '../domain/permissions.js';
import type { Principal } from '../domain/principal.js';
import { requireId } from '../domain/validate.js';
import { KeyCache } from './key-cache.js';
import type { KeyFilter, KeyFilterDeps } from './key-filter.js';
import { KeyLookup } from './key-lookup.js';
import type { QueryPool } from '../db/database.js';
import { inSpan } from '../tracing.js';
import type { UsageAnalytics } from './analytics.js';
import type { LastUsedRecorder } from './last-used.js';
import { checkCost, rateLimitsOf, refillOf, type RefillSpec } from '../domain/limits.js';
import type { StoredRateLimit } from '../db/entities.js';
import { jsonColumn } from '../db/json.js';
import type { KeyLimits, LimitEnforcer } from './limit-enforcer.js';
import { NOT_FOUND, type FoundKeyResult, type VerifiedKey, type VerifyInput, type VerifyResult } from './contract.js';

export type { VerifyCode, VerifyInput, VerifiedKey, VerifyResult } from './contract.js';

const MAX_REQUIRED_PERMISSIONS = 100;

/**
 * A key's state and grants now, as columns of `api_keys k` joined to its
 * `workspaces w`: expire_ms, revoke_ms (a deleted workspace's keys count as
 * revoked at the delete) and permissions (sorted permission strings:
 * `scope:action`, or the bare scope name for a whole-scope grant).
 * Shared by this lookup and the token checker's (src/tokens/token-checker.ts).
 */
export const KEY_STATE_COLUMNS = `
         (extract(epoch from k.expire_time) * 1000)::float8 as expire_ms,
         (extract(epoch from coalesce(k.revoke_time, w.delete_time)) * 1000)::float8 as revoke_ms,
         coalesce((select array_agg(p.permission order by p.permission collate "C")
                     from api_key_grants g
                     join scopes sc on sc.id = g.scope_id
                     cross join jsonb_array_elements_text(g.actions) as a(action)
                     cross join lateral (select case when a.action = '*' then sc.name
                                                     else sc.name || ':' || a.action end as permission) p
                    where g.api_key_id = k.id), '{}') as permissions`;

// Indexed lookups by secret hash, of every key a batch of misses asks for
// (key-lookup.ts). Times come back as epoch milliseconds.

const LOOKUP_SQL = `
  select s.hash, k.id, k.workspace_id, k.customer_id, k.name, k.enabled, k.metadata,
         (extract(epoch from s.expire_time) * 1000)::float8 as secret_expire_ms,${KEY_STATE_COLUMNS},
         k.rate_limits, k.remaining_uses is not null as usage_limited,
         k.refill_amount, k.refill_interval, k.refill_day
    from api_key_secrets s
    join api_keys k on k.id = s.api_key_id
    join workspaces w on w.id = k.workspace_id
   where s.hash = any($1::text[])`;

interface LookupRow {
  hash: string;
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
  /** The verdict of each code this record was answered with (keys without limits), made once. */
  verdicts: Partial<Record<FoundKeyResult['code'], FoundKeyResult>>;
  /** Rate limits and usage limits; null for a key without any. */
  limits: KeyLimits | null;
}

function limitsOf(row: LookupRow): KeyLimits | null {
  const stored = jsonColumn(row.rate_limits);
  if (stored.length === 0 && !row.usage_limited) return null;
  return {
    rateLimits: rateLimitsOf({ rateLimits: stored }),
    usageLimited: row.usage_limited,
    refill: refillOf({
      refillAmount: row.refill_amount === null ? null : Number(row.refill_amount),
      refillInterval: row.refill_interval,
      refillDay: row.refill_day,
    }),
  };
}

/**
 * The verdict `code` for a record, made once and then shared by every call
 * it answers (the fast path keeps each verdict's encoding alongside).
 */
function verdictOf(rec: KeyRecord, code: FoundKeyResult['code'], state: KeyState): FoundKeyResult {
  return (rec.verdicts[code] ??= { code, key: viewOf(rec, state) });
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
    metadata: jsonColumn(row.metadata),
    expireTime: row.expire_ms === null ? null : new Date(row.expire_ms),
    revokeTime: row.revoke_ms === null ? null : new Date(row.revoke_ms),
    secretExpireMs: row.secret_expire_ms,
    permissions: row.permissions,
    permissionSet: new Set(row.permissions),
    views: {},
    verdicts: {},
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
    if (!isPermission(perms[i]!)) throw invalidArgument(`required_permissions[${i}]`, 'must be scope:action or a scope name, e.g. inference:write or admin');
  }
  if (input.workspaceId !== '') requireId('workspace_id', input.workspaceId);
  if (input.cost !== undefined) checkCost(input.cost);
}

/** The membership filter's reads: how many secrets there are, and all their hashes in order, a batch at a time. */
export function secretScan(orm: MikroORM): Pick<KeyFilterDeps, 'count' | 'scan'> {
  return {
    count: async () => Number((await orm.em.fork().execute<{ n: string }[]>('select count(*) as n from api_key_secrets'))[0]!.n),
    scan: async (after, limit) =>
      (await orm.em.fork().execute<{ hash: string }[]>('select hash from api_key_secrets where hash > ? order by hash limit ?', [after, limit])).map(
        (r) => r.hash,
      ),
  };
}

export class KeyVerifier {
  constructor(
    pool: () => Promise<QueryPool>,
    private readonly cache: KeyCache<KeyRecord>,
    private readonly filter: KeyFilter,
    private readonly lastUsed: LastUsedRecorder,
    private readonly limits: LimitEnforcer,
    private readonly analytics: UsageAnalytics,
    opts: { lookupTimeoutMs: number },
  ) {
    this.rows = new KeyLookup<LookupRow>(pool, LOOKUP_SQL, opts.lookupTimeoutMs);
  }

  private readonly rows: KeyLookup<LookupRow>;

  /** Lookup queries run, and the keys they read (more keys than queries: concurrent misses went together). */
  get lookupStats(): { queries: number; keys: number } {
    return this.rows.stats;
  }

  /** The key's row, read on a cache miss: the one part of VerifyKey that is traced. */
  private lookup(hash: string): Promise<KeyRecord | null> {
    return inSpan('keyward.verify.lookup', { 'db.system.name': 'postgresql' }, async (span) => {
      const row = await this.rows.get(hash);
      span?.setAttributes(row ? { 'keyward.key.found': true, 'keyward.key.id': row.id } : { 'keyward.key.found': false });
      return row ? toRecord(row) : null;
    });
  }

  /**
   * The verdict on an API key for caller `p`: the verdict itself when it can
   * be given without waiting (from the request alone, or a cached key whose
   * limits, if any, are kept in memory), else a promise of it. A cache hit
   * thus costs no promise: the VerifyKey fast path answers it synchronously.
   * Throws (synchronously) for a caller without `api_keys:verify`, a bad
   * request, or a workspace the caller may not see.
   */
  verify(p: Principal, input: VerifyInput): VerifyResult | Promise<VerifyResult> {
    p.requireScope('api_keys:verify');
    checkVerifyInput(input);
    if (input.workspaceId !== '') p.requireWorkspace(input.workspaceId);
    const now = Date.now();
    // A malformed key (a typo of a Keyward key, garbage) costs no cache or database lookup.
    if (!isVerifiableKey(input.key)) return this.settle(p, input, NOT_FOUND, now);
    const hash = hashApiKey(input.key);
    const rec = this.cache.peek(hash, now);
    if (rec !== undefined) return this.decide(p, input, rec, now);
    // A key that was never issued costs no query.
    if (this.filter.absent(hash)) {
      if (!this.filter.needsBarrier) return this.notIssued(p, input, now);
      return this.filter.absentAfterBarrier(hash).then((absent) => (absent ? this.notIssued(p, input, Date.now()) : this.lookUpAndDecide(p, input, hash)));
    }
    return this.lookUpAndDecide(p, input, hash);
  }

  private lookUpAndDecide(p: Principal, input: VerifyInput, hash: string): Promise<VerifyResult> {
    return this.cache.get(hash, () => this.lookup(hash)).then((r) => this.decide(p, input, r, Date.now()));
  }

  private notIssued(p: Principal, input: VerifyInput, now: number): VerifyResult {
    this.filter.answeredAbsent();
    return this.settle(p, input, NOT_FOUND, now);
  }

  /** The verdict for what the database (or the cache) says about the key. */
  private decide(p: Principal, input: VerifyInput, rec: KeyRecord | null, now: number): VerifyResult | Promise<VerifyResult> {
    const verdict = this.judge(p, input, rec, now);
    return verdict instanceof Promise ? verdict.then((v) => this.settle(p, input, v, now)) : this.settle(p, input, verdict, now);
  }

  /** What every verdict is followed by: counted for usage analytics, and a valid key's use noted. */
  private settle(p: Principal, input: VerifyInput, verdict: VerifyResult, now: number): VerifyResult {
    if (verdict.code === 'valid') this.lastUsed.touch(verdict.key.id, now);
    return this.analytics.count(p, input.workspaceId, verdict, now);
  }

  private judge(p: Principal, input: VerifyInput, rec: KeyRecord | null, now: number): VerifyResult | Promise<VerifyResult> {
    if (!rec || (rec.secretExpireMs !== null && rec.secretExpireMs <= now)) return NOT_FOUND;
    if (!p.canSee(rec.workspaceId) || (input.workspaceId !== '' && rec.workspaceId !== input.workspaceId)) return NOT_FOUND;
    const state = keyState(rec, now);
    if (state !== 'active') return verdictOf(rec, state, state);
    if (!grantsAll(rec.permissionSet, input.requiredPermissions)) return verdictOf(rec, 'insufficient_permissions', state);
    if (rec.limits === null) return verdictOf(rec, 'valid', state);
    const key = viewOf(rec, state);
    const cost = input.cost ?? 1;
    return this.limits.enforceNow(rec.id, rec.limits, key, cost, now) ?? this.limits.enforce(rec.id, rec.limits, key, cost, now);
  }
}
