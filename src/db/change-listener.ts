import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { CHANGE_CHANNEL, type Change } from './change-feed.js';
import type { Logger } from '../log.js';

/** The least time between two barriers: under a flood of unknown keys, at most 200 notifications a second. */
const BARRIER_SPACING_MS = 5;
/** A barrier not heard back by then fails (its callers ask the database instead). */
const BARRIER_TIMEOUT_MS = 1000;

interface Waiters {
  promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function waiters(): Waiters {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * Hears other replicas' changes through Postgres LISTEN on a connection of its
 * own. `onListening(false)` is called whenever the connection is lost (the
 * caller must then stop trusting its caches) and `onListening(true)` once it
 * listens again; it reconnects with backoff until stopped.
 */
export class ChangeListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryMs = 100;
  private timer: NodeJS.Timeout | undefined;
  /** This listener's barriers: `<id>:<n>`. */
  private readonly barrierId = randomUUID();
  private barrierSeq = 0;
  /** The barrier sent and not yet heard back, and the callers waiting for the one after it. */
  private inflight: { token: string; waiters: Waiters } | undefined;
  private next: Waiters | undefined;
  private lastBarrierAt = 0;
  /** Barriers sent (each one notification, shared by every caller that waited for it). */
  barriersSent = 0;

  constructor(
    private readonly url: string,
    private readonly onChange: (c: Change) => void,
    private readonly onListening: (listening: boolean) => void,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      application_name: 'keyward-listener',
    });
    this.client = client;
    let lost = false;
    const onLost = (why: string) => {
      if (lost || this.stopped) return;
      lost = true;
      this.onListening(false);
      this.failBarriers(new Error('the change listener lost its connection'));
      this.log.warn('change listener lost its connection; caches flushed, reconnecting', { reason: why });
      client.removeAllListeners();
      client.on('error', () => {});
      void client.end().catch(() => {});
      this.scheduleReconnect();
    };
    client.on('error', (e) => onLost(e.message));
    client.on('end', () => onLost('connection ended'));
    client.on('notification', (n) => {
      if (n.channel !== CHANGE_CHANNEL || !n.payload) return;
      let change: Change;
      try {
        change = JSON.parse(n.payload) as Change;
      } catch {
        this.log.warn('ignored a malformed change notification');
        return;
      }
      if (change.barrier !== undefined) this.barrierHeard(change.barrier);
      else this.onChange(change);
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANGE_CHANNEL}`);
      if (lost || this.stopped) return;
      this.retryMs = 100;
      this.onListening(true);
    } catch (e) {
      onLost((e as Error).message);
    }
  }

  /**
   * Resolves once every change committed before this call has been heard.
   * PostgreSQL delivers notifications in commit order, so a notification this
   * listener sends now and hears back comes after all of them. Callers share
   * barriers: one sent after the call began, at most one in flight, and at
   * least BARRIER_SPACING_MS apart. Rejects if the connection is lost first.
   */
  barrier(): Promise<void> {
    if (this.client === undefined || this.stopped) return Promise.reject(new Error('the change listener is not connected'));
    if (this.inflight === undefined) return this.sendBarrier(waiters());
    this.next ??= waiters();
    return this.next.promise;
  }

  private sendBarrier(w: Waiters): Promise<void> {
    const token = `${this.barrierId}:${++this.barrierSeq}`;
    this.inflight = { token, waiters: w };
    const timer = setTimeout(() => {
      if (this.inflight?.token === token) this.failBarriers(new Error('no barrier back from the change feed in time'));
    }, BARRIER_TIMEOUT_MS);
    timer.unref();
    w.promise.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    const send = () => {
      this.lastBarrierAt = performance.now();
      this.barriersSent++;
      this.client?.query('select pg_notify($1, $2)', [CHANGE_CHANNEL, JSON.stringify({ barrier: token })]).catch((e: Error) => {
        if (this.inflight?.token === token) this.failBarriers(e);
      });
    };
    const wait = this.lastBarrierAt + BARRIER_SPACING_MS - performance.now();
    if (wait > 0) setTimeout(send, wait);
    else send();
    return w.promise;
  }

  private barrierHeard(token: string): void {
    if (this.inflight?.token !== token) return;
    this.inflight.waiters.resolve();
    this.inflight = undefined;
    const next = this.next;
    this.next = undefined;
    if (next) void this.sendBarrier(next);
  }

  private failBarriers(e: Error): void {
    this.inflight?.waiters.reject(e);
    this.next?.reject(e);
    this.inflight = undefined;
    this.next = undefined;
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 5000);
    this.timer = setTimeout(() => void this.connect(), wait);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.failBarriers(new Error('the change listener stopped'));
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => {});
      await c.end().catch(() => {});
    }
  }
}
