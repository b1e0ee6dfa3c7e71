// Backups as an operator takes them: `keyward serve` and `keyward backup` as
// their own processes, the backup taken while the server serves a write load
// (keys created and revoked), then restored into a fresh database (the
// embedded one with `keyward restore`; PostgreSQL with pg_restore, as
// docs/operations.md says) and served again: every key acknowledged before the
// backup began verifies as before, and nothing asked for after it ended is there.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { recordSecret } from '../support/hygiene.js';
import { adminTokenOf, runCli, spawnServer, type ServerProcess } from '../support/process.js';

const EMBEDDED = !process.env.DATABASE_URL;
const STACK_RE = /^\s+at /m;

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

const keysOf = (s: ServerProcess, token: string) =>
  createClient(KeyService, createConnectTransport({ baseUrl: s.baseUrl, httpVersion: '1.1', interceptors: [bearer(token)] }));

/** Where `db` is, as the environment of a server or the CLI. */
const envOf = (db: TestDatabase) => (db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : { KEYWARD_DATA_DIR: db.dataDir });

/**
 * Orders what happens in this process: each step takes the next number, so
 * "acknowledged before the backup began" is a comparison, not a timing.
 */
let clock = 0;
const tick = () => ++clock;

interface Key {
  id: string;
  secret: string;
  /** When CreateKey was sent and answered. */
  sent: number;
  acked: number;
  /** When RevokeKey was sent and answered, if it was. */
  revokeSent?: number;
  revokeAcked?: number;
}

let source: TestDatabase;
let target: TestDatabase | undefined;
let files: string;
let server: ServerProcess | undefined;
let admin = '';
const keys: Key[] = [];
let backupBegan = 0;
let backupEnded = 0;

beforeAll(async () => {
  source = await createTestDatabase({ persistent: true });
  files = mkdtempSync(join(tmpdir(), 'keyward-backup-'));
});

afterAll(async () => {
  await server?.stop();
  await source?.drop();
  await target?.drop();
  if (files) rmSync(files, { recursive: true, force: true });
});

async function createKey(k: ReturnType<typeof keysOf>, workspaceId: string): Promise<Key> {
  const sent = tick();
  const r = await k.createKey({ key: { workspaceId, name: 'backup' } });
  recordSecret(r.secret);
  return { id: r.key!.id, secret: r.secret, sent, acked: tick() };
}

async function revoke(k: ReturnType<typeof keysOf>, key: Key): Promise<void> {
  key.revokeSent = tick();
  await k.revokeKey({ id: key.id });
  key.revokeAcked = tick();
}

