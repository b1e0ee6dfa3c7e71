// Group commit per key: the first request for a key is decided at once;
// requests for it that arrive meanwhile wait, and are decided together in the
// next batch. A busy key costs one round trip a batch, an idle one no wait.
// Used for remaining uses (usage-limits.ts) and rate limits in Redis
// (redis-rate-limiter.ts).

export class PerKeyBatches<T> {
  /** Per key: the requests waiting for the batch in flight (an entry exists while one is). */
  private readonly waiting = new Map<string, T[]>();

  /** `decide` settles every request of a batch; it must not throw. */
  constructor(private readonly decide: (batch: T[]) => Promise<void>) {}

  add(key: string, request: T): void {
    const queued = this.waiting.get(key);
    if (queued) queued.push(request);
    else {
      this.waiting.set(key, []);
      void this.run(key, [request]);
    }
  }

  /** Decides `batch`, then whatever queued for the key meanwhile, until none is left. */
  private async run(key: string, batch: T[]): Promise<void> {
    for (;;) {
      await this.decide(batch);
      const queued = this.waiting.get(key)!;
      if (queued.length === 0) {
        this.waiting.delete(key);
        return;
      }
      batch = queued.splice(0);
    }
  }
}
