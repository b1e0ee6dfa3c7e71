// What `npm run bench` measures: the servers, in the order they run, each
// with its rows. A row is a small declaration (request, protocol, load,
// what a correct answer is); bench/run.ts turns each into a load-generator
// run with the exact request checked before and after it.
import { randomBytes } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Action } from '../gen/keyward/v1/key_pb.js';
import {
  CreateKeyRequestSchema,
  CreateKeyResponseSchema,
  ImportKeysRequestSchema,
  ImportKeysResponseSchema,
  VerifyCode,
  VerifyKeyRequestSchema,
  VerifyKeyResponseSchema,
} from '../gen/keyward/v1/key_service_pb.js';
import { issueApiKey } from '../src/credentials/api-key.js';
import { COLD_KEYS, UNKNOWN_KEYS, progress } from './options.js';
import { startBenchServer, type Server } from './processes.js';
import { setUp, startKeyward, type Fixture, type Keyward } from './setup.js';

/** The run so far, as the declarations see it. */
export interface RunState {
  meta: Record<string, unknown>;
  /** req/s of a row measured earlier in this run; null when it was not (or failed). */
  rps(id: string): number | null;
}

/** What a server's rows send with: the bearer token, and for Keyward the keys made for the bench. */
export interface Context {
  token: string;
}

export interface Scenario<C extends Context> {
  id: string;
  title: string;
  /** gRPC (default) or Connect binary. */
  protocol?: 'grpc' | 'connect';
  /** The KeyService method (default VerifyKey). */
  method?: 'VerifyKey' | 'CreateKey' | 'ImportKeys';
  /** The request message: of every request, and of the answer checked before and after the run. */
  message: (c: C) => Uint8Array;
  /** Distinct messages, each sent once, instead of `message` over and over (then only checked with); needs bench/loadgen.ts. */
  eachOnce?: (c: C) => Uint8Array[];
  /** The check before and after the run sends a new `message` each time (a request that cannot be repeated, such as an import). */
  freshCheck?: boolean;
  /** Checks the response message of the checked request and says what it was; default: only the status. */
  answer?: (response: Uint8Array) => string;
  /** One request at a time (a latency row), or other concurrency than --connections x --streams. */
  load?: 'one-at-a-time' | { connections: number; streams: number };
  /** Paced: total req/s on one connection (a latency row); null leaves the row out. */
  pace?: (run: RunState) => number | null;
  /** Leaves the row out. */
  skip?: (c: C) => boolean;
  notes?: (c: C, run: RunState) => string[];
}

export interface ServerGroup<S extends Server = Server, C extends Context = Context> {
  /** The row reported in place of the group's when its server cannot be started or set up. */
  failure: { id: string; title: string; server: string };
  /** Whether to start the server at all, besides --only. */
  when?: (run: RunState) => boolean;
  start: (run: RunState) => Promise<S>;
  prepare: (server: S, run: RunState) => Promise<C>;
  /** Measured in this order, one after the other. */
  scenarios: Scenario<C>[];
}

/** A group's types are checked where it is declared; the runner only passes its own values back to it. */
const serverGroup = <S extends Server, C extends Context>(g: ServerGroup<S, C>) => g as unknown as ServerGroup;

// ---------------------------------------------------------------- requests and answers

