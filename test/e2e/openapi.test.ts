// The OpenAPI document of the Connect JSON API: current with proto/, valid
// OpenAPI 3.1, served at /openapi.json, and describing what the server really
// answers (calls made from the document's own paths and schemas).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { validate, compileErrors } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYWARD_SERVICES } from '../../src/app.js';
import { openApiDocument } from '../../src/http/openapi.js';
import { RPCS } from '../support/descriptors.js';
import { recordSecret } from '../support/hygiene.js';
import { startTestServer, type TestServer } from '../support/server.js';

type Json = Record<string, any>;
const COMMITTED = path.resolve(import.meta.dirname, '../../docs/openapi.json');
const committed = () => readFileSync(COMMITTED, 'utf8');

let ts: TestServer;
let doc: Json;

beforeAll(async () => {
  ts = await startTestServer();
  doc = JSON.parse(committed()) as Json;
});
afterAll(async () => {
  await ts?.close();
});

/** The operation of `operationId` and its path. */
function operation(operationId: string): { path: string; op: Json } {
  for (const [p, item] of Object.entries(doc.paths as Record<string, Json>)) {
    if (item.post?.operationId === operationId) return { path: p, op: item.post };
  }
  throw new Error(`no operation ${operationId}`);
}

function schemaOf(ref: Json): Json {
  const name = (ref.$ref as string).replace('#/components/schemas/', '');
  return doc.components.schemas[name];
}

/** Calls an operation the way a generic HTTP client reading the document would. */
async function call(operationId: string, body: unknown, token = ts.adminToken) {
  const { path: p, op } = operation(operationId);
  const res = await fetch(`${ts.baseUrl}${p}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Json;
  return { status: res.status, json, op };
}

/** Every property of `value` is declared by `schema` (one level of $ref deep, recursively for nested messages). */
function expectDeclared(value: Json, schema: Json, where: string) {
  const props = schema.properties as Record<string, Json>;
  for (const [k, v] of Object.entries(value)) {
    expect(props, `${where}.${k} is not declared`).toHaveProperty(k);
    const s = props[k]!;
    if (s.$ref && typeof v === 'object' && !Array.isArray(v) && schemaOf(s).type === 'object') expectDeclared(v, schemaOf(s), `${where}.${k}`);
    if (s.type === 'array' && s.items?.$ref && Array.isArray(v))
      for (const item of v) if (typeof item === 'object') expectDeclared(item, schemaOf(s.items), `${where}.${k}[]`);
  }
}

describe('the OpenAPI document', () => {
  it('is current with proto/ (run `npm run openapi` after changing it)', () => {
    expect(committed()).toBe(`${JSON.stringify(openApiDocument(KEYWARD_SERVICES), null, 2)}\n`);
  });

  it('is valid OpenAPI 3.1', async () => {
    const result = await validate(JSON.parse(committed()));
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
  });

  it('has a POST path for every RPC, with the bearer scheme and the error responses', () => {
    for (const r of RPCS) {
      const op = doc.paths[r.path]?.post;
      expect(op, r.path).toBeDefined();
      expect(op.responses['401'].$ref).toBe('#/components/responses/Error401');
    }
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(operation('KeyService_VerifyKey').op.description).toMatch(/Checks an API key presented to your API/);
  });

  it('is served at /openapi.json', async () => {
    const res = await fetch(`${ts.baseUrl}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.text()).toBe(committed().trimEnd());
  });
});

/** A REST operation (any HTTP method) by its operationId: its path template, method and operation. */
function restOperation(operationId: string): { path: string; method: string; op: Json } {
  for (const [p, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const [method, op] of Object.entries(item)) if (op.operationId === operationId) return { path: p, method: method.toUpperCase(), op };
  }
  throw new Error(`no operation ${operationId}`);
}

