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
});
