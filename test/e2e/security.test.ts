// Authorization matrix: every RPC of every generated service, against every
// kind of credential, over a real socket and a real database.
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { clone, toJsonString, type DescService } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type CallOptions } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { DeliveryState, WebhookService } from '../../gen/keyward/v1/webhook_service_pb.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { ServerReflection } from '../../gen/grpc/reflection/v1/reflection_pb.js';
import { KEYWARD_SERVICES, STANDARD_SERVICES } from '../../src/app.js';
import { formatSdkKey, newSdkKeySecret, parseSdkKey } from '../../src/credentials/sdk-key.js';
import { SDK_SCOPES, type SdkScope } from '../../src/domain/principal.js';
import { ALL_GENERATED, RPCS, SERVICES, type Rpc } from '../support/descriptors.js';
import { client, startTestServer, transport, type ProtocolName, type TestServer } from '../support/server.js';
import { AUTHZ_MATRIX, EXPECTED, OPEN_SERVICES, type AuthzRow, type Expected, type RpcName } from './authz-matrix.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PROTO_DIR = path.join(ROOT, 'proto/keyward/v1');

function rowOf(name: string): AuthzRow {
  const row = (AUTHZ_MATRIX as Record<string, AuthzRow>)[name];
  if (!row) throw new Error(`${name} has no row in test/e2e/authz-matrix.ts: decide its SDK scope and workspace access`);
  return row;
}

/** `Service/Method` → the scope its proto comment says it requires. */
function scopesFromProtoComments(): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const f of readdirSync(PROTO_DIR).filter((f) => f.endsWith('.proto'))) {
    let service = '';
    let comment: string[] = [];
    for (const line of readFileSync(path.join(PROTO_DIR, f), 'utf8').split('\n')) {
      const t = line.trim();
      const svc = /^service\s+(\w+)/.exec(t);
      const rpc = /^rpc\s+(\w+)\s*\(/.exec(t);
      if (t.startsWith('//')) {
        comment.push(t.slice(2));
        continue;
      }
      if (svc) service = svc[1]!;
      if (rpc) out.set(`${service}/${rpc[1]}`, /Requires\s+`([a-z_:*]+)`/.exec(comment.join(' '))?.[1]);
      comment = [];
    }
  }
  return out;
}

/**
 * The matrix runs over Connect JSON on HTTP/1.1 and over gRPC on HTTP/2, as
 * the two ends of what the port serves (and VerifyKey over HTTP/2 may take a
 * lean path of its own).
 */
const MATRIX_PROTOCOLS: ProtocolName[] = ['connect-json', 'grpc'];
let protocol: ProtocolName = 'connect-json';

// ---------------------------------------------------------------------------
// Server, credentials and fixtures.

let ts: TestServer;
let W: ReturnType<typeof client<typeof WorkspaceService>>;
let S: ReturnType<typeof client<typeof ScopeService>>;
let K: ReturnType<typeof client<typeof KeyService>>;
let WH: ReturnType<typeof client<typeof WebhookService>>;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const base62 = (n: number) => Array.from(randomBytes(n), (b) => BASE62[b % 62]).join('');
let counter = 0;
const uniq = (label: string) => `${label}-${++counter}-${randomBytes(3).toString('hex')}`;
const sdkKeyId = (token: string) => parseSdkKey(token)!.id;

/** Every SDK key and API key plaintext seen; none may appear in an error, a log line or a read response. */
const SECRETS = new Set<string>();
/** Every error the server returned in this file. */
const ERRORS: { rpc: string; error: ConnectError }[] = [];
/** Every success response (JSON, with a returned `secret` field blanked). */
const RESPONSES: { rpc: string; json: string }[] = [];

function addSdkToken(token: string) {
  SECRETS.add(token);
  SECRETS.add(token.slice(token.lastIndexOf('_') + 1));
}
function addApiKey(secret: string) {
  SECRETS.add(secret);
  SECRETS.add(secret.slice(secret.indexOf('_') + 1));
}

const tokens = {
  revoked: '',
  restricted: '',
  lacking: {} as Record<SdkScope, string>,
  only: {} as Record<SdkScope, string>,
};

interface KeyRef {
  id: string;
  secret: string;
  maskedKey: string;
}
interface ScopeRef {
  id: string;
  name: string;
}
/** A workspace with a scope and a key, plus a way to make fresh ones for destructive RPCs. */
interface Place {
  ws: string;
  scope: ScopeRef;
  key: KeyRef;
  newWorkspace(): Promise<string>;
  newScope(): Promise<ScopeRef>;
  newKey(): Promise<KeyRef>;
}
let A: Place; // visible to unrestricted keys only
let B: Place; // the restricted key's workspace
/** The restricted key's other workspaces, each deleted by it once (DeleteWorkspace per matrix protocol). */
const bSpares: string[] = [];
let ghost: Place; // random ids: nothing exists

