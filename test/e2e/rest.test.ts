// REST paths (google.api.http in proto/, transcoded by src/http/rest.ts) on a
// real server over real sockets: the seeds' curl examples as written, every
// RPC reachable by its path, answers and errors identical to Connect's, query
// parameters, PATCH masks, and the plain-HTTP habits (wrong content type,
// method or path; an API key where an SDK key belongs).
import { randomUUID } from 'node:crypto';
import { getOption, hasOption } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../../gen/google/api/annotations_pb.js';
import { formatSdkKey, newSdkKeySecret, parseSdkKey } from '../../src/credentials/sdk-key.js';
import { RPCS } from '../support/descriptors.js';
import { recordSecret } from '../support/hygiene.js';
import { startTestServer, type TestServer } from '../support/server.js';

type Json = Record<string, any>;

let ts: TestServer;
let ws: string;

interface Reply {
  status: number;
  json: Json;
  headers: Headers;
}

async function rest(
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string | null; headers?: Record<string, string>; raw?: string } = {},
): Promise<Reply> {
  const token = opts.token === undefined ? ts.adminToken : opts.token;
  const headers: Record<string, string> = { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...opts.headers };
  if (body !== undefined && opts.raw === undefined) headers['content-type'] ??= 'application/json';
  const res = await fetch(`${ts.baseUrl}${path}`, { method, headers, body: opts.raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await res.text();
  return { status: res.status, json: text === '' ? {} : (JSON.parse(text) as Json), headers: res.headers };
}

/** The same RPC over Connect JSON, for comparing answers. */
const connect = (rpc: string, body: unknown, token: string | null = ts.adminToken) =>
  rest('POST', `/keyward.v1.${rpc}`, body, { token, headers: { 'content-type': 'application/json' } });

beforeAll(async () => {
  ts = await startTestServer();
  const created = await rest('POST', '/v1/workspaces', { name: 'rest-acme' });
  expect(created.status).toBe(200);
  ws = created.json.workspace.id;
  expect((await rest('POST', `/v1/workspaces/${ws}/scopes`, { name: 'inference' })).status).toBe(200);
});
afterAll(async () => {
  await ts?.close();
});

describe("the seeds' curl examples, as written", () => {
  it('Openlayer: POST /v1/workspaces/{workspaceId}/api-keys {"name": "My API Key"}', async () => {
    const res = await fetch(`${ts.baseUrl}/v1/workspaces/${ws}/api-keys`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ts.adminToken}`, 'Content-Type': 'application/json' },
      body: '{"name": "My API Key"}',
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as Json;
    recordSecret(json.secret);
    expect(json.secret).toMatch(/^kw_/);
    expect(json.key).toMatchObject({ name: 'My API Key', workspaceId: ws, state: 'KEY_STATE_ACTIVE' });
  });

  it('the AIaaS guide: POST /v1/api-keys {"name": "production-key", "expires_in_days": 90} with an SDK key scoped to one workspace', async () => {
    // The guide's `"scopes": ["inference:read", "inference:write"]` needs permission
    // strings (issue 19 item 2), not part of this change: left out here.
    const scoped = await ts.sdkKey(['api_keys:write', 'api_keys:read'], [ws]);
    const res = await fetch(`${ts.baseUrl}/v1/api-keys`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${scoped}`, 'Content-Type': 'application/json' },
      body: '{"name": "production-key", "expires_in_days": 90}',
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as Json;
    recordSecret(json.secret);
    expect(json.key).toMatchObject({ name: 'production-key', workspaceId: ws });
    const expires = Date.parse(json.key.expireTime) - Date.now();
    expect(Math.abs(expires - 90 * 86_400_000)).toBeLessThan(60_000);
  });
});

describe('relative expiry', () => {
  it('expires_in (a Duration) over REST and Connect; exactly one of the three; the workspace may only be left out by a one-workspace SDK key', async () => {
    const a = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { name: 'd', expiresIn: '3600s' });
    expect(a.status).toBe(200);
    recordSecret(a.json.secret);
    expect(Math.abs(Date.parse(a.json.key.expireTime) - Date.now() - 3_600_000)).toBeLessThan(60_000);
    const b = await connect('KeyService/CreateKey', { key: { workspaceId: ws }, expiresInDays: 1 });
    expect(b.status).toBe(200);
    recordSecret(b.json.secret);
    expect(Math.abs(Date.parse(b.json.key.expireTime) - Date.now() - 86_400_000)).toBeLessThan(60_000);

    const both = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { expires_in_days: 1, expires_in: '60s' });
    expect(both).toMatchObject({ status: 400, json: { code: 'invalid_argument', message: expect.stringMatching(/^expires_in: /) } });
    const withTime = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { expireTime: '2099-01-01T00:00:00Z', expires_in_days: 1 });
    expect(withTime.json.message).toMatch(/^expires_in_days: .*expire_time/);
    expect((await rest('POST', `/v1/workspaces/${ws}/api-keys`, { expires_in_days: -1 })).json.message).toMatch(/^expires_in_days: must be positive/);
    expect((await rest('POST', `/v1/workspaces/${ws}/api-keys`, { expires_in: '-5s' })).json.message).toMatch(/^expires_in: must be positive/);
    const noWorkspace = await rest('POST', '/v1/api-keys', { name: 'x' });
    expect(noWorkspace).toMatchObject({ status: 400, json: { code: 'invalid_argument', message: expect.stringMatching(/^key\.workspace_id: is required/) } });
  });
});

