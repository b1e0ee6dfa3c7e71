// Usage-limited keys: remaining_uses taken by VerifyKey's cost in one atomic
// database update, refills applied lazily, never served from the verify cache.
import { createClient } from '@connectrpc/connect';
import { Code } from '@connectrpc/connect';
import { durationFromMs, timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { RefillInterval, type ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';

type ApiKey = MessageInitShape<typeof ApiKeySchema>;
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { startReplicas, type Replicas, type ServerProcess } from '../support/process.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, transport, type TestServer } from '../support/server.js';

const DAY_MS = 24 * 3600 * 1000;

let ts: TestServer;
let ws = '';
let keys: ReturnType<typeof client<typeof KeyService>>;

beforeAll(async () => {
  ts = await startTestServer();
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'usage' } })).workspace!.id;
  keys = client(KeyService, ts);
});
afterAll(async () => {
  await ts?.close();
});

async function issue(key: ApiKey) {
  const r = await keys.createKey({ key: { workspaceId: ws, ...key } });
  return { id: r.key!.id, secret: r.secret, key: r.key! };
}

const sql = (query: string, params: unknown[] = []) => ts.sql(query, params);

describe('remaining_uses', () => {
  it('counts down by each verification and then answers USAGE_EXCEEDED', async () => {
    const k = await issue({ remainingUses: 3n });
    expect(k.key.remainingUses).toBe(3n);
    const seen = [];
    for (let i = 0; i < 4; i++) {
      const r = await keys.verifyKey({ key: k.secret });
      seen.push([r.code, r.valid, r.remainingUses]);
    }
    expect(seen).toEqual([
      [VerifyCode.VALID, true, 2n],
      [VerifyCode.VALID, true, 1n],
      [VerifyCode.VALID, true, 0n],
      [VerifyCode.USAGE_EXCEEDED, false, 0n],
    ]);
    const r = await keys.verifyKey({ key: k.secret, cost: 0n });
    expect([r.code, r.keyId, r.remainingUses]).toEqual([VerifyCode.USAGE_EXCEEDED, k.id, 0n]);
    expect((await keys.getKey({ id: k.id })).key!.remainingUses).toBe(0n);
  });

  it('takes the cost, or nothing when fewer uses are left; cost 0 checks without taking', async () => {
    const k = await issue({ remainingUses: 5n });
    const code = async (cost?: bigint) => {
      const r = await keys.verifyKey({ key: k.secret, cost });
      return [VerifyCode[r.code], r.remainingUses];
    };
    expect(await code(3n)).toEqual(['VALID', 2n]);
    expect(await code(3n)).toEqual(['USAGE_EXCEEDED', 2n]);
    expect(await code(0n)).toEqual(['VALID', 2n]);
    expect(await code()).toEqual(['VALID', 1n]);
    expect(await code(1n)).toEqual(['VALID', 0n]);
  });

  it('a key without remaining_uses is unlimited and reports none', async () => {
    const k = await issue({});
    expect(k.key.remainingUses).toBeUndefined();
    const r = await keys.verifyKey({ key: k.secret, cost: 1000n });
    expect([r.code, r.remainingUses, r.rateLimits]).toEqual([VerifyCode.VALID, undefined, []]);
  });

  it('checks nothing of the limits for a key that fails earlier, and consumes nothing', async () => {
    const k = await issue({ remainingUses: 1n, enabled: false });
    const r = await keys.verifyKey({ key: k.secret });
    expect([r.code, r.remainingUses]).toEqual([VerifyCode.DISABLED, undefined]);
    const perm = await keys.verifyKey({ key: k.secret, requiredPermissions: ['x:read'] });
    expect(perm.code).toBe(VerifyCode.DISABLED);
    expect((await keys.getKey({ id: k.id })).key!.remainingUses).toBe(1n);
  });

  it('is read from the database on every verification, never from the cache', async () => {
    const k = await issue({ remainingUses: 1n });
    expect((await keys.verifyKey({ key: k.secret })).code).toBe(VerifyCode.VALID);
    expect((await keys.verifyKey({ key: k.secret })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    // Behind Keyward's back, so no change is announced: the cache still holds the key's record.
    await sql('update api_keys set remaining_uses = 2 where id = ?', [k.id]);
    const r = await keys.verifyKey({ key: k.secret });
    expect([r.code, r.remainingUses]).toEqual([VerifyCode.VALID, 1n]);
  });

  it('rejects a bad cost, naming the field', async () => {
    const k = await issue({ remainingUses: 1n });
    await expectError(keys.verifyKey({ key: k.secret, cost: -1n }), Code.InvalidArgument, 'cost');
    await expectError(keys.verifyKey({ key: k.secret, cost: 10n ** 12n }), Code.InvalidArgument, 'cost');
    // Also for a key without limits.
    const plain = await issue({});
    await expectError(keys.verifyKey({ key: plain.secret, cost: -5n }), Code.InvalidArgument, 'cost');
    expect((await keys.getKey({ id: k.id })).key!.remainingUses).toBe(1n);
  });

  it('rejects bad remaining_uses and refill, naming the field', async () => {
    await expectError(issue({ remainingUses: -1n }), Code.InvalidArgument, 'key.remaining_uses');
    await expectError(issue({ remainingUses: 10n ** 16n }), Code.InvalidArgument, 'key.remaining_uses');
    const daily = { amount: 5n, interval: RefillInterval.DAILY };
    await expectError(issue({ refill: daily as ApiKey['refill'] }), Code.InvalidArgument, 'key.refill');
    await expectError(issue({ remainingUses: 1n, refill: { amount: 5n } as ApiKey['refill'] }), Code.InvalidArgument, 'key.refill.interval');
    await expectError(issue({ remainingUses: 1n, refill: { ...daily, dayOfMonth: 3 } as ApiKey['refill'] }), Code.InvalidArgument, 'key.refill.day_of_month');
    await expectError(
      issue({ remainingUses: 1n, refill: { amount: 5n, interval: RefillInterval.MONTHLY, dayOfMonth: 32 } as ApiKey['refill'] }),
      Code.InvalidArgument,
      'key.refill.day_of_month',
    );
    await expectError(
      issue({ remainingUses: 1n, refill: { amount: -1n, interval: RefillInterval.DAILY } as ApiKey['refill'] }),
      Code.InvalidArgument,
      'key.refill.amount',
    );
  });

  it('UpdateKey sets and clears remaining_uses and refill through the mask', async () => {
    const k = await issue({ name: 'u' });
    const update = (key: ApiKey, paths: string[]) => keys.updateKey({ key: { id: k.id, ...key }, updateMask: { paths } });
    // A name change leaves the (absent) limits alone.
    expect((await update({ name: 'v' }, ['name'])).key!.remainingUses).toBeUndefined();
    let r = (
      await update({ remainingUses: 2n, refill: { amount: 7n, interval: RefillInterval.MONTHLY, dayOfMonth: 31 } as ApiKey['refill'] }, [
        'remaining_uses',
        'refill',
      ])
    ).key!;
    expect([r.remainingUses, r.refill?.amount, r.refill?.interval, r.refill?.dayOfMonth]).toEqual([2n, 7n, RefillInterval.MONTHLY, 31]);
    expect(Math.abs(timestampDate(r.refill!.lastRefillTime!).getTime() - Date.now())).toBeLessThan(60_000);
    expect((await keys.verifyKey({ key: k.secret })).remainingUses).toBe(1n);
    // Clearing remaining_uses while the refill stays is refused.
    await expectError(update({}, ['remaining_uses']), Code.InvalidArgument, 'key.refill');
    r = (await update({}, ['remaining_uses', 'refill'])).key!;
    expect([r.remainingUses, r.refill]).toEqual([undefined, undefined]);
    const v = await keys.verifyKey({ key: k.secret });
    expect([v.code, v.remainingUses]).toEqual([VerifyCode.VALID, undefined]);
  });

  it('writes the limits into the audit records of create and update', async () => {
    const k = await issue({ remainingUses: 9n, rateLimits: [{ name: 'daily', limit: 100n, duration: durationFromMs(DAY_MS) }] });
    await keys.updateKey({ key: { id: k.id, remainingUses: 4n }, updateMask: { paths: ['remaining_uses'] } });
    const rows = (await sql(`select action, details from audit_events where resource_id = ? order by time, action`, [k.id])) as {
      action: string;
      details: Record<string, unknown> | string;
    }[];
    const details = rows.map((r) => [r.action, typeof r.details === 'string' ? JSON.parse(r.details) : r.details]);
    expect(details).toEqual([
      ['key.create', { rate_limits: [{ name: 'daily', limit: 100, duration_ms: DAY_MS }], remaining_uses: 9, refill: null }],
      ['key.update', { update_mask: ['remaining_uses'], rate_limits: [{ name: 'daily', limit: 100, duration_ms: DAY_MS }], remaining_uses: 4, refill: null }],
    ]);
  });
});

describe('refill', () => {
  it('a daily refill due since the last one sets remaining_uses to the amount, seen by GetKey and VerifyKey', async () => {
    const k = await issue({ remainingUses: 0n, refill: { amount: 5n, interval: RefillInterval.DAILY } as ApiKey['refill'] });
    expect((await keys.verifyKey({ key: k.secret })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    // As if the key had last been refilled two days ago.
    await sql(`update api_keys set last_refill_time = now() - interval '2 days' where id = ?`, [k.id]);
    const midnight = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS);
    const got = (await keys.getKey({ id: k.id })).key!;
    expect(got.remainingUses).toBe(5n);
    expect(timestampDate(got.refill!.lastRefillTime!)).toEqual(midnight);
    const r = await keys.verifyKey({ key: k.secret, cost: 2n });
    expect([r.code, r.remainingUses]).toEqual([VerifyCode.VALID, 3n]);
    // Applied once: the next verification goes on from there.
    expect((await keys.verifyKey({ key: k.secret })).remainingUses).toBe(2n);
    const stored = (await sql('select remaining_uses, last_refill_time from api_keys where id = ?', [k.id])) as {
      remaining_uses: string;
      last_refill_time: Date;
    }[];
    expect(Number(stored[0]!.remaining_uses)).toBe(2);
    expect(new Date(stored[0]!.last_refill_time)).toEqual(midnight);
  });

  it('a monthly refill not yet due leaves the count alone; a refill larger than the cost admits after refilling', async () => {
    const k = await issue({ remainingUses: 1n, refill: { amount: 50n, interval: RefillInterval.MONTHLY, dayOfMonth: 1 } as ApiKey['refill'] });
    expect((await keys.verifyKey({ key: k.secret, cost: 2n })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    await sql(`update api_keys set last_refill_time = now() - interval '40 days' where id = ?`, [k.id]);
    const r = await keys.verifyKey({ key: k.secret, cost: 2n });
    expect([r.code, r.remainingUses]).toEqual([VerifyCode.VALID, 48n]);
  });
});

describe('concurrency', () => {
  // 200 in flight at a time: embedded PGlite serves one statement at a time,
  // and 1,000 at once could outwait the pool's 5 s connection timeout on a busy
  // machine. The two-replica test below sends all 1,000 at once to Postgres.
  it('1,000 verifications of a key with 100 uses, 200 at a time: exactly 100 VALID, in far fewer statements (group commit)', async () => {
    const k = await issue({ remainingUses: 100n });
    const grpc = createClient(KeyService, transport(ts.baseUrl, 'grpc', ts.adminToken));
    const codes: VerifyCode[] = [];
    const remaining: bigint[] = [];
    let sent = 0;
    const stats = () => ts.internals.usageLimits.stats;
    const before = { ...stats() };
    const worker = async () => {
      while (sent < 1000) {
        sent++;
        const r = await grpc.verifyKey({ key: k.secret });
        codes.push(r.code);
        if (r.code === VerifyCode.VALID) remaining.push(r.remainingUses!);
      }
    };
    await Promise.all(Array.from({ length: 200 }, worker));
    expect(codes.length).toBe(1000);
    expect(codes.filter((c) => c === VerifyCode.VALID).length).toBe(100);
    expect(codes.filter((c) => c === VerifyCode.USAGE_EXCEEDED).length).toBe(900);
    // Each admitted call saw its own count: 99 down to 0, each once.
    expect(remaining.map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const takes = stats().takes - before.takes;
    expect(takes).toBe(1000);
    expect(stats().statements - before.statements).toBeLessThan(takes / 2);
    expect((await keys.getKey({ id: k.id })).key!.remainingUses).toBe(0n);
  }, 60_000);
});

// Two server processes on one Postgres (embedded PGlite is single-process).
describe.skipIf(!process.env.DATABASE_URL)('two replicas', () => {
  let replicas: Replicas;
  let a: ServerProcess;
  let b: ServerProcess;
  let token: string;

  beforeAll(async () => {
    replicas = await startReplicas({ REDIS_URL: '' });
    ({ a, b, token } = replicas);
  }, 90_000);
  afterAll(async () => {
    await replicas?.stop();
  });

  it('1,000 concurrent verifications through both of a key with 100 uses: exactly 100 VALID', async () => {
    const ka = createClient(KeyService, transport(a.baseUrl, 'grpc', token));
    const kb = createClient(KeyService, transport(b.baseUrl, 'grpc', token));
    const w = (await createClient(WorkspaceService, transport(a.baseUrl, 'grpc', token)).createWorkspace({ workspace: { name: 'two' } })).workspace!;
    const { secret, key } = await ka.createKey({ key: { workspaceId: w.id, remainingUses: 100n } });
    const codes = await Promise.all(Array.from({ length: 1000 }, (_, i) => (i % 2 ? ka : kb).verifyKey({ key: secret }).then((r) => r.code)));
    expect(codes.filter((c) => c === VerifyCode.VALID).length).toBe(100);
    expect(codes.filter((c) => c === VerifyCode.USAGE_EXCEEDED).length).toBe(900);
    expect((await kb.getKey({ id: key!.id })).key!.remainingUses).toBe(0n);
  }, 90_000);
});
