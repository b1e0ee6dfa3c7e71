// KeyWriter (src/domain/key-insert.ts) on a real database: creates that
// arrive together share a statement, and one the database refuses fails only
// itself. Driven directly, below the RPC layer's checks, so that a write can
// carry what the database rejects (a NUL in metadata).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueApiKey } from '../../src/credentials/api-key.js';
import { lazyDriverPool } from '../../src/db/database.js';
import { KeyWriter } from '../../src/domain/key-insert.js';
import { newKeyColumns } from '../../src/domain/key-fields.js';
import { Principal } from '../../src/domain/principal.js';
import { newWorkspace } from '../support/fixtures.js';
import { startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(async () => {
  await ts?.close();
});

const input = (name: string) => ({ workspaceId: '', customerId: 'cus_1', name, description: '', grants: [], permissions: [], metadata: {}, rateLimits: [] });

describe('KeyWriter', () => {
  it('writes creates that arrive together in one statement; a write the database refuses fails alone', async () => {
    const ws = await newWorkspace(ts);
    const writer = new KeyWriter(lazyDriverPool(ts.internals.orm, { inlineValues: ts.databaseUrl === undefined }));
    const p = new Principal('test', ['*'], []);
    const target = (await writer.target(ws, [], true))!;
    const write = (name: string, metadata?: Record<string, string>) =>
      writer.write({
        principal: p,
        workspace: target,
        // metadata set past the checks: PostgreSQL refuses a NUL in jsonb.
        keys: [{ columns: { ...newKeyColumns(p, input(name), Date.now()), ...(metadata && { metadata }) }, wanted: new Map(), secret: issueApiKey('kw') }],
        grants: [[]],
        action: 'key.create',
        notices: [],
      });
    // Two statements may run at once: the first two writes take them, the next ones wait and go together.
    const outcomes = await Promise.allSettled([write('a'), write('b'), write('c'), write('bad', { k: 'nul \u0000 here' }), write('d')]);
    // a and b alone; c, bad and d together, refused; then each of those alone.
    expect(writer.stats).toEqual({ statements: 2 + 1 + 3, writes: 2 + 3 + 3 });
    const names = outcomes.map((o) => (o.status === 'fulfilled' && Array.isArray(o.value) ? o.value[0]!.key.name : 'rejected'));
    expect(names).toEqual(['a', 'b', 'c', 'rejected', 'd']);
    const stored = await ts.sql<{ name: string }[]>('select name from api_keys where workspace_id = ? order by name', [ws]);
    expect(stored.map((r) => r.name)).toEqual(['a', 'b', 'c', 'd']);
  });

  it("a statement of several writes records each key with its own write's workspace, actor, action and request id", async () => {
    const ws = await newWorkspace(ts);
    const writer = new KeyWriter(lazyDriverPool(ts.internals.orm, { inlineValues: ts.databaseUrl === undefined }));
    const target = (await writer.target(ws, [], true))!;
    const principals = [0, 1, 2, 3, 4].map((i) => new Principal(`actor_${i}`, ['*'], [], `req_${i}`));
    const actionOf = (i: number) => (i % 2 ? 'key.import' : 'key.create');
    const written = await Promise.all(
      principals.map((p, i) =>
        writer.write({
          principal: p,
          workspace: target,
          keys: [{ columns: newKeyColumns(p, input(`key ${i}`), Date.now()), wanted: new Map(), secret: issueApiKey('kw') }],
          grants: [[]],
          action: actionOf(i),
          notices: [],
        }),
      ),
    );
    // The first two writes take the two statements that may run at once; the other three share the next.
    expect(writer.stats).toEqual({ statements: 3, writes: 5 });
    const audit = await ts.sql<{ resource_id: string; actor: string; action: string; request_id: string; workspace_id: string }[]>(
      "select resource_id, actor, action, request_id, workspace_id from audit_events where resource_type = 'key' and workspace_id = ?",
      [ws],
    );
    const keys = await ts.sql<{ id: string; workspace_id: string }[]>('select id, workspace_id from api_keys where workspace_id = ?', [ws]);
    expect(keys).toHaveLength(5);
    written.forEach((w, i) => {
      const id = (w as { key: { id: string } }[])[0]!.key.id;
      expect(audit.filter((a) => a.resource_id === id)).toEqual([
        { resource_id: id, actor: `actor_${i}`, action: actionOf(i), request_id: `req_${i}`, workspace_id: ws },
      ]);
    });
  });
});
