// VerifyKey fast-path conformance through every client (connect-node's transports over HTTP/2 and 1.1, @grpc/grpc-js); harness: test/support/verify-conformance.ts.
import path from 'node:path';
import { toJson } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type Client, type Transport } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyKeyResponseSchema } from '../../gen/keyward/v1/key_service_pb.js';
import {
  authorizationOf,
  counting,
  fast,
  GARBAGE_KEY,
  normalize,
  OVERSIZED_KEY,
  requestOf,
  stock,
  UNKNOWN_API_KEY,
  useConformanceServers,
  type Case,
  type Side,
} from '../support/verify-conformance.js';

useConformanceServers();

/** What a gateway may send, as SDK key + request: each goes through every client to both servers. */
const CASES: Case[] = [
  { name: 'valid', key: 'valid', perms: ['orders:read'] },
  { name: 'valid with several permissions in its workspace', key: 'valid', perms: ['orders:read', 'billing:read', 'orders:create'], ws: 'own' },
  { name: 'valid, big answer', key: 'big' },
  { name: 'NOT_FOUND: garbage', key: { literal: GARBAGE_KEY } },
  { name: 'NOT_FOUND: typo', key: 'typo' },
  { name: 'NOT_FOUND: well-formed, never issued', key: { literal: UNKNOWN_API_KEY } },
  { name: "NOT_FOUND: another workspace's key", key: 'elsewhere', ws: 'own' },
  { name: 'NOT_FOUND: asked for another workspace', key: 'valid', ws: 'other' },
  { name: 'DISABLED', key: 'disabled' },
  { name: 'EXPIRED', key: 'expired' },
  { name: 'REVOKED', key: 'revoked' },
  { name: 'INSUFFICIENT_PERMISSIONS', key: 'valid', perms: ['orders:read', 'orders:delete'] },
  { name: 'RATE_LIMITED', key: 'rateLimited', perms: ['orders:read'] },
  { name: 'USAGE_EXCEEDED', key: 'usedUp', cost: 2n },
  { name: 'valid with limits, cost 0 (checks, takes nothing)', key: 'limited', cost: 0n },
  { name: 'INSUFFICIENT_PERMISSIONS before limits', key: 'usedUp', perms: ['orders:delete'] },
  { name: 'INVALID_ARGUMENT: negative cost', key: 'limited', cost: -1n },
  { name: 'UNAUTHENTICATED: no authorization header', auth: 'none' },
  { name: 'UNAUTHENTICATED: no bearer token', auth: 'noBearer' },
  { name: 'UNAUTHENTICATED: basic auth', auth: 'basic' },
  { name: 'UNAUTHENTICATED: unknown SDK key', auth: 'unknown' },
  { name: 'lower-case bearer scheme', auth: 'lowercaseScheme' },
  { name: 'PERMISSION_DENIED: SDK key without api_keys:verify', auth: 'noVerify' },
  { name: 'PERMISSION_DENIED: SDK key restricted to another workspace', auth: 'otherWorkspaceOnly', ws: 'own' },
  { name: 'NOT_FOUND: restricted SDK key, key of a workspace it cannot see', auth: 'otherWorkspaceOnly' },
  { name: 'INVALID_ARGUMENT: empty key', key: { literal: '' } },
  { name: 'INVALID_ARGUMENT: bad required permission', perms: ['orders:Fly'] },
  { name: 'INVALID_ARGUMENT: bad workspace id', ws: { literal: 'not-an-id' } },
  { name: 'RESOURCE_EXHAUSTED: oversized request', key: { literal: OVERSIZED_KEY }, handedOver: true },
];

// ---------------------------------------------------------------------------
// Clients.

type ClientName =
  | 'grpc'
  | 'grpc gzip'
  | 'grpc-web h2'
  | 'connect binary h2'
  | 'connect binary gzip h2'
  | 'connect json h2'
  | 'connect json h1.1'
  | 'connect binary h1.1'
  | 'grpc-web h1.1'
  | '@grpc/grpc-js';

