import type { MikroORM } from '@mikro-orm/postgresql';
import { SdkKey } from '../db/entities.js';
import { checkSdkKeySecret, parseSdkKey, sdkKeyFingerprint } from '../credentials/sdk-key.js';
import { looksLikePortalToken } from '../credentials/portal-token.js';
import { permissionDenied, resourceExhausted, unauthenticated } from '../domain/errors.js';
import { Principal } from '../domain/principal.js';
import { bearerTokenOf } from './bearer.js';
import { PORTAL_TOKEN_REFUSED } from './portal-auth.js';
import { boundedSet, bucketOf, refilled, type Bucket } from './token-bucket.js';

/** A verified SDK key as remembered; see SdkKeyAuthenticator. */
export interface Remembered {
  readonly principal: Principal;
  readonly sdkKeyId: string;
  readonly checkedAt: number;
  /** Set once this entry is replaced or dropped (revoked, rechecked); it then answers nothing. */
  superseded: boolean;
}

export interface SdkKeyAuthOptions {
  /** How long a verified key is trusted before its row is read again (not re-hashed). */
  recheckMs: number;
  /** Bound on remembered keys (and on remembered wrong tokens, and on throttled sources). */
  maxEntries: number;
  /** How long a token that failed its check (unknown, revoked or wrong secret) is answered from memory. */
  failureTtlMs: number;
  /** Failed bcrypt checks a source may make at once before it is throttled ... */
  failureBurst: number;
  /** ... and how many more it regains per second. */
  failuresPerSecond: number;
  /** Failed bcrypt checks one SDK key id may take, from all sources together, before it is throttled ... */
  idFailureBurst: number;
  /** ... and how many more it regains per second. */
  idFailuresPerSecond: number;
}

/** The budget of failed checks of one SDK key id, and the sources whose wrong secrets drew from it. */
interface IdBudget {
  bucket: Bucket;
  /** Sources that failed a check of this id since its bucket was last full (at most FAILING_SOURCES_KEPT). */
  failedFrom: Set<string>;
  /** More sources failed than are kept: while the bucket is empty, every source counts as failing. */
  overflowed: boolean;
}

/** Sources remembered per throttled SDK key id; more than this and the id is refused to every source. */
const FAILING_SOURCES_KEPT = 64;

/** The options that are not configuration (the failure budget is: see config.ts). */
export const DEFAULT_SDK_KEY_AUTH: Omit<SdkKeyAuthOptions, 'failureBurst' | 'failuresPerSecond' | 'idFailureBurst' | 'idFailuresPerSecond'> = {
  recheckMs: 1000,
  maxEntries: 10_000,
  failureTtlMs: 10 * 60_000,
};

const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * Authenticates SDK keys. bcrypt runs once per key per process: a verified
 * key is remembered by the SHA-256 of its token (never the token itself), and
 * afterwards only its row is re-read, at most every `recheckMs`, to notice
 * revocation by another process. Concurrent first uses of one token share a
 * single bcrypt check.
 *
 * bcrypt is slow on purpose, so wrong secrets must not be a way to burn CPU:
 * - a token that failed its check is remembered (by fingerprint) and refused
 *   again without a bcrypt, for `failureTtlMs` (a secret never becomes right);
 * - each source (remote address) has a token bucket of failed bcrypt checks:
 *   `failureBurst` at once, `failuresPerSecond` after that. A source whose
 *   bucket is empty gets RESOURCE_EXHAUSTED for any SDK key that would need
 *   a bcrypt check, without one; keys already remembered keep working;
 * - each SDK key id has a bucket too (`idFailureBurst`, `idFailuresPerSecond`),
 *   drawn by wrong secrets for that id from any source. While it is empty,
 *   the sources that failed against the id are refused for it without a
 *   check (and without drawing from their own buckets, so an attacker at a
 *   shared proxy address who guesses one id cannot drain that address's
 *   budget for everyone else); any other source still gets its check, so the
 *   right secret still passes there, and a wrong one adds that source to the
 *   refused. More than FAILING_SOURCES_KEPT failing sources refuse the id to
 *   every source until its bucket is full again. Other ids never notice.
 *
 * `source` is the caller's address as TrustedProxies.clientAddress resolves
 * it (X-Forwarded-For only from configured proxies).
 */
export class SdkKeyAuthenticator {
  private readonly remembered = new Map<string, Remembered>();
  private readonly pending = new Map<string, Promise<Remembered>>();
  /** Fingerprints of tokens that failed: when, and the subject their failures are recorded under. */
  private readonly failed = new Map<string, { at: number; subject: string }>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly idBudgets = new Map<string, IdBudget>();
  /**
   * `failures`: SDK keys refused; `throttled`: checks refused because their
   * address (or their key id, also counted in `throttledById`) failed too often.
   */
  readonly stats = { bcryptChecks: 0, throttled: 0, throttledById: 0, failuresFromMemory: 0, failures: 0 };

