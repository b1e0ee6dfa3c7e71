// The harness of the VerifyKey fast-path conformance tests
// (test/e2e/verify-conformance-*.test.ts; the fast path is src/rpc/verify-fast-path.ts).
//
// Two servers, one with the fast path (KEYWARD_VERIFY_FAST_PATH=true) and one
// without (false: every call goes through connect-node), each with its own
// database and fixtures. Every case is sent to both, and the observable
// results (code, message, response fields, HTTP status, headers, trailers)
// must be identical once each server's ids are replaced by names. The fast
// server's counters also show which calls the fast path answered itself and
// which it handed to connect-node, so a case cannot pass by never reaching it.
import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import { create, fromBinary, toBinary, toJson, type DescMessage, type JsonValue } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, expect } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyKeyRequestSchema, VerifyKeyResponseSchema } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { typo, wellFormedKey } from './fixtures.js';
import { client, startTestServer, type TestServer } from './server.js';

export const VERIFY_PATH = '/keyward.v1.KeyService/VerifyKey';
export const MAX_REQUEST_BYTES = 65536;
const SERVER_ENV = { KEYWARD_MAX_REQUEST_BYTES: String(MAX_REQUEST_BYTES) };

// Both servers' expiring keys expire at the same whole second (set once both
// have started), so that their answers carry the same expire_time.
let EXPIRE_AT: Date;
const FAR_FUTURE = new Date('2099-01-01T00:00:00Z');
const UNKNOWN_SDK_KEY = `kws_${randomUUID()}_${'A'.repeat(43)}`;
// Well-formed (its checksum is right) but never issued.
export const UNKNOWN_API_KEY = wellFormedKey('cf', 'Unknown'.padEnd(43, '0'));
export const GARBAGE_KEY = 'not-an-api-key';
export const OVERSIZED_KEY = 'x'.repeat(MAX_REQUEST_BYTES + 1000);

type KeyName = 'valid' | 'big' | 'disabled' | 'expired' | 'revoked' | 'elsewhere' | 'rateLimited' | 'usedUp' | 'limited';
type SdkName = 'gateway' | 'noVerify' | 'otherWorkspaceOnly';

export interface Side {
  name: 'fast' | 'stock';
  ts: TestServer;
  ws: string;
  otherWs: string;
  sdk: Record<SdkName, string>;
  keys: Record<KeyName, string>;
  /** This server's ids and secrets → names, for comparing answers. */
  names: Map<string, string>;
}

/** The fast-path server and the stock one, set up by useConformanceServers() before the file's tests. */
export let fast: Side;
export let stock: Side;

function startServer(fastPath: boolean): Promise<TestServer> {
  return startTestServer({ ...SERVER_ENV, KEYWARD_VERIFY_FAST_PATH: String(fastPath), KEYWARD_UNARY_FAST_PATH: String(fastPath) });
}