async function makeWorkspace(): Promise<string> {
  return (await W.createWorkspace({ workspace: { name: uniq('authz-ws') } })).workspace!.id;
}
async function makeScope(ws: string): Promise<ScopeRef> {
  const s = (await S.createScope({ scope: { workspaceId: ws, name: uniq('scope') } })).scope!;
  return { id: s.id, name: s.name };
}
async function makeKey(ws: string, scope: string): Promise<KeyRef> {
  const r = await K.createKey({
    key: {
      workspaceId: ws,
      customerId: 'cust-secret-details',
      name: 'fixture key',
      metadata: { plan: 'enterprise' },
      grants: [{ scope, actions: [Action.READ] }],
    },
  });
  addApiKey(r.secret);
  return { id: r.key!.id, secret: r.secret, maskedKey: r.key!.maskedKey };
}
async function makePlace(ws: string, newWorkspace: () => Promise<string>): Promise<Place> {
  const scope = await makeScope(ws);
  const key = await makeKey(ws, scope.name);
  return { ws, scope, key, newWorkspace, newScope: () => makeScope(ws), newKey: () => makeKey(ws, scope.name) };
}

beforeAll(async () => {
  // A wrong secret for the admin key's id is sent once per RPC: this file checks
  // what each RPC answers, not the per-id throttle (sdk-key-throttle.test.ts does).
  ts = await startTestServer({ KEYWARD_SDK_KEY_ID_FAILURE_BURST: '100000' });
  addSdkToken(ts.adminToken);
  W = client(WorkspaceService, ts);
  S = client(ScopeService, ts);
  K = client(KeyService, ts);
  WH = client(WebhookService, ts);

  A = await makePlace(await makeWorkspace(), makeWorkspace);
  const bWs = await makeWorkspace();
  while (bSpares.length < MATRIX_PROTOCOLS.length) bSpares.push(await makeWorkspace());
  const spares = [...bSpares];
  B = await makePlace(bWs, async () => {
    const spare = spares.shift();
    if (!spare) throw new Error('the restricted key has no spare workspace left');
    return spare;
  });
  ghost = {
    ws: randomUUID(),
    scope: { id: randomUUID(), name: 'ghost' },
    key: { id: randomUUID(), secret: `kw_${base62(49)}`, maskedKey: '' },
    newWorkspace: async () => randomUUID(),
    newScope: async () => ({ id: randomUUID(), name: 'ghost' }),
    newKey: async () => ({ id: randomUUID(), secret: `kw_${base62(49)}`, maskedKey: '' }),
  };

  const issue = async (scopes: string[], workspaceIds: string[] = []) => {
    const t = await ts.sdkKey(scopes, workspaceIds);
    addSdkToken(t);
    return t;
  };
  for (const s of SDK_SCOPES) {
    tokens.lacking[s] = await issue(SDK_SCOPES.filter((x) => x !== s));
    tokens.only[s] = await issue([s]);
  }
  tokens.restricted = await issue(['*'], [B.ws, ...bSpares]);

  // Used once (so it is remembered), then revoked the way the CLI does it.
  tokens.revoked = await issue(['*']);
  await client(WorkspaceService, ts, { token: tokens.revoked }).listWorkspaces({});
  await ts.internals.sdkKeys.revoke(sdkKeyId(tokens.revoked));
  ts.internals.auth.forget(sdkKeyId(tokens.revoked));
});

afterAll(async () => {
  await ts?.close();
});

// ---------------------------------------------------------------------------
// Calling any RPC with any authorization header.

type Outcome = { ok: true; res: any } | { ok: false; error: ConnectError };
type AnyClient = Record<string, (req: unknown, opts: CallOptions) => Promise<unknown>>;
const clients = new Map<string, AnyClient>();

function anyClient(service: DescService): AnyClient {
  const cacheKey = `${service.typeName} ${protocol}`;
  let c = clients.get(cacheKey);
  if (!c) {
    // No token: each call sets its own authorization header, or none.
    c = createClient(service, transport(ts.baseUrl, protocol)) as unknown as AnyClient;
    clients.set(cacheKey, c);
  }
  return c;
}

async function call(rpc: Rpc, authorization: string | undefined, req: unknown): Promise<Outcome> {
  try {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    const res = (await anyClient(rpc.service)[rpc.method.localName]!(req, { headers })) as any;
    const shown = clone(rpc.method.output, res) as any;
    if (typeof shown.secret === 'string') shown.secret = '';
    if (typeof shown.signingSecret === 'string') shown.signingSecret = '';
    // The once-only credentials CreateSdkKey and CreatePortalSession return (and ExchangeKey's JWT).
    if (typeof shown.token === 'string') shown.token = '';
    RESPONSES.push({ rpc: rpc.name, json: toJsonString(rpc.method.output, shown) });
    return { ok: true, res };
  } catch (e) {
    const error = ConnectError.from(e);
    ERRORS.push({ rpc: rpc.name, error });
    return { ok: false, error };
  }
}

const bearer = (token: string) => `Bearer ${token}`;

function expectCode(o: Outcome, code: Code): ConnectError {
  if (o.ok) throw new Error(`expected ${Code[code]}, got success: ${JSON.stringify(o.res, (_k, v) => (typeof v === 'bigint' ? `${v}` : v))}`);
  expect(Code[o.error.code], o.error.rawMessage).toBe(Code[code]);
  return o.error;
}

function expectOk(o: Outcome): any {
  if (!o.ok) throw new Error(`expected success, got ${Code[o.error.code]}: ${o.error.rawMessage}`);
  return o.res;
}

