// The audit trail: every change with who, what, which, when and the request
// id; aggregated security events; ListAuditEvents with filters and paging.
import { randomBytes, randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action } from '../../gen/keyward/v1/key_pb.js';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import type { AuditEvent } from '../../gen/keyward/v1/audit_event_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { parseSdkKey } from '../../src/credentials/sdk-key.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, transport, type TestServer } from '../support/server.js';
import { createClient } from '@connectrpc/connect';

let ts: TestServer;
beforeAll(async () => {
  ts = await startTestServer({ KEYWARD_USAGE_FLUSH_MS: '3600000' });
});
afterAll(async () => {
  await ts?.close();
});

const sdkKeyId = (token: string) => parseSdkKey(token)!.id;
const uniq = (s: string) => `${s}-${randomBytes(4).toString('hex')}`;

async function workspaceWithKey() {
  const ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: uniq('audit') } })).workspace!.id;
  await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'orders' } });
  const r = await client(KeyService, ts).createKey({ key: { workspaceId: ws, name: 'k', grants: [{ scope: 'orders', actions: [Action.READ] }] } });
  return { ws, keyId: r.key!.id, secret: r.secret };
}

async function listAll(req: Record<string, unknown>, token = ts.adminToken): Promise<AuditEvent[]> {
  const A = client(AuditService, ts, { token });
  const out: AuditEvent[] = [];
  let pageToken = '';
  do {
    const page = await A.listAuditEvents({ ...req, pageToken, pageSize: 2 });
    out.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return out;
}

describe('audit trail of changes', () => {
  it('records who, what, which resource, when and the request id of every key change, newest first', async () => {
    const before = new Date(Date.now() - 1000);
    const { ws, keyId } = await workspaceWithKey();
    const K = client(KeyService, ts);
    const requestId = `req-${randomUUID()}`;
    await K.updateKey({ key: { id: keyId, name: 'renamed' }, updateMask: { paths: ['name'] } }, { headers: { 'x-request-id': requestId } });
    await K.rotateKey({ id: keyId });
    await K.revokeKey({ id: keyId });
    await K.deleteKey({ id: keyId });
    const events = await listAll({ resourceType: 'key', resourceId: keyId });
    expect(events.map((e) => e.action)).toEqual(['key.delete', 'key.revoke', 'key.rotate', 'key.update', 'key.create']);
    for (const e of events) {
      expect(e).toMatchObject({ actor: sdkKeyId(ts.adminToken), resourceType: 'key', resourceId: keyId, workspaceId: ws, count: 1n });
      expect(e.requestId).not.toBe('');
      expect(e.time!.seconds).toBeGreaterThanOrEqual(BigInt(Math.floor(before.getTime() / 1000)));
    }
    expect(events.find((e) => e.action === 'key.update')!.requestId).toBe(requestId);
    // The workspace's own events: creation of workspace, scope and key, and the key's changes.
    const wsEvents = await listAll({ workspaceId: ws });
    expect(wsEvents.map((e) => e.action).sort()).toEqual(
      ['key.create', 'key.delete', 'key.revoke', 'key.rotate', 'key.update', 'scope.create', 'workspace.create'].sort(),
    );
    expect(await listAll({ workspaceId: ws, action: 'key.rotate' })).toHaveLength(1);
    expect(await listAll({ workspaceId: ws, actor: 'cli' })).toHaveLength(0);
  });

  it('records SDK key creation and revocation by the CLI, with actor cli', async () => {
    const issued = await ts.internals.sdkKeys.create({ name: 'audited', scopes: ['workspace:read'], workspaceIds: [] });
    await ts.internals.sdkKeys.revoke(issued.sdkKey.id);
    const events = await listAll({ resourceId: issued.sdkKey.id });
    expect(events.map((e) => [e.action, e.actor, e.resourceType, e.requestId, e.workspaceId])).toEqual([
      ['sdk_key.revoke', 'cli', 'sdk_key', '', ''],
      ['sdk_key.create', 'cli', 'sdk_key', '', ''],
    ]);
  });

  it('filters by time range and binds page tokens to their filters', async () => {
    const { ws } = await workspaceWithKey();
    const A = client(AuditService, ts);
    const page = await A.listAuditEvents({ workspaceId: ws, pageSize: 1 });
    expect(page.events).toHaveLength(1);
    expect(page.nextPageToken).not.toBe('');
    await expectError(A.listAuditEvents({ workspaceId: ws, action: 'key.create', pageToken: page.nextPageToken }), Code.InvalidArgument, 'page_token');
    const later = timestampFromDate(new Date(Date.now() + 60_000));
    expect((await A.listAuditEvents({ workspaceId: ws, startTime: later })).events).toHaveLength(0);
    expect((await A.listAuditEvents({ workspaceId: ws, endTime: later })).events.length).toBe(3);
    await expectError(A.listAuditEvents({ startTime: later, endTime: later }), Code.InvalidArgument, 'end_time');
    await expectError(A.listAuditEvents({ workspaceId: 'nope' }), Code.InvalidArgument, 'workspace_id');
    await expectError(A.listAuditEvents({ action: 'x'.repeat(201) }), Code.InvalidArgument, 'action');
    await expectError(A.listAuditEvents({ pageSize: -1 }), Code.InvalidArgument, 'page_size');
  });

  it('shows an SDK key restricted to workspaces only the events of its workspaces', async () => {
    const mine = await workspaceWithKey();
    const other = await workspaceWithKey();
    const token = await ts.sdkKey(['audit:read'], [mine.ws]);
    const events = await listAll({}, token);
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(events.every((e) => e.workspaceId === mine.ws)).toBe(true);
    expect(await listAll({ resourceId: other.keyId }, token)).toEqual([]);
    await expectError(client(AuditService, ts, { token }).listAuditEvents({ workspaceId: other.ws }), Code.PermissionDenied);
  });
});

describe('security events', () => {
  it('counts failed SDK-key authentications per subject and minute, never recording the secret', async () => {
    const victim = await ts.sdkKey(['workspace:read']);
    const id = sdkKeyId(victim);
    const wrongSecret = `kws_${id}_${'Z'.repeat(43)}`;
    const call = (authorization?: string) =>
      createClient(WorkspaceService, transport(ts.baseUrl, 'connect-json'))
        .listWorkspaces({}, { headers: authorization ? { authorization } : {} })
        .catch(() => undefined);
    for (let i = 0; i < 4; i++) await call(`Bearer ${wrongSecret}`);
    for (let i = 0; i < 5; i++) await call('Bearer nope');
    for (let i = 0; i < 3; i++) await call();
    for (let i = 0; i < 2; i++) await call(`Bearer kws_${randomUUID()}_${'Y'.repeat(43)}`);
    // VerifyKey over the HTTP/2 fast path is refused alike.
    const grpc = client(KeyService, ts, { protocol: 'grpc', token: null });
    await grpc.verifyKey({ key: 'kw_x' }).catch(() => undefined);
    await ts.internals.securityEvents.flush();
    const events = await listAll({ action: 'sdk_key.auth_failed' });
    const total = (subject: string) => events.filter((e) => e.resourceId === subject).reduce((n, e) => n + Number(e.count), 0);
    expect(total(id)).toBe(4);
    expect(total('malformed')).toBe(5);
    expect(total('missing')).toBe(4);
    expect(total('unknown')).toBe(2);
    // One row per subject and minute (two if the calls straddled a minute).
    expect(events.filter((e) => e.resourceId === 'malformed').length).toBeLessThanOrEqual(2);
    for (const e of events) expect(e).toMatchObject({ actor: 'unauthenticated', resourceType: 'sdk_key', workspaceId: '' });
    expect(JSON.stringify(events, (_k, v) => (typeof v === 'bigint' ? `${v}` : v))).not.toContain('Z'.repeat(43));
    // A workspace-restricted reader does not see them.
    const token = await ts.sdkKey(['audit:read'], [(await workspaceWithKey()).ws]);
    expect(await listAll({ action: 'sdk_key.auth_failed' }, token)).toEqual([]);
  });

  it('records use of revoked and expired API keys, aggregated, with the verifying SDK key as actor', async () => {
    const { ws, keyId, secret } = await workspaceWithKey();
    const K = client(KeyService, ts);
    const expiring = await K.createKey({
      key: { workspaceId: ws, name: 'short', expireTime: timestampFromDate(new Date(Date.now() + 1500)) },
    });
    await K.revokeKey({ id: keyId });
    const grpc = client(KeyService, ts, { protocol: 'grpc' });
    for (let i = 0; i < 3; i++) expect((await grpc.verifyKey({ key: secret })).code).toBe(VerifyCode.REVOKED);
    expect((await K.verifyKey({ key: secret })).code).toBe(VerifyCode.REVOKED);
    await new Promise((r) => setTimeout(r, 1600));
    for (let i = 0; i < 2; i++) expect((await grpc.verifyKey({ key: expiring.secret })).code).toBe(VerifyCode.EXPIRED);
    await ts.internals.analytics.flush();
    await ts.internals.securityEvents.flush();
    const events = await listAll({ workspaceId: ws, resourceType: 'key' });
    const sum = (action: string, id: string) => events.filter((e) => e.action === action && e.resourceId === id).reduce((n, e) => n + Number(e.count), 0);
    expect(sum('key.used_revoked', keyId)).toBe(4);
    expect(sum('key.used_expired', expiring.key!.id)).toBe(2);
    const revokedUse = events.find((e) => e.action === 'key.used_revoked')!;
    expect(revokedUse).toMatchObject({ actor: sdkKeyId(ts.adminToken), workspaceId: ws, requestId: '' });
  });
});
