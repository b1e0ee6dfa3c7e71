// KEYWARD_WORKERS: several server processes on one port (node:cluster).
// Both workers answer; a key created through one verifies on every
// connection, a revoke reaches every worker; SIGTERM drains them all. The
// embedded database serves one process, so workers need PostgreSQL, and
// asking for them without it is a clear error at start.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { openDatabase } from '../../src/db/database.js';
import { ChangeBus } from '../../src/domain/changes.js';
import { SdkKeys } from '../../src/domain/sdk-keys.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { sleep } from '../support/fixtures.js';
import { spawnServer, type ServerProcess } from '../support/process.js';
import { transport } from '../support/server.js';

/** The processes `pid` started. */
const childrenOf = (pid: number) =>
  readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);

/** CPU time a process has used, in clock ticks. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** GET on a connection of its own (no keep-alive): any worker may take it. */
function getFresh(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

describe.skipIf(!process.env.DATABASE_URL)('KEYWARD_WORKERS=2 on PostgreSQL', () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let token: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await spawnServer({ DATABASE_URL: db.databaseUrl, KEYWARD_WORKERS: '2' }, { startTimeoutMs: 60_000 });
    // spawnServer returns once the first worker listens; wait for the second.
    for (let i = 0; i < 300 && server.stderr().split('keyward listening').length < 3; i++) await sleep(100);
    const conn = await openDatabase({ databaseUrl: db.databaseUrl, dataDir: '', poolSize: 1 });
    try {
      ({ token } = await new SdkKeys(conn.orm, new ChangeBus(true)).create({ name: 't', scopes: ['*'], workspaceIds: [] }));
    } finally {
      await conn.close();
    }
  }, 90_000);
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it('runs two server processes that both answer on the one port', async () => {
    expect(server.stderr().split('keyward listening').length - 1).toBe(2);
    expect(childrenOf(server.child.pid!)).toHaveLength(2);
    // Fresh connections are dealt to both: each worker spends CPU on its share of them.
    const workers = childrenOf(server.child.pid!);
    const before = workers.map(cpuTicks);
    for (let i = 0; i < 100; i++) expect(await getFresh(`${server.baseUrl}/metrics`)).toContain('keyward_verify_total');
    const after = workers.map(cpuTicks);
    expect(after.map((t, i) => t - before[i]!).every((d) => d > 0)).toBe(true);
  });

  it('a key created through one verifies on every connection, and a revoke reaches every worker', async () => {
    const fresh = () => createClient(KeyService, transport(server.baseUrl, 'grpc', token));
    const { workspace } = await createClient(WorkspaceService, transport(server.baseUrl, 'grpc', token)).createWorkspace({
      workspace: { name: 'workers' },
    });
    const created = await fresh().createKey({ key: { workspaceId: workspace!.id } });
    const codes = await Promise.all(Array.from({ length: 20 }, () => fresh().verifyKey({ key: created.secret })));
    expect(codes.map((c) => c.code)).toEqual(Array(20).fill(VerifyCode.VALID));
    await fresh().revokeKey({ id: created.key!.id });
    const deadline = Date.now() + 2000;
    for (;;) {
      const after = await Promise.all(Array.from({ length: 20 }, () => fresh().verifyKey({ key: created.secret })));
      if (after.every((r) => r.code === VerifyCode.REVOKED)) break;
      if (Date.now() > deadline) throw new Error('a worker still answers VALID for a revoked key after 2 s');
      await sleep(50);
    }
  });

  it('SIGTERM stops every worker and the primary exits 0', async () => {
    const pid = server.child.pid!;
    const workers = childrenOf(pid);
    expect(await server.stop()).toBe(0);
    for (const w of workers) expect(() => process.kill(w, 0)).toThrow();
  });
});

describe('KEYWARD_WORKERS without PostgreSQL', () => {
  it('refuses to start, saying why', async () => {
    const err = await spawnServer({ DATABASE_URL: '', KEYWARD_WORKERS: '2' }).then(
      () => new Error('started'),
      (e: Error) => e,
    );
    expect(err.message).toMatch(/KEYWARD_WORKERS above 1 needs DATABASE_URL/);
  });
});