/** The message with ids blanked, to compare errors about different resources. */
const shape = (e: ConnectError) => e.rawMessage.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>');

async function expectNotFound(p: Promise<unknown>) {
  await expect(p).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.NotFound);
}

// ---------------------------------------------------------------------------
// A valid request for each RPC, in a given place. `check` asserts a success
// response; `intact` asserts, after a refused call, that nothing changed.

interface Built {
  req: unknown;
  check(res: any): void | Promise<void>;
  intact?(): Promise<void>;
}
type Builder = (p: Place) => Promise<Built>;

async function listAllWorkspaceNames() {
  return (await W.listWorkspaces({ pageSize: 1000 })).workspaces.map((w) => w.name);
}
/** Gives a real workspace a webhook (to read or delete); nothing for the ghost. */
async function withWebhook(p: Place): Promise<string> {
  const url = `http://127.0.0.1:9/${uniq('hook')}`;
  if (p !== ghost) {
    const r = await WH.setWebhook({ webhook: { workspaceId: p.ws, url } });
    if (r.signingSecret) SECRETS.add(r.signingSecret);
  }
  return url;
}
const webhookUrl = (ws: string) =>
  WH.getWebhook({ workspaceId: ws }).then(
    (r) => r.webhook!.url,
    () => undefined,
  );
const anHourAgo = () => timestampFromDate(new Date(Date.now() - 3_600_000));

async function keyUnchanged(k: KeyRef) {
  const got = (await K.getKey({ id: k.id })).key!;
  expect(got.state).toBe(KeyState.ACTIVE);
  expect(got.maskedKey).toBe(k.maskedKey);
}

