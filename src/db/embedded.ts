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
  /** Lets other processes join, once the database is migrated and ready. */
  publish(): void;
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
  if (dataDir === ':memory:') return open(undefined, undefined);
  const dir = resolve(dataDir);
  mkdirSync(join(dir, 'pgdata'), { recursive: true });
  const addressFile = join(dir, ADDRESS_FILE);
  // Claim the directory by creating the address file exclusively, so two
  // processes starting at once cannot both open it. The owner fills in its
  // address once the database listens.
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(addressFile, `${JSON.stringify({ pid: process.pid })}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(addressFile);
    if (!owner || !alive(owner.pid)) {
      rmSync(addressFile, { force: true }); // left behind by a process that is gone
      continue;
    }
    if (!joinRunning) {
      throw new Error(
        `the embedded database in ${dir} is in use by process ${owner.pid}; run one server per data directory, or set DATABASE_URL to run several replicas`,
      );
    }
    if (owner.url) return { url: owner.url, owner: false, publish: () => {}, stop: async () => {} };
    if (attempt > 300) throw new Error(`the embedded database in ${dir} did not become ready`);
    await new Promise((r) => setTimeout(r, 100)); // the owner is still starting
  }
  try {
    return await open(join(dir, 'pgdata'), addressFile);
  } catch (e) {
    rmSync(addressFile, { force: true });
    throw e;
  }
}

/**
 * Holds dataDir for a process that must have it to itself without opening the
 * database in it (`keyward restore`), as an owner does: a server or the CLI
 * started meanwhile is refused or waits. Throws if a process has it open.
 * Returns the release.
 */
export function claimDataDir(dataDir: string): () => void {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const addressFile = join(dir, ADDRESS_FILE);
  for (;;) {
    try {
      writeFileSync(addressFile, `${JSON.stringify({ pid: process.pid })}\n`, { flag: 'wx', mode: 0o600 });
      return () => rmSync(addressFile, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(addressFile);
    if (owner && alive(owner.pid)) throw new Error(`the embedded database in ${dir} is in use by process ${owner.pid}; stop it first`);
    rmSync(addressFile, { force: true }); // left behind by a process that is gone
  }
}

function readOwner(file: string): { pid: number; url?: string } | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { pid: number; url?: string };
  } catch {
    return undefined; // being written, or garbage
  }
}

async function open(pgdata: string | undefined, addressFile: string | undefined): Promise<EmbeddedPostgres> {
  const db = await PGlite.create(pgdata);
  // Each connection shares PGlite's one session; several are allowed so a
  // pool works, but statements run one at a time.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 32 });
  await server.start();
  const port = Number(server.getServerConn().split(':').pop());
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    owner: true,
    publish() {
      if (addressFile) writeFileSync(addressFile, `${JSON.stringify({ pid: process.pid, url })}\n`, { mode: 0o600 });
    },
    async stop() {
      if (addressFile) rmSync(addressFile, { force: true });
      await server.stop();
      await db.close();
    },
  };
}
