// Many clients on one key at once: rotate, update, revoke and delete race,
// and the result is audited against the database: every acknowledged write
// is there once, the audit trail agrees with the final state, exactly one of
// several creates with one name wins, and a revoked key never verifies again.
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Action, KeyState } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { client, PROTOCOLS, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
let ws: string;
/** One client per protocol, and several of each: distinct connections. */
let keyClients: ReturnType<typeof client<typeof KeyService>>[];

async function settle<T>(calls: Promise<T>[]) {
  const out = await Promise.allSettled(calls);
  return out.map((r) => (r.status === 'fulfilled' ? { ok: true as const, value: r.value } : { ok: false as const, code: ConnectError.from(r.reason).code }));
}

async function sql<T = Record<string, unknown>>(query: string, params: unknown[] = []): Promise<T[]> {
  return ts.sql(query, params) as Promise<T[]>;
}

const auditCount = async (action: string, id: string) =>
  Number((await sql<{ n: string }>('select count(*) as n from audit_events where action = ? and resource_id = ?', [action, id]))[0]!.n);

beforeAll(async () => {
  ts = await startTestServer();
  ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'race' } })).workspace!.id;
  await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'things' } });
  keyClients = [...PROTOCOLS, ...PROTOCOLS].map((protocol) => client(KeyService, ts, { protocol }));
});
afterAll(async () => {
  await ts?.close();
});

const pick = (i: number) => keyClients[i % keyClients.length]!;

describe('one key hammered from many clients', () => {
  it('concurrent rotations and updates: none lost, the audit trail agrees, versions only move forward', async () => {
    const K = pick(0);
    const created = await K.createKey({ key: { workspaceId: ws, name: 'hammered', grants: [{ scope: 'things', actions: [Action.READ] }] } });
    const id = created.key!.id;
    type Done = { kind: 'rotate' | 'update'; secret?: string; description?: string; update: { seconds: bigint; nanos: number } | undefined };
    const calls = Array.from(
      { length: 40 },
      (_, i): Promise<Done> =>
        i % 2 === 0
          ? pick(i)
              .rotateKey({ id, gracePeriod: { seconds: 600n } })
              .then((r) => ({ kind: 'rotate' as const, secret: r.secret, update: r.key!.updateTime }))
          : pick(i)
              .updateKey({ key: { id, description: `d${i}`, metadata: { writer: String(i) } }, updateMask: { paths: ['description', 'metadata'] } })
              .then((r) => ({ kind: 'update' as const, description: r.key!.description, update: r.key!.updateTime })),
    );
    const results = await settle(calls);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const values = results.map((r) => (r.ok ? r.value : undefined)!);
    const rotations = values.filter((v) => v.kind === 'rotate');
    const updates = values.filter((v) => v.kind === 'update');
    expect(await auditCount('key.rotate', id)).toBe(rotations.length);
    expect(await auditCount('key.update', id)).toBe(updates.length);
    // Each rotation added one secret and kept every earlier one (grace period): one row per secret ever issued.
    const secrets = await sql<{ n: string }>('select count(*) as n from api_key_secrets where api_key_id = ?', [id]);
    expect(Number(secrets[0]!.n)).toBe(rotations.length + 1);
    for (const s of [created.secret, ...rotations.map((r) => r.secret!)]) {
      expect((await K.verifyKey({ key: s })).code).toBe(VerifyCode.VALID);
    }
    // The final state is one of the acknowledged updates, whole (description and metadata from the same writer).
    const final = (await K.getKey({ id })).key!;
    expect(updates.map((u) => u.description)).toContain(final.description);
    expect(final.metadata.writer).toBe(final.description.slice(1));
    // update_time is the time of the last write, no earlier than any acknowledged one.
    const latest = Math.max(...values.map((v) => Number(v.update!.seconds) * 1000 + v.update!.nanos / 1e6));
    expect(Number(final.updateTime!.seconds) * 1000 + final.updateTime!.nanos / 1e6).toBeGreaterThanOrEqual(latest);
  });

  it('revoke racing rotations and updates: revoked once, nothing is written after it, and no secret verifies again', async () => {
    const created = await pick(0).createKey({ key: { workspaceId: ws, name: 'revoked-in-a-race' } });
    const id = created.key!.id;
    const kinds = Array.from({ length: 36 }, (_, i) => (['rotate', 'update', 'revoke'] as const)[i % 3]!);
    const results = await settle<unknown>(
      kinds.map((k, i) =>
        k === 'rotate'
          ? pick(i).rotateKey({ id, gracePeriod: { seconds: 600n } })
          : k === 'update'
            ? pick(i).updateKey({ key: { id, description: `u${i}` }, updateMask: { paths: ['description'] } })
            : pick(i).revokeKey({ id }),
      ),
    );
    const secrets = [created.secret];
    kinds.forEach((k, i) => {
      const r = results[i]!;
      if (k === 'revoke')
        expect(r.ok).toBe(true); // idempotent
      else if (!r.ok) expect(Code[r.code]).toBe('FailedPrecondition');
      else if (k === 'rotate') secrets.push((r.value as { secret: string }).secret);
    });
    expect(await auditCount('key.revoke', id)).toBe(1);
    expect(await auditCount('key.rotate', id)).toBe(secrets.length - 1);
    expect(await auditCount('key.update', id)).toBe(kinds.filter((k, i) => k === 'update' && results[i]!.ok).length);
    // The revocation is the last change in the audit trail.
    const trail = await sql<{ action: string }>('select action from audit_events where resource_id = ? order by time, id', [id]);
    expect(trail.at(-1)!.action).toBe('key.revoke');
    expect((await pick(1).getKey({ id })).key!.state).toBe(KeyState.REVOKED);
    for (const s of secrets) expect((await pick(2).verifyKey({ key: s })).code).toBe(VerifyCode.REVOKED);
  });

  it('concurrent deletes: exactly one succeeds, the rest are NOT_FOUND, one audit record', async () => {
    const created = await pick(0).createKey({ key: { workspaceId: ws, name: 'deleted-in-a-race' } });
    const id = created.key!.id;
    const results = await settle<unknown>(Array.from({ length: 12 }, (_, i) => (i % 3 === 2 ? pick(i).rotateKey({ id }) : pick(i).deleteKey({ id }))));
    const deletes = results.filter((_, i) => i % 3 !== 2);
    expect(deletes.filter((r) => r.ok)).toHaveLength(1);
    for (const r of deletes.filter((r) => !r.ok)) expect(Code[(r as { code: Code }).code]).toBe('NotFound');
    expect(await auditCount('key.delete', id)).toBe(1);
    expect((await pick(0).verifyKey({ key: created.secret })).code).toBe(VerifyCode.NOT_FOUND);
  });
});