  constructor(
    private readonly orm: MikroORM,
    private readonly opts: SdkKeyAuthOptions,
    /**
     * Told of every refusal, with the SDK key id if it names one that exists,
     * else `missing`, `malformed` or `unknown` (never the token).
     */
    private readonly onFailure: (subject: string) => void,
  ) {}

  private refused(subject: string): void {
    this.stats.failures++;
    this.onFailure(subject);
  }

  /** How long a throttled source waits, at most, for its next check (a Retry-After), whether its address or its key id was throttled. */
  get throttledRetryAfterSeconds(): number {
    return Math.ceil(1 / Math.min(this.opts.failuresPerSecond, this.opts.idFailuresPerSecond));
  }

  /** The SDK key of an authorization header. */
  private token(authorization: string | null | undefined): string {
    if (!authorization) {
      this.refused('missing');
      throw unauthenticated('missing SDK key: send "authorization: Bearer <sdk key>"');
    }
    const token = bearerTokenOf(authorization);
    if (token === undefined) {
      this.refused('malformed');
      throw unauthenticated('the authorization header must be "Bearer <sdk key>"');
    }
    return token;
  }

  /**
   * The entry of a remembered key checked within `recheckMs`, or undefined
   * when authenticate() has more to do. Throws what authenticate() throws for
   * a missing or malformed header. Synchronous, so the VerifyKey fast path
   * pays no promise for the common case.
   */
  rememberedEntry(authorization: string | null | undefined): Remembered | undefined {
    const hit = this.remembered.get(sdkKeyFingerprint(this.token(authorization)));
    return hit && this.isFresh(hit) ? hit : undefined;
  }

  /**
   * The principal of an entry rememberedEntry() returned earlier, if it still
   * stands (not superseded, checked within `recheckMs`): lets a caller that
   * keeps the entry next to the exact header it came from (the VerifyKey fast
   * path, per HTTP/2 connection) skip parsing and hashing that header again.
   */
  principalIfFresh(entry: Remembered): Principal | undefined {
    return !entry.superseded && this.isFresh(entry) ? entry.principal : undefined;
  }

  private isFresh(hit: Remembered): boolean {
    return Date.now() - hit.checkedAt < this.opts.recheckMs;
  }

  /**
   * The principal of the SDK key in `authorization`. `source` identifies the
   * caller's network origin (its remote address) for throttling failed checks.
   */
  authenticate(authorization: string | null | undefined, source: string): Promise<Principal> {
    return this.authenticateToken(this.token(authorization), source);
  }

  /** authenticate() for an SDK key sent elsewhere than in an authorization header (forward auth's own header). */
  async authenticateToken(token: string, source: string): Promise<Principal> {
    if (looksLikePortalToken(token)) throw permissionDenied(PORTAL_TOKEN_REFUSED);
    const fp = sdkKeyFingerprint(token);
    const hit = this.remembered.get(fp);
    if (hit && this.isFresh(hit)) return hit.principal;
    let inflight = this.pending.get(fp);
    if (!inflight) {
      inflight = (hit ? this.recheck(fp, hit) : this.verify(fp, token, source)).finally(() => this.pending.delete(fp));
      this.pending.set(fp, inflight);
    }
    return (await inflight).principal;
  }

  /** Forgets a key at once, e.g. after it was revoked in this process. */
  forget(sdkKeyId: string): void {
    for (const [fp, r] of this.remembered) if (r.sdkKeyId === sdkKeyId) this.drop(fp, r);
  }

  private async recheck(fp: string, hit: Remembered): Promise<Remembered> {
    const row = await this.orm.em.fork().findOne(SdkKey, { id: hit.sdkKeyId });
    if (!row || row.revokeTime) {
      this.drop(fp, hit);
      this.refused(row ? row.id : 'unknown');
      throw invalidKey();
    }
    return this.remember(fp, row);
  }

