// Rate limits of keys: fixed windows, all-or-none across a key's limits, in
// memory and (when a Redis answers) in Redis, shared by two server processes,
// and what happens when Redis cannot be reached.
import { Code, createClient } from '@connectrpc/connect';
import { durationFromMs, timestampDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ApiKeySchema } from '../../gen/keyward/v1/key_pb.js';

type ApiKey = MessageInitShape<typeof ApiKeySchema>;
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { freePort, startReplicas, type Replicas, type ServerProcess } from '../support/process.js';
import { awayFromWindowEnd, currentWindowEnd, redisAnswers, TEST_REDIS_URL, uniqueRedisPrefix } from '../support/redis.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, transport, type TestServer } from '../support/server.js';

const DAY_MS = 24 * 3600 * 1000;
const HOUR_MS = 3600 * 1000;
const haveRedis = await redisAnswers();
if (!haveRedis) console.warn(`rate-limits.test.ts: no Redis answers at ${TEST_REDIS_URL}; the Redis tests are skipped`);

const limit = (name: string, n: number, ms: number) => ({ name, limit: BigInt(n), duration: durationFromMs(ms) });

const MODES = [
  { mode: 'in memory', env: {} as Record<string, string>, skip: false },
  { mode: 'in Redis', env: { REDIS_URL: TEST_REDIS_URL, KEYWARD_REDIS_PREFIX: uniqueRedisPrefix('rate-limits') }, skip: !haveRedis },
];