describe('concurrent creates with one name', () => {
  it('workspaces: exactly one wins, the others are ALREADY_EXISTS', async () => {
    const W = [...PROTOCOLS, ...PROTOCOLS].map((protocol) => client(WorkspaceService, ts, { protocol }));
    const results = await settle(Array.from({ length: 16 }, (_, i) => W[i % W.length]!.createWorkspace({ workspace: { name: 'only-one' } })));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    for (const r of results.filter((r) => !r.ok)) expect(Code[(r as { code: Code }).code]).toBe('AlreadyExists');
    const rows = await sql<{ n: string }>("select count(*) as n from workspaces where name = 'only-one'");
    expect(Number(rows[0]!.n)).toBe(1);
    expect(
      Number(
        (
          await sql<{ n: string }>(
            "select count(*) as n from audit_events where action = 'workspace.create' and resource_id in (select id::text from workspaces where name = 'only-one')",
          )
        )[0]!.n,
      ),
    ).toBe(1);
  });

  it('scopes: exactly one wins per workspace', async () => {
    const S = [...PROTOCOLS, ...PROTOCOLS].map((protocol) => client(ScopeService, ts, { protocol }));
    const results = await settle(Array.from({ length: 16 }, (_, i) => S[i % S.length]!.createScope({ scope: { workspaceId: ws, name: 'contested' } })));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    for (const r of results.filter((r) => !r.ok)) expect(Code[(r as { code: Code }).code]).toBe('AlreadyExists');
    expect(Number((await sql<{ n: string }>("select count(*) as n from audit_events where action = 'scope.create' and workspace_id = ?", [ws]))[0]!.n)).toBe(2);
  });
});
