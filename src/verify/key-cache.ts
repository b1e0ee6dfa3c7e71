/**
 * The verify cache: what the database said about a key hash, positive (the
 * key's row) or negative (no such key), kept for a bounded time and size.
 *
 * Safety against staleness rests on three rules:
 * - every change that affects verification evicts (by key or workspace) and
 *   bumps `generation`;
 * - a fill is stored only if no eviction happened while its query ran, so a
 *   read that raced a revoke can never put the revoked state back;
 * - while the replica cannot hear other replicas' changes (`enabled` false),
 *   nothing is stored and nothing is served from the cache.
 * TTLs are the backstop.
 */
export interface CacheOptions<T> {
  maxEntries: number;
  positiveTtlMs: number;
  negativeTtlMs: number;
  /** The key id and workspace of a positive entry, for eviction. */
  owner(value: T): { keyId: string; workspaceId: string };
}

interface Entry<T> {
  value: T | null;
  expiresAt: number;
}

export class KeyCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** Hashes of each key's positive entries (a rotated key has several). */
  private readonly byKey = new Map<string, Set<string>>();
  private readonly inflight = new Map<string, { promise: Promise<T | null>; generation: number }>();
  private generation = 0;
  private enabled = true;
  /**
   * `negativeHits`: the hits (of `hits`) that were a cached "no such key";
   * `misses`: loads (database lookups); `joined`: misses that waited for a load already running.
   */
  readonly stats = { hits: 0, negativeHits: 0, misses: 0, joined: 0, fills: 0, discardedFills: 0, evictions: 0 };

  constructor(private readonly opts: CacheOptions<T>) {}

  /**
   * The cached answer for `hash` (a value, or null for a cached "no such key"),
   * or undefined when get() has to load it. Synchronous, so that a hit costs
   * no promise.
   */
  peek(hash: string, now = Date.now()): T | null | undefined {
    if (!this.enabled) return undefined;
    const e = this.entries.get(hash);
    if (e === undefined || e.expiresAt <= now) return undefined;
    this.stats.hits++;
    if (e.value === null) this.stats.negativeHits++;
    return e.value;
  }

  /**
   * The cached answer for `hash`, or `load()`'s; concurrent misses for one
   * hash share a single load.
   */
  async get(hash: string, load: () => Promise<T | null>, now = Date.now()): Promise<T | null> {
    if (this.enabled) {
      const e = this.entries.get(hash);
      if (e && e.expiresAt > now) {
        this.stats.hits++;
        if (e.value === null) this.stats.negativeHits++;
        return e.value;
      }
      if (e) this.delete(hash);
    }
    // Join a load only if no eviction came after it started: one that began
    // before a revoke may return the row as it was, and a caller that arrives
    // after the revoke must not get that.
    const pending = this.inflight.get(hash);
    if (pending && pending.generation === this.generation) {
      this.stats.joined++;
      return pending.promise;
    }
    this.stats.misses++;
    const startedAt = this.generation;
    const promise = load().then((value) => {
      if (this.enabled && this.generation === startedAt) this.store(hash, value, Date.now());
      else this.stats.discardedFills++;
      return value;
    });
    const mine = { promise, generation: startedAt };
    this.inflight.set(hash, mine);
    try {
      return await promise;
    } finally {
      if (this.inflight.get(hash) === mine) this.inflight.delete(hash);
    }
  }

  private store(hash: string, value: T | null, now: number): void {
    if (this.opts.maxEntries === 0) return;
    this.stats.fills++;
    const ttl = value === null ? this.opts.negativeTtlMs : this.opts.positiveTtlMs;
    this.delete(hash);
    if (this.entries.size >= this.opts.maxEntries) {
      // Map iteration order is insertion order: the first entry is the oldest fill.
      this.delete(this.entries.keys().next().value!);
    }
    this.entries.set(hash, { value, expiresAt: now + ttl });
    if (value !== null) {
      const { keyId } = this.opts.owner(value);
      const hashes = this.byKey.get(keyId) ?? new Set();
      hashes.add(hash);
      this.byKey.set(keyId, hashes);
    }
  }

  private delete(hash: string): void {
    const e = this.entries.get(hash);
    if (!e) return;
    this.entries.delete(hash);
    this.stats.evictions++;
    if (e.value === null) return;
    const { keyId } = this.opts.owner(e.value);
    const hashes = this.byKey.get(keyId);
    hashes?.delete(hash);
    if (hashes?.size === 0) this.byKey.delete(keyId);
  }

  /** Evicts every entry of these keys. */
  evictKeys(keyIds: readonly string[]): void {
    this.generation++;
    for (const id of keyIds) for (const hash of this.byKey.get(id) ?? []) this.delete(hash);
  }

  /** Evicts every entry of a workspace (deleted, or one of its scopes changed). */
  evictWorkspace(workspaceId: string): void {
    this.generation++;
    for (const [hash, e] of this.entries) {
      if (e.value !== null && this.opts.owner(e.value).workspaceId === workspaceId) this.delete(hash);
    }
  }

  /** Drops everything, e.g. after losing the invalidation feed. */
  clear(): void {
    this.generation++;
    this.stats.evictions += this.entries.size;
    this.entries.clear();
    this.byKey.clear();
  }

  /** Stops (false) or resumes (true) serving and storing entries. */
  setEnabled(enabled: boolean): void {
    if (!enabled) this.clear();
    this.enabled = enabled;
  }

  get size(): number {
    return this.entries.size;
  }
}
