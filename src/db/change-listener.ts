import pg from 'pg';
import { CHANGE_CHANNEL, type Change } from './change-feed.js';
import type { Logger } from '../log.js';

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
      try {
        this.onChange(JSON.parse(n.payload) as Change);
      } catch {
        this.log.warn('ignored a malformed change notification');
      }
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
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => {});
      await c.end().catch(() => {});
    }
  }
}
