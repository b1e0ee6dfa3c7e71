// KEYWARD_SECRETS_KEY rotation end to end, with `keyward serve` and
// `keyward secrets reseal` as their own processes on one database (PostgreSQL
// with DATABASE_URL, else the embedded database in a temporary directory):
// secrets are written unsealed and under key A, the servers move to key B with
// A as a previous key, reseal moves every stored secret to B, and with A gone
// webhooks still deliver with valid signatures and tokens are still signed.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../../clients/typescript/src/webhooks.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { WebhookService } from '../../gen/keyward/v1/webhook_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { SIGNATURE_HEADER } from '../../src/webhooks/sender.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { recordSecret } from '../support/hygiene.js';
import { adminTokenOf, runCli, spawnServer, type ServerProcess } from '../support/process.js';

const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
const KEY_C = randomBytes(32).toString('base64');
const FAST_WEBHOOKS = {
  // The receiver listens on 127.0.0.1.
  KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  KEYWARD_WEBHOOK_POLL_MS: '50',
  KEYWARD_WEBHOOK_RETRY_BASE_MS: '100',
};
const STACK_RE = /^\s+at /m;
const SEALED_RE = /^sealed:v2:([A-Za-z0-9_-]{8}):[A-Za-z0-9_-]+$/;

/** A webhook receiver on a free port that keeps what it is sent. */
class Receiver {
  readonly received: { signature: string; body: string; type: string; keyId: string }[] = [];
  url = '';
  private readonly server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const event = JSON.parse(body) as { type: string; data: { key: { id: string } } };
      this.received.push({ signature: String(req.headers[SIGNATURE_HEADER]), body, type: event.type, keyId: event.data.key.id });
      res.end();
    });
  });
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
  /** The key.revoked event of `keyId`, once it has come. */
  async revoked(keyId: string): Promise<{ signature: string; body: string }> {
    for (const end = Date.now() + 15_000; Date.now() < end; await new Promise((r) => setTimeout(r, 25))) {
      const hit = this.received.find((r) => r.type === 'key.revoked' && r.keyId === keyId);
      if (hit) return hit;
    }
    throw new Error(`no key.revoked event for ${keyId}`);
  }
}

let db: TestDatabase;
let database: Record<string, string>;
const rx = new Receiver();
let server: ServerProcess | undefined;
let admin = '';
/** Each workspace's id and the webhook signing secret SetWebhook showed for it. */
const hooks: { ws: string; secret: string }[] = [];

beforeAll(async () => {
  db = await createTestDatabase({ persistent: true });
  database = db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : { KEYWARD_DATA_DIR: db.dataDir };
  await rx.start();
});

afterAll(async () => {
  await server?.stop();
  await rx.close();
  await db?.drop();
});

async function serve(env: Record<string, string>): Promise<ServerProcess> {
  await server?.stop(); // left running by a test that failed
  server = await spawnServer({ ...database, ...FAST_WEBHOOKS, ...env });
  return server;
}

async function stop(): Promise<void> {
  expect(await server!.stop()).toBe(0);
  server = undefined;
}

function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
}

function clients(s: ServerProcess) {
  const transport = createConnectTransport({ baseUrl: s.baseUrl, httpVersion: '1.1', interceptors: [bearer(admin)] });
  return {
    workspaces: createClient(WorkspaceService, transport),
    webhooks: createClient(WebhookService, transport),
    keys: createClient(KeyService, transport),
    tokens: createClient(TokenService, transport),
  };
}

