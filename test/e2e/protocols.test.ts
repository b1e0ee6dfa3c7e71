// The same verify and management cases through every protocol the port
// serves, and through an independent client (@grpc/grpc-js + proto-loader
// reading proto/ itself), plus raw HTTP/1.1 and h2c requests on that port.
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import path from 'node:path';
import { fromBinary, toBinary, create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode, VerifyKeyRequestSchema, VerifyKeyResponseSchema } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { issueApiKey } from '../../src/credentials/api-key.js';
import { grpcFrame } from '../../bench/lib.js';
import { client, PROTOCOLS, startTestServer, type ProtocolName, type TestServer } from '../support/server.js';

const PROTO_ROOT = path.resolve(import.meta.dirname, '../../proto');

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(async () => {
  for (const c of grpcClients) c.close();
  await ts?.close();
});

// ---------------------------------------------------------------------------
// One small API over either client. Enum values are the proto names
// (VERIFY_CODE_VALID, KEY_STATE_REVOKED), errors are gRPC status numbers: the
// scenario below cannot tell the clients apart.

type ActionName = 'read' | 'create' | 'update' | 'delete';
interface KeySpec {
  workspaceId: string;
  customerId: string;
  name: string;
  grants: { scope: string; actions: ActionName[] }[];
  metadata: Record<string, string>;
}
interface KeyOut {
  id: string;
  workspaceId: string;
  state: string;
  maskedKey: string;
}
interface VerifyOut {
  valid: boolean;
  code: string;
  keyId: string;
  workspaceId: string;
  customerId: string;
  name: string;
  permissions: string[];
  metadata: Record<string, string>;
  state: string;
}
interface VerifyIn {
  key: string;
  requiredPermissions?: string[];
  workspaceId?: string;
}
interface Api {
  createWorkspace(name: string): Promise<string>;
  createScope(workspaceId: string, name: string): Promise<string>;
  createKey(k: KeySpec): Promise<{ key: KeyOut; secret: string }>;
  getKey(id: string): Promise<KeyOut>;
  rotateKey(id: string, graceSeconds: number): Promise<{ key: KeyOut; secret: string }>;
  revokeKey(id: string): Promise<KeyOut>;
  verifyKey(req: VerifyIn): Promise<VerifyOut>;
  /** Without any authorization header. */
  anonymous: { verifyKey(req: VerifyIn): Promise<VerifyOut>; listWorkspaces(): Promise<string[]> };
}

