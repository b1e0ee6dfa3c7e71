// Oversized, malformed and out-of-range requests: each is the caller's
// mistake, so each gets a clear client error code, never INTERNAL, and the
// server keeps serving.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { Code, type ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, PROTOCOLS, startTestServer, type TestServer } from '../support/server.js';
import { grpcFrame } from '../../bench/lib.js';
import { rpcError } from '../support/rpc.js';

const MAX_BYTES = 65_536;
const MAX_TIMEOUT_MS = 30_000; // KEYWARD_MAX_REQUEST_TIMEOUT_MS default

let ts: TestServer;
let ws = '';
let keyId = '';
let secret = '';

beforeAll(async () => {
  ts = await startTestServer({ KEYWARD_MAX_REQUEST_BYTES: String(MAX_BYTES) });
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'limits' } })).workspace!.id;
  await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'reports' } });
  const k = await client(KeyService, ts).createKey({ key: { workspaceId: ws, grants: [{ scope: 'reports', actions: [Action.READ] }] } });
  keyId = k.key!.id;
  secret = k.secret;
});
afterAll(async () => {
  await ts?.close();
});

function expectCode(e: ConnectError, code: Code) {
  expect(Code[e.code], e.rawMessage).toBe(Code[code]);
}

async function stillServing() {
  const r = await client(KeyService, ts).verifyKey({ key: secret, requiredPermissions: ['reports:read'] });
  expect(r.valid).toBe(true);
}

// --- raw requests -----------------------------------------------------------

const path = (service: string, method: string) => `/keyward.v1.${service}/${method}`;
const auth = () => ({ authorization: `Bearer ${ts.adminToken}` });