/** Rows of the database, read while a server runs (the embedded database through the server that has it open). */
async function query<T>(sql: string): Promise<T[]> {
  const url = db.databaseUrl ?? (JSON.parse(readFileSync(join(db.dataDir, 'server.json'), 'utf8')) as { url: string }).url;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Every stored value of the two sealed columns. */
const storedSecrets = async () => [
  ...(await query<{ v: string }>('select private_pkcs8 as v from signing_keys order by id')).map((r) => r.v),
  ...(await query<{ v: string }>('select secret as v from webhooks order by workspace_id')).map((r) => r.v),
];

/** A webhook for a new workspace; returns its signing secret. */
async function newHook(s: ServerProcess): Promise<{ ws: string; secret: string }> {
  const c = clients(s);
  const ws = (await c.workspaces.createWorkspace({ workspace: { name: `rotation-${randomBytes(4).toString('hex')}` } })).workspace!.id;
  const { signingSecret } = await c.webhooks.setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
  recordSecret(signingSecret);
  return { ws, secret: signingSecret };
}

/** Creates and revokes a key in `ws`; the key.revoked event must come signed with `secret`. */
async function expectSignedDelivery(s: ServerProcess, hook: { ws: string; secret: string }): Promise<void> {
  const c = clients(s);
  const keyId = (await c.keys.createKey({ key: { workspaceId: hook.ws, name: 'rotation' } })).key!.id;
  await c.keys.revokeKey({ id: keyId });
  const event = await rx.revoked(keyId);
  expect(verifyWebhookSignature(hook.secret, event.body, event.signature)).toBe(true);
}

const secretsEnv = (current: string, previous?: string) => ({
  ...database,
  KEYWARD_SECRETS_KEY: current,
  ...(previous ? { KEYWARD_SECRETS_KEY_PREVIOUS: previous } : {}),
});

describe('KEYWARD_SECRETS_KEY rotation', { timeout: 240_000 }, () => {
  let keyIdA = '';

  it('secrets are stored unsealed without a key, then sealed under key A', async () => {
    // The database is made first, so that the server's start (which the helper bounds) is only a start.
    const migrated = await runCli(['migrate'], database, 120_000);
    expect(migrated.code, migrated.stderr).toBe(0);
    admin = adminTokenOf(await serve({ KEYWARD_BOOTSTRAP_ADMIN: 'true' }));
    hooks.push(await newHook(server!));
    // Without a key the webhook secret is stored as it is (so are the signing keys made at start).
    expect(await query<{ secret: string }>(`select secret from webhooks where workspace_id = '${hooks[0]!.ws}'`)).toEqual([{ secret: hooks[0]!.secret }]);
    await stop();

    await serve({ KEYWARD_SECRETS_KEY: KEY_A });
    hooks.push(await newHook(server!));
    // A new signing key, sealed under A, beside the two unsealed ones.
    const rotate = await runCli(['signing-key', 'rotate'], secretsEnv(KEY_A));
    expect(rotate.code, rotate.stderr).toBe(0);
    const [sealedHook] = await query<{ secret: string }>(`select secret from webhooks where workspace_id = '${hooks[1]!.ws}'`);
    keyIdA = SEALED_RE.exec(sealedHook!.secret)![1]!;
    const stored = await storedSecrets();
    expect(stored.filter((v) => v.startsWith(`sealed:v2:${keyIdA}:`))).toHaveLength(2);
    expect(stored.filter((v) => !v.startsWith('sealed:'))).toHaveLength(3);
    await stop();
  });

  it('`keyward secrets reseal` moves every stored secret to key B while a server runs on B (A previous), and a second run writes nothing', async () => {
    await serve({ KEYWARD_SECRETS_KEY: KEY_B, KEYWARD_SECRETS_KEY_PREVIOUS: KEY_A });
    const before = await storedSecrets();
    const first = await runCli(['secrets', 'reseal'], secretsEnv(KEY_B, KEY_A));
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(
      'signing_keys.private_pkcs8: 3 resealed, 0 already under the current key\nwebhooks.secret: 2 resealed, 0 already under the current key\n',
    );
    const after = await storedSecrets();
    expect(after).toHaveLength(before.length);
    const ids = new Set(after.map((v) => SEALED_RE.exec(v)?.[1]));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(ids.has(keyIdA)).toBe(false);
    for (const h of hooks) expect(after.join('\n')).not.toContain(h.secret.slice(6));
    expect(after.join('\n')).not.toContain('PRIVATE KEY');

    const second = await runCli(['secrets', 'reseal'], secretsEnv(KEY_B, KEY_A));
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(
      'signing_keys.private_pkcs8: 0 resealed, 3 already under the current key\nwebhooks.secret: 0 resealed, 2 already under the current key\n',
    );
    expect(await storedSecrets()).toEqual(after);

    // The server that ran throughout still signs with the secrets it reads.
    for (const h of hooks) await expectSignedDelivery(server!, h);
    await stop();
  });

  it('with key A removed every secret still opens: webhooks deliver with valid signatures, tokens are signed and verify', async () => {
    // The signing key made under A becomes the active one.
    const rotate = await runCli(['signing-key', 'rotate'], secretsEnv(KEY_B));
    expect(rotate.code, rotate.stderr).toBe(0);
    const activeId = /^active signing key ([0-9a-f-]{36})/.exec(rotate.stdout)![1]!;

    const s = await serve({ KEYWARD_SECRETS_KEY: KEY_B });
    for (const h of hooks) await expectSignedDelivery(s, h);

    const c = clients(s);
    const key = await c.keys.createKey({ key: { workspaceId: hooks[1]!.ws, name: 'token' } });
    const exchanged = await c.tokens.exchangeKey({ key: key.secret });
    expect(exchanged.code).toBe(VerifyCode.VALID);
    expect(decodeProtectedHeader(exchanged.token).kid).toBe(activeId);
    const { payload } = await jwtVerify(exchanged.token, createRemoteJWKSet(new URL(`${s.baseUrl}/.well-known/jwks.json`)), { algorithms: ['EdDSA'] });
    expect(payload.sub).toBeDefined();
    expect(s.stderr()).not.toContain('"level":"error"');
  });

  it('reseal with a key that opens none of them fails naming the row and the key id, changes nothing, and shows no secret', async () => {
    const before = await storedSecrets();
    const r = await runCli(['secrets', 'reseal'], secretsEnv(KEY_C));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^keyward: signing_keys [0-9a-f-]{36}: a stored secret is sealed with key id [A-Za-z0-9_-]{8}, which is neither KEYWARD_SECRETS_KEY nor in KEYWARD_SECRETS_KEY_PREVIOUS\n$/,
    );
    expect(r.stderr).not.toMatch(STACK_RE);
    for (const secret of [KEY_A, KEY_B, KEY_C, ...hooks.map((h) => h.secret)]) expect(r.stdout + r.stderr).not.toContain(secret);
    expect(await storedSecrets()).toEqual(before);

    // Without any key there is nothing to seal with.
    const none = await runCli(['secrets', 'reseal'], { ...database, KEYWARD_SECRETS_KEY: '' });
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('keyward: KEYWARD_SECRETS_KEY is not set: there is no key to seal with\n');
    await stop();
  });
});
