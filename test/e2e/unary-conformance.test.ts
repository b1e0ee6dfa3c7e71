// The unary fast path (src/rpc/unary-fast-path.ts) answers unary RPCs other
// than VerifyKey, over gRPC and Connect, exactly as connect-node does: status,
// headers, trailers (error details included) and messages, raw over HTTP/2 to
// a server with the fast paths and one without; harness:
// test/support/verify-conformance.ts.
import zlib from 'node:zlib';
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { beforeAll, describe, expect, it } from 'vitest';
import { grpcFrame } from '../../bench/lib.js';
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from '../../gen/grpc/health/v1/health_pb.js';
import {
  CreateKeyRequestSchema,
  CreateKeyResponseSchema,
  GetKeyRequestSchema,
  GetKeyResponseSchema,
  ListKeysRequestSchema,
  ListKeysResponseSchema,
} from '../../gen/keyward/v1/key_service_pb.js';
import {
  CONNECT_JSON,
  CONNECT_PROTO,
  counting,
  fast,
  GRPC,
  grpcStatusOf,
  MAX_REQUEST_BYTES,
  raw,
  stock,
  useConformanceServers,
  type RawRequest,
  type RawResponse,
  type Side,
} from '../support/verify-conformance.js';

useConformanceServers();

const KEYS = '/keyward.v1.KeyService';
const admin = new Map<Side['name'], string>();
/** An SDK key with every scope, restricted to the other workspace. */
const otherAdmin = new Map<Side['name'], string>();

beforeAll(async () => {
  for (const side of [fast, stock]) {
    admin.set(side.name, await side.ts.sdkKey(['*']));
    otherAdmin.set(side.name, await side.ts.sdkKey(['*'], [side.otherWs]));
  }
});

const asAdmin = (s: Side, protocol: Record<string, string> = GRPC) => ({ ...protocol, authorization: `Bearer ${admin.get(s.name)}` });
const idOf = (s: Side, name: string) => [...s.names].find(([, n]) => n === name)![0];
const frame = <D extends DescMessage>(schema: D, init: MessageInitShape<D>) => grpcFrame(toBinary(schema, create(schema, init)));
const getKey = (s: Side, name = '<valid-id>') => frame(GetKeyRequestSchema, { id: idOf(s, name) });
const getKeyMessage = (s: Side, name = '<valid-id>') => toBinary(GetKeyRequestSchema, create(GetKeyRequestSchema, { id: idOf(s, name) }));

interface GrpcCase {
  name: string;
  request: (s: Side) => RawRequest;
  output: DescMessage;
  fastPath: 'serves' | 'hands over' | 'not reached';
  check?: (r: RawResponse) => void;
}

/** Times and what is shown of secrets differ between the two servers' fixtures; everything else must not. */
const withoutTimes = (r: RawResponse) =>
  JSON.parse(
    JSON.stringify(r)
      .replace(/"\d{4}-\d\d-\d\dT[\d:.]+Z"/g, '"<time>"')
      .replace(/"(maskedKey|start)":"[^"]*"/g, '"$1":"<shown>"'),
  ) as RawResponse;

async function expectConforms(c: GrpcCase): Promise<void> {
  const { result: onFast, served, handedOver } = await counting(() => raw(fast, c.request(fast), c.output), 'unary');
  const onStock = await raw(stock, c.request(stock), c.output);
  expect(withoutTimes(onFast)).toEqual(withoutTimes(onStock));
  const expected = { serves: [1, 0], 'hands over': [0, 1], 'not reached': [0, 0] }[c.fastPath];
  expect([served, handedOver]).toEqual(expected);
  c.check?.(onStock);
}