async function setUp(name: Side['name'], ts: TestServer): Promise<Side> {
  const workspaces = client(WorkspaceService, ts);
  const scopes = client(ScopeService, ts);
  const keys = client(KeyService, ts);
  const ws = (await workspaces.createWorkspace({ workspace: { name: 'conformance', keyPrefix: 'cf' } })).workspace!.id;
  const otherWs = (await workspaces.createWorkspace({ workspace: { name: 'other', keyPrefix: 'cf' } })).workspace!.id;
  for (const scope of ['orders', 'billing']) await scopes.createScope({ scope: { workspaceId: ws, name: scope } });
  const grants = [
    { scope: 'orders', actions: [Action.READ, Action.CREATE] },
    { scope: 'billing', actions: [Action.READ] },
  ];
  const issue = async (key: Parameters<typeof keys.createKey>[0]['key']) => {
    const res = await keys.createKey({ key: { workspaceId: ws, customerId: 'cus_1', grants, ...key } });
    return { id: res.key!.id, secret: res.secret };
  };
  const valid = await issue({
    name: 'valid',
    metadata: { tier: 'gold', region: 'eu' },
    expireTime: timestampFromDate(FAR_FUTURE),
  });
  // Its answer is over connect-es's compressMinBytes (1 KiB), so that response compression shows.
  const big = await issue({ name: 'big', metadata: { a: 'a'.repeat(700), b: 'b'.repeat(700) } });
  const disabled = await issue({ name: 'disabled', enabled: false });
  const expired = await issue({ name: 'expired', expireTime: timestampFromDate(EXPIRE_AT) });
  const revoked = await issue({ name: 'revoked' });
  await keys.revokeKey({ id: revoked.id });
  const elsewhere = await keys.createKey({ key: { workspaceId: otherWs, customerId: 'cus_2', name: 'elsewhere' } });
  // Limits: windows of a day, aligned to the epoch, so that both servers report the same reset time.
  const daily = (limit: bigint) => [{ name: 'daily', limit, duration: durationFromMs(24 * 3600 * 1000) }];
  const rateLimited = await issue({ name: 'rate limited', rateLimits: daily(1n) });
  await keys.verifyKey({ key: rateLimited.secret });
  const usedUp = await issue({ name: 'used up', remainingUses: 0n });
  const limited = await issue({ name: 'limited', rateLimits: daily(10n), remainingUses: 5n });
  const sdk = {
    gateway: await ts.sdkKey(['api_keys:verify']),
    noVerify: await ts.sdkKey(['api_keys:read']),
    otherWorkspaceOnly: await ts.sdkKey(['api_keys:verify'], [otherWs]),
  };
  const names = new Map<string, string>([
    [ws, '<ws>'],
    [otherWs, '<other-ws>'],
    [valid.id, '<valid-id>'],
    [big.id, '<big-id>'],
    [disabled.id, '<disabled-id>'],
    [expired.id, '<expired-id>'],
    [revoked.id, '<revoked-id>'],
    [elsewhere.key!.id, '<elsewhere-id>'],
    [rateLimited.id, '<rate-limited-id>'],
    [usedUp.id, '<used-up-id>'],
    [limited.id, '<limited-id>'],
  ]);
  return {
    name,
    ts,
    ws,
    otherWs,
    sdk,
    keys: {
      valid: valid.secret,
      big: big.secret,
      disabled: disabled.secret,
      expired: expired.secret,
      revoked: revoked.secret,
      elsewhere: elsewhere.secret,
      rateLimited: rateLimited.secret,
      usedUp: usedUp.secret,
      limited: limited.secret,
    },
    names,
  };
}

/** Replaces a server's ids with names throughout a JSON-able value. */
export function normalize<T>(side: Side, value: T): T {
  let s = JSON.stringify(value);
  for (const [id, name] of side.names) s = s.split(id).join(name);
  return JSON.parse(s) as T;
}

// ---------------------------------------------------------------------------
// Cases: what a gateway may send, as SDK key + request.

export type Auth = SdkName | 'none' | 'noBearer' | 'basic' | 'unknown' | 'lowercaseScheme';

export interface Case {
  name: string;
  auth?: Auth;
  key?: KeyName | { literal: string } | 'typo';
  perms?: string[];
  ws?: 'own' | 'other' | { literal: string };
  cost?: bigint;
  /** Answered by connect-node even on the fast server (HTTP/2 clients). */
  handedOver?: boolean;
}

export function requestOf(side: Side, c: Case) {
  const key = c.key ?? 'valid';
  const ws = c.ws ?? { literal: '' };
  return {
    key: typeof key === 'object' ? key.literal : key === 'typo' ? typo(side.keys.valid, 4) : side.keys[key],
    requiredPermissions: c.perms ?? [],
    workspaceId: typeof ws === 'object' ? ws.literal : ws === 'own' ? side.ws : side.otherWs,
    cost: c.cost,
  };
}

export function authorizationOf(side: Side, auth: Auth = 'gateway'): string | undefined {
  switch (auth) {
    case 'none':
      return undefined;
    case 'noBearer':
      return 'Bearer';
    case 'basic':
      return 'Basic dXNlcjpwYXNz';
    case 'unknown':
      return `Bearer ${UNKNOWN_SDK_KEY}`;
    case 'lowercaseScheme':
      return `bearer ${side.sdk.gateway}`;
    default:
      return `Bearer ${side.sdk[auth]}`;
  }
}

