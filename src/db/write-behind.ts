import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../log.js';

/**
 * What is gathered in memory on a hot path and written behind: every
 * `flushMs` (the timer does not keep the process alive), once more on stop(),
 * one write at a time. Subclasses gather and write().
 */
export abstract class WriteBehind {
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    protected readonly orm: MikroORM,
    protected readonly log: Logger,
    private readonly flushMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  /** Writes what has been gathered; safe to call concurrently. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  /** Writes and forgets what has been gathered; keeps it for the next time if the write fails. Never rejects. */
  protected abstract write(): Promise<void>;
}