const CASES: GrpcCase[] = [
  {
    name: 'GetKey, with a request id',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'x-request-id': 'grpc-1' }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.headers).toEqual({ 'content-type': 'application/grpc+proto', 'x-request-id': 'grpc-1', date: '<now>' });
      expect(r.trailers).toEqual({ 'grpc-status': '0' });
      expect(r.body).toMatchObject([{ flags: 0, message: { key: { id: '<valid-id>', name: 'valid' } } }]);
    },
  },
  {
    name: 'GetKey, a request id is generated',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s), body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.headers['x-request-id']).toBe('<generated>'),
  },
  {
    name: 'GetKey of another workspace is NOT_FOUND for a key restricted to one',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...GRPC, authorization: `Bearer ${otherAdmin.get(s.name)}` }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.NotFound)),
  },
  {
    name: 'GetKey, unknown id',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s), body: frame(GetKeyRequestSchema, { id: '00000000-0000-7000-8000-000000000000' }) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.trailers).toMatchObject({ 'grpc-status': String(Code.NotFound), 'x-request-id': '<generated>' });
      expect(r.body).toBe('');
    },
  },
  {
    name: 'GetKey, unauthenticated',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: GRPC, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.Unauthenticated)),
  },
  {
    name: 'GetKey, an SDK key without the scope',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...GRPC, authorization: `Bearer ${s.sdk.gateway}` }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.PermissionDenied)),
  },
  {
    name: 'CreateKey, invalid argument with its field in grpc-status-details-bin',
    request: (s) => ({
      path: `${KEYS}/CreateKey`,
      headers: asAdmin(s),
      body: frame(CreateKeyRequestSchema, { key: { workspaceId: s.ws, name: 'n'.repeat(500) } }),
    }),
    output: CreateKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(grpcStatusOf(r)).toBe(String(Code.InvalidArgument));
      expect(r.trailers['grpc-status-details-bin']).toBeDefined();
    },
  },
  {
    name: 'CreateKey, a NUL in a field',
    request: (s) => ({ path: `${KEYS}/CreateKey`, headers: asAdmin(s), body: frame(CreateKeyRequestSchema, { key: { workspaceId: s.ws, name: 'a\u0000b' } }) }),
    output: CreateKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(decodeURIComponent(String(r.trailers['grpc-message']))).toContain('key.name'),
  },
  {
    name: 'GetKey, gzip accepted, big answer (compressed)',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'grpc-accept-encoding': 'gzip' }, body: getKey(s, '<big-id>') }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.headers['grpc-encoding']).toBe('gzip');
      expect(r.body).toMatchObject([{ flags: 1, message: { key: { name: 'big' } } }]);
    },
  },
  {
    name: 'GetKey, gzip accepted, small answer (not compressed, encoding announced)',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'grpc-accept-encoding': 'identity, gzip' }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject([{ flags: 0 }]),
  },
  {
    name: 'GetKey, gzip-compressed request',
    request: (s) => {
      const message = getKey(s).subarray(5);
      return { path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'grpc-encoding': 'gzip' }, body: grpcFrame(zlib.gzipSync(message), 1) };
    },
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe('0'),
  },
  {
    name: 'ListKeys, grpc-timeout of 5 s',
    request: (s) => ({
      path: `${KEYS}/ListKeys`,
      headers: { ...asAdmin(s), 'grpc-timeout': '5S' },
      body: frame(ListKeysRequestSchema, { workspaceId: s.otherWs }),
    }),
    output: ListKeysResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject([{ message: { keys: [{ id: '<elsewhere-id>' }] } }]),
  },
  {
    name: 'Health/Check needs no credential',
    request: () => ({ path: '/grpc.health.v1.Health/Check', headers: GRPC, body: frame(HealthCheckRequestSchema, {}) }),
    output: HealthCheckResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject([{ message: { status: 'SERVING' } }]),
  },
  {
    name: 'malformed grpc-timeout',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'grpc-timeout': 'soon' }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.InvalidArgument)),
  },
  {
    name: 'unsupported grpc-encoding',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'grpc-encoding': 'snappy' }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.Unimplemented)),
  },
  {
    name: 'compressed flag without grpc-encoding',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s), body: grpcFrame(zlib.gzipSync(getKey(s).subarray(5)), 1) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'corrupt gzip',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'grpc-encoding': 'gzip' }, body: grpcFrame(Buffer.from('not gzip'), 1) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'invalid protobuf',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s), body: grpcFrame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.InvalidArgument)),
  },
  {
    name: 'two messages',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s), body: Buffer.concat([getKey(s), getKey(s)]) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'empty body',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'oversized message',
    request: (s) => ({
      path: `${KEYS}/CreateKey`,
      headers: asAdmin(s),
      body: frame(CreateKeyRequestSchema, { key: { workspaceId: s.ws, description: 'd'.repeat(MAX_REQUEST_BYTES + 10) } }),
    }),
    output: CreateKeyResponseSchema,
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.ResourceExhausted)),
  },
  {
    name: 'gRPC with JSON (application/grpc+json) is left to connect-node',
    request: (s) => ({
      path: `${KEYS}/GetKey`,
      headers: { ...asAdmin(s), 'content-type': 'application/grpc+json' },
      body: grpcFrame(Buffer.from(JSON.stringify({ id: idOf(s, '<valid-id>') }))),
    }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'gRPC-Web is left to connect-node',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'content-type': 'application/grpc-web+proto' }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'an unknown method never reaches it',
    request: (s) => ({ path: `${KEYS}/NoSuchMethod`, headers: asAdmin(s), body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'not reached',
  },
  {
    name: 'Connect, GetKey, with a request id',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'x-request-id': 'connect-1' }, body: getKeyMessage(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(200);
      expect(r.headers).toEqual({ 'content-type': 'application/proto', 'x-request-id': 'connect-1', 'content-length': '<body length>', date: '<now>' });
      expect(r.body).toMatchObject({ key: { id: '<valid-id>', name: 'valid' } });
    },
  },
  {
    name: 'Connect JSON, GetKey',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s, CONNECT_JSON), body: Buffer.from(JSON.stringify({ id: idOf(s, '<valid-id>') })) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject({ key: { id: '<valid-id>', name: 'valid' } }),
  },
  {
    name: 'Connect, GetKey, unknown id: 404 with a JSON error',
    request: (s) => ({
      path: `${KEYS}/GetKey`,
      headers: asAdmin(s, CONNECT_PROTO),
      body: toBinary(GetKeyRequestSchema, create(GetKeyRequestSchema, { id: '00000000-0000-7000-8000-000000000000' })),
    }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(404);
      expect(r.headers).toMatchObject({ 'content-type': 'application/json', 'x-request-id': '<generated>' });
      expect(r.body).toMatchObject({ code: 'not_found' });
    },
  },
  {
    name: 'Connect, GetKey, unauthenticated',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: CONNECT_PROTO, body: getKeyMessage(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.status).toBe(401),
  },
  {
    name: 'Connect JSON, CreateKey, invalid argument with its field in the details',
    request: (s) => ({
      path: `${KEYS}/CreateKey`,
      headers: asAdmin(s, CONNECT_JSON),
      body: Buffer.from(JSON.stringify({ key: { workspaceId: s.ws, name: 'n'.repeat(500) } })),
    }),
    output: CreateKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ code: 'invalid_argument', details: [{ type: 'google.rpc.BadRequest' }] });
    },
  },
  {
    name: 'Connect, empty body: the empty request',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s, CONNECT_PROTO) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.status).toBe(400),
  },
  {
    name: 'Connect, gzip accepted, big answer (compressed)',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'accept-encoding': 'gzip' }, body: getKeyMessage(s, '<big-id>') }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => {
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(r.body).toMatchObject({ key: { name: 'big' } });
    },
  },
  {
    name: 'Connect, gzip accepted, small answer (not compressed, no encoding named)',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'accept-encoding': 'gzip' }, body: getKeyMessage(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.headers['content-encoding']).toBeUndefined(),
  },
  {
    name: 'Connect, gzip-compressed request',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'content-encoding': 'gzip' }, body: zlib.gzipSync(getKeyMessage(s)) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
    check: (r) => expect(r.status).toBe(200),
  },
  {
    name: 'Connect, corrupt gzip',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'content-encoding': 'gzip' }, body: Buffer.from('not gzip') }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'Connect JSON, an unknown field is left to connect-node (INVALID_ARGUMENT)',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: asAdmin(s, CONNECT_JSON), body: Buffer.from(JSON.stringify({ id: idOf(s, '<valid-id>'), nope: 1 })) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(400),
  },
  {
    name: 'Connect, malformed connect-timeout-ms',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'connect-timeout-ms': 'soon' }, body: getKeyMessage(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'Connect, connect-timeout-ms of 5 s',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), 'connect-timeout-ms': '5000' }, body: getKeyMessage(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'serves',
  },
  {
    name: 'Connect, oversized body',
    request: (s) => ({
      path: `${KEYS}/CreateKey`,
      headers: asAdmin(s, CONNECT_PROTO),
      body: toBinary(CreateKeyRequestSchema, create(CreateKeyRequestSchema, { key: { workspaceId: s.ws, description: 'd'.repeat(MAX_REQUEST_BYTES + 10) } })),
    }),
    output: CreateKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: "a browser's call (Origin) is left to connect-node and its CORS answer",
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s, CONNECT_PROTO), origin: 'https://app.example' }, body: getKeyMessage(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
  {
    name: 'Connect streaming content type on a unary method',
    request: (s) => ({ path: `${KEYS}/GetKey`, headers: { ...asAdmin(s), 'content-type': 'application/connect+proto' }, body: getKey(s) }),
    output: GetKeyResponseSchema,
    fastPath: 'hands over',
  },
];

describe('unary calls, fast path and connect-node', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    await expectConforms(c);
  });

  it('CreateKey: the same headers and trailers, and a key made as asked', async () => {
    const request = (s: Side) => ({
      path: `${KEYS}/CreateKey`,
      headers: asAdmin(s),
      body: frame(CreateKeyRequestSchema, { key: { workspaceId: s.ws, customerId: 'cus_grpc', name: 'made over gRPC' } }),
    });
    const { result: onFast, served } = await counting(() => raw(fast, request(fast), CreateKeyResponseSchema), 'unary');
    const onStock = await raw(stock, request(stock), CreateKeyResponseSchema);
    expect(served).toBe(1);
    expect(onFast.headers).toEqual(onStock.headers);
    expect(onFast.trailers).toEqual(onStock.trailers);
    for (const r of [onFast, onStock]) {
      expect(r.body).toMatchObject([{ flags: 0, message: { key: { customerId: 'cus_grpc', name: 'made over gRPC', workspaceId: '<ws>' } } }]);
    }
  });
});
