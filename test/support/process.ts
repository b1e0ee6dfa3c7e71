import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { openDatabase } from '../../src/db/database.js';
import { ChangeBus } from '../../src/domain/changes.js';
import { SdkKeys } from '../../src/domain/sdk-keys.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { recordProcessOutput } from './hygiene.js';

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface ServerProcess {
  child: ChildProcess;
  baseUrl: string;
  stdout: () => string;
  stderr: () => string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Runs `keyward serve` as its own process, as an operator would, and waits until it listens
 * (`startTimeoutMs`, default 30 s; a server that does not start by then is killed).
 */
export async function spawnServer(env: Record<string, string | undefined>, opts: { startTimeoutMs?: number } = {}): Promise<ServerProcess> {
  // The free port found may be taken by another process before the server binds it: then another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnServerOnce(env, opts);
    } catch (e) {
      if (attempt >= 3 || !/EADDRINUSE/.test((e as Error).message)) throw e;
    }
  }
}

async function spawnServerOnce(env: Record<string, string | undefined>, opts: { startTimeoutMs?: number }): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['bin/keyward.js', 'serve'], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), KEYWARD_BOOTSTRAP_ADMIN: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      // stdout is where a bootstrap admin key is meant to be shown; the logs are not.
      recordProcessOutput(out, err, 'server-log');
      r(code);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start: ${err}`));
    }, opts.startTimeoutMs ?? 30_000);
    const check = () => {
      if (err.includes('keyward listening')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stderr!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${err}`));
    });
  });
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The admin SDK key a server spawned with KEYWARD_BOOTSTRAP_ADMIN=true printed on stdout. */
export function adminTokenOf(server: ServerProcess): string {
  return /kws_\S+/.exec(server.stdout())![0];
}

/** Resident memory of process `pid` in MB, from /proc (Linux); 0 if its status has no VmRSS line. */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

export interface Replicas {
  db: TestDatabase;
  a: ServerProcess;
  b: ServerProcess;
  /** An admin SDK key (every scope), made directly in the database. */
  token: string;
  /** Stops both servers and drops the database. */
  stop(): Promise<void>;
}

/**
 * Two `keyward serve` processes on one fresh Postgres database, as two
 * replicas run (embedded PGlite is single-process); `env` is added to both.
 */
export async function startReplicas(env: Record<string, string | undefined> = {}): Promise<Replicas> {
  const db = await createTestDatabase();
  const serverEnv = { DATABASE_URL: db.databaseUrl, ...env };
  const started = await Promise.allSettled([spawnServer(serverEnv), spawnServer(serverEnv)]);
  const servers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async () => {
    for (const s of servers) await s.stop();
    await db.drop();
  };
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const conn = await openDatabase({ databaseUrl: db.databaseUrl, dataDir: '', poolSize: 1 });
    try {
      const { token } = await new SdkKeys(conn.orm, new ChangeBus(true)).create({ name: 't', scopes: ['*'], workspaceIds: [] });
      return { db, a: servers[0]!, b: servers[1]!, token, stop };
    } finally {
      await conn.close();
    }
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `keyward <args>` as its own process, as an operator would, and waits for it to exit. */
export function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/keyward.js', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      recordProcessOutput(stdout, stderr, 'cli-stderr');
      if (signal === 'SIGKILL') reject(new Error(`keyward ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr:\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}