describe('REST paths in the document', () => {
  it('every RPC has one (google.api.http), with its path parameters and the error responses', () => {
    for (const r of RPCS) {
      const { path: p, op } = restOperation(`${r.service.name}_${r.method.name}_rest`);
      expect(p.startsWith('/v1/'), p).toBe(true);
      for (const name of [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1])) {
        expect(
          op.parameters.find((x: Json) => x.in === 'path' && x.name === name),
          `${p} parameter ${name}`,
        ).toBeDefined();
      }
      expect(op.responses['404'].$ref).toBe('#/components/responses/Error404');
    }
    const create = restOperation('KeyService_CreateKey_rest');
    expect(create).toMatchObject({ path: '/v1/workspaces/{workspace_id}/api-keys', method: 'POST' });
    expect(Object.keys(create.op.requestBody.content['application/json'].schema.properties)).toEqual(
      expect.arrayContaining(['name', 'expiresInDays', 'expiresIn']),
    );
    expect(restOperation('KeyService_CreateKey_rest_2').path).toBe('/v1/api-keys');
  });

  it('a call made from a REST operation: path and query parameters as the document declares them', async () => {
    const ws = await call('WorkspaceService_CreateWorkspace', { workspace: { name: 'rest-from-openapi' } });
    const workspaceId = ws.json.workspace.id as string;
    const create = restOperation('KeyService_CreateKey_rest');
    const created = await fetch(`${ts.baseUrl}${create.path.replace('{workspace_id}', workspaceId)}`, {
      method: create.method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ts.adminToken}` },
      body: JSON.stringify({ name: 'from the document', expiresInDays: 30 }),
    });
    expect(created.status).toBe(200);
    const key = (await created.json()) as Json;
    recordSecret(key.secret);
    expectDeclared(key, schemaOf(create.op.responses['200'].content['application/json'].schema), 'CreateKeyResponse');

    const list = restOperation('KeyService_ListKeys_rest');
    const query = list.op.parameters.filter((x: Json) => x.in === 'query').map((x: Json) => x.name as string);
    expect(query).toEqual(expect.arrayContaining(['customer_id', 'state', 'page_size', 'page_token', 'expire_before']));
    const res = await fetch(`${ts.baseUrl}${list.path.replace('{workspace_id}', workspaceId)}?page_size=10&state=KEY_STATE_ACTIVE`, {
      method: list.method,
      headers: { authorization: `Bearer ${ts.adminToken}` },
    });
    expect(res.status).toBe(200);
    const listed = (await res.json()) as Json;
    expect(listed.keys).toHaveLength(1);
    expectDeclared(listed, schemaOf(list.op.responses['200'].content['application/json'].schema), 'ListKeysResponse');
  });
});

describe('calls made from the document', () => {
  it('create a workspace, a scope and a key, verify it and list it; every answered field is declared', async () => {
    const ws = await call('WorkspaceService_CreateWorkspace', { workspace: { name: 'from-openapi' } });
    expect(ws.status).toBe(200);
    expectDeclared(ws.json, schemaOf(ws.op.responses['200'].content['application/json'].schema), 'CreateWorkspaceResponse');
    const workspaceId = ws.json.workspace.id as string;

    expect((await call('ScopeService_CreateScope', { scope: { workspaceId, name: 'reports' } })).status).toBe(200);
    const key = await call('KeyService_CreateKey', {
      key: {
        workspaceId,
        customerId: 'cus_1',
        name: 'k',
        grants: [{ scope: 'reports', actions: ['ACTION_READ'] }],
        expireTime: '2099-01-01T00:00:00Z',
        remainingUses: '10',
      },
    });
    expect(key.status).toBe(200);
    recordSecret(key.json.secret);
    expectDeclared(key.json, schemaOf(key.op.responses['200'].content['application/json'].schema), 'CreateKeyResponse');

    const verified = await call('KeyService_VerifyKey', { key: key.json.secret, requiredPermissions: ['reports:read'] });
    expect(verified.json).toMatchObject({ valid: true, code: 'VERIFY_CODE_VALID', customerId: 'cus_1' });
    expectDeclared(verified.json, schemaOf(verified.op.responses['200'].content['application/json'].schema), 'VerifyKeyResponse');

    const listed = await call('KeyService_ListKeys', { workspaceId, pageSize: 10 });
    expect(listed.json.keys).toHaveLength(1);
    expectDeclared(listed.json, schemaOf(listed.op.responses['200'].content['application/json'].schema), 'ListKeysResponse');
  });

  it('errors come with the declared status and the connect.Error shape', async () => {
    const bad = await call('WorkspaceService_CreateWorkspace', { workspace: { name: '' } });
    expect(bad.status).toBe(400);
    expect(Object.keys(bad.op.responses)).toContain('400');
    expectDeclared(bad.json, doc.components.schemas['connect.Error'], 'error');
    expect(bad.json).toMatchObject({ code: 'invalid_argument', message: expect.stringMatching(/^workspace\.name/) });
    const unauth = await call('WorkspaceService_ListWorkspaces', {}, 'kws_nope');
    expect(unauth.status).toBe(401);
    expect(unauth.json.code).toBe('unauthenticated');
  });
});