describe.each(MODES)('rate limits $mode', ({ env, skip }) => {
  let ts: TestServer;
  let ws = '';
  let keys: ReturnType<typeof client<typeof KeyService>>;

  beforeAll(async () => {
    if (skip) return;
    ts = await startTestServer(env);
    ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'rl' } })).workspace!.id;
    keys = client(KeyService, ts);
  });
  // Each test's windows (hourly, daily) stay the same from its first request to its last.
  beforeEach(() => awayFromWindowEnd(HOUR_MS));
  afterAll(async () => {
    await ts?.close();
  });

  const issue = async (key: ApiKey) => {
    const r = await keys.createKey({ key: { workspaceId: ws, ...key } });
    return { id: r.key!.id, secret: r.secret, key: r.key! };
  };

  it.skipIf(skip)('admits up to the limit per window, then RATE_LIMITED with remaining and reset time', async () => {
    const k = await issue({ rateLimits: [limit('daily', 3, DAY_MS)] });
    expect(k.key.rateLimits.map((l) => [l.name, l.limit, l.duration?.seconds])).toEqual([['daily', 3n, 86400n]]);
    const reset = currentWindowEnd(DAY_MS);
    const answers = [];
    for (let i = 0; i < 4; i++) {
      const r = await keys.verifyKey({ key: k.secret });
      answers.push([
        VerifyCode[r.code],
        r.valid,
        ...r.rateLimits.map((l) => [l.name, l.limit, l.remaining, timestampDate(l.resetTime!).getTime(), l.exceeded]),
      ]);
    }
    const t = reset.getTime();
    expect(answers).toEqual([
      ['VALID', true, ['daily', 3n, 2n, t, false]],
      ['VALID', true, ['daily', 3n, 1n, t, false]],
      ['VALID', true, ['daily', 3n, 0n, t, false]],
      ['RATE_LIMITED', false, ['daily', 3n, 0n, t, true]],
    ]);
    const zero = await keys.verifyKey({ key: k.secret, cost: 0n });
    expect([zero.code, zero.keyId, zero.customerId]).toEqual([VerifyCode.RATE_LIMITED, k.id, '']);
  });

  it.skipIf(skip)('a request refused by one limit takes nothing from the others; cost counts, 0 takes nothing', async () => {
    const k = await issue({ rateLimits: [limit('hourly', 10, HOUR_MS), limit('daily', 4, DAY_MS)] });
    const v = async (cost?: bigint) => {
      const r = await keys.verifyKey({ key: k.secret, cost });
      return [VerifyCode[r.code], ...r.rateLimits.map((l) => `${l.name}:${l.remaining}${l.exceeded ? '!' : ''}`)];
    };
    expect(await v(3n)).toEqual(['VALID', 'hourly:7', 'daily:1']);
    expect(await v(2n)).toEqual(['RATE_LIMITED', 'hourly:7', 'daily:1!']);
    expect(await v(0n)).toEqual(['VALID', 'hourly:7', 'daily:1']);
    expect(await v()).toEqual(['VALID', 'hourly:6', 'daily:0']);
    expect(await v(0n)).toEqual(['RATE_LIMITED', 'hourly:6', 'daily:0!']);
  });

  it.skipIf(skip)('a request refused by the rate limit spends no use; one refused for uses gives its rate back', async () => {
    const k = await issue({ rateLimits: [limit('daily', 2, DAY_MS)], remainingUses: 5n });
    let r = await keys.verifyKey({ key: k.secret });
    expect([r.code, r.remainingUses, r.rateLimits[0]!.remaining]).toEqual([VerifyCode.VALID, 4n, 1n]);
    r = await keys.verifyKey({ key: k.secret, cost: 2n });
    expect([r.code, r.remainingUses, r.rateLimits[0]!.exceeded]).toEqual([VerifyCode.RATE_LIMITED, undefined, true]);
    expect((await keys.getKey({ id: k.id })).key!.remainingUses).toBe(4n);

    const u = await issue({ rateLimits: [limit('daily', 2, DAY_MS)], remainingUses: 1n });
    expect((await keys.verifyKey({ key: u.secret })).code).toBe(VerifyCode.VALID);
    for (let i = 0; i < 3; i++) {
      r = await keys.verifyKey({ key: u.secret });
      expect([r.code, r.remainingUses, r.rateLimits[0]!.remaining]).toEqual([VerifyCode.USAGE_EXCEEDED, 0n, 1n]);
    }
    // Given more uses, the rate limit still has the one it gave back.
    await keys.updateKey({ key: { id: u.id, remainingUses: 5n }, updateMask: { paths: ['remaining_uses'] } });
    r = await keys.verifyKey({ key: u.secret });
    expect([r.code, r.rateLimits[0]!.remaining]).toEqual([VerifyCode.VALID, 0n]);
    expect((await keys.verifyKey({ key: u.secret })).code).toBe(VerifyCode.RATE_LIMITED);
  });

  it.skipIf(skip)('UpdateKey replaces the list; an empty list removes the limits', async () => {
    const k = await issue({ rateLimits: [limit('daily', 1, DAY_MS)] });
    expect((await keys.verifyKey({ key: k.secret })).code).toBe(VerifyCode.VALID);
    expect((await keys.verifyKey({ key: k.secret })).code).toBe(VerifyCode.RATE_LIMITED);
    const up = await keys.updateKey({
      key: { id: k.id, rateLimits: [limit('daily', 2, DAY_MS), limit('burst', 5, 1000)] },
      updateMask: { paths: ['rate_limits'] },
    });
    expect(up.key!.rateLimits.map((l) => l.name)).toEqual(['daily', 'burst']);
    // The same limit (name and window) keeps its count: 1 of now 2 used.
    const r = await keys.verifyKey({ key: k.secret });
    expect([r.code, r.rateLimits.map((l) => l.remaining)]).toEqual([VerifyCode.VALID, [0n, 4n]]);
    await keys.updateKey({ key: { id: k.id }, updateMask: { paths: ['rate_limits'] } });
    for (let i = 0; i < 3; i++) {
      const v = await keys.verifyKey({ key: k.secret });
      expect([v.code, v.rateLimits]).toEqual([VerifyCode.VALID, []]);
    }
  });

  it.skipIf(skip)('rejects bad rate limits, naming the field', async () => {
    const bad = async (rateLimits: ApiKey['rateLimits'], field: string) => expectError(issue({ rateLimits }), Code.InvalidArgument, field);
    await bad(
      Array.from({ length: 6 }, (_, i) => limit(`l${i}`, 1, DAY_MS)),
      'key.rate_limits',
    );
    await bad([limit('a', 1, DAY_MS), limit('a', 2, HOUR_MS)], 'key.rate_limits[1].name');
    await bad([limit('', 1, DAY_MS)], 'key.rate_limits[0].name');
    await bad([limit('Per Second', 1, DAY_MS)], 'key.rate_limits[0].name');
    await bad([limit('a', 0, DAY_MS)], 'key.rate_limits[0].limit');
    await bad([limit('a', 1e13, DAY_MS)], 'key.rate_limits[0].limit');
    await bad([limit('a', 1, 999)], 'key.rate_limits[0].duration');
    await bad([limit('a', 1, 32 * DAY_MS)], 'key.rate_limits[0].duration');
    await bad([{ name: 'a', limit: 1n } as NonNullable<ApiKey['rateLimits']>[number]], 'key.rate_limits[0].duration');
    await bad([{ name: 'a', limit: 1n, duration: { seconds: 2n, nanos: 500 } } as NonNullable<ApiKey['rateLimits']>[number]], 'key.rate_limits[0].duration');
  });

  it.skipIf(skip)('keys without limits answer as before, with no limit fields', async () => {
    const k = await issue({});
    const r = await keys.verifyKey({ key: k.secret, cost: 5n });
    expect([r.code, r.rateLimits, r.remainingUses]).toEqual([VerifyCode.VALID, [], undefined]);
    if (env.REDIS_URL) expect(ts.internals.rateLimitStats).toMatchObject({ redis: true, redisUp: true, localFallbacks: 0, redisOutages: 0 });
  });
});

