// A TCP proxy between a server and its database that a test can cut and
// restore: "Postgres stopped" as the server sees it, without touching the
// shared Postgres.
import net from 'node:net';

/**
 * - `pass`: forwards every connection;
 * - `refuse`: ends every open connection and resets new ones at once;
 * - `blackhole`: open connections stop carrying data, new ones are accepted
 *   and never answered (a network that drops packets).
 */
export type ProxyMode = 'pass' | 'refuse' | 'blackhole';

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<{ client: net.Socket; upstream?: net.Socket }>();
  private mode: ProxyMode = 'pass';
  port = 0;
  /** Connections accepted so far. */
  accepted = 0;

  constructor(
    private targetHost: string,
    private targetPort: number,
  ) {}

  async start(): Promise<this> {
    this.server = net.createServer((client) => this.onConnection(client));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  private onConnection(client: net.Socket): void {
    this.accepted++;
    client.on('error', () => {});
    if (this.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const pair: { client: net.Socket; upstream?: net.Socket } = { client };
    this.pairs.add(pair);
    client.once('close', () => {
      this.pairs.delete(pair);
      pair.upstream?.destroy();
    });
    if (this.mode === 'blackhole') {
      client.pause();
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Changes what happens to open and new connections. */
  set(mode: ProxyMode): void {
    this.mode = mode;
    for (const pair of [...this.pairs]) {
      if (mode === 'refuse') {
        pair.client.resetAndDestroy();
        pair.upstream?.destroy();
      } else if (mode === 'blackhole' && pair.upstream) {
        // Stop carrying data both ways, but keep both ends open.
        pair.client.unpipe(pair.upstream);
        pair.upstream.unpipe(pair.client);
        pair.client.pause();
        pair.upstream.pause();
      }
    }
    if (mode === 'pass') {
      // Connections held by a blackhole are beyond repair: end them.
      for (const pair of [...this.pairs]) if (pair.client.isPaused()) pair.client.resetAndDestroy();
    }
  }

  /**
   * Sends new connections to another address, as a service address (DNS name,
   * virtual IP) moved to a promoted replica does; open connections are ended.
   */
  retarget(host: string, port: number): void {
    this.targetHost = host;
    this.targetPort = port;
    for (const pair of [...this.pairs]) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
  }

  /** Rewrites a Postgres URL to go through the proxy. */
  url(databaseUrl: string): string {
    const u = new URL(databaseUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream?.destroy();
    }
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
