// VerifyKey fast-path conformance for raw HTTP/2 gRPC and gRPC-Web requests (status, headers, trailers, bytes); harness: test/support/verify-conformance.ts.
import zlib from 'node:zlib';
import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { grpcFrame } from '../../bench/lib.js';
import {
  auth,
  counting,
  encode,
  expectRawCaseConforms,
  fast,
  GRPC,
  grpcStatusOf,
  jsonOf,
  MAX_REQUEST_BYTES,
  OVERSIZED_KEY,
  sessionOf,
  stock,
  UNKNOWN_FIELD,
  useConformanceServers,
  VERIFY_PATH,
  type RawCase,
  type Side,
} from '../support/verify-conformance.js';

useConformanceServers();

const RAW_GRPC_CASES: RawCase[] = [
  {
    name: 'gRPC, application/grpc, with a request id',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'x-request-id': 'conformance-1' }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.headers).toEqual({ 'content-type': 'application/grpc+proto', 'x-request-id': 'conformance-1', date: '<now>' });
      expect(r.trailers).toEqual({ 'grpc-status': '0' });
    },
  },
  {
    name: 'gRPC, application/grpc+proto',
    request: (s) => ({ headers: { ...GRPC, 'content-type': 'application/grpc+proto', ...auth(s) }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
  },
  {
    name: 'gRPC, a request id over 128 characters is cut',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'x-request-id': 'r'.repeat(200) }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => expect(r.headers['x-request-id']).toBe('r'.repeat(128)),
  },
  {
    name: 'gRPC, unknown field in the message is ignored',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) }, body: grpcFrame(Buffer.concat([encode(s), UNKNOWN_FIELD])) }),
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject([{ message: { valid: true } }]),
  },
  {
    name: 'gRPC, unauthenticated',
    request: (s) => ({ headers: { ...GRPC }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.trailers).toMatchObject({ 'grpc-status': String(Code.Unauthenticated), 'x-request-id': '<generated>' });
      expect(decodeURIComponent(String(r.trailers['grpc-message']))).toContain('missing SDK key');
    },
  },
  {
    name: 'gRPC, permission denied',
    request: (s) => ({ headers: { ...GRPC, ...auth(s, 'noVerify') }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.PermissionDenied)),
  },
  {
    name: 'gRPC, grpc-timeout of 1 ns: deadline exceeded',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-timeout': '1n' }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => {
      expect(grpcStatusOf(r)).toBe(String(Code.DeadlineExceeded));
      expect(r.trailers['grpc-message']).toBe(encodeURIComponent('the operation timed out'));
    },
  },
  {
    name: 'gRPC, grpc-timeout of 5 s',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-timeout': '5S' }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe('0'),
  },
  {
    name: 'gRPC, grpc-timeout over KEYWARD_MAX_REQUEST_TIMEOUT_MS (served, honoured up to it)',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-timeout': '1H' }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => expect(grpcStatusOf(r)).toBe('0'),
  },
  {
    name: 'gRPC, malformed grpc-timeout',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-timeout': 'soon' }, body: grpcFrame(encode(s)) }),
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.InvalidArgument)),
  },
  {
    name: 'gRPC, gzip-compressed request',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-encoding': 'gzip' }, body: grpcFrame(zlib.gzipSync(encode(s)), 1) }),
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject([{ message: { valid: true } }]),
  },
  {
    name: 'gRPC, grpc-encoding gzip on an uncompressed message',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-encoding': 'gzip' }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
  },
  {
    name: 'gRPC, compressed flag without grpc-encoding',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) }, body: grpcFrame(zlib.gzipSync(encode(s)), 1) }),
    fastPath: 'hands over',
  },
  {
    name: 'gRPC, corrupt gzip',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-encoding': 'gzip' }, body: grpcFrame(Buffer.from('not gzip at all'), 1) }),
    fastPath: 'hands over',
  },
  {
    name: 'gRPC, unsupported grpc-encoding',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-encoding': 'snappy' }, body: grpcFrame(encode(s)) }),
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.Unimplemented)),
  },
  {
    name: 'gRPC, gzip accepted, small answer (not compressed, encoding announced)',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-accept-encoding': 'identity, gzip' }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.headers['grpc-encoding']).toBe('gzip');
      expect(r.body).toMatchObject([{ flags: 0 }]);
    },
  },
  {
    name: 'gRPC, gzip accepted, big answer (compressed)',
    request: (s) => ({ headers: { ...GRPC, ...auth(s), 'grpc-accept-encoding': 'gzip' }, body: grpcFrame(encode(s, { name: '', key: 'big' })) }),
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject([{ flags: 1, message: { valid: true } }]),
  },
  {
    name: 'gRPC, oversized message',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) }, body: grpcFrame(encode(s, { name: '', key: { literal: OVERSIZED_KEY } })) }),
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.ResourceExhausted)),
  },
  {
    name: 'gRPC, envelope declaring an oversized message, body cut short',
    request: (s) => {
      const head = Buffer.alloc(5);
      head.writeUInt32BE(MAX_REQUEST_BYTES + 1, 1);
      return { headers: { ...GRPC, ...auth(s) }, body: Buffer.concat([head, encode(s)]) };
    },
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.ResourceExhausted)),
  },
  {
    name: 'gRPC, truncated envelope',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) }, body: grpcFrame(encode(s)).subarray(0, 20) }),
    fastPath: 'hands over',
  },
  {
    name: 'gRPC, two messages',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) }, body: Buffer.concat([grpcFrame(encode(s)), grpcFrame(encode(s))]) }),
    fastPath: 'hands over',
  },
  {
    // Handed over in mid-body: connect-node must read the rest from the stream to answer.
    name: 'gRPC, a small message followed by a large one, together over the size limit',
    request: (s) => ({
      headers: { ...GRPC, ...auth(s) },
      body: Buffer.concat([grpcFrame(encode(s)), grpcFrame(encode(s, { name: '', key: { literal: 'x'.repeat(MAX_REQUEST_BYTES - 100) } }))]),
    }),
    fastPath: 'hands over',
    check: (r) => expect(grpcStatusOf(r)).toBe(String(Code.Unimplemented)),
  },
  {
    name: 'gRPC, empty body',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) } }),
    fastPath: 'hands over',
  },
  {
    name: 'gRPC, invalid protobuf',
    request: (s) => ({ headers: { ...GRPC, ...auth(s) }, body: grpcFrame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])) }),
    fastPath: 'hands over',
  },
  {
    name: 'gRPC with JSON (application/grpc+json)',
    request: (s) => ({ headers: { ...GRPC, 'content-type': 'application/grpc+json', ...auth(s) }, body: grpcFrame(jsonOf(s)) }),
    fastPath: 'serves',
  },
  {
    name: 'gRPC, content type in upper case',
    request: (s) => ({ headers: { ...GRPC, 'content-type': 'Application/GRPC+Proto', ...auth(s) }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
  },
  {
    name: 'gRPC-Web, valid',
    request: (s) => ({ headers: { 'content-type': 'application/grpc-web+proto', ...auth(s) }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
    check: (r) =>
      expect(r.body).toMatchObject([
        { flags: 0, message: { valid: true } },
        { flags: 0x80, trailer: 'grpc-status: 0\r\n' },
      ]),
  },
  {
    name: 'gRPC-Web, unauthenticated',
    request: (s) => ({ headers: { 'content-type': 'application/grpc-web+proto', ...auth(s, 'unknown') }, body: grpcFrame(encode(s)) }),
    fastPath: 'serves',
  },
  {
    name: 'gRPC-Web text',
    request: (s) => ({ headers: { 'content-type': 'application/grpc-web-text', ...auth(s) }, body: Buffer.from(grpcFrame(encode(s)).toString('base64')) }),
    fastPath: 'hands over',
  },
];

describe('raw HTTP/2', () => {
  it.each(RAW_GRPC_CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    await expectRawCaseConforms(c);
  });

  it('a request whose body arrives in pieces', async () => {
    const send = (side: Side) =>
      new Promise<string>((resolve, reject) => {
        const body = grpcFrame(encode(side));
        const stream = sessionOf(side).request({ ':method': 'POST', ':path': VERIFY_PATH, ...GRPC, ...auth(side) });
        let status = '';
        stream.on('trailers', (t) => (status = String(t['grpc-status'])));
        stream.on('error', reject);
        stream.on('close', () => resolve(status));
        stream.resume();
        stream.write(body.subarray(0, 3));
        setTimeout(() => stream.write(body.subarray(3, 20)), 20);
        setTimeout(() => stream.end(body.subarray(20)), 40);
      });
    const { result, served } = await counting(() => send(fast));
    expect(result).toBe('0');
    expect(served).toBe(1);
    expect(await send(stock)).toBe('0');
  });

  it('a body handed over while it arrives reaches connect-node whole', async () => {
    // Over the size limit in its first part, so handed over before the rest is sent.
    const send = (side: Side) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const second = encode(side, { name: '', key: { literal: 'x'.repeat(MAX_REQUEST_BYTES - 10) } });
        const body = Buffer.concat([grpcFrame(encode(side)), grpcFrame(second)]);
        const split = MAX_REQUEST_BYTES + 10;
        expect(body.length).toBeGreaterThan(split);
        const stream = sessionOf(side).request({ ':method': 'POST', ':path': VERIFY_PATH, ...GRPC, ...auth(side) });
        stream.on('trailers', (t) => resolve({ status: t['grpc-status'], message: t['grpc-message'] }));
        stream.on('error', reject);
        stream.resume();
        stream.write(body.subarray(0, split));
        setTimeout(() => stream.end(body.subarray(split)), 100);
      });
    const { result, handedOver } = await counting(() => send(fast));
    expect(handedOver).toBe(1);
    expect(result).toEqual(await send(stock));
    expect(result.status).toBe(String(Code.Unimplemented));
  });
});