describe('every RPC has a REST path', () => {
  it('each is declared and reaches its handler (an answer with x-request-id, not a routing error)', async () => {
    const id = randomUUID();
    for (const r of RPCS) {
      expect(hasOption(r.method, http), `${r.name} has no google.api.http option`).toBe(true);
      const rule = getOption(r.method, http);
      const method = rule.pattern.case!.toUpperCase();
      const path = (rule.pattern.value as string).replace(/\{[^}]+\}/g, id);
      const res = await rest(method, path, rule.body ? {} : undefined);
      expect(res.headers.get('x-request-id'), `${method} ${path}: ${JSON.stringify(res.json)}`).toBeTruthy();
      expect(res.status, `${method} ${path}`).not.toBe(405);
      if (res.status !== 200) expect(typeof res.json.code, `${method} ${path}`).toBe('string');
    }
  });
});

describe('the same answers and errors as Connect', () => {
  it('unauthenticated, not found, invalid argument, permission denied: same code and message', async () => {
    const missing = randomUUID();
    const pairs: [Promise<Reply>, Promise<Reply>][] = [
      [rest('GET', '/v1/workspaces', undefined, { token: null }), connect('WorkspaceService/ListWorkspaces', {}, null)],
      [rest('GET', '/v1/workspaces', undefined, { token: 'kws_nope' }), connect('WorkspaceService/ListWorkspaces', {}, 'kws_nope')],
      [rest('GET', `/v1/api-keys/${missing}`), connect('KeyService/GetKey', { id: missing })],
      [rest('DELETE', `/v1/scopes/${missing}`), connect('ScopeService/DeleteScope', { id: missing })],
      [rest('POST', '/v1/workspaces', { name: '' }), connect('WorkspaceService/CreateWorkspace', { workspace: { name: '' } })],
      [rest('GET', '/v1/api-keys/not-an-id'), connect('KeyService/GetKey', { id: 'not-an-id' })],
    ];
    for (const [a, b] of pairs) {
      const [r, c] = await Promise.all([a, b]);
      expect(r.status).toBe(c.status);
      expect(r.json.code).toBe(c.json.code);
      expect(r.json.message).toBe(c.json.message);
    }
    const other = (await rest('POST', '/v1/workspaces', { name: 'rest-other' })).json.workspace.id;
    const scoped = await ts.sdkKey(['api_keys:read'], [ws]);
    const [r, c] = await Promise.all([
      rest('GET', `/v1/workspaces/${other}/api-keys`, undefined, { token: scoped }),
      connect('KeyService/ListKeys', { workspaceId: other }, scoped),
    ]);
    expect(r).toMatchObject({ status: 403, json: { code: 'permission_denied', message: c.json.message } });
  });

  it('an API key sent as the SDK key says an SDK key (kws_…) belongs there and API keys are checked with VerifyKey', async () => {
    const created = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { name: 'customer' });
    recordSecret(created.json.secret);
    for (const r of [
      await rest('GET', '/v1/workspaces', undefined, { token: created.json.secret }),
      await connect('WorkspaceService/ListWorkspaces', {}, created.json.secret),
    ]) {
      expect(r.status).toBe(401);
      expect(r.json.code).toBe('unauthenticated');
      expect(r.json.message).toMatch(/SDK key \("Bearer kws_/);
      expect(r.json.message).toMatch(/VerifyKey/);
    }
  });

  it('POST /v1/api-keys:verify answers as VerifyKey does', async () => {
    const created = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { name: 'v', customerId: 'cus_v' });
    recordSecret(created.json.secret);
    const r = await rest('POST', '/v1/api-keys:verify', { key: created.json.secret });
    const c = await connect('KeyService/VerifyKey', { key: created.json.secret });
    expect(r.status).toBe(200);
    expect(r.json).toEqual(c.json);
    expect(r.json).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID', customerId: 'cus_v' });
  });
});

