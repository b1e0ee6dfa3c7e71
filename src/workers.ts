// KEYWARD_WORKERS: that many server processes on the one port (node:cluster),
// to use every core. The primary only starts, watches and stops them; each
// worker is a whole server with its own verify cache, membership filter and
// change listener, so they stay as consistent with each other as replicas on
// separate machines (rate limits exact across them with Redis). The embedded
// database serves one process, so workers need PostgreSQL.
import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config.js';
import { openDatabase } from './db/database.js';
import type { Logger } from './log.js';

/** A worker that dies within this long of its start is not restarted (it would only die again). */
const MIN_UPTIME_MS = 5000;

export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Runs the primary: applies migrations once, forks the workers (the first
 * alone may print the bootstrap admin key), restarts one that dies after it
 * was up, and on SIGTERM or SIGINT passes the signal on and exits when all
 * have drained.
 */
export async function runPrimary(config: Config, log: Logger): Promise<void> {
  if (!config.databaseUrl) {
    throw new Error('KEYWARD_WORKERS above 1 needs DATABASE_URL (PostgreSQL): the embedded database serves one process');
  }
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
  await db.close();
  let stopping = false;
  const started = new Map<Worker, number>();
  const fork = (n: number) => {
    const w = cluster.fork(n > 1 ? { KEYWARD_BOOTSTRAP_ADMIN: 'false' } : {});
    started.set(w, Date.now());
    w.on('exit', (code, signal) => {
      const upMs = Date.now() - started.get(w)!;
      started.delete(w);
      if (stopping) {
        if (started.size === 0) process.exit(0);
        return;
      }
      log.error('worker exited', { worker: n, code, signal, upMs });
      if (upMs < MIN_UPTIME_MS) {
        log.error('worker died at start; stopping', { worker: n });
        stop('worker failure', 1);
      } else fork(n);
    });
  };
  const stop = (why: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal: why, workers: started.size });
    if (started.size === 0) process.exit(code);
    for (const w of started.keys()) w.process.kill('SIGTERM');
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  log.info('starting workers', { workers: config.workers });
  for (let n = 1; n <= config.workers; n++) fork(n);
}