  private async verify(fp: string, token: string, source: string): Promise<Remembered> {
    const parsed = parseSdkKey(token);
    if (!parsed) {
      this.refused('malformed');
      throw unauthenticated(malformedMessage(token));
    }
    const now = Date.now();
    const failed = this.failed.get(fp);
    if (failed !== undefined && now - failed.at < this.opts.failureTtlMs) {
      this.stats.failuresFromMemory++;
      this.refused(failed.subject);
      throw invalidKey();
    }
    // Failed bcrypt checks are what a source's bucket counts; a source whose
    // bucket is empty is refused before any database read or bcrypt. A token
    // is taken before the check (synchronously with looking, so concurrent
    // attempts cannot all pass) and given back if the secret was right.
    if (this.bucketOf(source, now).tokens < 1) throw this.throttled();
    if (this.idRefuses(parsed.id, source, now)) throw this.throttledById();
    const row = await this.orm.em.fork().findOne(SdkKey, { id: parsed.id });
    if (!row || row.revokeTime) {
      // No bcrypt, so nothing taken from the bucket (which would let anyone at
      // a shared address lock out keys not yet checked); the token is
      // remembered, so repeating it costs no second read.
      this.refuse(fp, row ? row.id : 'unknown');
    }
    const checkAt = Date.now();
    const bucket = this.bucketOf(source, checkAt);
    if (bucket.tokens < 1) throw this.throttled();
    if (this.idRefuses(row.id, source, checkAt)) throw this.throttledById();
    bucket.tokens -= 1;
    boundedSet(this.buckets, source, bucket, this.opts.maxEntries);
    // The id's bucket pays too, when it can; a check it cannot pay for is
    // one from a source that has not failed against this id (idRefuses).
    const idBudget = this.idBudgetOf(row.id, checkAt);
    const idPaid = idBudget.bucket.tokens >= 1;
    if (idPaid) idBudget.bucket.tokens -= 1;
    boundedSet(this.idBudgets, row.id, idBudget, this.opts.maxEntries);
    this.stats.bcryptChecks++;
    if (!(await checkSdkKeySecret(parsed.secret, row.secretHash))) {
      if (idBudget.failedFrom.size < FAILING_SOURCES_KEPT) idBudget.failedFrom.add(source);
      else if (!idBudget.failedFrom.has(source)) idBudget.overflowed = true;
      this.refuse(fp, row.id);
    }
    const refund = this.buckets.get(source);
    if (refund) refund.tokens = Math.min(this.opts.failureBurst, refund.tokens + 1);
    if (idPaid) idBudget.bucket.tokens = Math.min(this.opts.idFailureBurst, idBudget.bucket.tokens + 1);
    return this.remember(fp, row);
  }

  /** Refuses a token that failed its check, and remembers it so that it fails again without one. */
  private refuse(fp: string, subject: string): never {
    boundedSet(this.failed, fp, { at: Date.now(), subject }, this.opts.maxEntries);
    this.refused(subject);
    throw invalidKey();
  }

  private throttled() {
    this.stats.throttled++;
    return resourceExhausted('too many failed SDK key checks from this address; try again later');
  }

  private throttledById() {
    this.stats.throttled++;
    this.stats.throttledById++;
    return resourceExhausted('too many failed checks of this SDK key id; try again later');
  }

  /** The id's budget, its bucket refilled up to now; a full bucket forgets the sources that failed. */
  private idBudgetOf(id: string, now: number): IdBudget {
    const budget = this.idBudgets.get(id);
    if (!budget) return { bucket: { tokens: this.opts.idFailureBurst, at: now }, failedFrom: new Set(), overflowed: false };
    refilled(budget.bucket, this.opts.idFailureBurst, this.opts.idFailuresPerSecond, now);
    if (budget.bucket.tokens >= this.opts.idFailureBurst) {
      budget.failedFrom.clear();
      budget.overflowed = false;
    }
    return budget;
  }

  /** Whether the id's bucket is empty and `source` failed against it (or too many sources did). */
  private idRefuses(id: string, source: string, now: number): boolean {
    if (!this.idBudgets.has(id)) return false;
    const budget = this.idBudgetOf(id, now);
    return budget.bucket.tokens < 1 && (budget.overflowed || budget.failedFrom.has(source));
  }

  /** The source's bucket of failed checks, refilled up to now. */
  private bucketOf(source: string, now: number): Bucket {
    return bucketOf(this.buckets, source, this.opts.failureBurst, this.opts.failuresPerSecond, now);
  }

  private remember(fp: string, row: SdkKey): Remembered {
    this.touch(row);
    const entry: Remembered = {
      principal: new Principal(row.id, row.scopes, row.workspaceIds),
      sdkKeyId: row.id,
      checkedAt: Date.now(),
      superseded: false,
    };
    const previous = this.remembered.get(fp);
    if (previous) this.drop(fp, previous);
    if (this.remembered.size >= this.opts.maxEntries) {
      const [oldestFp, oldest] = this.remembered.entries().next().value!;
      this.drop(oldestFp, oldest);
    }
    this.remembered.set(fp, entry);
    return entry;
  }

  /**
   * Records that the key was used, at most once a minute (the row was just
   * read, so every process sees the others' writes). Best effort: a lost
   * write only leaves last_used_time a little older.
   */
  private touch(row: SdkKey): void {
    const now = Date.now();
    if (row.lastUsedTime && now - row.lastUsedTime.getTime() < LAST_USED_RESOLUTION_MS) return;
    this.orm.em
      .fork()
      .nativeUpdate(SdkKey, { id: row.id }, { lastUsedTime: new Date(now) })
      .catch(() => {});
  }

  private drop(fp: string, entry: Remembered): void {
    entry.superseded = true;
    this.remembered.delete(fp);
  }
}

function invalidKey() {
  return unauthenticated('the SDK key is invalid or revoked');
}

/**
 * Why a token is no SDK key. An API key (`kw_…`, or a workspace's own prefix)
 * sent as the management credential is a common mix-up: say what belongs there.
 */
function malformedMessage(token: string): string {
  if (token.startsWith('kws_')) return 'the SDK key is malformed';
  return (
    'this is not an SDK key: management calls take an SDK key ("Bearer kws_..."); ' +
    'an API key issued to a customer is checked with KeyService/VerifyKey (POST /v1/api-keys:verify) by a caller holding an SDK key'
  );
}