describe('query parameters, PATCH and bodies', () => {
  it('list filters and paging from the query: snake_case or lowerCamelCase, enums by name, times in RFC 3339', async () => {
    const w = (await rest('POST', '/v1/workspaces', { name: 'rest-paging' })).json.workspace.id;
    for (const c of ['cus_a', 'cus_a', 'cus_b']) recordSecret((await rest('POST', `/v1/workspaces/${w}/api-keys`, { customerId: c })).json.secret);
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys`)).json.keys).toHaveLength(3);
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys?customer_id=cus_a`)).json.keys).toHaveLength(2);
    const first = await rest('GET', `/v1/workspaces/${w}/api-keys?customerId=cus_a&page_size=1&state=KEY_STATE_ACTIVE`);
    expect(first.json.keys).toHaveLength(1);
    expect(first.json.nextPageToken).toBeTruthy();
    const second = await rest(
      'GET',
      `/v1/workspaces/${w}/api-keys?customerId=cus_a&page_size=1&state=KEY_STATE_ACTIVE&page_token=${encodeURIComponent(first.json.nextPageToken)}`,
    );
    expect(second.json.keys).toHaveLength(1);
    expect(second.json.keys[0].id).not.toBe(first.json.keys[0].id);
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys?state=KEY_STATE_REVOKED`)).json.keys ?? []).toHaveLength(0);
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys?expire_before=2000-01-01T00:00:00Z`)).json.keys ?? []).toHaveLength(0);
    const audit = await rest('GET', `/v1/audit-events?workspace_id=${w}&action=key.create&start_time=2020-01-01T00:00:00Z`);
    expect(audit.json.events).toHaveLength(3);
    // Wrong values are refused naming the field, unknown parameters naming the parameter.
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys?page_size=-1`)).json).toMatchObject({
      code: 'invalid_argument',
      message: expect.stringMatching(/page_size/),
    });
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys?state=KEY_STATE_BOGUS`)).status).toBe(400);
    expect((await rest('GET', `/v1/workspaces/${w}/api-keys?customr_id=x`)).json).toMatchObject({
      code: 'invalid_argument',
      message: expect.stringMatching(/customr_id/),
    });
  });

  it('PATCH with update_mask in the query changes only those fields; without one, the fields sent', async () => {
    const created = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { name: 'n1', description: 'd1' });
    recordSecret(created.json.secret);
    const id = created.json.key.id;
    const masked = await rest('PATCH', `/v1/api-keys/${id}?update_mask=name`, { name: 'n2', description: 'd2' });
    expect(masked.status).toBe(200);
    expect(masked.json.key).toMatchObject({ name: 'n2', description: 'd1' });
    const inferred = await rest('PATCH', `/v1/api-keys/${id}`, { description: 'd3', enabled: false });
    expect(inferred.json.key).toMatchObject({ name: 'n2', description: 'd3', enabled: false });
    const ws2 = await rest('PATCH', `/v1/workspaces/${ws}`, { name: 'rest-acme-2' });
    expect(ws2.json.workspace).toMatchObject({ id: ws, name: 'rest-acme-2' });
    // Rotate and revoke by their custom methods.
    const rotated = await rest('POST', `/v1/api-keys/${id}:rotate`, { grace_period: '60s' });
    expect(rotated.status).toBe(200);
    recordSecret(rotated.json.secret);
    expect((await rest('POST', `/v1/api-keys/${id}:revoke`)).json.key.state).toBe('KEY_STATE_REVOKED');
    expect((await rest('DELETE', `/v1/api-keys/${id}`)).status).toBe(200);
    expect((await rest('GET', `/v1/api-keys/${id}`)).status).toBe(404);
  });

  it('an unknown JSON field is a 400 naming it; malformed JSON and a body that is no object are 400s', async () => {
    const r = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { nmae: 'x' });
    expect(r).toMatchObject({ status: 400, json: { code: 'invalid_argument', message: expect.stringMatching(/nmae/) } });
    expect(
      (await rest('POST', `/v1/workspaces/${ws}/api-keys`, undefined, { raw: '{"name":', headers: { 'content-type': 'application/json' } })).json,
    ).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/not valid JSON/) });
    expect((await rest('POST', `/v1/workspaces/${ws}/api-keys`, [1])).json).toMatchObject({
      code: 'invalid_argument',
      message: expect.stringMatching(/JSON object/),
    });
  });
});

