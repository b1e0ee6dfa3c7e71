// Retention (src/domain/retention.ts) on a real database: hourly usage counts
// older than KEYWARD_USAGE_HOURLY_DAYS become one count per key, code and day
// (read back by GetKeyUsage as that day's 00:00 bucket, totals unchanged),
// counts older than KEYWARD_USAGE_RETENTION_DAYS and audit events older than
// KEYWARD_AUDIT_RETENTION_DAYS are deleted, and what is recent is untouched.
import { timestampFromDate, timestampMs } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import { newKey, newWorkspace } from '../support/fixtures.js';
import { recordSecret } from '../support/hygiene.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({ KEYWARD_USAGE_HOURLY_DAYS: '10', KEYWARD_USAGE_RETENTION_DAYS: '60', KEYWARD_AUDIT_RETENTION_DAYS: '30' });
});
afterAll(async () => {
  await ts?.close();
});

describe('retention', () => {
  it('rolls old hourly usage into days, deletes what is past keeping, and leaves the rest', async () => {
    const ws = await newWorkspace(ts);
    const k = await newKey(ts, { workspaceId: ws });
    recordSecret(k.secret);
    const now = Date.UTC(2026, 5, 30, 12);
    const day20 = now - 20 * DAY - 12 * HOUR; // 00:00 UTC, 20 days before
    const rows: [number, string, number][] = [
      // 20 days old: four hours of one day, two codes, and that day's 00:00 hour itself.
      [day20, 'valid', 1],
      [day20 + 3 * HOUR, 'valid', 2],
      [day20 + 9 * HOUR, 'valid', 3],
      [day20 + 9 * HOUR, 'revoked', 4],
      [day20 + 23 * HOUR, 'valid', 5],
      // 2 days old: stays hourly.
      [now - 2 * DAY, 'valid', 7],
      // 90 days old: deleted.
      [now - 90 * DAY, 'valid', 100],
    ];
    // Written as src/verify/analytics.ts writes them: each key's counts, and the workspace's.
    for (const [t, code, n] of rows) {
      await ts.sql('insert into key_usage (workspace_id, key_id, hour, code, count) values (?, ?, ?, ?, ?)', [ws, k.id, new Date(t), code, n]);
      await ts.sql('insert into workspace_usage (workspace_id, hour, code, count) values (?, ?, ?, ?)', [ws, new Date(t), code, n]);
    }
    await ts.sql(
      `insert into audit_events (id, time, actor, action, resource_type, resource_id, workspace_id, count)
                  values (gen_random_uuid(), ?, 'test', 'key.update', 'key', ?, ?, 1), (gen_random_uuid(), ?, 'test', 'key.update', 'key', ?, ?, 1)`,
      [new Date(now - 40 * DAY), k.id, ws, new Date(now - 5 * DAY), k.id, ws],
    );

    const run = await ts.internals.retention.run(now);
    // The 90-day-old count is rolled up too, then deleted: in both tables.
    expect(run).toEqual({ usageRolledUp: 10, usageDeleted: 2, auditDeleted: 1 });
    // Again: nothing left to do.
    expect(await ts.internals.retention.run(now)).toEqual({ usageRolledUp: 0, usageDeleted: 0, auditDeleted: 0 });

    const left = await ts.sql<{ t: number; code: string; count: string }[]>(
      'select (extract(epoch from hour) * 1000)::float8 as t, code, count from key_usage where key_id = ? order by hour, code',
      [k.id],
    );
    expect(left.map((r) => [r.t, r.code, Number(r.count)])).toEqual([
      [day20, 'revoked', 4],
      [day20, 'valid', 11],
      [now - 2 * DAY, 'valid', 7],
    ]);
    const audit = await ts.sql<{ n: number }[]>('select count(*)::int as n from audit_events where resource_id = ? and actor = ?', [k.id, 'test']);
    expect(audit[0]!.n).toBe(1);

    // GetKeyUsage reads the daily row as that day's first bucket.
    const usage = await client(UsageService, ts).getKeyUsage({
      keyId: k.id,
      startTime: timestampFromDate(new Date(day20)),
      endTime: timestampFromDate(new Date(day20 + DAY)),
    });
    expect(Number(usage.total)).toBe(15);
    expect(usage.buckets.map((b) => Number(b.total))).toEqual([15]);
    // And GetWorkspaceUsage the workspace's.
    const wsUsage = await client(UsageService, ts).getWorkspaceUsage({
      workspaceId: ws,
      startTime: timestampFromDate(new Date(day20)),
      endTime: timestampFromDate(new Date(now)),
    });
    expect(wsUsage.buckets.map((b) => [timestampMs(b.startTime!), Number(b.total)])).toEqual([
      [day20, 15],
      [now - 2 * DAY, 7],
    ]);
  });
});