/** Runs `fn` against the fast server and reports what its fast path did meanwhile. */
export async function counting<T>(fn: () => Promise<T>, path: 'verify' | 'unary' = 'verify'): Promise<{ result: T; served: number; handedOver: number }> {
  const stats = path === 'verify' ? fast.ts.internals.fastPathStats : fast.ts.internals.unaryFastPathStats;
  const before = { ...stats };
  const result = await fn();
  return { result, served: stats.served - before.served, handedOver: stats.handedOver - before.handedOver };
}

/** Starts both servers (each with its fixtures) before the file's tests, and stops them after. */
export function useConformanceServers(): void {
  beforeAll(async () => {
    const [fastServer, stockServer] = await Promise.all([startServer(true), startServer(false)]);
    EXPIRE_AT = new Date(Math.ceil((Date.now() + 8000) / 1000) * 1000);
    [fast, stock] = await Promise.all([setUp('fast', fastServer), setUp('stock', stockServer)]);
    // Until the expiring keys have expired.
    await new Promise((r) => setTimeout(r, Math.max(0, EXPIRE_AT.getTime() - Date.now() + 50)));
  });

  afterAll(async () => {
    await Promise.all([fast?.ts.close(), stock?.ts.close()]);
  });

  afterAll(() => {
    for (const s of sessions.values()) s.close();
  });
}

// ---------------------------------------------------------------------------
// Raw HTTP/2: status, headers, trailers and body bytes.

export interface RawRequest {
  method?: string;
  path?: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

export interface RawResponse {
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
  body: unknown;
}

const sessions = new Map<Side['name'], http2.ClientHttp2Session>();

export function sessionOf(side: Side): http2.ClientHttp2Session {
  let s = sessions.get(side.name);
  if (!s || s.closed || s.destroyed) {
    s = http2.connect(side.ts.baseUrl);
    s.on('error', () => {});
    sessions.set(side.name, s);
  }
  return s;
}

function rawCall(
  side: Side,
  r: RawRequest,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const stream = sessionOf(side).request({ ':method': r.method ?? 'POST', ':path': r.path ?? VERIFY_PATH, ...r.headers });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', reject);
    // The answer is complete at the end of the response, even when the server
    // stopped reading a body it rejected (both paths then close such a stream
    // with RST_STREAM(NO_ERROR): test/e2e/verify-conformance-early-answer.test.ts).
    stream.on('end', () => {
      resolve({ status: Number(headers[':status'] ?? 0), headers, trailers, body: Buffer.concat(chunks) });
      stream.close();
    });
    stream.end(r.body);
  });
}

const HEADERS_COMPARED = [
  'content-type',
  'content-encoding',
  'grpc-encoding',
  'grpc-accept-encoding',
  'accept-encoding',
  'grpc-status',
  'grpc-message',
  'grpc-status-details-bin',
  'x-request-id',
  'content-length',
  'date',
];

/** A date header as Node writes it (toUTCString of the current second), or what it is instead. */
function dateOf(v: string | string[] | undefined): string {
  const ms = Date.parse(String(v));
  const ok = typeof v === 'string' && new Date(ms).toUTCString() === v && Math.abs(Date.now() - ms) < 5_000;
  return ok ? '<now>' : `not the current HTTP date: ${String(v)}`;
}

function pickHeaders(h: http2.IncomingHttpHeaders, body: Buffer | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of HEADERS_COMPARED) {
    const v = h[name];
    if (v === undefined) continue;
    if (name === 'x-request-id') out[name] = /^[0-9a-f-]{36}$/.test(String(v)) ? '<generated>' : v;
    else if (name === 'content-length') out[name] = body && Number(v) === body.length ? '<body length>' : v;
    else if (name === 'date') out[name] = dateOf(v);
    else out[name] = v;
  }
  return out;
}

function gunzipIf(compressed: boolean, data: Buffer): Buffer {
  return compressed ? zlib.gunzipSync(data) : data;
}