/** A Connect unary POST over HTTP/1.1; the body is JSON on success and on error. */
async function connectPost(rpcPath: string, body: Uint8Array | string, headers: Record<string, string>) {
  const init = { method: 'POST', headers: { ...auth(), ...headers }, body: typeof body === 'string' ? body : new Uint8Array(body) };
  const res = await fetch(`${ts.baseUrl}${rpcPath}`, init);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** Same, but with a chunked body (no content-length) written piece by piece. */
function chunkedPost(rpcPath: string, chunks: Buffer[], headers: Record<string, string>) {
  return new Promise<{ status: number; json: any }>((resolve, reject) => {
    const req = http.request(`${ts.baseUrl}${rpcPath}`, { method: 'POST', headers: { ...auth(), ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(parts).toString('utf8') || 'null') }));
    });
    // The server may answer and stop reading before the whole body is sent.
    req.on('error', (e) => (/EPIPE|ECONNRESET/.test(String(e)) ? undefined : reject(e)));
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/** gRPC over h2c by hand: returns grpc-status and grpc-message (trailers, or headers for trailers-only). */
async function grpcRaw(rpcPath: string, body: Buffer, headers: Record<string, string> = {}) {
  const session = http2.connect(ts.baseUrl);
  try {
    return await new Promise<{ status: string; message: string }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': rpcPath, 'content-type': 'application/grpc+proto', te: 'trailers', ...auth(), ...headers });
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on('response', (h) => (head = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', () => {});
      stream.on('end', () => {
        const all = { ...head, ...trailers };
        resolve({ status: String(all['grpc-status']), message: decodeURIComponent(String(all['grpc-message'] ?? '')) });
      });
      stream.on('error', reject);
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

/** gRPC-Web over HTTP/1.1 by hand: the status is in the trailer frame at the end of the body. */
async function grpcWebRaw(rpcPath: string, body: Buffer) {
  const res = await fetch(`${ts.baseUrl}${rpcPath}`, {
    method: 'POST',
    headers: { ...auth(), 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
    body: new Uint8Array(body),
  });
  const buf = Buffer.from(await res.arrayBuffer());
  const fields: Record<string, string> = {};
  for (const [k, v] of res.headers) fields[k] = v;
  for (let i = 0; i + 5 <= buf.length; ) {
    const len = buf.readUInt32BE(i + 1);
    if (buf[i]! & 0x80) {
      for (const line of buf
        .subarray(i + 5, i + 5 + len)
        .toString('utf8')
        .split('\r\n')) {
        const at = line.indexOf(':');
        if (at > 0) fields[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
    }
    i += 5 + len;
  }
  return { httpStatus: res.status, status: fields['grpc-status'], message: decodeURIComponent(fields['grpc-message'] ?? '') };
}

// Bytes that are not a protobuf message: a length-delimited field 1 whose
// length runs past the end, a varint that never ends, an invalid wire type.
const NOT_PROTOBUF = [
  Buffer.from([0x0a, 0x7f, 0x61]),
  Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
  Buffer.from([0x0f, 0x01]),
];

// --- tests ------------------------------------------------------------------

describe(`request bodies over KEYWARD_MAX_REQUEST_BYTES (${MAX_BYTES})`, () => {
  for (const protocol of PROTOCOLS) {
    it(`${protocol}: RESOURCE_EXHAUSTED, then the same client is served again`, async () => {
      const c = client(KeyService, ts, { protocol });
      const e = await rpcError(c.createKey({ key: { workspaceId: ws, customerId: 'x'.repeat(MAX_BYTES + 10_000) } }));
      expectCode(e, Code.ResourceExhausted);
      expect(e.rawMessage.length).toBeLessThan(500);
      expect((await c.verifyKey({ key: secret })).valid).toBe(true);
    });
  }

  it('a 1 MB Connect JSON body with content-length: HTTP 429 resource_exhausted', async () => {
    const body = JSON.stringify({ key: { workspaceId: ws, customerId: 'y'.repeat(1_000_000) } });
    const r = await connectPost(path('KeyService', 'CreateKey'), body, { 'content-type': 'application/json' });
    expect(r.json?.code, r.text).toBe('resource_exhausted');
    expect(r.status).toBe(429);
    await stillServing();
  });

  it('a chunked body without content-length is cut off at the limit too', async () => {
    const chunks = [
      Buffer.from(`{"key":{"workspaceId":"${ws}","customerId":"`),
      ...Array.from({ length: 20 }, () => Buffer.alloc(8192, 'z')),
      Buffer.from('"}}'),
    ];
    const r = await chunkedPost(path('KeyService', 'CreateKey'), chunks, { 'content-type': 'application/json' });
    expect(r.json?.code).toBe('resource_exhausted');
    await stillServing();
  });

  it('a kept-alive HTTP/1.1 connection that sent an oversized chunked body is closed after the answer, not left hanging', async () => {
    const sock = net.connect(ts.server.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let received = '';
    sock.on('data', (d: Buffer) => (received += d.toString('utf8')));
    sock.on('error', () => {});
    const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now())));
    const start = Date.now();
    sock.write(
      `POST ${path('KeyService', 'CreateKey')} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ts.adminToken}\r\n` +
        'content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    for (let i = 0; i < 20; i++) sock.write(`2000\r\n${'z'.repeat(0x2000)}\r\n`);
    sock.write('0\r\n\r\n');
    const end = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 3000))]);
    sock.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 429 /);
    expect(received).toContain('resource_exhausted');
    expect(received.toLowerCase()).toContain('connection: close');
    expect(end, 'the connection was left open').toBeGreaterThan(0);
    expect(end - start).toBeLessThan(2000);
    await stillServing();
  });

  it('a gzip bomb (a few KB that inflate past the limit) is RESOURCE_EXHAUSTED, not inflated in full', async () => {
    const body = gzipSync(Buffer.from(JSON.stringify({ key: { workspaceId: ws, customerId: 'b'.repeat(20_000_000) } })));
    expect(body.length).toBeLessThan(100_000);
    const r = await connectPost(path('KeyService', 'CreateKey'), body, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    expect(r.json?.code, r.text).toBe('resource_exhausted');
    await stillServing();
  });

  it('a gRPC message larger than the limit, sent by hand: grpc-status RESOURCE_EXHAUSTED', async () => {
    const r = await grpcRaw(path('KeyService', 'VerifyKey'), grpcFrame(Buffer.alloc(MAX_BYTES + 1)));
    expect(r.status).toBe(String(Code.ResourceExhausted));
    await stillServing();
  });
});

describe('malformed requests', () => {
  it('unknown JSON fields are INVALID_ARGUMENT: a misspelled field must not pass silently', async () => {
    const r = await connectPost(path('WorkspaceService', 'GetWorkspace'), JSON.stringify({ id: ws, no_such_field: 1 }), { 'content-type': 'application/json' });
    expect([r.status, r.json?.code]).toEqual([400, 'invalid_argument']);
    expect(r.json.message).toContain('no_such_field');
    // On the verify path a typo would otherwise skip the permission check entirely.
    const v = await connectPost(path('KeyService', 'VerifyKey'), JSON.stringify({ key: 'kw_x', requiredPermission: ['orders:read'] }), {
      'content-type': 'application/json',
    });
    expect([v.status, v.json?.code]).toEqual([400, 'invalid_argument']);
  });

  it('malformed JSON and wrongly typed JSON fields: HTTP 400 invalid_argument', async () => {
    for (const body of ['{"id":', '[]', '{"pageSize":"lots"}', '{"pageSize":1.5}', '{"pageToken":7}']) {
      const r = await connectPost(path('WorkspaceService', 'ListWorkspaces'), body, { 'content-type': 'application/json' });
      expect([r.status, r.json?.code], body).toEqual([400, 'invalid_argument']);
    }
  });

  // VerifyKey may be served by a lean path of its own; GetWorkspace by connect-node.
  const BINARY_RPCS = [path('KeyService', 'VerifyKey'), path('WorkspaceService', 'GetWorkspace')];

  it('invalid protobuf bytes, Connect binary: HTTP 400 invalid_argument', async () => {
    for (const rpc of BINARY_RPCS) {
      for (const bytes of NOT_PROTOBUF) {
        const r = await connectPost(rpc, bytes, { 'content-type': 'application/proto' });
        expect([r.status, r.json?.code], `${rpc} ${bytes.toString('hex')}: ${r.text}`).toEqual([400, 'invalid_argument']);
      }
    }
    await stillServing();
  });

  it('invalid protobuf bytes, gRPC: INVALID_ARGUMENT', async () => {
    for (const rpc of BINARY_RPCS) {
      for (const bytes of NOT_PROTOBUF) {
        const r = await grpcRaw(rpc, grpcFrame(bytes));
        expect(r.status, `${rpc} ${bytes.toString('hex')}: ${r.message}`).toBe(String(Code.InvalidArgument));
      }
    }
    await stillServing();
  });

  it('invalid protobuf bytes, gRPC-Web: INVALID_ARGUMENT', async () => {
    for (const rpc of BINARY_RPCS) {
      for (const bytes of NOT_PROTOBUF) {
        const r = await grpcWebRaw(rpc, grpcFrame(bytes));
        expect(r.status, `${rpc} ${bytes.toString('hex')}: ${r.message}`).toBe(String(Code.InvalidArgument));
      }
    }
  });

  it('a body that claims gzip but is not: invalid_argument', async () => {
    const r = await connectPost(path('WorkspaceService', 'ListWorkspaces'), Buffer.from('not gzip at all'), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect([r.status, r.json?.code], r.text).toEqual([400, 'invalid_argument']);
  });

  it('an unsupported compression is unimplemented, an unknown content type 415, an unknown RPC 404', async () => {
    const br = await connectPost(path('WorkspaceService', 'ListWorkspaces'), '{}', { 'content-type': 'application/json', 'content-encoding': 'zstd-nope' });
    expect(br.json?.code).toBe('unimplemented');
    const text = await connectPost(path('WorkspaceService', 'ListWorkspaces'), '{}', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    const missing = await connectPost(path('KeyService', 'StealKey'), '{}', { 'content-type': 'application/json' });
    expect(missing.status).toBe(404);
    const get = await fetch(`${ts.baseUrl}${path('KeyService', 'VerifyKey')}?encoding=json&message=%7B%7D`, { headers: auth() });
    expect(get.status).toBe(405);
  });
});

describe(`deadlines over KEYWARD_MAX_REQUEST_TIMEOUT_MS (${MAX_TIMEOUT_MS} ms)`, () => {
  for (const protocol of PROTOCOLS) {
    it(`${protocol}: a ${MAX_TIMEOUT_MS * 2} ms deadline is served (honoured up to ${MAX_TIMEOUT_MS} ms), as is ${MAX_TIMEOUT_MS} ms`, async () => {
      const c = client(KeyService, ts, { protocol });
      expect((await c.verifyKey({ key: secret }, { timeoutMs: MAX_TIMEOUT_MS * 2 })).valid).toBe(true);
      expect((await client(WorkspaceService, ts, { protocol }).listWorkspaces({}, { timeoutMs: MAX_TIMEOUT_MS * 2 })).workspaces).toBeDefined();
      expect((await c.verifyKey({ key: secret }, { timeoutMs: MAX_TIMEOUT_MS })).valid).toBe(true);
    });
  }

  it('a malformed connect-timeout-ms header is INVALID_ARGUMENT', async () => {
    const r = await connectPost(path('WorkspaceService', 'ListWorkspaces'), '{}', { 'content-type': 'application/json', 'connect-timeout-ms': 'soon' });
    expect([r.status, r.json?.code], r.text).toEqual([400, 'invalid_argument']);
  });

  it('a gRPC grpc-timeout of 1 hour (by hand) is served', async () => {
    const r = await grpcRaw(path('WorkspaceService', 'ListWorkspaces'), grpcFrame(new Uint8Array()), { 'grpc-timeout': '1H' });
    expect(r.status).toBe('0');
  });
});

describe('oversized fields inside the byte limit', () => {
  const keys = () => client(KeyService, ts);

  it('a 60 KB customer_id is INVALID_ARGUMENT naming key.customer_id, without echoing it', async () => {
    const big = 'c'.repeat(60_000);
    for (const p of [
      keys().createKey({ key: { workspaceId: ws, customerId: big } }),
      keys().updateKey({ key: { id: keyId, customerId: big }, updateMask: { paths: ['customer_id'] } }),
    ]) {
      const e = await rpcError(p);
      expectCode(e, Code.InvalidArgument);
      expect(e.rawMessage).toContain('key.customer_id');
      expect(e.rawMessage.length).toBeLessThan(500);
    }
    // 255 is the documented maximum.
    expect((await keys().createKey({ key: { workspaceId: ws, customerId: 'c'.repeat(255) } })).key!.customerId).toHaveLength(255);
    expectCode(await rpcError(keys().createKey({ key: { workspaceId: ws, customerId: 'c'.repeat(256) } })), Code.InvalidArgument);
  });

  it('a customer_id with a NUL character is INVALID_ARGUMENT, not a database error', async () => {
    const e = await rpcError(keys().createKey({ key: { workspaceId: ws, customerId: 'a\u0000b' } }));
    expectCode(e, Code.InvalidArgument);
    expect(e.rawMessage).toContain('key.customer_id');
  });

  it('a 60 KB workspace name and scope name are INVALID_ARGUMENT naming the field', async () => {
    const we = await rpcError(client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'w'.repeat(60_000) } }));
    expectCode(we, Code.InvalidArgument);
    expect(we.rawMessage).toContain('workspace.name');
    expect(we.rawMessage.length).toBeLessThan(500);
    const se = await rpcError(client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 's'.repeat(60_000) } }));
    expectCode(se, Code.InvalidArgument);
    expect(se.rawMessage).toContain('scope.name');
    expect(se.rawMessage.length).toBeLessThan(500);
  });

  it('too much metadata is INVALID_ARGUMENT naming key.metadata', async () => {
    const metadata = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    const e = await rpcError(keys().createKey({ key: { workspaceId: ws, metadata } }));
    expectCode(e, Code.InvalidArgument);
    expect(e.rawMessage).toContain('key.metadata');
    const long = await rpcError(keys().createKey({ key: { workspaceId: ws, metadata: { k: 'v'.repeat(1025) } } }));
    expectCode(long, Code.InvalidArgument);
    expect(long.rawMessage).toContain('key.metadata');
  });

  it('VerifyKey of a 60 KB key is simply NOT_FOUND; 101 required permissions are INVALID_ARGUMENT', async () => {
    const r = await keys().verifyKey({ key: `kw_${'k'.repeat(60_000)}` });
    expect(r).toMatchObject({ valid: false, code: VerifyCode.NOT_FOUND, keyId: '' });
    const perms = Array.from({ length: 101 }, (_, i) => `s${i}:read`);
    const e = await rpcError(keys().verifyKey({ key: secret, requiredPermissions: perms }));
    expectCode(e, Code.InvalidArgument);
    expect(e.rawMessage).toContain('required_permissions');
  });

  it('page sizes: negative is INVALID_ARGUMENT naming page_size; the int32 maximum is clamped', async () => {
    const e = await rpcError(keys().listKeys({ workspaceId: ws, pageSize: -1 }));
    expectCode(e, Code.InvalidArgument);
    expect(e.rawMessage).toContain('page_size');
    const r = await keys().listKeys({ workspaceId: ws, pageSize: 2_147_483_647 });
    expect(r.keys.map((k) => k.id)).toContain(keyId);
    const bad = await rpcError(keys().listKeys({ workspaceId: ws, pageToken: 'x'.repeat(10_000) }));
    expectCode(bad, Code.InvalidArgument);
    expect(bad.rawMessage).toContain('page_token');
    expect(bad.rawMessage.length).toBeLessThan(500);
  });

  it('a 10 KB authorization header is UNAUTHENTICATED, and does not echo it', async () => {
    const junk = `kws_${randomUUID()}_${'A'.repeat(10_000)}`;
    const e = await rpcError(client(WorkspaceService, ts, { token: junk }).listWorkspaces({}));
    expectCode(e, Code.Unauthenticated);
    expect(e.rawMessage).not.toContain('AAAAAAAA');
  });
});

describe('afterwards', () => {
  it('the server still serves, and no request was logged as an internal error', async () => {
    await stillServing();
    const errors = ts.logs.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'error');
    expect(errors).toEqual([]);
  });
});
