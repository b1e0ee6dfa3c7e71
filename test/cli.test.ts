// The `keyward` command as an operator runs it: `node bin/keyward.js ...` in a
// child process, against a fresh database (DATABASE_URL when set, else the
// embedded PGlite kept on disk in a temporary KEYWARD_DATA_DIR).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService } from '../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { createTestDatabase } from './support/database.js';
import { recordProcessOutput } from './support/hygiene.js';
import { freePort, runCli } from './support/process.js';
import { codeOf } from './support/rpc.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'keyward.js');
const EMBEDDED = !process.env.DATABASE_URL;
const TOKEN_RE = /^kws_[0-9a-f-]{36}_[0-9A-Za-z]{43}$/;
const TOKEN_ANYWHERE_RE = /kws_[0-9a-f-]{36}_[0-9A-Za-z]{43}/g;
const STACK_RE = /^\s+at /m;

/** Every child this file starts, so none outlives it. */
const children = new Set<ChildProcess>();

interface Target {
  env: NodeJS.ProcessEnv;
  dataDir?: string;
  cleanup(): Promise<void>;
}

/** A fresh, empty database and the environment that points the CLI at it. */
async function freshTarget(): Promise<Target> {
  const env: NodeJS.ProcessEnv = { ...process.env, KEYWARD_LOG_LEVEL: 'info' };
  for (const k of ['DATABASE_URL', 'KEYWARD_DATA_DIR', 'PORT', 'HOST', 'KEYWARD_BOOTSTRAP_ADMIN']) delete env[k];
  if (EMBEDDED) {
    const dataDir = mkdtempSync(join(tmpdir(), 'keyward-cli-'));
    return { env: { ...env, KEYWARD_DATA_DIR: dataDir }, dataDir, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const db = await createTestDatabase();
  return { env: { ...env, DATABASE_URL: db.databaseUrl }, cleanup: () => db.drop() };
}

/** `keyward <args>` as its own process (test/support/process.ts runCli). */
const run = (args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30_000) => runCli(args, env, timeoutMs);

/** `keyward serve` running in a child process. */
class Serve {
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly baseUrl: string;
  private readonly child: ChildProcess;

  private constructor(env: NodeJS.ProcessEnv, port: number) {
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.child = spawn(process.execPath, [BIN, 'serve'], {
      cwd: ROOT,
      env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        children.delete(this.child);
        recordProcessOutput(this.stdout, this.stderr, 'cli-stderr');
        resolve({ code, signal });
      }),
    );
  }

  static async start(env: NodeJS.ProcessEnv): Promise<Serve> {
    const s = new Serve(env, await freePort());
    await s.waitForLog('keyward listening', 45_000);
    return s;
  }

  /** Waits for a log line whose msg is `msg`; fails if the process exits first. */
  async waitForLog(msg: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (!this.stderr.includes(`"msg":${JSON.stringify(msg)}`)) {
      if (exited) throw new Error(`keyward serve exited before "${msg}"; stderr:\n${this.stderr}\nstdout:\n${this.stdout}`);
      if (Date.now() > deadline) throw new Error(`no "${msg}" within ${timeoutMs} ms; stderr:\n${this.stderr}`);
      await sleep(50);
    }
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** Sends SIGTERM and returns how the process ended and how long it took. */
  async stop(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const t0 = Date.now();
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const r = await this.exited;
    clearTimeout(timer);
    return { ...r, ms: Date.now() - t0 };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bearer(token: string): Interceptor {
  return (next) => async (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

function clients(baseUrl: string, token: string, httpVersion: '1.1' | '2' = '1.1') {
  const transport = createConnectTransport({ baseUrl, httpVersion, interceptors: [bearer(token)] });
  return { workspaces: createClient(WorkspaceService, transport), keys: createClient(KeyService, transport) };
}

function lastLine(s: string): string {
  const lines = s.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines[lines.length - 1] ?? '';
}

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

// The two suites use separate databases and run side by side; the tests within
// each run in order.
describe.concurrent('keyward CLI', { timeout: 120_000 }, () => {
  let t: Target;
  let token = '';
  let id = '';

  beforeAll(async () => {
    t = await freshTarget();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it.sequential('migrate applies migrations and is idempotent', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await run(['migrate'], t.env, 60_000);
      expect(r.stderr).not.toMatch(STACK_RE);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('migrations applied');
    }
    // The embedded database was closed: no address of a running owner is left behind.
    if (t.dataDir) expect(existsSync(join(t.dataDir, 'server.json'))).toBe(false);
  });

  it.sequential('sdk-key create prints the token alone on the last line of stdout', async () => {
    const r = await run(['sdk-key', 'create', '--name', 'ci', '--scope', 'api_keys:verify', '--scope', 'api_keys:read'], t.env);
    expect(r.code, r.stderr).toBe(0);
    token = lastLine(r.stdout);
    expect(token).toMatch(TOKEN_RE);
    // Nothing else on stdout; the explanation goes to stderr, without the token.
    expect(r.stdout).toBe(`${token}\n`);
    id = token.slice(4, 40);
    expect(r.stderr).toContain(id);
    expect(r.stderr).not.toContain(token);
  });

  it.sequential('sdk-key create rejects a bad scope by name, without a stack trace', async () => {
    const r = await run(['sdk-key', 'create', '--name', 'x', '--scope', 'api_keys:verify', '--scope', 'api_keys:fly'], t.env);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain('api_keys:fly');
    expect(r.stderr).not.toMatch(STACK_RE);
    expect(r.stdout).not.toMatch(/kws_/);
  });

  it.sequential('sdk-key create rejects a missing name or an unknown workspace', async () => {
    const noName = await run(['sdk-key', 'create', '--scope', 'api_keys:read'], t.env);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toMatch(/name/);
    const ws = await run(['sdk-key', 'create', '--name', 'x', '--scope', '*', '--workspace', '01a20000-0000-7000-8000-000000000000'], t.env);
    expect(ws.code).toBe(1);
    expect(ws.stderr).toMatch(/workspace .*not found/);
    for (const r of [noName, ws]) {
      expect(r.stderr).not.toMatch(STACK_RE);
      expect(r.stdout).toBe('');
    }
  });

  it.sequential('sdk-key list shows a table with a header, and --json for scripts; never the token or the secret', async () => {
    const r = await run(['sdk-key', 'list'], t.env);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    // The header and only the one key created above: the failed creations left nothing.
    expect(lines).toHaveLength(2);
    expect(lines[0]!.split(/\s{2,}/)).toEqual(['ID', 'NAME', 'SCOPES', 'WORKSPACES', 'CREATED', 'LAST USED', 'STATE']);
    expect(lines[1]!.startsWith(`${id}  ci  `)).toBe(true);
    expect(lines[1]).toMatch(/api_keys:(read|verify) api_keys:(read|verify)\s+all\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+-\s+active$/);
    const json = await run(['sdk-key', 'list', '--json'], t.env);
    expect(json.code, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout) as {
      id: string;
      name: string;
      scopes: string[];
      workspace_ids: string[];
      create_time: string;
      last_used_time: null;
      revoke_time: null;
    }[];
    expect(rows).toEqual([
      {
        id,
        name: 'ci',
        scopes: expect.arrayContaining(['api_keys:read', 'api_keys:verify']),
        workspace_ids: [],
        create_time: expect.stringMatching(/^\d{4}-/),
        last_used_time: null,
        revoke_time: null,
      },
    ]);
    const secret = token.slice(41);
    for (const out of [r, json]) {
      expect(out.stdout + out.stderr).not.toContain(secret);
      expect(out.stdout + out.stderr).not.toContain('kws_');
      expect(out.stdout).not.toMatch(/\$2[aby]\$/);
    }
  });

  it.sequential('sdk-key revoke ID revokes; list then shows it revoked', async () => {
    const r = await run(['sdk-key', 'revoke', id], t.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(id);
    const list = await run(['sdk-key', 'list'], t.env);
    expect(list.code).toBe(0);
    const line = list.stdout.split('\n').find((l) => l.startsWith(id));
    expect(line).toMatch(/ {2}revoked \d{4}-\d\d-\d\d \d\d:\d\d$/);
  });

  it.sequential('sdk-key revoke of an unknown or malformed id fails cleanly', async () => {
    const unknown = await run(['sdk-key', 'revoke', '01a20000-0000-7000-8000-000000000000'], t.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/not found/);
    const bad = await run(['sdk-key', 'revoke', 'nope'], t.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/id: /);
    for (const r of [unknown, bad]) expect(r.stderr).not.toMatch(STACK_RE);
  });

  it.sequential('signing-key rotate makes a new signing key active and names the one it retired', async () => {
    const first = await run(['signing-key', 'rotate'], t.env);
    expect(first.code, first.stderr).toBe(0);
    const m = /^active signing key ([0-9a-f-]{36})\n$/.exec(first.stdout);
    expect(m, first.stdout).not.toBeNull();
    const second = await run(['signing-key', 'rotate'], t.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(new RegExp(`^active signing key [0-9a-f-]{36}; retired ${m![1]}\n$`));
    expect(first.stdout + first.stderr + second.stdout + second.stderr).not.toMatch(/PRIVATE KEY/);
    const bad = await run(['signing-key', 'list'], t.env);
    expect(bad.code).toBe(2);
  });

  it.sequential('an unknown command or option prints the usage and exits 2', async () => {
    // None of these reaches the database, so they can run side by side.
    const cases = [['frobnicate'], ['sdk-key', 'rotate'], ['sdk-key', 'revoke'], ['sdk-key', 'create', '--nmae', 'x']];
    const [help, ...results] = await Promise.all([run(['help'], t.env), ...cases.map((args) => run(args, t.env))]);
    results.forEach((r, i) => {
      expect(r!.code, cases[i]!.join(' ')).toBe(2);
      expect(r!.stderr).toContain('Usage: keyward');
      // It says what was wrong before the usage.
      expect(r!.stderr).toMatch(/^keyward: (unknown command: frobnicate|unknown sdk-key subcommand or arguments: |Unknown option '--nmae')/);
      expect(r!.stderr).not.toMatch(STACK_RE);
      expect(r!.stdout).toBe('');
    });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: keyward');
  });
});

describe.concurrent('keyward serve', { timeout: 120_000 }, () => {
  let t: Target;
  let first: Serve | undefined;
  let adminToken = '';
  let cliToken = '';
  let workspaceId = '';
  let apiKey = '';

  beforeAll(async () => {
    t = await freshTarget();
  });
  afterAll(async () => {
    first?.signal('SIGKILL');
    await first?.exited;
    await t?.cleanup();
  });

  it.sequential('on an empty database prints one admin SDK key, once, on stdout', async () => {
    first = await Serve.start(t.env);
    const tokens = first.stdout.match(TOKEN_ANYWHERE_RE) ?? [];
    expect(tokens).toHaveLength(1);
    adminToken = tokens[0]!;
    if (t.dataDir) expect(existsSync(join(t.dataDir, 'server.json'))).toBe(true);
  });

  it.sequential('the admin key creates a workspace and an API key over Connect', async () => {
    const c = clients(first!.baseUrl, adminToken);
    const { workspace } = await c.workspaces.createWorkspace({ workspace: { name: 'cli-e2e', keyPrefix: 'cli' } });
    workspaceId = workspace!.id;
    const created = await c.keys.createKey({ key: { workspaceId, customerId: 'cust-1', name: 'k1' } });
    apiKey = created.secret;
    expect(apiKey).toMatch(/^cli_[0-9A-Za-z]{49}$/);
    // Over HTTP/2 as well.
    const h2 = clients(first!.baseUrl, adminToken, '2');
    expect((await h2.workspaces.getWorkspace({ id: workspaceId })).workspace?.name).toBe('cli-e2e');
  });

  it.sequential('sdk-key create while serve runs joins its database, and the key works at once', async () => {
    const r = await run(['sdk-key', 'create', '--name', 'gateway', '--scope', 'workspace:read', '--scope', 'api_keys:verify'], t.env);
    expect(r.code, r.stderr).toBe(0);
    cliToken = lastLine(r.stdout);
    expect(cliToken).toMatch(TOKEN_RE);
    // The server still owns the embedded database.
    if (t.dataDir) expect(existsSync(join(t.dataDir, 'server.json'))).toBe(true);

    const c = clients(first!.baseUrl, cliToken);
    expect((await c.workspaces.getWorkspace({ id: workspaceId })).workspace?.name).toBe('cli-e2e');
    const v = await c.keys.verifyKey({ key: apiKey });
    expect(v.valid).toBe(true);
    expect(v.workspaceId).toBe(workspaceId);
    expect(v.customerId).toBe('cust-1');
    // Scopes are enforced: this key may not write workspaces or read keys.
    expect(await codeOf(c.workspaces.createWorkspace({ workspace: { name: 'nope' } }))).toBe(Code.PermissionDenied);
    expect(await codeOf(c.keys.listKeys({ workspaceId }))).toBe(Code.PermissionDenied);

    const list = await run(['sdk-key', 'list'], t.env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/ {2}admin\s+\*\s+all {2}/);
    expect(list.stdout).toMatch(/ {2}gateway\s+workspace:read api_keys:verify\s+all {2}/);
  });

  it.sequential('rejects missing, malformed and wrong SDK keys as UNAUTHENTICATED, never INTERNAL', async () => {
    const id = cliToken.slice(4, 40);
    const secret = cliToken.slice(41);
    const otherSecret = (secret[0] === 'a' ? 'b' : 'a') + secret.slice(1);
    const bad = [
      'garbage',
      `kws_${id}_${otherSecret}`,
      `kws_01a20000-0000-7000-8000-000000000000_${secret}`,
      // Shaped like a token, but the id is not a UUID.
      `kws_${'-'.repeat(36)}_${secret}`,
      `kws_${'0'.repeat(36)}_${secret}`,
      `kws_${id.replaceAll('-', 'f')}_${secret}`,
      apiKey,
    ];
    for (const tok of bad) {
      expect(await codeOf(clients(first!.baseUrl, tok).workspaces.getWorkspace({ id: workspaceId })), tok).toBe(Code.Unauthenticated);
    }
    const anon = createClient(WorkspaceService, createConnectTransport({ baseUrl: first!.baseUrl, httpVersion: '1.1' }));
    expect(await codeOf(anon.getWorkspace({ id: workspaceId }))).toBe(Code.Unauthenticated);
    expect(first!.stderr).not.toContain('"level":"error"');
  });

  it.sequential('sdk-key revoke while serve runs locks the key out within a few seconds', async () => {
    const id = cliToken.slice(4, 40);
    const r = await run(['sdk-key', 'revoke', id], t.env);
    expect(r.code, r.stderr).toBe(0);
    const c = clients(first!.baseUrl, cliToken);
    const deadline = Date.now() + 5000;
    let code: Code | undefined;
    while ((code = await codeOf(c.workspaces.getWorkspace({ id: workspaceId }))) !== Code.Unauthenticated && Date.now() < deadline) {
      await sleep(100);
    }
    expect(code).toBe(Code.Unauthenticated);
    // The admin key is untouched.
    expect((await clients(first!.baseUrl, adminToken).workspaces.getWorkspace({ id: workspaceId })).workspace?.id).toBe(workspaceId);
  });

  it.sequential('on SIGTERM lets a request in flight finish, then exits 0', async () => {
    const s = first!;
    const url = new URL('/keyward.v1.WorkspaceService/GetWorkspace', s.baseUrl);
    const body = JSON.stringify({ id: workspaceId });
    const req = http.request(url, {
      method: 'POST',
      agent: false,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        authorization: `Bearer ${adminToken}`,
      },
    });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.once('error', reject);
      req.once('response', (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.once('end', () => resolve({ status: res.statusCode!, body: text }));
        res.once('error', reject);
      });
    });
    // Headers and half the body are on the server: the request is in flight.
    req.write(body.slice(0, 5));
    // A finished request leaves an idle keep-alive connection behind (Node's
    // default agent keeps connections alive): it must not hold up the exit.
    const c = clients(s.baseUrl, adminToken);
    expect((await c.workspaces.getWorkspace({ id: workspaceId })).workspace?.id).toBe(workspaceId);
    await sleep(300);
    const t0 = Date.now();
    s.signal('SIGTERM');
    await s.waitForLog('shutting down', 5000);
    await sleep(300);
    req.end(body.slice(5));
    const res = await response;
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body).workspace.id).toBe(workspaceId);

    const timer = setTimeout(() => s.signal('SIGKILL'), 15_000);
    const exit = await s.exited;
    clearTimeout(timer);
    expect(exit).toEqual({ code: 0, signal: null });
    // Well under the 5 s an idle keep-alive connection would last.
    expect(Date.now() - t0).toBeLessThan(2500);
    if (t.dataDir) expect(existsSync(join(t.dataDir, 'server.json'))).toBe(false);
    // No new connections after shutdown.
    expect(await codeOf(clients(s.baseUrl, adminToken).workspaces.getWorkspace({ id: workspaceId }))).toBe(Code.Unavailable);
  });

  it.sequential('logs JSON lines to stderr, with no SDK key and no API key in them', () => {
    const s = first!;
    const lines = s.stderr.split('\n').filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      const entry = JSON.parse(l) as Record<string, unknown>;
      expect(typeof entry.msg).toBe('string');
      expect(typeof entry.level).toBe('string');
      expect(typeof entry.time).toBe('string');
    }
    expect(s.stderr).not.toContain('kws_');
    for (const secret of [adminToken.slice(41), cliToken.slice(41), apiKey, apiKey.slice(4)]) expect(s.stderr).not.toContain(secret);
    // The admin token went to stdout only, and only once.
    expect(s.stdout.match(TOKEN_ANYWHERE_RE)).toHaveLength(1);
    expect(s.stdout).not.toContain(apiKey);
  });

  it.sequential('a second start on the same database prints no admin key; data and keys persist', async () => {
    const s = await Serve.start(t.env);
    try {
      expect(s.stdout).not.toMatch(/kws_/);
      const c = clients(s.baseUrl, adminToken);
      expect((await c.workspaces.getWorkspace({ id: workspaceId })).workspace?.name).toBe('cli-e2e');
      expect((await c.keys.verifyKey({ key: apiKey })).valid).toBe(true);
      // The revoked key stays revoked.
      expect(await codeOf(clients(s.baseUrl, cliToken).workspaces.getWorkspace({ id: workspaceId }))).toBe(Code.Unauthenticated);
    } finally {
      const exit = await s.stop();
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
      expect(exit.ms).toBeLessThan(3000);
    }
    expect(s.stderr).not.toContain('kws_');
    expect(s.stderr).not.toContain(apiKey);
  });
});