describe('when Redis cannot be reached', () => {
  let ts: TestServer;

  beforeAll(async () => {
    // A port nothing listens on.
    ts = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${await freePort()}`, KEYWARD_REDIS_PREFIX: uniqueRedisPrefix('down') });
  });
  afterAll(async () => {
    await ts?.close();
  });

  it('verifies by the local limits, logs once per outage and counts the local decisions', async () => {
    const ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'down' } })).workspace!.id;
    const keys = client(KeyService, ts);
    await awayFromWindowEnd(DAY_MS);
    const k = await keys.createKey({ key: { workspaceId: ws, rateLimits: [limit('daily', 3, DAY_MS)] } });
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push(VerifyCode[(await keys.verifyKey({ key: k.secret })).code]);
    expect(codes).toEqual(['VALID', 'VALID', 'VALID', 'RATE_LIMITED', 'RATE_LIMITED']);
    const stats = ts.internals.rateLimitStats;
    expect(stats).toMatchObject({ redis: true, redisUp: false, redisDecisions: 0, localFallbacks: 5, redisOutages: 1 });
    // ioredis keeps trying to reconnect meanwhile; the outage is logged once.
    await new Promise((r) => setTimeout(r, 500));
    const warnings = ts.logs.filter((l) => l.includes('redis unreachable'));
    expect(warnings.length).toBe(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ level: 'warn' });
  });
});

// Two server processes sharing Redis and Postgres (embedded PGlite is single-process).
describe.skipIf(!haveRedis || !process.env.DATABASE_URL)('two replicas sharing Redis', () => {
  let replicas: Replicas;
  let a: ServerProcess;
  let b: ServerProcess;
  let token: string;

  beforeAll(async () => {
    replicas = await startReplicas({ REDIS_URL: TEST_REDIS_URL, KEYWARD_REDIS_PREFIX: uniqueRedisPrefix('replicas') });
    ({ a, b, token } = replicas);
  }, 90_000);
  afterAll(async () => {
    await replicas?.stop();
  });

  it('admit no more than the limit together (over-admission under 1 %)', async () => {
    const ka = createClient(KeyService, transport(a.baseUrl, 'grpc', token));
    const kb = createClient(KeyService, transport(b.baseUrl, 'grpc', token));
    const w = (await createClient(WorkspaceService, transport(a.baseUrl, 'grpc', token)).createWorkspace({ workspace: { name: 'two' } })).workspace!;
    await awayFromWindowEnd(DAY_MS);
    const LIMIT = 300;
    const { secret } = await ka.createKey({ key: { workspaceId: w.id, rateLimits: [limit('daily', LIMIT, DAY_MS)] } });
    const codes = await Promise.all(Array.from({ length: 1200 }, (_, i) => (i % 2 ? ka : kb).verifyKey({ key: secret }).then((r) => r.code)));
    const admitted = codes.filter((c) => c === VerifyCode.VALID).length;
    expect(admitted).toBeGreaterThanOrEqual(LIMIT);
    expect(admitted).toBeLessThanOrEqual(LIMIT * 1.01);
    expect(codes.filter((c) => c !== VerifyCode.VALID && c !== VerifyCode.RATE_LIMITED)).toEqual([]);
    // Both replicas took part.
    for (const s of [a, b]) expect(s.stderr()).not.toContain('redis unreachable');
  }, 90_000);

  it('admit exactly as many requests of a cost as fit, when many arrive together', async () => {
    const ka = createClient(KeyService, transport(a.baseUrl, 'grpc', token));
    const kb = createClient(KeyService, transport(b.baseUrl, 'grpc', token));
    const w = (await createClient(WorkspaceService, transport(a.baseUrl, 'grpc', token)).createWorkspace({ workspace: { name: 'costs' } })).workspace!;
    await awayFromWindowEnd(DAY_MS);
    // Room for 33 requests of cost 3 (99 of 100), then one of cost 1, then none.
    const { secret } = await ka.createKey({ key: { workspaceId: w.id, rateLimits: [limit('daily', 100, DAY_MS), limit('hourly', 1000, HOUR_MS)] } });
    const codes = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? ka : kb).verifyKey({ key: secret, cost: 3n }).then((r) => r.code)));
    expect(codes.filter((c) => c === VerifyCode.VALID).length).toBe(33);
    expect(codes.filter((c) => c !== VerifyCode.VALID && c !== VerifyCode.RATE_LIMITED)).toEqual([]);
    const last = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? ka : kb).verifyKey({ key: secret, cost: 1n })));
    expect(last.filter((r) => r.code === VerifyCode.VALID).length).toBe(1);
    const after = await ka.verifyKey({ key: secret, cost: 0n });
    expect(after.code).toBe(VerifyCode.RATE_LIMITED);
  }, 90_000);
});