describe('plain-HTTP habits', () => {
  it('a wrong or missing content type gets a JSON error saying what to send, on REST and RPC paths', async () => {
    const r = await rest('POST', `/v1/workspaces/${ws}/api-keys`, undefined, {
      raw: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(r).toMatchObject({ status: 415, json: { code: 'invalid_argument', message: expect.stringMatching(/content-type: application\/json/) } });
    // Bytes, not a string: fetch would label a string text/plain.
    const rpc = await fetch(`${ts.baseUrl}/keyward.v1.WorkspaceService/ListWorkspaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ts.adminToken}` },
      body: new TextEncoder().encode('{}'),
    });
    expect(rpc.headers.get('content-type')).toBe('application/json');
    expect(rpc.status).toBe(415);
    expect(((await rpc.json()) as Json).message).toMatch(/no content type: send POST with "content-type: application\/json"/);
    const text = await fetch(`${ts.baseUrl}/keyward.v1.WorkspaceService/ListWorkspaces`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(text.status).toBe(415);
    expect(((await text.json()) as Json).message).toMatch(/"text\/plain" is not supported/);
  });

  it('a body over KEYWARD_MAX_REQUEST_BYTES is a 413 in JSON, and the connection serves the next request', async () => {
    const big = await rest('POST', `/v1/workspaces/${ws}/api-keys`, { name: 'x', description: 'y'.repeat(2 * 1024 * 1024) });
    expect(big).toMatchObject({ status: 413, json: { code: 'resource_exhausted', message: expect.stringMatching(/larger than/) } });
    expect((await rest('GET', '/v1/workspaces')).status).toBe(200);
  });

  it('a wrong method and an unknown path get JSON errors', async () => {
    const get = await fetch(`${ts.baseUrl}/keyward.v1.WorkspaceService/ListWorkspaces`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(((await get.json()) as Json).message).toMatch(/takes POST, not GET/);
    const put = await rest('PUT', `/v1/api-keys/${randomUUID()}`, {});
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('DELETE, GET, PATCH');
    expect(put.json.message).toMatch(/takes DELETE, GET, PATCH, not PUT/);
    const unknown = await rest('GET', '/v1/nothing-here');
    expect(unknown).toMatchObject({ status: 404, json: { code: 'not_found', message: expect.stringMatching(/openapi\.json/) } });
    const root404 = await rest('GET', '/nothing');
    expect(root404).toMatchObject({ status: 404, json: { code: 'not_found' } });
  });

  it('GET / answers JSON links; a browser is redirected to the console', async () => {
    const r = await rest('GET', '/', undefined, { token: null });
    expect(r.status).toBe(200);
    expect(r.json.links).toMatchObject({ console: '/console/', openapi: '/openapi.json' });
    const browser = await fetch(`${ts.baseUrl}/`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(browser.status).toBe(302);
    expect(browser.headers.get('location')).toBe('/console/');
  });

  it('/v1/authorize stays forward auth', async () => {
    const r = await rest('GET', '/v1/authorize', undefined, { token: null });
    expect(r.status).toBe(401);
    expect(r.headers.get('x-keyward-code')).toBeTruthy();
  });
});

describe('portal tokens, CORS and throttling over REST (a server with portal origins and a small SDK-key failure burst)', () => {
  const ORIGIN = 'https://app.example.com';
  let ps: TestServer;
  let pw: string;
  const at = (path: string, init: RequestInit = {}) => fetch(`${ps.baseUrl}${path}`, init);
  const admin = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${ps.adminToken}`, 'content-type': 'application/json', ...extra });

  beforeAll(async () => {
    ps = await startTestServer({ KEYWARD_PORTAL_ORIGINS: ORIGIN, KEYWARD_SDK_KEY_FAILURE_BURST: '2', KEYWARD_SDK_KEY_FAILURES_PER_SECOND: '0.2' });
    pw = ((await (await at('/v1/workspaces', { method: 'POST', headers: admin(), body: '{"name": "portal-rest"}' })).json()) as Json).workspace.id;
  });
  afterAll(async () => {
    await ps?.close();
  });

  it("a portal token manages its customer's keys by REST, from an allowed origin, and nothing else", async () => {
    const session = (await (
      await at('/v1/portal-sessions', { method: 'POST', headers: admin(), body: JSON.stringify({ workspace_id: pw, customer_id: 'cus_p' }) })
    ).json()) as Json;
    expect(session.token).toMatch(/^kwp_/);
    recordSecret(session.token);
    const portal = { authorization: `Bearer ${session.token}`, 'content-type': 'application/json', origin: ORIGIN };
    const created = await at(`/v1/workspaces/${pw}/api-keys`, { method: 'POST', headers: portal, body: '{"name": "mine"}' });
    expect(created.status).toBe(200);
    expect(created.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const key = (await created.json()) as Json;
    recordSecret(key.secret);
    expect(key.key.customerId).toBe('cus_p');
    const me = (await (await at('/v1/portal-session', { headers: portal })).json()) as Json;
    expect(me.session).toMatchObject({ workspaceId: pw, customerId: 'cus_p' });
    const preflight = await at(`/v1/api-keys/${key.key.id}`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PATCH' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toMatch(/PATCH/);
    const patched = await at(`/v1/api-keys/${key.key.id}`, { method: 'PATCH', headers: portal, body: '{"name": "renamed"}' });
    expect(((await patched.json()) as Json).key.name).toBe('renamed');
    // Not a portal RPC: refused, and no CORS for it.
    const workspaces = await at('/v1/workspaces', { headers: portal });
    expect(workspaces.status).toBe(403);
    expect(workspaces.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('too many failed SDK key checks from one address: 429 with Retry-After', async () => {
    // Wrong secrets of an existing SDK key: each costs a bcrypt check, which the bucket counts.
    const { id } = parseSdkKey(ps.adminToken)!;
    let throttled: Response | undefined;
    for (let i = 0; i < 6 && !throttled; i++) {
      const r = await at('/v1/workspaces', { headers: { authorization: `Bearer ${formatSdkKey(id, newSdkKeySecret())}` } });
      if (r.status === 429) throttled = r;
      else expect(r.status).toBe(401);
    }
    expect(throttled, 'no 429 after 6 failed checks with a burst of 2').toBeDefined();
    expect(((await throttled!.json()) as Json).code).toBe('resource_exhausted');
    expect(throttled!.headers.get('retry-after')).toBe('5');
  });
});
