// KeyService/ImportKeys on a real server: keys in a company's own format
// verify exactly as sent, keys known only by their SHA-256 verify with the
// secret behind it, every CreateKey field comes along, a call is all or none
// with errors naming the entry, and REST takes the same body.
import { createHash, randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import { issueApiKey } from '../../src/credentials/api-key.js';
import { httpRequest, newWorkspace } from '../support/fixtures.js';
import { recordSecret } from '../support/hygiene.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

let ts: TestServer;
let K: ReturnType<typeof client<typeof KeyService>>;

beforeAll(async () => {
  ts = await startTestServer();
  K = client(KeyService, ts, { protocol: 'grpc' });
});
afterAll(async () => {
  await ts?.close();
});

/** A key in another service's format (Stripe-like), never seen by Keyward before. */
function foreignKey(prefix = 'sk_live_'): string {
  const k = `${prefix}${randomBytes(24).toString('base64url')}`;
  recordSecret(k);
  return k;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const plaintext = (value: string) => ({ case: 'plaintext' as const, value });
const hashed = (value: string) => ({ case: 'sha256' as const, value });
const names = async (ws: string) => (await K.listKeys({ workspaceId: ws, pageSize: 1000 })).keys.map((k) => k.name).sort();

describe('ImportKeys', () => {
  it('imports keys in their own format with every field, and they verify exactly as sent', async () => {
    const ws = await newWorkspace(ts, { scopes: ['inference'] });
    const [a, b] = [foreignKey(), foreignKey('acme-')];
    const expireTime = { seconds: BigInt(Math.floor(Date.now() / 1000) + 86_400), nanos: 0 };
    const { keys } = await K.importKeys({
      workspaceId: ws,
      keys: [
        {
          key: { name: 'legacy a', customerId: 'cus_1', scopes: ['inference:read'], metadata: { plan: 'pro' }, expireTime, remainingUses: 2n },
          secret: plaintext(a),
        },
        { key: { name: 'legacy b', scopes: ['inference'], rateLimits: [{ name: 'rps', limit: 100n, duration: { seconds: 1n } }] }, secret: plaintext(b) },
      ],
    });
    expect(keys.map((k) => [k.name, k.workspaceId, k.customerId])).toEqual([
      ['legacy a', ws, 'cus_1'],
      ['legacy b', ws, ''],
    ]);
    // What is shown of a secret: a few characters at each end, never the key.
    expect(keys[0]!.maskedKey).toBe(`${a.slice(0, 4)}****${a.slice(-4)}`);
    expect(keys[0]!.expireTime?.seconds).toBe(expireTime.seconds);

    const va = await K.verifyKey({ key: a, requiredPermissions: ['inference:read'] });
    expect([va.code, va.keyId, va.remainingUses]).toEqual([VerifyCode.VALID, keys[0]!.id, 1n]);
    expect((await K.verifyKey({ key: a, requiredPermissions: ['inference:write'] })).code).toBe(VerifyCode.INSUFFICIENT_PERMISSIONS);
    // A refused permission takes no use: one is left, then none.
    expect((await K.verifyKey({ key: a })).remainingUses).toBe(0n);
    expect((await K.verifyKey({ key: a })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    const vb = await K.verifyKey({ key: b, requiredPermissions: ['inference:write'] });
    expect([vb.code, vb.rateLimits.map((r) => r.name)]).toEqual([VerifyCode.VALID, ['rps']]);
    // Off by one character: not found.
    expect((await K.verifyKey({ key: `${b.slice(0, -1)}${b.endsWith('x') ? 'y' : 'x'}` })).code).toBe(VerifyCode.NOT_FOUND);
    // Audited, one record a key.
    const { events } = await client(AuditService, ts).listAuditEvents({ workspaceId: ws, pageSize: 100 });
    expect(
      events
        .filter((e) => e.action === 'key.import')
        .map((e) => e.resourceId)
        .sort(),
    ).toEqual(keys.map((k) => k.id).sort());
  });

  it('imports keys by SHA-256 alone: the secret behind the hash verifies, and rotation gives a Keyward key', async () => {
    const ws = await newWorkspace(ts);
    const secret = foreignKey();
    const { keys } = await K.importKeys({ workspaceId: ws, keys: [{ key: { name: 'hash only' }, secret: hashed(sha256(secret).toUpperCase()) }] });
    expect([keys[0]!.maskedKey, keys[0]!.start]).toEqual(['', '']);
    expect((await K.verifyKey({ key: secret })).code).toBe(VerifyCode.VALID);
    const rotated = await K.rotateKey({ id: keys[0]!.id });
    recordSecret(rotated.secret);
    expect((await K.verifyKey({ key: rotated.secret })).code).toBe(VerifyCode.VALID);
    expect((await K.verifyKey({ key: secret })).code).toBe(VerifyCode.NOT_FOUND);
  });

  it('is all or none: a bad entry is named, and nothing of the call is written', async () => {
    const ws = await newWorkspace(ts, { scopes: ['inference'] });
    const good = foreignKey();
    const entries = (bad: object) => [{ key: { name: 'good' }, secret: plaintext(good) }, { key: { name: 'second' }, secret: plaintext(foreignKey()) }, bad];
    const cases: [object, string][] = [
      [{ key: { name: 'x', scopes: ['billing:read'] }, secret: plaintext(foreignKey()) }, 'keys[2].key.scopes[0]'],
      [{ key: { name: 'x'.repeat(121) }, secret: plaintext(foreignKey()) }, 'keys[2].key.name'],
      [{ key: { name: 'x' }, secret: plaintext('short') }, 'keys[2].plaintext'],
      [{ key: { name: 'x' }, secret: plaintext('has a space inside') }, 'keys[2].plaintext'],
      [{ key: { name: 'x' }, secret: plaintext(typoOf(issueApiKey('kw').plaintext)) }, 'keys[2].plaintext'],
      [{ key: { name: 'x' }, secret: hashed('abc') }, 'keys[2].sha256'],
      [{ key: { name: 'x' } }, 'keys[2].plaintext'],
      [{ key: { name: 'x', workspaceId: '00000000-0000-4000-8000-000000000000' }, secret: plaintext(foreignKey()) }, 'keys[2].key.workspace_id'],
      [{ key: { name: 'twice' }, secret: plaintext(good) }, 'keys[2]'],
    ];
    for (const [bad, field] of cases) await expectError(K.importKeys({ workspaceId: ws, keys: entries(bad) as never }), Code.InvalidArgument, field);
    await expectError(K.importKeys({ workspaceId: ws, keys: [] }), Code.InvalidArgument, 'keys');
    expect(await names(ws)).toEqual([]);
    expect((await K.verifyKey({ key: good })).code).toBe(VerifyCode.NOT_FOUND);
  });

  it('refuses a secret some key already has (ALREADY_EXISTS, naming the entry), and writes nothing', async () => {
    const ws = await newWorkspace(ts);
    const taken = foreignKey();
    await K.importKeys({ workspaceId: ws, keys: [{ key: { name: 'first' }, secret: plaintext(taken) }] });
    const fresh = foreignKey();
    const e = await expectError(
      K.importKeys({
        workspaceId: ws,
        keys: [
          { key: { name: 'fresh' }, secret: plaintext(fresh) },
          { key: { name: 'again' }, secret: hashed(sha256(taken)) },
        ],
      }),
      Code.AlreadyExists,
    );
    expect(e.rawMessage).toContain('keys[1]');
    expect(await names(ws)).toEqual(['first']);
    expect((await K.verifyKey({ key: fresh })).code).toBe(VerifyCode.NOT_FOUND);
  });

  it('imports 1,000 keys in one call; each verifies', async () => {
    const ws = await newWorkspace(ts, { scopes: ['inference'] });
    const secrets = Array.from({ length: 1000 }, () => foreignKey());
    const { keys } = await K.importKeys({
      workspaceId: ws,
      keys: secrets.map((s, i) => ({ key: { name: `bulk ${i}`, customerId: `cus_${i % 10}`, scopes: ['inference:read'] }, secret: plaintext(s) })),
    });
    expect(keys.map((k) => k.name)).toEqual(secrets.map((_, i) => `bulk ${i}`));
    for (const i of [0, 1, 499, 998, 999]) {
      const r = await K.verifyKey({ key: secrets[i]!, requiredPermissions: ['inference:read'] });
      expect([r.code, r.keyId]).toEqual([VerifyCode.VALID, keys[i]!.id]);
    }
    await expectError(
      K.importKeys({ workspaceId: ws, keys: Array.from({ length: 1001 }, () => ({ key: {}, secret: plaintext(foreignKey()) })) }),
      Code.InvalidArgument,
      'keys',
    );
  }, 60_000);

  it('takes the same body over REST', async () => {
    const ws = await newWorkspace(ts);
    const secret = foreignKey();
    const r = await httpRequest(`${ts.baseUrl}/v1/workspaces/${ws}/api-keys:import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ts.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ keys: [{ key: { name: 'over rest' }, plaintext: secret }] }),
    });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as { keys: { name: string }[] }).keys.map((k) => k.name)).toEqual(['over rest']);
    expect((await K.verifyKey({ key: secret })).code).toBe(VerifyCode.VALID);
  });
});

/** The key with one character of its body changed: the checksum no longer matches. */
function typoOf(key: string): string {
  const i = key.length - 10;
  return key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
}