const BUILDERS = {
  'WorkspaceService/CreateWorkspace': async () => {
    const name = uniq('created');
    return {
      req: { workspace: { name } },
      check: (r) => expect(r.workspace).toMatchObject({ name, keyPrefix: 'kw' }),
      intact: async () => expect(await listAllWorkspaceNames()).not.toContain(name),
    };
  },
  'WorkspaceService/GetWorkspace': async (p) => ({
    req: { id: p.ws },
    check: (r) => expect(r.workspace.id).toBe(p.ws),
  }),
  'WorkspaceService/ListWorkspaces': async (p) => ({
    req: { pageSize: 1000 },
    check: (r) => expect(r.workspaces.map((w: { id: string }) => w.id)).toContain(p.ws),
  }),
  'WorkspaceService/UpdateWorkspace': async (p) => {
    const name = uniq('renamed');
    return {
      req: { workspace: { id: p.ws, name }, updateMask: { paths: ['name'] } },
      check: (r) => expect(r.workspace).toMatchObject({ id: p.ws, name }),
      intact: async () => expect((await W.getWorkspace({ id: p.ws })).workspace!.name).not.toBe(name),
    };
  },
  'WorkspaceService/DeleteWorkspace': async (p) => {
    const id = await p.newWorkspace();
    return {
      req: { id },
      check: () => expectNotFound(W.getWorkspace({ id })),
      intact: async () => expect((await W.getWorkspace({ id })).workspace!.id).toBe(id),
    };
  },
  'ScopeService/CreateScope': async (p) => {
    const name = uniq('created');
    return {
      req: { scope: { workspaceId: p.ws, name, description: 'made by the matrix' } },
      check: (r) => expect(r.scope).toMatchObject({ workspaceId: p.ws, name }),
      intact: async () => expect((await S.listScopes({ workspaceId: p.ws, pageSize: 1000 })).scopes.map((s) => s.name)).not.toContain(name),
    };
  },
  'ScopeService/GetScope': async (p) => ({
    req: { id: p.scope.id },
    check: (r) => expect(r.scope).toMatchObject({ id: p.scope.id, name: p.scope.name, workspaceId: p.ws }),
  }),
  'ScopeService/ListScopes': async (p) => ({
    req: { workspaceId: p.ws, pageSize: 1000 },
    check: (r) => expect(r.scopes.map((s: { id: string }) => s.id)).toContain(p.scope.id),
  }),
  'ScopeService/UpdateScope': async (p) => {
    const description = uniq('described');
    return {
      req: { scope: { id: p.scope.id, description }, updateMask: { paths: ['description'] } },
      check: (r) => expect(r.scope).toMatchObject({ id: p.scope.id, name: p.scope.name, description }),
      intact: async () => expect((await S.getScope({ id: p.scope.id })).scope!.description).not.toBe(description),
    };
  },
  'ScopeService/DeleteScope': async (p) => {
    const s = await p.newScope();
    return {
      req: { id: s.id },
      check: () => expectNotFound(S.getScope({ id: s.id })),
      intact: async () => expect((await S.getScope({ id: s.id })).scope!.name).toBe(s.name),
    };
  },
  'KeyService/CreateKey': async (p) => {
    const name = uniq('created');
    return {
      req: { key: { workspaceId: p.ws, customerId: 'cust-new', name, grants: [{ scope: p.scope.name, actions: [Action.READ] }] } },
      check: (r) => {
        addApiKey(r.secret);
        expect(r.secret).toMatch(/^kw_[0-9A-Za-z]{49}$/);
        expect(r.key).toMatchObject({ workspaceId: p.ws, name, state: KeyState.ACTIVE });
      },
      intact: async () => expect((await K.listKeys({ workspaceId: p.ws, pageSize: 1000 })).keys.map((k) => k.name)).not.toContain(name),
    };
  },
  'KeyService/ImportKeys': async (p) => {
    const name = uniq('imported');
    const plaintext = `acme_live_${randomUUID().replace(/-/g, '')}`;
    addApiKey(plaintext);
    return {
      req: { workspaceId: p.ws, keys: [{ key: { name, scopes: [`${p.scope.name}:read`] }, secret: { case: 'plaintext', value: plaintext } }] },
      check: (r) => expect(r.keys.map((k: { name: string; workspaceId: string }) => [k.name, k.workspaceId])).toEqual([[name, p.ws]]),
      intact: async () => expect((await K.listKeys({ workspaceId: p.ws, pageSize: 1000 })).keys.map((k) => k.name)).not.toContain(name),
    };
  },
  'KeyService/GetKey': async (p) => ({
    req: { id: p.key.id },
    check: (r) => expect(r.key).toMatchObject({ id: p.key.id, workspaceId: p.ws, maskedKey: p.key.maskedKey }),
  }),
  'KeyService/ListKeys': async (p) => ({
    req: { workspaceId: p.ws, pageSize: 1000 },
    check: (r) => expect(r.keys.map((k: { id: string }) => k.id)).toContain(p.key.id),
  }),
  'KeyService/UpdateKey': async (p) => {
    const description = uniq('described');
    return {
      req: { key: { id: p.key.id, description }, updateMask: { paths: ['description'] } },
      check: (r) => expect(r.key).toMatchObject({ id: p.key.id, description }),
      intact: async () => expect((await K.getKey({ id: p.key.id })).key!.description).not.toBe(description),
    };
  },
  'KeyService/RotateKey': async (p) => {
    const k = await p.newKey();
    return {
      req: { id: k.id, gracePeriod: { seconds: 60n } },
      check: (r) => {
        addApiKey(r.secret);
        expect(r.key.id).toBe(k.id);
        expect(r.secret).not.toBe(k.secret);
      },
      intact: () => keyUnchanged(k),
    };
  },
  'KeyService/RevokeKey': async (p) => {
    const k = await p.newKey();
    return {
      req: { id: k.id },
      check: (r) => expect(r.key).toMatchObject({ id: k.id, state: KeyState.REVOKED }),
      intact: () => keyUnchanged(k),
    };
  },
  'KeyService/DeleteKey': async (p) => {
    const k = await p.newKey();
    return {
      req: { id: k.id },
      check: () => expectNotFound(K.getKey({ id: k.id })),
      intact: () => keyUnchanged(k),
    };
  },
  'KeyService/VerifyKey': async (p) => ({
    req: { key: p.key.secret, requiredPermissions: [`${p.scope.name}:read`], workspaceId: p.ws },
    check: (r) => expect(r).toMatchObject({ valid: true, code: VerifyCode.VALID, keyId: p.key.id, workspaceId: p.ws }),
  }),
  'UsageService/GetKeyUsage': async (p) => ({
    req: { keyId: p.key.id, startTime: anHourAgo() },
    check: (r) => expect(typeof r.total).toBe('bigint'),
  }),
  'UsageService/GetWorkspaceUsage': async (p) => ({
    req: { workspaceId: p.ws, startTime: anHourAgo() },
    check: (r) => expect(typeof r.total).toBe('bigint'),
  }),
  'AuditService/ListAuditEvents': async (p) => ({
    req: { workspaceId: p.ws, pageSize: 1000 },
    check: (r) => {
      const events = r.events as { workspaceId: string; resourceId: string; action: string }[];
      expect(events.every((e) => e.workspaceId === p.ws)).toBe(true);
      expect(events.some((e) => e.action === 'key.create' && e.resourceId === p.key.id)).toBe(true);
    },
  }),
  'WebhookService/SetWebhook': async (p) => {
    const url = `https://example.test/${uniq('hook')}`;
    return {
      req: { webhook: { workspaceId: p.ws, url } },
      check: (r) => {
        if (r.signingSecret) SECRETS.add(r.signingSecret);
        expect(r.webhook).toMatchObject({ workspaceId: p.ws, url, expiringNoticeDays: 7 });
      },
      intact: async () => expect(await webhookUrl(p.ws)).not.toBe(url),
    };
  },
  'WebhookService/GetWebhook': async (p) => {
    const url = await withWebhook(p);
    return {
      req: { workspaceId: p.ws },
      check: (r) => expect(r.webhook).toMatchObject({ workspaceId: p.ws, url }),
    };
  },
  'WebhookService/DeleteWebhook': async (p) => {
    const url = await withWebhook(p);
    return {
      req: { workspaceId: p.ws },
      check: async () => expect(await webhookUrl(p.ws)).toBeUndefined(),
      intact: async () => expect(await webhookUrl(p.ws)).toBe(url),
    };
  },
  'WebhookService/ListWebhookDeliveries': async (p) => {
    const eventId = await webhookEventIn(p);
    return {
      req: { workspaceId: p.ws, pageSize: 1000 },
      check: (r) => expect(r.deliveries.map((d: { eventId: string }) => d.eventId)).toContain(eventId),
    };
  },
  'WebhookService/RedeliverWebhookEvent': async (p) => {
    const eventId = await webhookEventIn(p);
    return {
      req: { workspaceId: p.ws, eventId },
      check: (r) => expect(r.delivery).toMatchObject({ eventId, attempts: 0 }),
    };
  },
  'WebhookService/SendTestEvent': async (p) => {
    await withWebhook(p);
    const before = await testEventsIn(p);
    return {
      req: { workspaceId: p.ws },
      // The receiver, 127.0.0.1:9, is refused (a private address): an outcome, recorded as failed.
      check: (r) => {
        expect(r).toMatchObject({ delivered: false, httpStatus: 0, delivery: { eventType: 'webhook.test', state: DeliveryState.FAILED, attempts: 1 } });
        expect(r.error).toMatch(/^refused: /);
      },
      intact: async () => expect(await testEventsIn(p)).toBe(before),
    };
  },
  'TokenService/ExchangeKey': async (p) => ({
    req: { key: p.key.secret, requiredPermissions: [`${p.scope.name}:read`], workspaceId: p.ws },
    check: (r) => {
      expect(r).toMatchObject({ code: VerifyCode.VALID, keyId: p.key.id });
      expect(r.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    },
  }),
  'TokenService/ExchangeOwnKey': async (p) => ({
    // Called with SDK keys by the matrix (all refused); with the key itself below.
    req: { requiredPermissions: [`${p.scope.name}:read`], workspaceId: p.ws },
    check: (r) => {
      expect(r).toMatchObject({ keyId: p.key.id, workspaceId: p.ws, permissions: [`${p.scope.name}:read`] });
      expect(r.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    },
  }),
  'SdkKeyService/GetCurrentSdkKey': async () => ({
    req: {},
    check: (r) => {
      expect(r.sdkKey.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.sdkKey.scopes.length).toBeGreaterThan(0);
    },
  }),
  'SdkKeyService/CreateSdkKey': async (p) => {
    const name = uniq('sdk');
    return {
      // The one scope every caller that may create SDK keys holds.
      req: { sdkKey: { name, scopes: ['sdk_keys:write'], workspaceIds: [p.ws] } },
      check: (r) => {
        addSdkToken(r.token);
        expect(r.token).toMatch(/^kws_/);
        expect(r.sdkKey).toMatchObject({ name, scopes: ['sdk_keys:write'], workspaceIds: [p.ws] });
      },
      intact: async () => expect((await ts.internals.sdkKeys.list()).map((k) => k.name)).not.toContain(name),
    };
  },
  'SdkKeyService/ListSdkKeys': async (p) => {
    const id = await sdkKeyIn(p);
    return {
      req: { pageSize: 1000 },
      check: (r) => expect(r.sdkKeys.map((k: { id: string }) => k.id)).toContain(id),
    };
  },
  'SdkKeyService/RevokeSdkKey': async (p) => {
    const id = await sdkKeyIn(p);
    return {
      req: { id },
      check: (r) => expect(r.sdkKey.revokeTime).toBeDefined(),
      intact: async () => expect((await ts.internals.sdkKeys.list()).find((k) => k.id === id)?.revokeTime).toBeNull(),
    };
  },
  'PortalService/CreatePortalSession': async (p) => ({
    req: { workspaceId: p.ws, customerId: 'cust-portal', allowedGrants: [{ scope: p.scope.name, actions: [Action.READ] }], ttl: { seconds: 120n } },
    check: (r) => {
      SECRETS.add(r.token);
      expect(r.token).toMatch(/^kwp_[0-9A-Za-z]{43}$/);
      expect(r.expireTime).toBeDefined();
    },
  }),
  'PortalService/GetPortalSession': async () => ({
    req: {},
    check: () => {
      throw new Error('no SDK key may read a portal session');
    },
  }),
} satisfies Record<RpcName, Builder>;

/** A webhook event in the place's workspace (a key.revoked of a new key); a random id for the ghost place. */
async function webhookEventIn(p: Place): Promise<string> {
  if (p === ghost) return randomUUID();
  await withWebhook(p);
  const k = await p.newKey();
  await K.revokeKey({ id: k.id });
  const { deliveries } = await WH.listWebhookDeliveries({ workspaceId: p.ws, pageSize: 1000 });
  return deliveries.find((d) => d.keyId === k.id)!.eventId;
}

/** How many webhook.test events the place's workspace has (0 for the ghost place). */
async function testEventsIn(p: Place): Promise<number> {
  if (p === ghost) return 0;
  const { deliveries } = await WH.listWebhookDeliveries({ workspaceId: p.ws, pageSize: 1000 });
  return deliveries.filter((d) => d.eventType === 'webhook.test').length;
}

/** A new SDK key restricted to the place's workspace (a random id for the ghost place). */
async function sdkKeyIn(p: Place): Promise<string> {
  if (p === ghost) return randomUUID();
  const token = await ts.sdkKey(['workspace:read'], [p.ws]);
  addSdkToken(token);
  return sdkKeyId(token);
}

function builderOf(name: string): Builder {
  const b = (BUILDERS as Record<string, Builder>)[name];
  if (!b) throw new Error(`${name} has no request builder in security.test.ts`);
  return b;
}

// ---------------------------------------------------------------------------

describe('the authorization matrix', () => {
  it('enumerates the nine services and their 33 RPCs', () => {
    expect(SERVICES.map((s) => s.typeName).sort()).toEqual([
      'keyward.v1.AuditService',
      'keyward.v1.KeyService',
      'keyward.v1.PortalService',
      'keyward.v1.ScopeService',
      'keyward.v1.SdkKeyService',
      'keyward.v1.TokenService',
      'keyward.v1.UsageService',
      'keyward.v1.WebhookService',
      'keyward.v1.WorkspaceService',
    ]);
    expect(RPCS.length).toBeGreaterThanOrEqual(33);
    for (const r of RPCS) expect(r.method.methodKind, r.name).toBe('unary');
  });

  it('has a row and a request builder for every RPC, and none for an RPC that does not exist', () => {
    const names = RPCS.map((r) => r.name).sort();
    expect(
      names.filter((n) => !(n in AUTHZ_MATRIX)),
      'RPCs without a row in authz-matrix.ts',
    ).toEqual([]);
    expect(
      Object.keys(AUTHZ_MATRIX).filter((n) => !names.includes(n)),
      'rows naming no RPC',
    ).toEqual([]);
    expect(
      names.filter((n) => !(n in BUILDERS)),
      'RPCs without a request builder',
    ).toEqual([]);
  });

  it('every other generated service is one of gRPC’s standard services, listed as open and served as such', () => {
    const others = ALL_GENERATED.filter((s) => !SERVICES.includes(s)).map((s) => s.typeName);
    expect(others.sort()).toEqual([...OPEN_SERVICES].sort());
    expect(STANDARD_SERVICES.map((s) => s.typeName).sort()).toEqual([...OPEN_SERVICES].sort());
    expect(KEYWARD_SERVICES.map((s) => s.typeName).sort()).toEqual(SERVICES.map((s) => s.typeName).sort());
  });

  it('the open services answer without an SDK key, and Keyward’s never do', async () => {
    const health = createClient(Health, transport(ts.baseUrl, 'grpc'));
    expect((await health.check({ service: '' })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const reflection = createClient(ServerReflection, transport(ts.baseUrl, 'grpc'));
    async function* one() {
      yield { host: '', messageRequest: { case: 'listServices' as const, value: '' } };
    }
    const answers = [];
    for await (const a of reflection.serverReflectionInfo(one())) answers.push(a);
    expect(answers[0]?.messageResponse.case).toBe('listServicesResponse');
    const verify = createClient(KeyService, transport(ts.baseUrl, 'grpc'));
    await expect(verify.verifyKey({ key: A.key.secret })).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Unauthenticated);
  });

  it('agrees with the scope each RPC documents in its proto comment', () => {
    const documented = scopesFromProtoComments();
    for (const r of RPCS) expect(documented.get(r.name), r.name).toBe(rowOf(r.name).scope);
  });
});

const CREDENTIALS: { name: string; header: () => string | undefined; bcrypt?: boolean }[] = [
  { name: 'no authorization header', header: () => undefined },
  { name: 'malformed SDK key ("Bearer nope")', header: () => 'Bearer nope' },
  { name: 'well-formed unknown SDK key', header: () => bearer(formatSdkKey(randomUUID(), newSdkKeySecret())) },
  { name: 'real SDK key id with a wrong secret', header: () => bearer(formatSdkKey(sdkKeyId(ts.adminToken), newSdkKeySecret())), bcrypt: true },
  { name: 'valid SDK key without the Bearer scheme', header: () => `Basic ${ts.adminToken}` },
  { name: 'revoked SDK key', header: () => bearer(tokens.revoked) },
];

/** The gRPC code of a refusal in the EXPECTED table. */
function codeOf(e: Expected): Code {
  const codes: Partial<Record<Expected, Code>> = { UNAUTHENTICATED: Code.Unauthenticated, PERMISSION_DENIED: Code.PermissionDenied, NOT_FOUND: Code.NotFound };
  const c = codes[e];
  if (c === undefined) throw new Error(`${e} is not a refusal`);
  return c;
}

describe.each(MATRIX_PROTOCOLS)('over %s', (proto) => {
  beforeAll(() => {
    protocol = proto;
  });

  describe.each(RPCS)('$name', (rpc) => {
    const scope = (AUTHZ_MATRIX as Record<string, AuthzRow>)[rpc.name]?.scope ?? '<missing row>';

    for (const cred of CREDENTIALS) {
      // A wrong secret costs a bcrypt compare per call. Every RPC shares one
      // auth interceptor, so later protocols check it only for VerifyKey,
      // which may be served by a path of its own.
      if (cred.bcrypt && proto !== MATRIX_PROTOCOLS[0] && rpc.name !== 'KeyService/VerifyKey') continue;
      it(`${cred.name} → UNAUTHENTICATED`, async () => {
        const row = rowOf(rpc.name);
        const built = await builderOf(rpc.name)(A);
        const header = cred.header();
        if (header) SECRETS.add(header.replace(/^\S+\s+/, ''));
        expectCode(await call(rpc, header, built.req), codeOf(EXPECTED[row.access].unauthenticated));
        await built.intact?.();
      });
    }

    it(`SDK key with every scope but ${scope} → PERMISSION_DENIED`, async () => {
      const row = rowOf(rpc.name);
      const built = await builderOf(rpc.name)(A);
      const o = await call(rpc, bearer(tokens.lacking[row.scope ?? 'sdk_keys:write']), built.req);
      const expected = EXPECTED[row.access].missingScope;
      if (expected === 'OK') {
        await built.check(expectOk(o));
        return;
      }
      const e = expectCode(o, codeOf(expected));
      if (row.scope) expect(e.rawMessage).toContain(row.scope);
      await built.intact?.();
    });

    it('SDK key restricted to another workspace → refused without revealing anything', async () => {
      const row = rowOf(rpc.name);
      const built = await builderOf(rpc.name)(A);
      const o = await call(rpc, bearer(tokens.restricted), built.req);
      const expected = EXPECTED[row.access].otherWorkspace;
      switch (row.access) {
        case 'create-workspace':
        case 'portal-only':
        case 'own-api-key':
          expectCode(o, codeOf(expected));
          break;
        case 'self':
          await built.check(expectOk(o));
          break;
        case 'list-sdk-keys': {
          expect(expected).toBe('OK_OWN');
          const own = new Set([B.ws, ...bSpares]);
          const listed: { workspaceIds: string[] }[] = expectOk(o).sdkKeys;
          expect(listed.length).toBeGreaterThan(0);
          for (const k of listed) expect(k.workspaceIds.length > 0 && k.workspaceIds.every((w) => own.has(w)), JSON.stringify(k.workspaceIds)).toBe(true);
          break;
        }
        case 'list-workspaces': {
          expect(expected).toBe('OK_OWN');
          const ids: string[] = expectOk(o).workspaces.map((w: { id: string }) => w.id);
          expect(ids).toContain(B.ws);
          expect(
            ids.every((id) => id === B.ws || bSpares.includes(id)),
            `restricted listing returned ${ids}`,
          ).toBe(true);
          // Paging one at a time never reaches another workspace either.
          const seen: string[] = [];
          let pageToken = '';
          do {
            const page = expectOk(await call(rpc, bearer(tokens.restricted), { pageSize: 1, pageToken }));
            seen.push(...page.workspaces.map((w: { id: string }) => w.id));
            pageToken = page.nextPageToken;
          } while (pageToken !== '' && seen.length < 10);
          expect(seen.sort()).toEqual([...ids].sort());
          break;
        }
        case 'by-id':
        case 'names-workspace': {
          const code = codeOf(expected);
          const other = expectCode(o, code);
          // Exactly what the same key gets for a resource that does not exist.
          const absent = expectCode(await call(rpc, bearer(tokens.restricted), (await builderOf(rpc.name)(ghost)).req), code);
          expect(shape(other)).toBe(shape(absent));
          if (row.access === 'by-id') {
            // ... and what an unrestricted key gets for one that does not exist.
            const adminAbsent = expectCode(await call(rpc, bearer(ts.adminToken), (await builderOf(rpc.name)(ghost)).req), code);
            expect(shape(other)).toBe(shape(adminAbsent));
          }
          break;
        }
      }
      await built.intact?.();
    });

    it(`SDK key with only ${scope} → success (GetPortalSession: PERMISSION_DENIED)`, async () => {
      const row = rowOf(rpc.name);
      const built = await builderOf(rpc.name)(A);
      const o = await call(rpc, bearer(tokens.only[row.scope ?? 'workspace:read']), built.req);
      const expected = EXPECTED[row.access].rightKey;
      if (expected === 'OK') await built.check(expectOk(o));
      else expectCode(o, codeOf(expected));
    });

    it('SDK key restricted to the workspace it addresses → success (CreateWorkspace: PERMISSION_DENIED)', async () => {
      const row = rowOf(rpc.name);
      const built = await builderOf(rpc.name)(B);
      const o = await call(rpc, bearer(tokens.restricted), built.req);
      const expected = EXPECTED[row.access].restrictedToThisWorkspace;
      if (expected !== 'OK') {
        expectCode(o, codeOf(expected));
        await built.intact?.();
      } else {
        await built.check(expectOk(o));
      }
    });

    if (rowOf(rpc.name).access === 'own-api-key') {
      it('the API key itself → success; another workspace named → UNAUTHENTICATED, as an unknown key', async () => {
        const built = await builderOf(rpc.name)(A);
        await built.check(expectOk(await call(rpc, bearer(A.key.secret), built.req)));
        const other = expectCode(await call(rpc, bearer(A.key.secret), (await builderOf(rpc.name)(B)).req), Code.Unauthenticated);
        const unknown = expectCode(await call(rpc, bearer(ghost.key.secret), built.req), Code.Unauthenticated);
        expect(shape(other)).toBe(shape(unknown));
      });
    }
  });

  describe('VerifyKey across workspaces', () => {
    const verify = (token: string, req: { key: string; requiredPermissions?: string[]; workspaceId?: string }) =>
      client(KeyService, ts, { token, protocol }).verifyKey(req);
    const NOTHING_ABOUT_THE_KEY = {
      valid: false,
      code: VerifyCode.NOT_FOUND,
      keyId: '',
      workspaceId: '',
      customerId: '',
      name: '',
      permissions: [],
      metadata: {},
      state: KeyState.UNSPECIFIED,
    };
    const expectNothingAboutTheKey = (r: Awaited<ReturnType<typeof verify>>) => {
      expect(r).toMatchObject(NOTHING_ABOUT_THE_KEY);
      expect(r.expireTime).toBeUndefined();
    };

    it('a restricted SDK key verifying another workspace’s key gets NOT_FOUND and no key details', async () => {
      const r = await verify(tokens.restricted, { key: A.key.secret });
      expectNothingAboutTheKey(r);
      expect(toJsonString(KeyService.method.verifyKey.output, r)).not.toContain(A.key.id);
    });

    it('naming its own workspace does not help it either', async () => {
      expectNothingAboutTheKey(await verify(tokens.restricted, { key: A.key.secret, workspaceId: B.ws }));
    });

    it('an unrestricted key naming another workspace_id gets NOT_FOUND and no key details', async () => {
      expectNothingAboutTheKey(await verify(ts.adminToken, { key: A.key.secret, workspaceId: B.ws }));
    });

    it('a restricted SDK key naming another workspace_id is PERMISSION_DENIED, whether the workspace exists or not', async () => {
      const codes = await Promise.all(
        [A.ws, randomUUID()].map((workspaceId) =>
          verify(tokens.restricted, { key: A.key.secret, workspaceId }).then(
            () => undefined,
            (e) => ConnectError.from(e),
          ),
        ),
      );
      expect(codes.map((e) => e && Code[e.code])).toEqual(['PermissionDenied', 'PermissionDenied']);
      expect(shape(codes[0]!)).toBe(shape(codes[1]!));
    });

    it('a restricted SDK key verifies its own workspace’s key with details', async () => {
      const r = await verify(tokens.restricted, { key: B.key.secret, requiredPermissions: [`${B.scope.name}:read`] });
      expect(r).toMatchObject({
        valid: true,
        code: VerifyCode.VALID,
        keyId: B.key.id,
        workspaceId: B.ws,
        customerId: 'cust-secret-details',
        metadata: { plan: 'enterprise' },
        permissions: [`${B.scope.name}:read`],
      });
    });

    it('api_keys:verify alone cannot read or change keys', async () => {
      const verifier = tokens.only['api_keys:verify'];
      const c = client(KeyService, ts, { token: verifier, protocol });
      expect((await c.verifyKey({ key: A.key.secret })).valid).toBe(true);
      for (const p of [c.getKey({ id: A.key.id }), c.listKeys({ workspaceId: A.ws }), c.revokeKey({ id: A.key.id })]) {
        await expect(p).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.PermissionDenied);
      }
      await keyUnchanged(A.key);
    });
  });
});

describe('SDK key revocation', () => {
  it('a revoked SDK key that was in use is refused within about a second, even without forget()', async () => {
    const token = await ts.sdkKey(['workspace:read']);
    addSdkToken(token);
    const c = client(WorkspaceService, ts, { token });
    await c.listWorkspaces({});
    await ts.internals.sdkKeys.revoke(sdkKeyId(token));
    const revokedAt = Date.now();
    let code: Code | undefined;
    while (Date.now() - revokedAt < 3000) {
      code = await c.listWorkspaces({}).then(
        () => undefined,
        (e) => ConnectError.from(e).code,
      );
      if (code !== undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(code).toBe(Code.Unauthenticated);
    expect(Date.now() - revokedAt).toBeLessThan(2000);
  });
});

describe('secrets', () => {
  it('the fixtures survived every refused call', async () => {
    for (const p of [A, B]) {
      await keyUnchanged(p.key);
      const r = await K.verifyKey({ key: p.key.secret, requiredPermissions: [`${p.scope.name}:read`] });
      expect(r.valid).toBe(true);
      expect((await S.getScope({ id: p.scope.id })).scope!.name).toBe(p.scope.name);
    }
    expect((await W.getWorkspace({ id: A.ws })).workspace!.id).toBe(A.ws);
  });

  it('no error message, error metadata, log line or read response contains an SDK key or API key plaintext', () => {
    expect(ERRORS.length).toBeGreaterThan(RPCS.length * CREDENTIALS.length);
    expect(SECRETS.size).toBeGreaterThan(20);
    const leaks: string[] = [];
    const scan = (where: string, text: string) => {
      for (const s of SECRETS) if (s.length >= 8 && text.includes(s)) leaks.push(`${where}: ${s.slice(0, 12)}…`);
    };
    for (const { rpc, error } of ERRORS) {
      scan(`${rpc} error message`, error.rawMessage);
      for (const [k, v] of error.metadata) scan(`${rpc} error header ${k}`, v);
      expect(error.rawMessage, rpc).not.toMatch(/\n\s+at /); // no stack traces
      expect(error.code, `${rpc}: ${error.rawMessage}`).not.toBe(Code.Internal);
    }
    for (const { rpc, json } of RESPONSES) scan(`${rpc} response`, json);
    for (const line of ts.logs) scan('log', line);
    expect(leaks).toEqual([]);
  });
});
