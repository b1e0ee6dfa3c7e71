import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { issueApiKey } from '../../src/credentials/api-key.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(async () => {
  await ts?.close();
});

// The cache's own counters tell how many lookups reached the database:
// every miss that is not joined to another in-flight lookup runs one query.
// The membership filter (src/verify/key-filter.ts) answers keys never issued before the cache.
const lookups = () => ts.internals.keyCache.stats.misses;

describe('verify cache', () => {
  it('rejects malformed keys and bad checksums before the cache or database', async () => {
    const keys = client(KeyService, ts);
    const real = issueApiKey('kw').plaintext;
    const typo = real.slice(0, 10) + (real[10] === 'a' ? 'b' : 'a') + real.slice(11);
    const before = { ...ts.internals.keyCache.stats };
    for (const key of ['x', 'kw_', 'kw_short', typo, real.toUpperCase(), 'a'.repeat(500)]) {
      const r = await keys.verifyKey({ key });
      expect(r.code).toBe(VerifyCode.NOT_FOUND);
    }
    expect(ts.internals.keyCache.stats).toEqual(before);
  });

  it('answers well-formed keys that were never issued from the membership filter, with no lookup', async () => {
    const keys = client(KeyService, ts);
    const unknown = Array.from({ length: 20 }, () => issueApiKey('kw').plaintext);
    const before = lookups();
    const filtered = ts.internals.keyFilter.stats.absent;
    for (let round = 0; round < 5; round++) {
      await Promise.all(unknown.map(async (key) => expect((await keys.verifyKey({ key })).code).toBe(VerifyCode.NOT_FOUND)));
    }
    expect(lookups() - before).toBe(0);
    expect(ts.internals.keyFilter.stats.absent - filtered).toBe(100);
  });

  it('looks up a key the filter holds (an issued one, or a rare false positive) once per negative-TTL window', async () => {
    // A secret stored behind Keyward's back is in no filter: added by hand, as if a false positive.
    const key = issueApiKey('kw');
    ts.internals.keyFilter.add(key.hash);
    const keys = client(KeyService, ts);
    const before = lookups();
    for (let i = 0; i < 5; i++) expect((await keys.verifyKey({ key: key.plaintext })).code).toBe(VerifyCode.NOT_FOUND);
    expect(lookups() - before).toBe(1);
  });

  it('serves a valid key from the cache after the first lookup, and a revoke is seen at once', async () => {
    const { workspace } = await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'cache-hit' } });
    const keys = client(KeyService, ts);
    const { key, secret } = await keys.createKey({ key: { workspaceId: workspace!.id } });
    const before = lookups();
    for (let i = 0; i < 10; i++) expect((await keys.verifyKey({ key: secret })).code).toBe(VerifyCode.VALID);
    expect(lookups() - before).toBe(1);
    await keys.revokeKey({ id: key!.id });
    expect((await keys.verifyKey({ key: secret })).code).toBe(VerifyCode.REVOKED);
  });
});
