// The membership filter of VerifyKey: which key secrets exist, in memory, so
// that a well-formed key that was never issued (anyone can mint one: the
// checksum is public) is answered NOT_FOUND without a database query.
//
// Why a Bloom filter: a secret's SHA-256 is already uniformly random, so its
// bits serve as the filter's hashes (no hashing beyond the one VerifyKey does
// anyway); it takes inserts at any time, from any number of writers, with no
// relocation (a cuckoo filter can fail an insert when full, a binary fuse
// filter takes none); and deletes are not needed: a deleted secret left in the
// filter only costs what every lookup cost before, one query (answered
// NOT_FOUND, then cached). At 16 bits a key and 11 probes, one forged key in
// ~2,200 passes (0.046 %) at the size it was built for, 0.24 % at 1.25x that
// many keys, where it is rebuilt larger. Memory: 2 bytes a key.
//
// Exactness: a secret is added in the process that creates it before its
// RPC returns (the change is delivered here after commit), and in every other
// replica when the change feed brings it. Another replica may be asked before
// its notification arrives; so on a shared database a "no" is only given
// after a barrier (src/db/change-listener.ts): a notification of its own,
// sent after the question came, and heard back. PostgreSQL delivers
// notifications in commit order, so by then every secret committed before the
// question is in the filter. While the replica cannot hear the feed (or the
// filter is still being built) it answers nothing: every lookup goes to the
// database.

/** A Bloom filter over SHA-256 hashes in hex. */
export class HashBloom {
  /** Bits, 32 per word. */
  readonly words: Uint32Array;
  private readonly bits: number;

  /** The keys it is sized for, at BITS_PER_KEY each (at least MIN_CAPACITY). */
  readonly capacity: number;

  constructor(keys: number) {
    this.capacity = Math.max(keys, MIN_CAPACITY);
    this.words = new Uint32Array(Math.ceil((this.capacity * BITS_PER_KEY) / 32));
    this.bits = this.words.length * 32;
  }

  add(hashHex: string): void {
    const h1 = Number.parseInt(hashHex.slice(0, 8), 16);
    const h2 = (Number.parseInt(hashHex.slice(8, 16), 16) | 1) >>> 0;
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + i * h2) % this.bits;
      this.words[bit >>> 5]! |= 1 << (bit & 31);
    }
  }

  has(hashHex: string): boolean {
    const h1 = Number.parseInt(hashHex.slice(0, 8), 16);
    const h2 = (Number.parseInt(hashHex.slice(8, 16), 16) | 1) >>> 0;
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + i * h2) % this.bits;
      if ((this.words[bit >>> 5]! & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

const BITS_PER_KEY = 16;
const PROBES = 11;
const MIN_CAPACITY = 65_536;
/** Rebuilt larger once it holds this many times the keys it was built for. */
const GROWTH_LIMIT = 1.25;
const SCAN_BATCH = 50_000;

export interface KeyFilterDeps {
  /** How many secrets are stored (to size the filter before the scan). */
  count(): Promise<number>;
  /** Up to `limit` secret hashes greater than `after`, in order: the streamed scan of every stored secret. */
  scan(after: string, limit: number): Promise<string[]>;
  /** Resolves once every change committed before the call has been delivered here; absent when this process is the only writer. */
  barrier?: () => Promise<void>;
  onBuilt?(info: { keys: number; bytes: number; ms: number }): void;
  onBuildFailed?(e: unknown): void;
}

export class KeyFilter {
  private current: HashBloom | undefined;
  /** The filter being built; every add goes into it too. */
  private building: HashBloom | undefined;
  private build: Promise<void> | undefined;
  private rebuildAgain = false;
  /** Whether `current` holds every stored secret (false until built, and while the change feed is not heard). */
  private trusted = false;
  /** Bumped by distrust(): a build that began before it must not be trusted. */
  private epoch = 0;
  /** Secrets in `current` (about: a secret the filter seemed to hold already is not counted), for when to grow. */
  private held = 0;
  /** Keys answered absent; "no" answers that waited for a barrier. */
  readonly stats = { absent: 0, barriers: 0 };

  constructor(private readonly deps: KeyFilterDeps) {}

  /** Whether a "no" needs a barrier first (a shared database). */
  get needsBarrier(): boolean {
    return this.deps.barrier !== undefined;
  }

  /** Memory the filter takes, and the keys it holds. */
  get size(): { bytes: number; keys: number } {
    return { bytes: (this.current?.words.byteLength ?? 0) + (this.building?.words.byteLength ?? 0), keys: this.held };
  }

  /** A secret that now exists (heard twice where it was made: once at once, once from the feed). */
  add(hash: string): void {
    this.building?.add(hash);
    if (this.current === undefined || this.current.has(hash)) return;
    this.current.add(hash);
    this.held++;
    // Grown past its size: rebuilt larger (once; a build under way already holds what is added meanwhile).
    if (this.held > this.current.capacity * GROWTH_LIMIT && this.build === undefined) void this.rebuild();
  }

  /** True only when the secret certainly does not exist, as far as this replica has heard (see absentAfterBarrier). */
  absent(hash: string): boolean {
    return this.trusted && !this.current!.has(hash);
  }

  /** Counts a key answered absent. */
  answeredAbsent(): void {
    this.stats.absent++;
  }

  /** absent(), once every change committed before now has been heard; false (ask the database) when that cannot be known. */
  async absentAfterBarrier(hash: string): Promise<boolean> {
    this.stats.barriers++;
    try {
      await this.deps.barrier!();
    } catch {
      return false;
    }
    return this.absent(hash);
  }

  /** The change feed is lost: nothing is answered from the filter until it is rebuilt. */
  distrust(): void {
    this.trusted = false;
    this.epoch++;
  }

  /**
   * Builds the filter anew from the database (at start, when the change feed
   * is heard again, when it has grown past its size). Joins a build in
   * progress and runs once more after it (that one may have begun before
   * something it must not miss).
   */
  rebuild(): Promise<void> {
    if (this.build) {
      this.rebuildAgain = true;
      return this.build.then(() => this.build);
    }
    this.build = this.buildOnce().finally(() => {
      this.build = undefined;
      if (this.rebuildAgain) {
        this.rebuildAgain = false;
        void this.rebuild();
      }
    });
    return this.build;
  }

  /** The build in progress, if any, to wait for. */
  whenBuilt(): Promise<void> {
    return this.build ?? Promise.resolve();
  }

  private async buildOnce(): Promise<void> {
    const started = performance.now();
    const epoch = this.epoch;
    try {
      const next = new HashBloom(Math.max(this.held, await this.deps.count()));
      this.building = next;
      let count = 0;
      let after = '';
      for (;;) {
        const batch = await this.deps.scan(after, SCAN_BATCH);
        for (const h of batch) next.add(h);
        count += batch.length;
        if (batch.length < SCAN_BATCH) break;
        after = batch[batch.length - 1]!;
      }
      this.current = next;
      this.held = count;
      if (epoch === this.epoch) this.trusted = true;
      this.deps.onBuilt?.({ keys: count, bytes: next.words.byteLength, ms: Math.round(performance.now() - started) });
    } catch (e) {
      this.deps.onBuildFailed?.(e);
    } finally {
      this.building = undefined;
    }
  }
}
