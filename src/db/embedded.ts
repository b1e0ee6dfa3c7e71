import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

// The embedded database is PGlite (Postgres compiled to WebAssembly) served on
// a loopback port, so Keyward talks to it through the same Postgres driver
// and code path as to a real server. A PGlite directory can only be opened by
// one process: the owner writes its address to `server.json`, and other
// processes (the CLI while the server runs) connect to that address instead.

export interface EmbeddedPostgres {
  url: string;
  /** True if this process opened the database, false if it joined another's. */
  owner: boolean;
  stop(): Promise<void>;
}

const ADDRESS_FILE = 'server.json';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Opens the embedded database kept in dataDir (':memory:' keeps nothing). If
 * another process has it open, `joinRunning` connects to that one instead; without
 * it that is an error, because servers sharing an embedded database could
 * not tell each other about revocations.
 */
export async function startEmbeddedPostgres(dataDir: string, joinRunning: boolean): Promise<EmbeddedPostgres> {
  const inMemory = dataDir === ':memory:';
  const dir = inMemory ? '' : resolve(dataDir);
  const addressFile = join(dir, ADDRESS_FILE);
  if (!inMemory) {
    try {
      const { pid, url } = JSON.parse(readFileSync(addressFile, 'utf8')) as { pid: number; url: string };
      if (pid !== process.pid && alive(pid)) {
        if (!joinRunning) {
          throw new Error(
            `the embedded database in ${dir} is in use by process ${pid}; run one server per data directory, or set DATABASE_URL to run several replicas`,
          );
        }
        return { url, owner: false, stop: async () => {} };
      }
    } catch (e) {
      if ((e as Error).message.startsWith('the embedded database')) throw e;
      // No running owner: open it ourselves.
    }
    mkdirSync(join(dir, 'pgdata'), { recursive: true });
  }
  const db = await PGlite.create(inMemory ? undefined : join(dir, 'pgdata'));
  // Each connection shares PGlite's one session; several are allowed so a
  // pool works, but statements run one at a time.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 32 });
  await server.start();
  const port = Number(server.getServerConn().split(':').pop());
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  if (!inMemory) writeFileSync(addressFile, JSON.stringify({ pid: process.pid, url }) + '\n', { mode: 0o600 });
  return {
    url,
    owner: true,
    async stop() {
      if (!inMemory) rmSync(addressFile, { force: true });
      await server.stop();
      await db.close();
    },
  };
}
