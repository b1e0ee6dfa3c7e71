// A PostgreSQL cluster of a test's own, to stop, kill and promote: initdb
// (Debian's binaries in /usr/lib/postgresql/*/bin) into a temporary
// directory, a free port on 127.0.0.1, trust authentication, its unix socket
// in that directory. The machine's shared server is never touched. As root
// (the CI machine), the cluster runs as the `postgres` user, since PostgreSQL
// refuses to run as root.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './process.js';

/** The newest Debian PostgreSQL bin directory with everything the clusters need, if any. */
function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  const needed = ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'];
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (needed.every((b) => existsSync(path.join(bin, b)))) return bin;
  }
  return undefined;
}

/** Why the private clusters cannot run here, or undefined if they can. */
export function privatePostgresMissing(): string | undefined {
  if (!postgresBinDir())
    return 'no PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) in /usr/lib/postgresql/*/bin (apt-get install postgresql)';
  if (process.getuid?.() === 0 && !userIds('postgres')) return 'running as root without a postgres user to run the cluster as';
  return undefined;
}

function userIds(name: string): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const live = new Set<PrivatePostgres>();
let exitHook = false;

export class PrivatePostgres {
  private constructor(
    /** The temporary directory: data in `data/`, the log and the unix socket beside it. */
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
    private readonly runAs: { uid: number; gid: number } | undefined,
  ) {
    live.add(this);
    if (!exitHook) {
      exitHook = true;
      // Never leave a postmaster behind, whatever happens to the test.
      process.once('exit', () => {
        for (const c of live) c.cleanupSync();
      });
    }
  }

  private postmaster: { child: ChildProcess; exited: Promise<void> } | undefined;

  private get data(): string {
    return path.join(this.dir, 'data');
  }

  /** A new cluster, started. */
  static async create(): Promise<PrivatePostgres> {
    const c = await PrivatePostgres.prepare();
    c.run('initdb', ['-D', c.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    c.configure();
    await c.start();
    return c;
  }

  /** A streaming replica of `primary` (pg_basebackup -R: standby.signal and primary_conninfo), started. */
  static async replicaOf(primary: PrivatePostgres): Promise<PrivatePostgres> {
    const c = await PrivatePostgres.prepare();
    c.run('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      c.data,
      '-R',
      '-X',
      'stream',
      '--checkpoint=fast',
      '--no-sync',
    ]);
    c.configure();
    await c.start();
    return c;
  }

  private static async prepare(): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error(privatePostgresMissing());
    const runAs = process.getuid?.() === 0 ? userIds('postgres') : undefined;
    const dir = mkdtempSync(path.join(tmpdir(), 'keyward-pg-'));
    if (runAs) chownSync(dir, runAs.uid, runAs.gid);
    return new PrivatePostgres(dir, await freePort(), bin, runAs);
  }

  /** Settings of the test's own (appended, so they win over the copied ones of a replica). */
  private configure(): void {
    const lines = [
      `port = ${this.port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${this.dir}'`,
      'max_connections = 60',
      'shared_buffers = 16MB',
      'logging_collector = off',
    ];
    appendFileSync(path.join(this.data, 'postgresql.conf'), `\n# private test cluster\n${lines.join('\n')}\n`);
  }

  private run(tool: string, args: string[]): string {
    const r = spawnSync(path.join(this.bin, tool), args, {
      encoding: 'utf8',
      timeout: 120_000,
      cwd: this.dir,
      uid: this.runAs?.uid,
      gid: this.runAs?.gid,
      env: { ...process.env, LC_ALL: 'C', PGHOST: this.dir },
    });
    if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** postgresql://postgres@127.0.0.1:port/database */
  url(database = 'postgres'): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Runs one statement as the superuser. */
  async sql<T extends pg.QueryResultRow = Record<string, unknown>>(query: string, params: unknown[] = [], database = 'postgres'): Promise<T[]> {
    const c = new pg.Client({ connectionString: this.url(database), connectionTimeoutMillis: 5000 });
    c.on('error', () => {});
    await c.connect();
    try {
      return (await c.query<T>(query, params)).rows;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /**
   * Starts the postmaster as a child of this process (so that this process
   * reaps it when it dies: a zombie would hold postmaster.pid) and waits until
   * it accepts connections, after crash recovery if there was a crash.
   */
  async start(): Promise<void> {
    const log = openSync(path.join(this.dir, 'log'), 'a');
    const child = spawn(path.join(this.bin, 'postgres'), ['-D', this.data], {
      stdio: ['ignore', log, log],
      uid: this.runAs?.uid,
      gid: this.runAs?.gid,
      env: { ...process.env, LC_ALL: 'C' },
    });
    closeSync(log);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    this.postmaster = { child, exited };
    const until = Date.now() + 120_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postgres did not start: ${this.log().slice(-2000)}`);
      try {
        await this.sql('select 1');
        return;
      } catch (e) {
        if (Date.now() > until) throw new Error(`postgres did not accept connections within 120 s (${(e as Error).message}): ${this.log().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Fast shutdown (SIGINT: open sessions are ended, the cluster shuts down cleanly); resolves once the postmaster exited. */
  async stop(): Promise<void> {
    const pm = this.postmaster;
    if (!pm) return;
    pm.child.kill('SIGINT');
    await pm.exited;
    this.postmaster = undefined;
  }

  /** kill -9 of the postmaster and every backend it started: a crash, as the server sees it. */
  async kill(): Promise<void> {
    const pm = this.postmaster;
    if (!pm) return;
    const children = childrenOf(pm.child.pid!);
    pm.child.kill('SIGKILL');
    for (const p of children) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await pm.exited;
    this.postmaster = undefined;
    // The next start must not find the old backends still holding the shared memory.
    const until = Date.now() + 10_000;
    while (children.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /** Promotes a standby to primary and waits until it accepts writes. */
  promote(): void {
    this.run('pg_ctl', ['-D', this.data, '-w', '-t', '60', 'promote']);
  }

  /** The server log, for a failure message. */
  log(): string {
    try {
      return readFileSync(path.join(this.dir, 'log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops the cluster and removes its directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    this.cleanupSync();
  }

  private cleanupSync(): void {
    const pm = this.postmaster;
    if (pm) {
      for (const p of childrenOf(pm.child.pid!)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      pm.child.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }
}

/** Whether `pid` runs (a zombie, killed but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Pids whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
