// Usage analytics: every verification counted per key, code and hour, written
// behind in batches and read through UsageService.
import { randomBytes } from 'node:crypto';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { CLI_PRINCIPAL } from '../../src/domain/principal.js';
import { HOUR_MS } from '../../src/verify/analytics.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

// Counts are written only when flushed explicitly (or on shutdown).
const ENV = { KEYWARD_USAGE_FLUSH_MS: '3600000' };

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer(ENV);
});
afterAll(async () => {
  await ts?.close();
});

const since = () => timestampFromDate(new Date(Date.now() - 2 * HOUR_MS));
const countsOf = (counts: { code: VerifyCode; count: bigint }[]) => Object.fromEntries(counts.map((c) => [VerifyCode[c.code], Number(c.count)]));

async function setup(t: TestServer) {
  const ws = (await client(WorkspaceService, t).createWorkspace({ workspace: { name: `usage-${randomBytes(4).toString('hex')}` } })).workspace!.id;
  await client(ScopeService, t).createScope({ scope: { workspaceId: ws, name: 'orders' } });
  const K = client(KeyService, t);
  const created = await K.createKey({ key: { workspaceId: ws, name: 'k', grants: [{ scope: 'orders', actions: [Action.READ] }] } });
  return { ws, keyId: created.key!.id, secret: created.secret, K };
}