describe('keyward backup and restore', { timeout: 300_000 }, () => {
  it('`keyward backup` runs while the server serves a write load, and the load is served throughout', async () => {
    // The database is made first, so that the server's start (which the helper bounds) is only a start.
    const migrated = await runCli(['migrate'], envOf(source), 120_000);
    expect(migrated.code, migrated.stderr).toBe(0);
    server = await spawnServer({ ...envOf(source), KEYWARD_BOOTSTRAP_ADMIN: 'true' });
    admin = adminTokenOf(server);
    const ws = createClient(WorkspaceService, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: '1.1', interceptors: [bearer(admin)] }));
    const workspaceId = (await ws.createWorkspace({ workspace: { name: 'backup' } })).workspace!.id;
    const k = keysOf(server, admin);
    for (let i = 0; i < 12; i++) keys.push(await createKey(k, workspaceId));
    for (const key of keys.slice(0, 4)) await revoke(k, key);

    // Three clients create keys and revoke every other one they made, until told to stop.
    let stopping = false;
    const workers = [0, 1, 2].map(async () => {
      for (let i = 0; !stopping; i++) {
        const key = await createKey(k, workspaceId);
        keys.push(key);
        if (i % 2 === 1) await revoke(k, key);
      }
    });
    const done = (since: number) => keys.filter((key) => key.sent > since).length;
    const started = clock;
    while (done(started) < 10) await new Promise((r) => setTimeout(r, 20));

    const file = join(files, 'keyward.backup');
    backupBegan = tick();
    const r = await runCli(['backup', file], envOf(source), 120_000);
    backupEnded = tick();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      EMBEDDED
        ? /^backup written to .*: \d+ tables, \d+ rows, schema \d{4}_\w+\n$/
        : /^backup written to .* \(pg_dump custom format; restore with pg_restore\)\n$/,
    );
    expect(r.stderr).not.toMatch(STACK_RE);
    // Readable by its owner only: it holds everything the database does.
    expect(spawnSync('stat', ['-c', '%a', file], { encoding: 'utf8' }).stdout.trim()).toBe('600');
    expect(readdirSync(files)).toEqual(['keyward.backup']);

    const ended = clock;
    while (done(ended) < 10) await new Promise((r) => setTimeout(r, 20));
    stopping = true;
    await Promise.all(workers); // a write that failed during the backup fails this test here
    expect(await server.stop()).toBe(0);
    server = undefined;
  });

  it('restored into a fresh database, every key acknowledged before the backup began verifies as before; nothing asked for after it ended is there', async () => {
    const file = join(files, 'keyward.backup');
    if (EMBEDDED) {
      target = await createTestDatabase({ persistent: true });
      const r = await runCli(['restore', file], envOf(target), 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^restored \d+ tables, \d+ rows into /);
    } else {
      // The documented path for PostgreSQL: pg_restore into an empty database.
      target = await createTestDatabase();
      const r = spawnSync('pg_restore', ['--no-owner', '--exit-on-error', `--dbname=${target.databaseUrl}`, file], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    server = await spawnServer(envOf(target));
    const k = keysOf(server, admin); // the admin SDK key came back with the rest

    const beforeBackup = (n: number | undefined) => n !== undefined && n < backupBegan;
    const afterBackup = (n: number | undefined) => n !== undefined && n > backupEnded;
    const checked: { key: Key; code: VerifyCode }[] = [];
    for (const key of keys) {
      if (beforeBackup(key.acked)) {
        if (beforeBackup(key.revokeAcked)) checked.push({ key, code: VerifyCode.REVOKED });
        else if (key.revokeSent === undefined || afterBackup(key.revokeSent)) checked.push({ key, code: VerifyCode.VALID });
        // else revoked while the backup ran: it may be in the backup or not.
      } else if (afterBackup(key.sent)) checked.push({ key, code: VerifyCode.NOT_FOUND });
    }
    expect(checked.filter((w) => w.code === VerifyCode.VALID).length).toBeGreaterThan(8);
    expect(checked.filter((w) => w.code === VerifyCode.REVOKED).length).toBeGreaterThan(4);
    expect(checked.filter((w) => w.code === VerifyCode.NOT_FOUND).length).toBeGreaterThan(5);
    const got = [];
    for (const { key } of checked) got.push((await k.verifyKey({ key: key.secret })).code);
    expect(got).toEqual(checked.map((w) => w.code));
    expect(server.stderr()).not.toContain('"level":"error"');
  });

  it.skipIf(!EMBEDDED)(
    'restore refuses a data directory a server runs on, one that holds a database (unless --force), and a file that is not a whole backup',
    async () => {
      const file = join(files, 'keyward.backup');
      const env = envOf(target!);
      const running = await runCli(['restore', '--force', file], env);
      expect(running.code).toBe(1);
      expect(running.stderr).toMatch(/^keyward: the embedded database in .* is in use by process \d+; stop it first\n$/);
      expect(await server!.stop()).toBe(0);
      server = undefined;

      const occupied = await runCli(['restore', file], env);
      expect(occupied.code).toBe(1);
      expect(occupied.stderr).toMatch(/already holds a database: restore into an empty KEYWARD_DATA_DIR, or pass --force to replace it\n$/);

      // A cut-off backup and a file that is none are refused even with --force, and the database stays.
      const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n');
      const cut = join(files, 'cut.backup');
      writeFileSync(cut, gzipSync(lines.slice(0, -3).join('\n')));
      const foreign = join(files, 'foreign.backup');
      writeFileSync(foreign, 'PGDMP not a keyward backup');
      const pgdata = readdirSync(join(target!.dataDir, 'pgdata')).sort();
      for (const [f, message] of [
        [cut, /is incomplete \(cut off\): restore a whole backup\n$/],
        [foreign, /is not a backup made by `keyward backup`/],
        [join(files, 'missing.backup'), /missing\.backup: no such file\n$/],
      ] as const) {
        const r = await runCli(['restore', '--force', f], env);
        expect(r.code, f).toBe(1);
        expect(r.stderr).toMatch(message);
        expect(r.stderr).not.toMatch(STACK_RE);
      }
      expect(readdirSync(join(target!.dataDir, 'pgdata')).sort()).toEqual(pgdata);
      expect(readdirSync(target!.dataDir).sort()).toEqual(['pgdata']);

      const forced = await runCli(['restore', '--force', file], env, 120_000);
      expect(forced.code, forced.stderr).toBe(0);
      expect(existsSync(join(target!.dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
      expect(readdirSync(target!.dataDir).sort()).toEqual(['pgdata']);
    },
  );

  it.skipIf(EMBEDDED)('with DATABASE_URL, restore points to pg_restore, and backup without pg_dump says to install it', async () => {
    const restore = await runCli(['restore', join(files, 'keyward.backup')], envOf(source));
    expect(restore.code).toBe(1);
    expect(restore.stderr).toMatch(/^keyward: keyward restore is for the embedded database; with DATABASE_URL, restore a pg_dump backup with pg_restore/);
    const noDump = await runCli(['backup', join(files, 'none.backup')], { ...envOf(source), PATH: join(files, 'no-such-dir') });
    expect(noDump.code).toBe(1);
    expect(noDump.stderr).toMatch(/^keyward: pg_dump is not installed\. With DATABASE_URL, back up with PostgreSQL's own tools/);
    expect(existsSync(join(files, 'none.backup'))).toBe(false);
  });
});
