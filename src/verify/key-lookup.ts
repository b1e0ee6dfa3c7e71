// The read of a key by secret hash on a verify cache miss, straight on the
// database driver's pool: one prepared statement, rows as the driver parses
// them (no ORM hydration), and the misses that arrive together read in one
// query (`where s.hash = any($1)`). While MAX_IN_FLIGHT reads run, new misses
// queue and go in the next one, so under load a query carries many keys and
// an idle server still answers a lone miss at once.

import type { QueryPool } from '../db/database.js';

const MAX_IN_FLIGHT = 4;
const MAX_BATCH = 256;

interface Waiting<R> {
  resolve(row: R | null): void;
  reject(e: unknown): void;
}

export class KeyLookup<R extends { hash: string }> {
  private queued = new Map<string, Waiting<R>[]>();
  private inFlight = 0;
  private scheduled = false;
  /** Queries run, and keys they read. */
  readonly stats = { queries: 0, keys: 0 };

  /**
   * `sql` selects the row of every hash in `$1` (a text[]), each with a
   * `hash` column; `pool` resolves to the driver's pool. The statement is
   * named, so that each connection plans it once.
   */
  constructor(
    private readonly pool: () => Promise<QueryPool>,
    private readonly sql: string,
    /** How long a read may take before it fails (and its connection is dropped): a database that stopped answering frees its slot. */
    private readonly timeoutMs: number,
  ) {}

  /** The row of `hash`, or null when no secret has it. */
  get(hash: string): Promise<R | null> {
    return new Promise((resolve, reject) => {
      const waiting = this.queued.get(hash);
      if (waiting) waiting.push({ resolve, reject });
      else this.queued.set(hash, [{ resolve, reject }]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT) return;
    this.scheduled = true;
    // After the current turn of the event loop: the misses it brings go together.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queued.size > 0 && this.inFlight < MAX_IN_FLIGHT) {
      const batch = new Map<string, Waiting<R>[]>();
      for (const [hash, w] of this.queued) {
        batch.set(hash, w);
        this.queued.delete(hash);
        if (batch.size === MAX_BATCH) break;
      }
      this.inFlight++;
      void this.read(batch).finally(() => {
        this.inFlight--;
        if (this.queued.size > 0) this.schedule();
      });
    }
  }

  private async read(batch: Map<string, Waiting<R>[]>): Promise<void> {
    try {
      const pool = await this.pool();
      this.stats.queries++;
      this.stats.keys += batch.size;
      const q = { text: this.sql, values: [[...batch.keys()]], query_timeout: this.timeoutMs };
      const { rows } = await pool.query<R>({ ...q, name: 'keyward_verify_lookup' });
      const byHash = new Map(rows.map((r) => [r.hash, r]));
      for (const [hash, waiting] of batch) for (const w of waiting) w.resolve(byHash.get(hash) ?? null);
    } catch (e) {
      for (const waiting of batch.values()) for (const w of waiting) w.reject(e);
    }
  }
}