describe('usage analytics', () => {
  it('counts every verification per key and code, over the lean and the stock path, written only on flush', async () => {
    const { ws, keyId, secret, K } = await setup(ts);
    const grpc = client(KeyService, ts, { protocol: 'grpc' }); // the HTTP/2 fast path
    for (let i = 0; i < 3; i++) expect((await grpc.verifyKey({ key: secret, requiredPermissions: ['orders:read'] })).valid).toBe(true);
    expect((await K.verifyKey({ key: secret })).valid).toBe(true);
    expect((await grpc.verifyKey({ key: secret, requiredPermissions: ['orders:delete'] })).code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    // Unknown keys: counted in the workspace the request named, else nowhere.
    const unknown = `kw_${'A'.repeat(49)}`;
    await K.verifyKey({ key: unknown, workspaceId: ws });
    await grpc.verifyKey({ key: 'kw_malformed', workspaceId: ws });
    await K.verifyKey({ key: unknown });
    await K.updateKey({ key: { id: keyId, enabled: false }, updateMask: { paths: ['enabled'] } });
    expect((await grpc.verifyKey({ key: secret, workspaceId: ws })).code).toBe(VerifyCode.DISABLED);

    const U = client(UsageService, ts);
    // Nothing is written per verification.
    expect((await U.getKeyUsage({ keyId, startTime: since() })).total).toBe(0n);

    await ts.internals.analytics.flush();
    const usage = await U.getKeyUsage({ keyId, startTime: since() });
    expect(usage.total).toBe(6n);
    expect(countsOf(usage.totals)).toEqual({ VALID: 4, INSUFFICIENT_PERMISSIONS: 1, DISABLED: 1 });
    expect(usage.buckets).toHaveLength(1);
    const hour = timestampDate(usage.buckets[0]!.startTime!).getTime();
    expect(hour % HOUR_MS).toBe(0);
    expect(Date.now() - hour).toBeLessThan(HOUR_MS + 60_000);
    expect(usage.buckets[0]!.total).toBe(6n);

    const wsUsage = await U.getWorkspaceUsage({ workspaceId: ws, startTime: since() });
    expect(countsOf(wsUsage.totals)).toEqual({ VALID: 4, INSUFFICIENT_PERMISSIONS: 1, DISABLED: 1, NOT_FOUND: 2 });
    expect(wsUsage.total).toBe(8n);
    expect(wsUsage.buckets.map((b) => b.total)).toEqual([8n]);

    // A second flush adds to the same rows.
    await K.updateKey({ key: { id: keyId, enabled: true }, updateMask: { paths: ['enabled'] } });
    await grpc.verifyKey({ key: secret });
    await ts.internals.analytics.flush();
    expect(countsOf((await U.getKeyUsage({ keyId, startTime: since() })).totals).VALID).toBe(5);
  });

  it('keeps hours apart and counts any code, also ones added later (e.g. rate limits)', async () => {
    const { ws, keyId } = await setup(ts);
    const app = ts.server.app;
    const key = { id: keyId, workspaceId: ws, customerId: '', name: 'k', permissions: [], metadata: {}, expireTime: null, state: 'active' as const };
    const h0 = (Math.floor(Date.now() / HOUR_MS) - 3) * HOUR_MS;
    app.analytics.count(CLI_PRINCIPAL, '', { code: 'valid', key }, h0 + 10);
    app.analytics.count(CLI_PRINCIPAL, '', { code: 'valid', key }, h0 + 20);
    app.analytics.count(CLI_PRINCIPAL, '', { code: 'valid', key }, h0 + HOUR_MS + 5); // next hour
    app.analytics.count(CLI_PRINCIPAL, '', { code: 'rate_limited' as never, key }, h0 + HOUR_MS + 6);
    await app.analytics.flush();
    const report = await app.usageReports.keyUsage(CLI_PRINCIPAL, keyId, { start: new Date(h0 + 1000), end: undefined });
    expect(report.buckets.map((b) => [b.hour.getTime() - h0, b.counts])).toEqual([
      [0, [{ code: 'valid', count: 2 }]],
      [
        HOUR_MS,
        [
          { code: 'rate_limited', count: 1 },
          { code: 'valid', count: 1 },
        ],
      ],
    ]);
    // Over the API a code this build does not know yet is UNSPECIFIED.
    const U = client(UsageService, ts);
    const r = await U.getKeyUsage({ keyId, startTime: timestampFromDate(new Date(h0)), endTime: timestampFromDate(new Date(h0 + HOUR_MS)) });
    expect(r.buckets).toHaveLength(1); // end_time is exclusive
    expect(countsOf(r.totals)).toEqual({ VALID: 2 });
  });

  it('rejects bad ranges and ids naming the field; a missing key is NOT_FOUND', async () => {
    const { ws, keyId } = await setup(ts);
    const U = client(UsageService, ts);
    await expectError(U.getKeyUsage({ keyId }), Code.InvalidArgument, 'start_time');
    await expectError(U.getKeyUsage({ keyId: 'nope', startTime: since() }), Code.InvalidArgument, 'key_id');
    const now = new Date();
    await expectError(
      U.getKeyUsage({ keyId, startTime: timestampFromDate(now), endTime: timestampFromDate(new Date(now.getTime() - 1)) }),
      Code.InvalidArgument,
      'end_time',
    );
    await expectError(
      U.getWorkspaceUsage({ workspaceId: ws, startTime: timestampFromDate(new Date(now.getTime() - 93 * 24 * HOUR_MS)), endTime: timestampFromDate(now) }),
      Code.InvalidArgument,
      'end_time',
    );
    await expectError(U.getWorkspaceUsage({ workspaceId: '', startTime: since() }), Code.InvalidArgument, 'workspace_id');
    await expectError(U.getKeyUsage({ keyId: '0190aaaa-0000-7000-8000-000000000000', startTime: since() }), Code.NotFound);
    await client(KeyService, ts).deleteKey({ id: keyId });
    await expectError(U.getKeyUsage({ keyId, startTime: since() }), Code.NotFound);
  });
});

describe('usage analytics on shutdown', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ persistent: true });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('writes the counts still in memory when the server stops gracefully', async () => {
    const first = await startTestServer(ENV, { db });
    const { keyId, secret, K } = await setup(first);
    for (let i = 0; i < 4; i++) await K.verifyKey({ key: secret });
    await first.close();
    const second = await startTestServer(ENV, { db });
    try {
      const r = await client(UsageService, second).getKeyUsage({ keyId, startTime: since() });
      expect(countsOf(r.totals)).toEqual({ VALID: 4 });
    } finally {
      await second.close();
    }
  });
});
