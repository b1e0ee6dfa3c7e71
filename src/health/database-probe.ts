import type { MikroORM } from '@mikro-orm/postgresql';
import { migrationsList } from '../db/migrations/index.js';

export interface DatabaseStatus {
  /** The database answered within the timeout. */
  reachable: boolean;
  /** Every migration this build knows has been applied. */
  migrated: boolean;
}

export interface ProbeOptions {
  /** How long one probe waits for the database. */
  timeoutMs: number;
  /** How long an answer is reused: health checks from every load balancer cost one query per period. */
  cacheMs: number;
}

const DOWN: DatabaseStatus = Object.freeze({ reachable: false, migrated: false });

/**
 * Whether the database answers, for the gRPC health service and /readyz.
 * One cheap query (the applied migrations' names) with a short timeout, its
 * answer cached; while a probe is still waiting on a dead database, callers
 * are told it is down rather than piling up more probes behind it.
 */
export class DatabaseProbe {
  private last: { status: DatabaseStatus; at: number } | undefined;
  private inflight: Promise<DatabaseStatus> | undefined;
  private readonly draining = new AbortController();

  constructor(
    private readonly orm: MikroORM,
    private readonly opts: ProbeOptions = { timeoutMs: 1000, cacheMs: 1000 },
  ) {}

  /** From now on the process reports itself not serving (it is shutting down). */
  drain(): void {
    this.draining.abort();
  }

  get isDraining(): boolean {
    return this.draining.signal.aborted;
  }

  /** Aborted when the process starts shutting down. */
  get drainSignal(): AbortSignal {
    return this.draining.signal;
  }

  async status(): Promise<DatabaseStatus> {
    const last = this.last;
    if (last && Date.now() - last.at < this.opts.cacheMs) return last.status;
    // Still waiting on an earlier probe (which answers DOWN once it times out).
    if (this.inflight) return this.inflight;
    const query = this.query().finally(() => (this.inflight = undefined));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<DatabaseStatus>((resolve) => {
      timer = setTimeout(() => resolve(DOWN), this.opts.timeoutMs);
    });
    this.inflight = Promise.race([query, timeout]).then((status) => {
      clearTimeout(timer);
      this.last = { status, at: Date.now() };
      return status;
    });
    return this.inflight;
  }

  private async query(): Promise<DatabaseStatus> {
    try {
      const rows = await this.orm.em.fork().execute<{ name: string }[]>('select name from keyward_migrations');
      const applied = new Set(rows.map((r) => r.name));
      return { reachable: true, migrated: migrationsList.every((m) => applied.has(m.name)) };
    } catch {
      return DOWN;
    }
  }
}