/** What a failed call is, whichever client made it. */
class RpcFailure extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${grpc.status[code]}: ${details}`);
  }
}

async function failureOf(p: Promise<unknown>): Promise<RpcFailure> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcFailure) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

// --- Connect-ES clients, one protocol each.

const ACTION_VALUES: Record<ActionName, Action> = { read: Action.READ, create: Action.CREATE, update: Action.UPDATE, delete: Action.DELETE };

function connectApi(protocol: ProtocolName): Api {
  const w = client(WorkspaceService, ts, { protocol });
  const s = client(ScopeService, ts, { protocol });
  const k = client(KeyService, ts, { protocol });
  const anonW = client(WorkspaceService, ts, { protocol, token: null });
  const anonK = client(KeyService, ts, { protocol, token: null });
  const wrap = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch (e) {
      const ce = ConnectError.from(e);
      throw new RpcFailure(ce.code, ce.rawMessage);
    }
  };
  const keyOut = (key: { id: string; workspaceId: string; state: KeyState; maskedKey: string } | undefined): KeyOut => ({
    id: key!.id,
    workspaceId: key!.workspaceId,
    state: `KEY_STATE_${KeyState[key!.state]}`,
    maskedKey: key!.maskedKey,
  });
  const verifyOut = (r: Awaited<ReturnType<typeof k.verifyKey>>): VerifyOut => ({
    valid: r.valid,
    code: `VERIFY_CODE_${VerifyCode[r.code]}`,
    keyId: r.keyId,
    workspaceId: r.workspaceId,
    customerId: r.customerId,
    name: r.name,
    permissions: r.permissions,
    metadata: r.metadata,
    state: `KEY_STATE_${KeyState[r.state]}`,
  });
  return {
    createWorkspace: async (name) => (await wrap(w.createWorkspace({ workspace: { name } }))).workspace!.id,
    createScope: async (workspaceId, name) => (await wrap(s.createScope({ scope: { workspaceId, name } }))).scope!.id,
    createKey: async (spec) => {
      const r = await wrap(
        k.createKey({ key: { ...spec, grants: spec.grants.map((g) => ({ scope: g.scope, actions: g.actions.map((a) => ACTION_VALUES[a]) })) } }),
      );
      return { key: keyOut(r.key), secret: r.secret };
    },
    getKey: async (id) => keyOut((await wrap(k.getKey({ id }))).key),
    rotateKey: async (id, graceSeconds) => {
      const r = await wrap(k.rotateKey({ id, gracePeriod: { seconds: BigInt(graceSeconds) } }));
      return { key: keyOut(r.key), secret: r.secret };
    },
    revokeKey: async (id) => keyOut((await wrap(k.revokeKey({ id }))).key),
    verifyKey: async (req) => verifyOut(await wrap(k.verifyKey(req))),
    anonymous: {
      verifyKey: async (req) => verifyOut(await wrap(anonK.verifyKey(req))),
      listWorkspaces: async () => (await wrap(anonW.listWorkspaces({}))).workspaces.map((x) => x.id),
    },
  };
}

// --- @grpc/grpc-js with proto-loader: no generated code, no Connect.

const grpcClients: grpc.Client[] = [];

function loadProtos() {
  const files = readdirSync(path.join(PROTO_ROOT, 'keyward/v1'))
    .filter((f) => f.endsWith('.proto'))
    .map((f) => `keyward/v1/${f}`);
  // google/protobuf/*.proto come from protobufjs's bundled well-known types.
  const def = protoLoader.loadSync(files, { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return grpc.loadPackageDefinition(def) as unknown as {
    keyward: { v1: Record<'WorkspaceService' | 'ScopeService' | 'KeyService', grpc.ServiceClientConstructor> };
  };
}

type RawReply = Record<string, any>;
type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: RawReply) => void) => void;

function grpcUnary(c: grpc.Client, method: string, req: unknown, token: string | null): Promise<RawReply> {
  const md = new grpc.Metadata();
  if (token !== null) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => {
    (c as unknown as Record<string, Unary>)[method]!.call(c, req, md, { deadline: Date.now() + 15_000 }, (err, res) => {
      if (err) reject(new RpcFailure(err.code, err.details));
      else resolve(res!);
    });
  });
}

function grpcJsApi(): Api & {
  /** Calls by name; `token` null sends no authorization metadata. */
  raw: (service: 'WorkspaceService' | 'ScopeService' | 'KeyService', method: string, req: unknown, token?: string | null) => Promise<RawReply>;
} {
  const pkg = loadProtos();
  const target = `127.0.0.1:${ts.server.port}`;
  const make = (name: 'WorkspaceService' | 'ScopeService' | 'KeyService') => {
    const c = new pkg.keyward.v1[name](target, grpc.credentials.createInsecure());
    grpcClients.push(c);
    return c;
  };
  const clients = { WorkspaceService: make('WorkspaceService'), ScopeService: make('ScopeService'), KeyService: make('KeyService') };
  const raw = (service: keyof typeof clients, method: string, req: unknown, token: string | null = ts.adminToken) =>
    grpcUnary(clients[service], method, req, token);
  const keyOut = (k: RawReply): KeyOut => ({ id: k.id, workspaceId: k.workspace_id, state: k.state, maskedKey: k.masked_key });
  const verifyOut = (r: RawReply): VerifyOut => ({
    valid: r.valid,
    code: r.code,
    keyId: r.key_id,
    workspaceId: r.workspace_id,
    customerId: r.customer_id,
    name: r.name,
    permissions: r.permissions,
    metadata: r.metadata,
    state: r.state,
  });
  return {
    raw,
    createWorkspace: async (name) => (await raw('WorkspaceService', 'CreateWorkspace', { workspace: { name } })).workspace.id,
    createScope: async (workspace_id, name) => (await raw('ScopeService', 'CreateScope', { scope: { workspace_id, name } })).scope.id,
    createKey: async (spec) => {
      const r = await raw('KeyService', 'CreateKey', {
        key: {
          workspace_id: spec.workspaceId,
          customer_id: spec.customerId,
          name: spec.name,
          metadata: spec.metadata,
          grants: spec.grants.map((g) => ({ scope: g.scope, actions: g.actions.map((a) => `ACTION_${a.toUpperCase()}`) })),
        },
      });
      return { key: keyOut(r.key), secret: r.secret };
    },
    getKey: async (id) => keyOut((await raw('KeyService', 'GetKey', { id })).key),
    rotateKey: async (id, graceSeconds) => {
      const r = await raw('KeyService', 'RotateKey', { id, grace_period: { seconds: String(graceSeconds), nanos: 0 } });
      return { key: keyOut(r.key), secret: r.secret };
    },
    revokeKey: async (id) => keyOut((await raw('KeyService', 'RevokeKey', { id })).key),
    verifyKey: async (req) =>
      verifyOut(
        await raw('KeyService', 'VerifyKey', { key: req.key, required_permissions: req.requiredPermissions ?? [], workspace_id: req.workspaceId ?? '' }),
      ),
    anonymous: {
      verifyKey: async (req) => verifyOut(await raw('KeyService', 'VerifyKey', { key: req.key, required_permissions: req.requiredPermissions ?? [] }, null)),
      listWorkspaces: async () => (await raw('WorkspaceService', 'ListWorkspaces', {}, null)).workspaces.map((w: RawReply) => w.id),
    },
  };
}

// ---------------------------------------------------------------------------
// The scenario every client runs.

let seq = 0;
/** The key with one character of its random body changed: the checksum no longer matches. */
function typo(secret: string): string {
  const i = secret.indexOf('_') + 5;
  const c = secret[i] === 'a' ? 'b' : 'a';
  return secret.slice(0, i) + c + secret.slice(i + 1);
}

function scenario(label: string, api: () => Api) {
  let a: Api;
  let ws = '';
  let scopeName = '';
  let otherScope = '';
  let key: KeyOut;
  let secret = '';
  const NOT_FOUND_NOTHING = { valid: false, code: 'VERIFY_CODE_NOT_FOUND', keyId: '', workspaceId: '', customerId: '', permissions: [], metadata: {} };

  it('creates a workspace, a scope and a key', async () => {
    a = api();
    const n = ++seq;
    ws = await a.createWorkspace(`proto-${label}-${n}`);
    scopeName = `balance_transfers.${n}`;
    otherScope = `invoices.${n}`;
    await a.createScope(ws, scopeName);
    await a.createScope(ws, otherScope);
    const created = await a.createKey({
      workspaceId: ws,
      customerId: `cus_${label}`,
      name: `gateway key ${label}`,
      grants: [
        { scope: scopeName, actions: ['read', 'create'] },
        { scope: otherScope, actions: ['read'] },
      ],
      metadata: { plan: 'pro', region: 'eu' },
    });
    key = created.key;
    secret = created.secret;
    expect(secret).toMatch(/^kw_[0-9A-Za-z]{49}$/);
    expect(key).toMatchObject({ workspaceId: ws, state: 'KEY_STATE_ACTIVE', maskedKey: `kw_****${secret.slice(-4)}` });
  });

  it('VerifyKey: VALID with the key’s permissions, customer and metadata', async () => {
    const r = await a.verifyKey({ key: secret, requiredPermissions: [`${scopeName}:read`, `${scopeName}:create`], workspaceId: ws });
    expect(r).toEqual({
      valid: true,
      code: 'VERIFY_CODE_VALID',
      keyId: key.id,
      workspaceId: ws,
      customerId: `cus_${label}`,
      name: `gateway key ${label}`,
      permissions: [`${scopeName}:create`, `${scopeName}:read`, `${otherScope}:read`].sort(),
      metadata: { plan: 'pro', region: 'eu' },
      state: 'KEY_STATE_ACTIVE',
    });
  });

  it('VerifyKey: INSUFFICIENT_PERMISSIONS names the key but is not valid', async () => {
    const r = await a.verifyKey({ key: secret, requiredPermissions: [`${scopeName}:read`, `${scopeName}:delete`] });
    expect(r).toMatchObject({ valid: false, code: 'VERIFY_CODE_INSUFFICIENT_PERMISSIONS', keyId: key.id, state: 'KEY_STATE_ACTIVE' });
  });

  it('VerifyKey: NOT_FOUND for a typo and for a well-formed unknown key, with no details', async () => {
    expect(await a.verifyKey({ key: typo(secret) })).toMatchObject(NOT_FOUND_NOTHING);
    expect(await a.verifyKey({ key: issueApiKey('kw').plaintext })).toMatchObject(NOT_FOUND_NOTHING);
    expect(await a.verifyKey({ key: 'not even close' })).toMatchObject(NOT_FOUND_NOTHING);
  });

  it('RotateKey with a grace period: both secrets verify; rotating with none ends the old ones at once', async () => {
    const first = secret;
    const r1 = await a.rotateKey(key.id, 3600);
    expect(r1.key).toMatchObject({ id: key.id, state: 'KEY_STATE_ACTIVE', maskedKey: `kw_****${r1.secret.slice(-4)}` });
    expect(r1.secret).not.toBe(first);
    expect((await a.verifyKey({ key: first })).code).toBe('VERIFY_CODE_VALID');
    expect((await a.verifyKey({ key: r1.secret })).code).toBe('VERIFY_CODE_VALID');
    const r2 = await a.rotateKey(key.id, 0);
    expect((await a.verifyKey({ key: first })).code).toBe('VERIFY_CODE_NOT_FOUND');
    expect((await a.verifyKey({ key: r1.secret })).code).toBe('VERIFY_CODE_NOT_FOUND');
    expect(await a.verifyKey({ key: r2.secret })).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID', keyId: key.id });
    secret = r2.secret;
  });

  it('VerifyKey: REVOKED after RevokeKey; rotating it then is FAILED_PRECONDITION', async () => {
    const revoked = await a.revokeKey(key.id);
    expect(revoked).toMatchObject({ id: key.id, state: 'KEY_STATE_REVOKED' });
    expect(await a.verifyKey({ key: secret })).toMatchObject({ valid: false, code: 'VERIFY_CODE_REVOKED', keyId: key.id, state: 'KEY_STATE_REVOKED' });
    expect((await a.getKey(key.id)).state).toBe('KEY_STATE_REVOKED');
    expect((await failureOf(a.rotateKey(key.id, 0))).code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('INVALID_ARGUMENT names the field', async () => {
    const long = await failureOf(a.createKey({ workspaceId: ws, customerId: '', name: 'x'.repeat(121), grants: [], metadata: {} }));
    expect(long.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(long.details).toContain('key.name');
    const perm = await failureOf(a.verifyKey({ key: secret, requiredPermissions: [`${scopeName}:read`, 'Transfer'] }));
    expect(perm.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(perm.details).toContain('required_permissions[1]');
    const grant = await failureOf(a.createKey({ workspaceId: ws, customerId: '', name: 'k', grants: [{ scope: 'nope', actions: ['read'] }], metadata: {} }));
    expect(grant.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(grant.details).toContain('key.grants[0].scope');
  });

  it('UNAUTHENTICATED without credentials, for VerifyKey and management alike', async () => {
    const v = await failureOf(a.anonymous.verifyKey({ key: secret }));
    expect(v.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(v.details).not.toContain(secret);
    expect((await failureOf(a.anonymous.listWorkspaces())).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('GetKey of an unknown id is NOT_FOUND; of a malformed id INVALID_ARGUMENT naming id', async () => {
    const nf = await failureOf(a.getKey(randomUUID()));
    expect(nf.code).toBe(grpc.status.NOT_FOUND);
    const bad = await failureOf(a.getKey('42'));
    expect(bad.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.details).toMatch(/\bid\b/);
  });
}

it('Connect codes and gRPC status numbers agree, so one scenario serves both clients', () => {
  for (const [name, code] of [
    ['UNAUTHENTICATED', Code.Unauthenticated],
    ['PERMISSION_DENIED', Code.PermissionDenied],
    ['NOT_FOUND', Code.NotFound],
    ['INVALID_ARGUMENT', Code.InvalidArgument],
    ['FAILED_PRECONDITION', Code.FailedPrecondition],
  ] as const) {
    expect(grpc.status[name]).toBe(code);
  }
});

for (const protocol of PROTOCOLS) {
  describe(`Connect-ES client, ${protocol}`, () => scenario(protocol, () => connectApi(protocol)));
}

describe('@grpc/grpc-js client with proto-loader', () => {
  scenario('grpc-js', () => grpcJsApi());

  it('sees snake_case fields, enum names, timestamps and maps as the .proto declares them', async () => {
    const g = grpcJsApi();
    const ws = await g.createWorkspace(`grpc-js-raw-${randomUUID()}`);
    await g.createScope(ws, 'reports');
    const created = await g.raw('KeyService', 'CreateKey', {
      key: { workspace_id: ws, customer_id: 'cus_raw', grants: [{ scope: 'reports', actions: ['ACTION_READ'] }], metadata: { a: '1' } },
    });
    expect(created.key).toMatchObject({
      workspace_id: ws,
      customer_id: 'cus_raw',
      enabled: true,
      state: 'KEY_STATE_ACTIVE',
      grants: [{ scope: 'reports', actions: ['ACTION_READ'] }],
      metadata: { a: '1' },
    });
    expect(Number(created.key.create_time.seconds)).toBeGreaterThan(Date.now() / 1000 - 300);
    const v = await g.raw('KeyService', 'VerifyKey', { key: created.secret, required_permissions: ['reports:read'] });
    expect(v).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID', key_id: created.key.id, permissions: ['reports:read'], metadata: { a: '1' } });
    const list = await g.raw('KeyService', 'ListKeys', { workspace_id: ws, page_size: 10 });
    expect(list.keys.map((k: RawReply) => k.id)).toEqual([created.key.id]);
    expect(list.next_page_token).toBe('');
  });
});

// ---------------------------------------------------------------------------
// Raw requests: HTTP/1.1 and h2c on the one port.

describe('one port, HTTP/1.1 and h2c', () => {
  let ws = '';
  let secret = '';
  beforeAll(async () => {
    const w = client(WorkspaceService, ts);
    ws = (await w.createWorkspace({ workspace: { name: `raw-${randomUUID()}` } })).workspace!.id;
    await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'reports' } });
    secret = (await client(KeyService, ts).createKey({ key: { workspaceId: ws, grants: [{ scope: 'reports', actions: [Action.READ] }] } })).secret;
  });

  function h1Post(pathname: string, body: string, headers: Record<string, string>) {
    return new Promise<{ version: string; status: number; json: any }>((resolve, reject) => {
      const req = http.request(`${ts.baseUrl}${pathname}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ version: res.httpVersion, status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body: Uint8Array) {
    return new Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ...headers });
      let head: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (head = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve({ headers: head, trailers, body: Buffer.concat(chunks) }));
      stream.on('error', reject);
      stream.end(body);
    });
  }

  it('HTTP/1.1: a Connect JSON POST with node:http', async () => {
    const r = await h1Post('/keyward.v1.KeyService/VerifyKey', JSON.stringify({ key: secret, requiredPermissions: ['reports:read'] }), {
      authorization: `Bearer ${ts.adminToken}`,
    });
    expect(r.version).toBe('1.1');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID', workspaceId: ws, permissions: ['reports:read'] });
  });

  it('HTTP/1.1: fetch() gets Connect JSON, and a JSON error with HTTP 401 without credentials', async () => {
    const ok = await fetch(`${ts.baseUrl}/keyward.v1.WorkspaceService/GetWorkspace`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ts.adminToken}` },
      body: JSON.stringify({ id: ws }),
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ workspace: { id: ws, keyPrefix: 'kw' } });
    const denied = await fetch(`${ts.baseUrl}/keyward.v1.KeyService/VerifyKey`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: secret }),
    });
    expect(denied.status).toBe(401);
    const err = (await denied.json()) as { code: string; message: string };
    expect(err.code).toBe('unauthenticated');
    expect(err.message).not.toContain(secret);
  });

  it('h2c: Connect JSON and gRPC on one HTTP/2 session, with prior knowledge', async () => {
    const session = http2.connect(ts.baseUrl);
    try {
      const json = await h2Request(
        session,
        { ':path': '/keyward.v1.KeyService/VerifyKey', 'content-type': 'application/json', authorization: `Bearer ${ts.adminToken}` },
        Buffer.from(JSON.stringify({ key: secret, requiredPermissions: ['reports:read'] })),
      );
      expect(session.alpnProtocol).toBe('h2c');
      expect(json.headers[':status']).toBe(200);
      expect(JSON.parse(json.body.toString('utf8'))).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID' });

      // gRPC by hand: a 5-byte envelope (flag, big-endian length) around the binary message.
      const msg = toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: secret, requiredPermissions: ['reports:delete'] }));
      const env = grpcFrame(msg);
      const g = await h2Request(
        session,
        { ':path': '/keyward.v1.KeyService/VerifyKey', 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${ts.adminToken}` },
        env,
      );
      expect(g.headers[':status']).toBe(200);
      expect(g.trailers['grpc-status']).toBe('0');
      expect(g.body[0]).toBe(0);
      const res = fromBinary(VerifyKeyResponseSchema, g.body.subarray(5, 5 + g.body.readUInt32BE(1)));
      expect(res).toMatchObject({ valid: false, code: VerifyCode.INSUFFICIENT_PERMISSIONS, workspaceId: ws });

      const anon = await h2Request(session, { ':path': '/keyward.v1.KeyService/VerifyKey', 'content-type': 'application/grpc', te: 'trailers' }, env);
      const status = anon.trailers['grpc-status'] ?? anon.headers['grpc-status'];
      expect(status).toBe(String(grpc.status.UNAUTHENTICATED));
    } finally {
      session.close();
    }
  });

  it('serves an HTTP/1.1 connection and an h2c session side by side', async () => {
    const session = http2.connect(ts.baseUrl);
    try {
      const body = JSON.stringify({ key: secret });
      const auth = { authorization: `Bearer ${ts.adminToken}` };
      const [h1, h2] = await Promise.all([
        Promise.all(Array.from({ length: 5 }, () => h1Post('/keyward.v1.KeyService/VerifyKey', body, auth))),
        Promise.all(
          Array.from({ length: 5 }, () =>
            h2Request(session, { ':path': '/keyward.v1.KeyService/VerifyKey', 'content-type': 'application/json', ...auth }, Buffer.from(body)),
          ),
        ),
      ]);
      expect(h1.map((r) => [r.version, r.status, r.json.code])).toEqual(Array(5).fill(['1.1', 200, 'VERIFY_CODE_VALID']));
      expect(h2.map((r) => [r.headers[':status'], JSON.parse(r.body.toString('utf8')).code])).toEqual(Array(5).fill([200, 'VERIFY_CODE_VALID']));
    } finally {
      session.close();
    }
  });
});
