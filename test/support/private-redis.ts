// A Redis server of a test's own, to stop and restart: /usr/bin/redis-server
// on a free port of 127.0.0.1 with a temporary directory and no persistence
// (a restarted server starts empty). The machine's shared Redis is never
// touched.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './process.js';
import { redisAnswers } from './redis.js';

const REDIS_SERVER = '/usr/bin/redis-server';

/** Why a private Redis cannot run here, or undefined if it can. */
function privateRedisMissing(): string | undefined {
  return existsSync(REDIS_SERVER) ? undefined : `no ${REDIS_SERVER} (apt-get install redis-server)`;
}

export class PrivateRedis {
  private server: { child: ChildProcess; exited: Promise<void> } | undefined;
  private output = '';

  private constructor(
    private readonly dir: string,
    readonly port: number,
  ) {}

  /** A new server, started. */
  static async create(): Promise<PrivateRedis> {
    const missing = privateRedisMissing();
    if (missing) throw new Error(missing);
    const r = new PrivateRedis(mkdtempSync(path.join(tmpdir(), 'keyward-redis-')), await freePort());
    process.once('exit', () => r.cleanupSync());
    await r.start();
    return r;
  }

  /** redis://127.0.0.1:port */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server (on the same port as before) and waits until it answers PING. */
  async start(): Promise<void> {
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    this.server = { child, exited };
    const until = Date.now() + 30_000;
    while (!(await redisAnswers(this.url))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server did not start: ${this.output.slice(-2000)}`);
      if (Date.now() > until) throw new Error(`redis-server did not answer within 30 s: ${this.output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the server (SIGTERM; it keeps nothing) and waits until it exited. */
  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.child.kill('SIGTERM');
    await s.exited;
    this.server = undefined;
  }

  /** How many keys the server holds (the replicas' rate-limit counters). */
  async keyCount(): Promise<number> {
    const r = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    try {
      await r.connect();
      return await r.dbsize();
    } finally {
      r.disconnect();
    }
  }

  /** Stops the server and removes its directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    this.cleanupSync();
  }

  private cleanupSync(): void {
    this.server?.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
