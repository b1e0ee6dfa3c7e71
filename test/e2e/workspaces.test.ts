import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, startTestServer, type TestServer } from '../support/server.js';
import { codeOf } from '../support/rpc.js';

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer();
});
afterAll(async () => {
  await ts?.close();
});

describe('WorkspaceService', () => {
  it('creates, gets, updates, lists and deletes a workspace', async () => {
    const c = client(WorkspaceService, ts);
    const { workspace } = await c.createWorkspace({ workspace: { name: 'ws-happy' } });
    expect(workspace?.keyPrefix).toBe('kw');
    expect(workspace?.createTime).toBeDefined();
    const got = await c.getWorkspace({ id: workspace!.id });
    expect(got.workspace?.name).toBe('ws-happy');
    const upd = await c.updateWorkspace({ workspace: { id: workspace!.id, keyPrefix: 'acme' }, updateMask: { paths: ['key_prefix'] } });
    expect(upd.workspace?.keyPrefix).toBe('acme');
    expect(upd.workspace?.name).toBe('ws-happy');
    const list = await c.listWorkspaces({});
    expect(list.workspaces.map((w) => w.id)).toContain(workspace!.id);
    await c.deleteWorkspace({ id: workspace!.id });
    expect(await codeOf(c.getWorkspace({ id: workspace!.id }))).toBe(Code.NotFound);
  });

  it('rejects bad input naming the field', async () => {
    const c = client(WorkspaceService, ts);
    await expect(c.createWorkspace({ workspace: { name: '' } })).rejects.toThrow(/workspace\.name/);
    await expect(c.createWorkspace({ workspace: { name: 'x', keyPrefix: 'Bad_' } })).rejects.toThrow(/workspace\.key_prefix/);
    expect(await codeOf(c.getWorkspace({ id: 'nope' }))).toBe(Code.InvalidArgument);
  });
});