export const GRPC_HEADERS = (token: string) => ({ 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${token}` });
export const CONNECT_HEADERS = (token: string) => ({ 'content-type': 'application/proto', 'connect-protocol-version': '1', authorization: `Bearer ${token}` });

const verifyMessage = (key: string) =>
  toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key, requiredPermissions: ['balance_transfers:read'] }));
/** A well-formed key (valid checksum) that was never issued. */
const unknownKey = () => verifyMessage(issueApiKey('bench').plaintext);

export function expect(cond: boolean, what: string): void {
  if (!cond) throw new Error(`wrong answer: ${what}`);
}

const verifies = (code: VerifyCode) => (message: Uint8Array) => {
  const res = fromBinary(VerifyKeyResponseSchema, message);
  expect(
    res.code === code && res.valid === (code === VerifyCode.VALID),
    `VerifyKey answered valid=${res.valid} code=${VerifyCode[res.code]}, expected ${VerifyCode[code]}`,
  );
  return `grpc-status 0, ${VerifyCode[res.code]}`;
};

/** Keys per ImportKeys call in the bench, and calls prepared (each imports keys never seen before). */
const IMPORT_BATCH = 1000;
const IMPORT_CALLS = 300;

const importMessage = (workspaceId: string) =>
  toBinary(
    ImportKeysRequestSchema,
    create(ImportKeysRequestSchema, {
      workspaceId,
      keys: Array.from({ length: IMPORT_BATCH }, (_, i) => ({
        key: { name: `imported ${i}`, customerId: `cus_import_${i % 100}`, scopes: ['balance_transfers:read'] },
        secret: { case: 'plaintext' as const, value: `legacy_${randomBytes(24).toString('base64url')}` },
      })),
    }),
  );

const keysImported = (message: Uint8Array) => {
  const res = fromBinary(ImportKeysResponseSchema, message);
  expect(res.keys.length === IMPORT_BATCH, `ImportKeys returned ${res.keys.length} keys`);
  return `grpc-status 0, ${res.keys.length} keys imported`;
};

const keyCreated = (message: Uint8Array) => {
  const res = fromBinary(CreateKeyResponseSchema, message);
  expect(res.secret.startsWith('bench_') && !!res.key?.id, 'CreateKey returned no key or secret');
  return 'grpc-status 0, key created';
};

/** Half of verify-hit-grpc's measured peak: the rate of the paced rows. */
function halfPeak(run: RunState): number | null {
  const peak = run.rps('verify-hit-grpc');
  return peak ? peak / 2 : null;
}

// ---------------------------------------------------------------- baselines

// Baselines get the same request as Keyward: a well-formed key (they never look at it).
const BASELINE_TOKEN = `kws_00000000-0000-0000-0000-000000000000_${'x'.repeat(40)}`;
const BASELINE_MESSAGE = unknownKey();
const baselineMessage = () => BASELINE_MESSAGE;

/** One of bench/servers/*.ts, answering any gRPC request alike; a failure to start is reported as its first row. */
const baseline = (server: string, file: string, scenarios: Scenario<Context>[], extra: Pick<ServerGroup, 'when'> & { failureTitle?: string } = {}) =>
  serverGroup({
    failure: { id: scenarios[0]!.id, title: extra.failureTitle ?? scenarios[0]!.title, server },
    when: extra.when,
    start: () => startBenchServer(server, file),
    prepare: async () => ({ token: BASELINE_TOKEN }),
    scenarios,
  });

// ---------------------------------------------------------------- Keyward

interface KeywardContext extends Context {
  fixture: Fixture;
}

const keyward = (
  o: { name: string; label: string; title: string; env: NodeJS.ProcessEnv; coldKeys: number; reportDatabase: boolean },
  scenarios: Scenario<KeywardContext>[],
  extra: Pick<ServerGroup, 'when'> = {},
) =>
  serverGroup({
    failure: { id: o.name, title: o.title, server: o.name },
    when: extra.when,
    start: async (run) => {
      const setting = o.env.KEYWARD_VERIFY_FAST_PATH;
      progress(`starting Keyward (KEYWARD_VERIFY_FAST_PATH${setting === undefined ? ' unset' : `=${setting}`})`);
      const kw = await startKeyward(o.name, o.label, o.env);
      if (o.reportDatabase) run.meta.database = kw.database;
      return kw;
    },
    prepare: async (kw: Keyward) => ({ token: kw.adminToken, fixture: await setUp(kw, o.coldKeys) }),
    scenarios,
  });

const hitMessage = (c: KeywardContext) => verifyMessage(c.fixture.secret);

/** CreateKey of one key with one grant, 16 at a time: the management write path. */
const createKey = (id: string, title: string): Scenario<KeywardContext> => ({
  id,
  title,
  method: 'CreateKey',
  load: { connections: 4, streams: 4 },
  message: (c) =>
    toBinary(
      CreateKeyRequestSchema,
      create(CreateKeyRequestSchema, {
        key: {
          workspaceId: c.fixture.workspaceId,
          customerId: 'cus_bench_create',
          name: 'bench create',
          grants: [{ scope: 'balance_transfers', actions: [Action.READ] }],
        },
      }),
    ),
  answer: keyCreated,
});
const VALID = verifies(VerifyCode.VALID);
const NOT_FOUND = verifies(VerifyCode.NOT_FOUND);

// ---------------------------------------------------------------- the servers, in order

export const SERVER_GROUPS: ServerGroup[] = [
  // (a) (b) (c): the runtime's limit and two empty handlers.
  baseline('bare-http2', 'bench/servers/bare-http2.ts', [
    { id: 'bare-http2', title: 'bare node:http2 gRPC responder', message: baselineMessage },
    { id: 'bare-http2-1x1', title: 'bare node:http2, one request at a time', message: baselineMessage, load: 'one-at-a-time' },
  ]),
  baseline('grpc-js-empty', 'bench/servers/grpc-js-empty.ts', [{ id: 'grpc-js-empty', title: '@grpc/grpc-js, empty VerifyKey', message: baselineMessage }]),
  baseline('connect-node-empty', 'bench/servers/connect-empty.ts', [
    { id: 'connect-node-empty', title: 'connect-node, empty VerifyKey', message: baselineMessage },
  ]),

  // (d) Keyward as configured by default (KEYWARD_VERIFY_FAST_PATH unset).
  keyward({ name: 'keyward', label: 'fast', title: 'Keyward (default path)', env: {}, coldKeys: COLD_KEYS, reportDatabase: true }, [
    { id: 'verify-hit-grpc', title: 'Keyward VerifyKey, cache hit', message: hitMessage, answer: VALID },
    {
      id: 'verify-hit-grpc-half-peak',
      title: 'Keyward VerifyKey, cache hit, at half of peak',
      message: hitMessage,
      answer: VALID,
      pace: halfPeak,
      notes: (_, run) => [`target rate ${Math.round(halfPeak(run)!)} req/s = half of the measured peak ${Math.round(run.rps('verify-hit-grpc')!)}`],
    },
    { id: 'verify-hit-grpc-1x1', title: 'Keyward VerifyKey, cache hit, one request at a time', message: hitMessage, answer: VALID, load: 'one-at-a-time' },
    { id: 'verify-hit-connect', title: 'Keyward VerifyKey, cache hit', protocol: 'connect', message: hitMessage, answer: VALID },
    {
      id: 'verify-miss-unknown',
      title: 'Keyward VerifyKey, one unknown well-formed key again and again (membership filter: no lookup, nothing cached)',
      message: unknownKey,
      answer: NOT_FOUND,
    },
    {
      id: 'verify-miss-distinct',
      title: 'Keyward VerifyKey, distinct unknown well-formed keys (membership filter: no lookup)',
      message: unknownKey,
      eachOnce: () => Array.from({ length: UNKNOWN_KEYS }, unknownKey),
      answer: NOT_FOUND,
      notes: () => [`${UNKNOWN_KEYS} distinct keys with valid checksums, never issued, each verified once`],
    },
    {
      // The first cold key is spent on the checks; the others are each verified exactly once.
      id: 'verify-cold',
      title: 'Keyward VerifyKey, cold: valid keys not in cache (read from the database, concurrent misses in one query)',
      message: (c) => verifyMessage(c.fixture.coldSecrets[0]!),
      eachOnce: (c) => c.fixture.coldSecrets.slice(1).map(verifyMessage),
      answer: VALID,
      skip: (c) => c.fixture.coldSecrets.length <= 1,
      notes: (c) => [`${c.fixture.coldSecrets.length - 1} distinct valid keys created beforehand, each verified once`],
    },
    createKey('create-key', 'Keyward CreateKey (management write)'),
    { ...createKey('create-key-connect', 'Keyward CreateKey over Connect binary (as the TypeScript client calls it)'), protocol: 'connect' },
    {
      // The first call is spent on the checks; the others each import 1,000 keys never seen before.
      id: 'import-keys',
      title: `Keyward ImportKeys, ${IMPORT_BATCH} plaintext keys a call (management write)`,
      method: 'ImportKeys',
      load: { connections: 2, streams: 2 },
      message: (c) => importMessage(c.fixture.workspaceId),
      eachOnce: (c) => Array.from({ length: IMPORT_CALLS }, () => importMessage(c.fixture.workspaceId)),
      answer: keysImported,
      freshCheck: true,
      notes: () => [`req/s x ${IMPORT_BATCH} = keys imported a second`],
    },
  ]),

  // (e) Keys with limits: a rate limit kept in Redis (REDIS_URL, or Redis on
  // 127.0.0.1:6379), and remaining uses taken in PostgreSQL or PGlite.
  keyward(
    {
      name: 'keyward-limits',
      label: 'limits',
      title: 'Keyward (keys with limits, Redis)',
      env: { REDIS_URL: process.env.REDIS_URL || 'redis://127.0.0.1:6379' },
      coldKeys: 0,
      reportDatabase: false,
    },
    [
      {
        id: 'verify-hit-ratelimited-redis',
        title: 'Keyward VerifyKey, cache hit, a key with one rate limit in Redis (never reached)',
        message: (c) => verifyMessage(c.fixture.rateLimitedSecret),
        answer: VALID,
      },
      {
        id: 'verify-hit-remaining-uses',
        title: 'Keyward VerifyKey, cache hit, a key with remaining uses, 8 at a time',
        message: (c) => verifyMessage(c.fixture.usesSecret),
        answer: VALID,
        load: { connections: 8, streams: 1 },
      },
      {
        id: 'verify-hit-remaining-uses-hot',
        title: 'Keyward VerifyKey, cache hit, a key with remaining uses, 256 at a time',
        message: (c) => verifyMessage(c.fixture.usesSecret),
        answer: VALID,
      },
    ],
  ),

  // (f) Keyward on the stock connect-node path.
  keyward(
    {
      name: 'keyward-stock',
      label: 'stock',
      title: 'Keyward (stock path)',
      env: { KEYWARD_VERIFY_FAST_PATH: 'false', KEYWARD_UNARY_FAST_PATH: 'false' },
      coldKeys: 0,
      reportDatabase: false,
    },
    [
      { id: 'verify-hit-grpc-stock', title: 'Keyward VerifyKey, cache hit, stock path (FAST_PATH=false)', message: hitMessage, answer: VALID },
      createKey('create-key-stock', 'Keyward CreateKey, stock path (KEYWARD_UNARY_FAST_PATH=false)'),
    ],
  ),

  // (g) Keyward on every core: KEYWARD_WORKERS=2 (PostgreSQL only); CPU counted over all its processes.
  keyward(
    { name: 'keyward-2-workers', label: 'workers', title: 'Keyward (KEYWARD_WORKERS=2)', env: { KEYWARD_WORKERS: '2' }, coldKeys: 0, reportDatabase: false },
    [
      { id: 'verify-hit-grpc-2-workers', title: 'Keyward VerifyKey, cache hit, two worker processes (KEYWARD_WORKERS=2)', message: hitMessage, answer: VALID },
      createKey('create-key-2-workers', 'Keyward CreateKey, two worker processes (KEYWARD_WORKERS=2)'),
    ],
    { when: () => process.env.DATABASE_URL !== undefined },
  ),

  // (h) Keyward without metrics (KEYWARD_METRICS=false): what recording them costs a cached verification.
  keyward(
    { name: 'keyward-no-metrics', label: 'fast', title: 'Keyward (metrics off)', env: { KEYWARD_METRICS: 'false' }, coldKeys: 0, reportDatabase: false },
    [{ id: 'verify-hit-grpc-metrics-off', title: 'Keyward VerifyKey, cache hit, metrics off (KEYWARD_METRICS=false)', message: hitMessage, answer: VALID }],
  ),

  // (a) again: the same paced load against bare http2, the floor of what the
  // load generator and the runtime add to latency at that rate.
  baseline(
    'bare-http2',
    'bench/servers/bare-http2.ts',
    [
      {
        id: 'bare-http2-same-rate',
        title: 'bare node:http2 at the rate of the half-peak row',
        message: baselineMessage,
        pace: halfPeak,
        notes: () => ['the latency floor of this load generator and runtime at that rate'],
      },
    ],
    { when: (run) => halfPeak(run) !== null, failureTitle: 'bare node:http2 at the half-peak rate' },
  ),
];