function decodeMessage(data: Buffer, json: boolean, output: DescMessage): unknown {
  if (json) return JSON.parse(data.toString('utf8')) as JsonValue;
  return toJson(output, fromBinary(output, data));
}

/** The body, decoded: gRPC envelopes (messages and gRPC-Web trailers), a Connect message or error. */
function decodeBody(contentType: string, headers: http2.IncomingHttpHeaders, body: Buffer, output: DescMessage): unknown {
  if (contentType.startsWith('application/grpc')) {
    const frames: unknown[] = [];
    let at = 0;
    while (at + 5 <= body.length) {
      const flags = body[at]!;
      const len = body.readUInt32BE(at + 1);
      const data = gunzipIf((flags & 1) === 1, body.subarray(at + 5, at + 5 + len));
      if (flags & 0x80) {
        frames.push({ flags, trailer: data.toString('utf8').replace(/x-request-id: [0-9a-f-]{36}/, 'x-request-id: <generated>') });
      } else {
        frames.push({ flags, message: decodeMessage(data, contentType.endsWith('json'), output) });
      }
      at += 5 + len;
    }
    if (at !== body.length) frames.push({ trailingBytes: body.length - at });
    return frames;
  }
  const data = gunzipIf(headers['content-encoding'] === 'gzip', body);
  if (contentType === 'application/proto') return decodeMessage(data, false, output);
  if (contentType === 'application/json') return JSON.parse(data.toString('utf8')) as JsonValue;
  return data.toString('utf8');
}

/** The answer to `r`, normalized; messages decoded as `output` (VerifyKey's response by default). */
export async function raw(side: Side, r: RawRequest, output: DescMessage = VerifyKeyResponseSchema): Promise<RawResponse> {
  const res = await rawCall(side, r);
  const contentType = String(res.headers['content-type'] ?? '');
  return normalize(side, {
    status: res.status,
    headers: pickHeaders(res.headers, res.body),
    trailers: pickHeaders(res.trailers, undefined),
    body: res.body.length === 0 ? '' : decodeBody(contentType, res.headers, res.body, output),
  });
}

export const encode = (side: Side, c: Case = { name: '' }) => toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, requestOf(side, c)));
export const jsonOf = (side: Side, c: Case = { name: '' }) =>
  Buffer.from(JSON.stringify(toJson(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, requestOf(side, c)))));
export const auth = (side: Side, a: Auth = 'gateway'): Record<string, string> => {
  const v = authorizationOf(side, a);
  return v === undefined ? {} : { authorization: v };
};
export const GRPC = { 'content-type': 'application/grpc', te: 'trailers' };
export const CONNECT_PROTO = { 'content-type': 'application/proto', 'connect-protocol-version': '1' };
export const CONNECT_JSON = { 'content-type': 'application/json', 'connect-protocol-version': '1' };
// Field 99, varint 1: unknown to VerifyKeyRequest.
export const UNKNOWN_FIELD = Buffer.from([0x98, 0x06, 0x01]);

export interface RawCase {
  name: string;
  request: (side: Side) => RawRequest;
  /** What the fast server's fast path does with it. */
  fastPath: 'serves' | 'hands over' | 'not reached';
  /** Which fast path (VerifyKey's by default). */
  counted?: 'verify' | 'unary';
  /** The response message (VerifyKey's by default). */
  output?: DescMessage;
  /** Extra assertions on the (identical) answer. */
  check?: (r: RawResponse) => void;
}

export const grpcStatusOf = (r: RawResponse) => (r.trailers['grpc-status'] ?? r.headers['grpc-status']) as string | undefined;

/** Sends the case to both servers: the same answer, the fast path did what the case says, and the case's own checks hold. */
export async function expectRawCaseConforms(c: RawCase): Promise<void> {
  const { result: onFast, served, handedOver } = await counting(() => raw(fast, c.request(fast), c.output), c.counted);
  const onStock = await raw(stock, c.request(stock), c.output);
  expect(onFast).toEqual(onStock);
  const expected = { serves: [1, 0], 'hands over': [0, 1], 'not reached': [0, 0] }[c.fastPath];
  expect([served, handedOver]).toEqual(expected);
  c.check?.(onStock);
}