/** Whether the client's calls can reach the fast path (HTTP/2). */
const OVER_HTTP2: Record<ClientName, boolean> = {
  grpc: true,
  'grpc gzip': true,
  'grpc-web h2': true,
  'connect binary h2': true,
  'connect binary gzip h2': true,
  'connect json h2': true,
  'connect json h1.1': false,
  'connect binary h1.1': false,
  'grpc-web h1.1': false,
  '@grpc/grpc-js': true,
};
const CLIENTS = Object.keys(OVER_HTTP2) as ClientName[];

function connectTransport(name: Exclude<ClientName, '@grpc/grpc-js'>, baseUrl: string): Transport {
  // Compress every request of the gzip variants, however small.
  const gzip = { sendCompression: compressionGzip, compressMinBytes: 1 };
  switch (name) {
    case 'grpc':
      return createGrpcTransport({ baseUrl });
    case 'grpc gzip':
      return createGrpcTransport({ baseUrl, ...gzip });
    case 'grpc-web h2':
      return createGrpcWebTransport({ baseUrl, httpVersion: '2' });
    case 'connect binary h2':
      return createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true });
    case 'connect binary gzip h2':
      return createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true, ...gzip });
    case 'connect json h2':
      return createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: false });
    case 'connect json h1.1':
      return createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false });
    case 'connect binary h1.1':
      return createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: true });
    case 'grpc-web h1.1':
      return createGrpcWebTransport({ baseUrl, httpVersion: '1.1' });
  }
}

const grpcJsDefinition = protoLoader.loadSync('keyward/v1/key_service.proto', {
  includeDirs: [path.resolve(import.meta.dirname, '../../proto')],
  longs: String,
  enums: String,
  defaults: true,
});
type GrpcJsCallback = (err: grpc.ServiceError | null, res: Record<string, unknown>) => void;
type GrpcJsKeyService = grpc.Client & {
  verifyKey(req: object, md: grpc.Metadata, cb: GrpcJsCallback): grpc.ClientUnaryCall;
};
const GrpcJsKeyService = (
  grpc.loadPackageDefinition(grpcJsDefinition) as unknown as {
    keyward: { v1: { KeyService: new (address: string, creds: grpc.ChannelCredentials) => GrpcJsKeyService } };
  }
).keyward.v1.KeyService;

const connectClients = new Map<string, Client<typeof KeyService>>();
const grpcJsClients = new Map<Side['name'], GrpcJsKeyService>();

afterAll(() => {
  for (const stub of grpcJsClients.values()) stub.close();
});

/** What a client saw: the answer or the error, and whether a request id came back. */
type Outcome = { answer: unknown; requestId: boolean } | { code: string; message: string; requestId: boolean };

async function callWith(name: ClientName, side: Side, c: Case): Promise<Outcome> {
  const req = requestOf(side, c);
  const authorization = authorizationOf(side, c.auth);
  if (name === '@grpc/grpc-js') {
    let stub = grpcJsClients.get(side.name);
    if (!stub) {
      stub = new GrpcJsKeyService(`127.0.0.1:${side.ts.server.port}`, grpc.credentials.createInsecure());
      grpcJsClients.set(side.name, stub);
    }
    const md = new grpc.Metadata();
    if (authorization !== undefined) md.set('authorization', authorization);
    return new Promise<Outcome>((resolve) => {
      let requestId = false;
      const call = stub.verifyKey({ ...req, cost: req.cost?.toString() }, md, (err, res) => {
        if (err) {
          resolve({ code: Code[err.code]!, message: err.details, requestId: err.metadata.get('x-request-id').length === 1 });
        } else {
          resolve({ answer: normalize(side, res), requestId });
        }
      });
      call.on('metadata', (m: grpc.Metadata) => {
        requestId = m.get('x-request-id').length === 1;
      });
    });
  }
  const id = `${side.name} ${name}`;
  let kc = connectClients.get(id);
  if (!kc) {
    kc = createClient(KeyService, connectTransport(name, side.ts.baseUrl));
    connectClients.set(id, kc);
  }
  let requestId = false;
  try {
    const res = await kc.verifyKey(req, {
      headers: authorization === undefined ? {} : { authorization },
      onHeader: (h) => {
        requestId = h.has('x-request-id');
      },
    });
    return { answer: normalize(side, toJson(VerifyKeyResponseSchema, res)), requestId };
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: Code[err.code]!, message: err.rawMessage, requestId: err.metadata.has('x-request-id') };
  }
}

