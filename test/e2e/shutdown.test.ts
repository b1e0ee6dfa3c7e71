// SIGTERM during load: every write the server acknowledged is in the
// database afterwards, and buffered usage (last_used_time) is flushed.
import { createClient } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { adminTokenOf, spawnServer, type ServerProcess } from '../support/process.js';
import { transport } from '../support/server.js';

let db: TestDatabase;
const servers: ServerProcess[] = [];

const env = () => ({
  DATABASE_URL: db.databaseUrl ?? '',
  KEYWARD_DATA_DIR: db.dataDir,
  KEYWARD_BOOTSTRAP_ADMIN: 'true',
  // Usage is only written by the shutdown flush.
  KEYWARD_USAGE_FLUSH_MS: '600000',
});

beforeAll(async () => {
  db = await createTestDatabase({ persistent: true });
});
afterAll(async () => {
  for (const s of servers) await s.stop();
  await db?.drop();
});

describe('SIGTERM under load', () => {
  it('loses no acknowledged write and no buffered usage', { timeout: 90_000 }, async () => {
    const first = await spawnServer(env());
    servers.push(first);
    const token = adminTokenOf(first);
    const t = transport(first.baseUrl, 'grpc', token);
    const W = createClient(WorkspaceService, t);
    const K = createClient(KeyService, t);
    const ws = (await W.createWorkspace({ workspace: { name: 'sigterm' } })).workspace!.id;
    const used = await K.createKey({ key: { workspaceId: ws, name: 'used' } });

    const acknowledged: string[] = [];
    const verified = new Set<string>();
    let stop = false;
    const writer = async () => {
      while (!stop) {
        try {
          const r = await K.createKey({ key: { workspaceId: ws, name: 'under load' } });
          acknowledged.push(r.key!.id);
          if ((await K.verifyKey({ key: r.secret })).code === VerifyCode.VALID) verified.add(r.key!.id);
        } catch {
          return; // refused or cut off by the shutdown: not acknowledged
        }
      }
    };
    expect((await K.verifyKey({ key: used.secret })).code).toBe(VerifyCode.VALID);
    const load = Promise.all(Array.from({ length: 8 }, writer));
    await new Promise((r) => setTimeout(r, 800));
    const exit = first.stop();
    expect(await exit).toBe(0);
    stop = true;
    await load;
    expect(acknowledged.length).toBeGreaterThan(0);

    // The database, reopened by a new server (which must start on it) and read directly, has every acknowledged write and every use.
    const second = await spawnServer({ ...env(), KEYWARD_BOOTSTRAP_ADMIN: 'false' });
    servers.push(second);
    const { rows, lastUsed } = await readBack(second);
    const present = new Set(rows);
    expect(acknowledged.filter((id) => !present.has(id))).toEqual([]);
    expect(lastUsed.get(used.key!.id)).toBeTruthy();
    expect([...verified].filter((id) => !lastUsed.get(id))).toEqual([]);
  });
});

/** Stops `server` and reads key ids and last-used times from the database directly. */
async function readBack(server: ServerProcess) {
  await server.stop();
  const pg = await import('pg');
  if (db.databaseUrl) {
    const c = new pg.default.Client({ connectionString: db.databaseUrl });
    await c.connect();
    try {
      const r = await c.query<{ id: string; last_used_time: Date | null }>('select id, last_used_time from api_keys');
      return { rows: r.rows.map((x) => x.id), lastUsed: new Map(r.rows.map((x) => [x.id, x.last_used_time])) };
    } finally {
      await c.end();
    }
  }
  const { openDatabase } = await import('../../src/db/database.js');
  const d = await openDatabase({ databaseUrl: undefined, dataDir: db.dataDir, poolSize: 1 });
  try {
    const r = await d.orm.em.fork().execute<{ id: string; last_used_time: Date | null }[]>('select id, last_used_time from api_keys');
    return { rows: r.map((x) => x.id), lastUsed: new Map(r.map((x) => [x.id, x.last_used_time])) };
  } finally {
    await d.close();
  }
}
