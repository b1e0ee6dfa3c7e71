// A field error travels as a structured Connect error detail
// (google.rpc.BadRequest field violations) over every protocol, the VerifyKey
// fast path and REST included, so clients read the field instead of parsing
// the message.
import { ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadRequestSchema } from '../../gen/google/rpc/error_details_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, PROTOCOLS, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
let ws: string;

beforeAll(async () => {
  ts = await startTestServer();
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'error-details' } })).workspace!.id;
});
afterAll(async () => {
  await ts?.close();
});

async function violationsOf(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    const err = ConnectError.from(e);
    return {
      message: err.rawMessage,
      violations: err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => ({ field: v.field, description: v.description }))),
    };
  }
  throw new Error('expected the call to fail');
}

describe('INVALID_ARGUMENT carries a google.rpc.BadRequest detail', () => {
  it.each(PROTOCOLS)('over %s: management RPCs and VerifyKey (fast path)', async (protocol) => {
    const keys = client(KeyService, ts, { protocol });
    expect(await violationsOf(keys.createKey({ key: { workspaceId: ws, name: 'x'.repeat(121) } }))).toEqual({
      message: 'key.name: must be at most 120 characters',
      violations: [{ field: 'key.name', description: 'must be at most 120 characters' }],
    });
    const v = await violationsOf(keys.verifyKey({ key: 'kw_x', requiredPermissions: ['ok:read', 'Bad'] }));
    expect(v.violations).toEqual([{ field: 'required_permissions[1]', description: expect.stringMatching(/^must be scope:action or a scope name/) }]);
    expect(v.message).toBe(`required_permissions[1]: ${v.violations[0]!.description}`);
  });

  it('errors that are about no field carry none', async () => {
    const v = await violationsOf(client(KeyService, ts).getKey({ id: '018f0000-0000-7000-8000-000000000000' }));
    expect(v.violations).toEqual([]);
  });

  it('REST answers carry it as Connect JSON does: type, value and a readable debug copy', async () => {
    const res = await fetch(`${ts.baseUrl}/v1/workspaces/${ws}/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ts.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scopes: ['Nope'] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; details: { type: string; value: string; debug: unknown }[] };
    expect(body.code).toBe('invalid_argument');
    expect(body.details).toEqual([
      {
        type: 'google.rpc.BadRequest',
        value: expect.any(String),
        debug: { fieldViolations: [{ field: 'key.scopes[0]', description: expect.stringContaining('is not scope:action') }] },
      },
    ]);
  });
});