it('the two servers differ only in the fast path', () => {
  expect(fast.ts.internals.fastPathStats).toEqual({ served: 0, handedOver: 0 });
  expect(fast.names.size).toBe(stock.names.size);
});

describe.each(CLIENTS)('%s', (clientName) => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const { result: onFast, served, handedOver } = await counting(() => callWith(clientName, fast, c));
    const onStock = await callWith(clientName, stock, c);
    expect(onFast).toEqual(onStock);
    // Each call reached the fast path when it could, and was answered by it unless it should not be.
    const expected = !OVER_HTTP2[clientName] ? [0, 0] : c.handedOver ? [0, 1] : [1, 0];
    expect([served, handedOver]).toEqual(expected);
  });
});

it('the answers are what the design says', async () => {
  const answers = Object.fromEntries(await Promise.all(CASES.map(async (c) => [c.name, await callWith('grpc', stock, c)] as const))) as Record<string, Outcome>;
  const code = (name: string) => {
    const o = answers[name]!;
    return 'code' in o ? o.code : (o.answer as { code: string }).code;
  };
  expect(answers.valid).toMatchObject({ answer: { valid: true, code: 'VERIFY_CODE_VALID', keyId: '<valid-id>', workspaceId: '<ws>' } });
  expect(code('NOT_FOUND: garbage')).toBe('VERIFY_CODE_NOT_FOUND');
  expect(code('NOT_FOUND: well-formed, never issued')).toBe('VERIFY_CODE_NOT_FOUND');
  expect(code('NOT_FOUND: typo')).toBe('VERIFY_CODE_NOT_FOUND');
  expect(code('DISABLED')).toBe('VERIFY_CODE_DISABLED');
  expect(code('EXPIRED')).toBe('VERIFY_CODE_EXPIRED');
  expect(code('REVOKED')).toBe('VERIFY_CODE_REVOKED');
  expect(code('INSUFFICIENT_PERMISSIONS')).toBe('VERIFY_CODE_INSUFFICIENT_PERMISSIONS');
  expect(answers.RATE_LIMITED).toMatchObject({
    answer: { code: 'VERIFY_CODE_RATE_LIMITED', keyId: '<rate-limited-id>', rateLimits: [{ name: 'daily', limit: '1', exceeded: true }] },
  });
  expect(answers.USAGE_EXCEEDED).toMatchObject({ answer: { code: 'VERIFY_CODE_USAGE_EXCEEDED', keyId: '<used-up-id>', remainingUses: '0' } });
  expect(answers['valid with limits, cost 0 (checks, takes nothing)']).toMatchObject({
    answer: { valid: true, remainingUses: '5', rateLimits: [{ name: 'daily', limit: '10', remaining: '10' }] },
  });
  expect(code('INSUFFICIENT_PERMISSIONS before limits')).toBe('VERIFY_CODE_INSUFFICIENT_PERMISSIONS');
  expect(code('INVALID_ARGUMENT: negative cost')).toBe('InvalidArgument');
  expect(code('UNAUTHENTICATED: unknown SDK key')).toBe('Unauthenticated');
  expect(code('PERMISSION_DENIED: SDK key without api_keys:verify')).toBe('PermissionDenied');
  expect(code('INVALID_ARGUMENT: empty key')).toBe('InvalidArgument');
  expect(code('RESOURCE_EXHAUSTED: oversized request')).toBe('ResourceExhausted');
});
