// VerifyKey fast-path conformance for raw HTTP/2 Connect requests and other requests to its path; harness: test/support/verify-conformance.ts.
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { grpcFrame } from '../../bench/lib.js';
import {
  auth,
  CONNECT_JSON,
  CONNECT_PROTO,
  counting,
  encode,
  expectRawCaseConforms,
  fast,
  GRPC,
  jsonOf,
  OVERSIZED_KEY,
  raw,
  UNKNOWN_FIELD,
  useConformanceServers,
  VERIFY_PATH,
  type RawCase,
} from '../support/verify-conformance.js';

useConformanceServers();

const RAW_CONNECT_CASES: RawCase[] = [
  {
    name: 'Connect binary',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s) }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(200);
      // A successful VerifyKey carries a request id only if the caller sent one (errorInterceptor).
      expect(r.headers).toEqual({ 'content-type': 'application/proto', 'content-length': '<body length>', date: '<now>' });
    },
  },
  {
    name: 'Connect binary without connect-protocol-version',
    request: (s) => ({ headers: { 'content-type': 'application/proto', ...auth(s) }, body: encode(s) }),
    fastPath: 'serves',
  },
  {
    name: 'Connect binary with a content-length',
    request: (s) => {
      const body = encode(s);
      return { headers: { ...CONNECT_PROTO, ...auth(s), 'content-length': String(body.length) }, body };
    },
    fastPath: 'serves',
  },
  {
    name: 'Connect binary, unknown field in the message is ignored',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s) }, body: Buffer.concat([encode(s), UNKNOWN_FIELD]) }),
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject({ valid: true }),
  },
  {
    name: 'Connect JSON',
    request: (s) => ({ headers: { ...CONNECT_JSON, ...auth(s) }, body: jsonOf(s) }),
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID' }),
  },
  {
    name: 'Connect JSON with charset',
    request: (s) => ({ headers: { ...CONNECT_JSON, 'content-type': 'application/json; charset=utf-8', ...auth(s) }, body: jsonOf(s) }),
    fastPath: 'serves',
  },
  {
    // Keyward rejects unknown JSON fields (a misspelled requiredPermissions must not pass silently).
    name: 'Connect JSON with an unknown field',
    request: (s) => ({ headers: { ...CONNECT_JSON, ...auth(s) }, body: Buffer.from(JSON.stringify({ key: s.keys.valid, colour: 'blue' })) }),
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(400),
  },
  {
    name: 'Connect JSON, malformed',
    request: (s) => ({ headers: { ...CONNECT_JSON, ...auth(s) }, body: Buffer.from('{"key": ') }),
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(400),
  },
  {
    name: 'Connect JSON, wrong type',
    request: (s) => ({ headers: { ...CONNECT_JSON, ...auth(s) }, body: Buffer.from('{"requiredPermissions": "orders:read"}') }),
    fastPath: 'hands over',
  },
  {
    name: 'Connect JSON, empty key: error body',
    request: (s) => ({ headers: { ...CONNECT_JSON, ...auth(s) }, body: Buffer.from('{}') }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(400);
      expect(r.body).toEqual({
        code: 'invalid_argument',
        message: 'key: is required',
        details: [{ type: 'google.rpc.BadRequest', value: expect.any(String), debug: { fieldViolations: [{ field: 'key', description: 'is required' }] } }],
      });
    },
  },
  {
    name: 'Connect binary, unauthenticated',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s, 'noBearer') }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(401);
      expect(r.headers).toMatchObject({ 'content-type': 'application/json', 'x-request-id': '<generated>' });
    },
  },
  {
    name: 'Connect binary, permission denied',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s, 'noVerify') }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => expect(r.status).toBe(403),
  },
  {
    name: 'Connect, connect-timeout-ms 0: deadline exceeded',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'connect-timeout-ms': '0' }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => {
      expect(r.status).toBe(504);
      expect(r.body).toEqual({ code: 'deadline_exceeded', message: 'the operation timed out' });
    },
  },
  {
    name: 'Connect, connect-timeout-ms 5000',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'connect-timeout-ms': '5000' }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => expect(r.status).toBe(200),
  },
  {
    name: 'Connect, connect-timeout-ms over the maximum (served, honoured up to it)',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'connect-timeout-ms': '99999999' }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => expect(r.status).toBe(200),
  },
  {
    name: 'Connect, gzip-compressed request',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'content-encoding': 'gzip' }, body: zlib.gzipSync(encode(s)) }),
    fastPath: 'serves',
    check: (r) => expect(r.body).toMatchObject({ valid: true }),
  },
  {
    name: 'Connect, unsupported content-encoding',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'content-encoding': 'snappy' }, body: encode(s) }),
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(501),
  },
  {
    name: 'Connect, gzip accepted, small answer (not compressed)',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'accept-encoding': 'gzip' }, body: encode(s) }),
    fastPath: 'serves',
    check: (r) => expect(r.headers['content-encoding']).toBeUndefined(),
  },
  {
    name: 'Connect, gzip accepted, big answer (compressed)',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), 'accept-encoding': 'br;q=0.5, gzip' }, body: encode(s, { name: '', key: 'big' }) }),
    fastPath: 'serves',
  },
  {
    name: 'Connect, gzip accepted, big answer (compressed), JSON',
    request: (s) => ({ headers: { ...CONNECT_JSON, ...auth(s), 'accept-encoding': 'gzip' }, body: jsonOf(s, { name: '', key: 'big' }) }),
    fastPath: 'serves',
    check: (r) => expect(r.headers['content-encoding']).toBe('gzip'),
  },
  {
    name: 'Connect, oversized with content-length',
    request: (s) => {
      const body = encode(s, { name: '', key: { literal: OVERSIZED_KEY } });
      return { headers: { ...CONNECT_PROTO, ...auth(s), 'content-length': String(body.length) }, body };
    },
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(429),
  },
  {
    name: 'Connect, oversized without content-length',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s) }, body: encode(s, { name: '', key: { literal: OVERSIZED_KEY } }) }),
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(429),
  },
  {
    name: 'Connect, 1 MiB body in many DATA frames, handed over while it arrives',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s) }, body: Buffer.concat([encode(s), Buffer.alloc(1 << 20, 0x20)]) }),
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(429),
  },
  {
    name: 'GET',
    request: (s) => ({ method: 'GET', path: `${VERIFY_PATH}?encoding=json&message=%7B%7D`, headers: { ...auth(s) } }),
    fastPath: 'not reached',
  },
  {
    name: 'GET on the exact path',
    request: (s) => ({ method: 'GET', headers: { ...auth(s) } }),
    fastPath: 'hands over',
  },
  {
    name: 'unknown content type',
    request: (s) => ({ headers: { 'content-type': 'text/plain', ...auth(s) }, body: encode(s) }),
    fastPath: 'hands over',
    check: (r) => expect(r.status).toBe(415),
  },
  {
    name: 'Connect streaming content type on a unary method',
    request: (s) => ({ headers: { 'content-type': 'application/connect+proto', ...auth(s) }, body: grpcFrame(encode(s)) }),
    fastPath: 'hands over',
  },
  {
    name: 'path with a query string',
    request: (s) => ({ path: `${VERIFY_PATH}?x=1`, headers: { ...GRPC, ...auth(s) }, body: grpcFrame(encode(s)) }),
    fastPath: 'not reached',
  },
  {
    name: 'expect: 100-continue',
    request: (s) => ({ headers: { ...CONNECT_PROTO, ...auth(s), expect: '100-continue' }, body: encode(s) }),
    fastPath: 'hands over',
  },
];

describe('raw HTTP/2', () => {
  it.each(RAW_CONNECT_CASES.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    await expectRawCaseConforms(c);
  });

  it('other routes on the fast server are untouched', async () => {
    const { result, served, handedOver } = await counting(() =>
      raw(fast, {
        path: '/keyward.v1.WorkspaceService/ListWorkspaces',
        headers: { ...CONNECT_JSON, authorization: `Bearer ${fast.ts.adminToken}` },
        body: Buffer.from('{}'),
      }),
    );
    expect(result.status).toBe(200);
    expect([served, handedOver]).toEqual([0, 0]);
  });
});
