// Webhooks: signed events from a durable outbox, delivered with retries to a
// real HTTP receiver; expiry notices; ListKeys expire_before.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyState, RefillInterval } from '../../gen/keyward/v1/key_pb.js';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WebhookService } from '../../gen/keyward/v1/webhook_service_pb.js';
import { WebhookSchema } from '../../gen/keyward/v1/webhook_pb.js';
import { toJsonString } from '@bufbuild/protobuf';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import { EVENT_ID_HEADER, SIGNATURE_HEADER } from '../../src/webhooks/sender.js';
import { verifyWebhookSignature } from '../../clients/typescript/src/webhooks.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, type TestServer } from '../support/server.js';
import { DeliveryState } from '../../gen/keyward/v1/webhook_service_pb.js';

const FAST = {
  // The receivers here listen on 127.0.0.1.
  KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  KEYWARD_WEBHOOK_POLL_MS: '50',
  KEYWARD_WEBHOOK_RETRY_BASE_MS: '100',
  KEYWARD_EXPIRY_SCAN_MS: '100',
};

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  event: { id: string; type: string; workspace_id: string; create_time: string; data: { key: Record<string, unknown> } & Record<string, unknown> };
}

/** A real HTTP receiver on a free port; `status` decides each answer. */
class Receiver {
  readonly received: Received[] = [];
  status: (r: Received) => number = () => 200;
  private server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const r = { headers: req.headers, body, event: JSON.parse(body) };
      this.received.push(r);
      res.statusCode = this.status(r);
      res.end();
    });
  });
  url = '';
  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/keyward`;
    return this;
  }
  close() {
    return new Promise<void>((r) => this.server.close(() => r()));
  }
  of(type: string, keyId?: string) {
    return this.received.filter((r) => r.event.type === type && (!keyId || r.event.data.key.id === keyId));
  }
}

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function workspace(t: TestServer) {
  return (await client(WorkspaceService, t).createWorkspace({ workspace: { name: `hooks-${randomBytes(4).toString('hex')}` } })).workspace!.id;
}

let ts: TestServer;
let rx: Receiver;
beforeAll(async () => {
  ts = await startTestServer(FAST);
  rx = await new Receiver().start();
});
afterAll(async () => {
  await ts?.close();
  await rx?.close();
});

describe('SetWebhook, GetWebhook, DeleteWebhook', () => {
  it('returns the signing secret once, keeps it on later sets unless rotated, and never shows it again', async () => {
    const ws = await workspace(ts);
    const H = client(WebhookService, ts);
    const first = await H.setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    expect(first.signingSecret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    expect(first.webhook).toMatchObject({ workspaceId: ws, url: rx.url, expiringNoticeDays: 7 });
    const again = await H.setWebhook({ webhook: { workspaceId: ws, url: `${rx.url}?v=2`, expiringNoticeDays: 3 } });
    expect(again.signingSecret).toBe('');
    expect(again.webhook).toMatchObject({ url: `${rx.url}?v=2`, expiringNoticeDays: 3 });
    const rotated = await H.setWebhook({ webhook: { workspaceId: ws, url: rx.url }, rotateSecret: true });
    expect(rotated.signingSecret).toMatch(/^whsec_/);
    expect(rotated.signingSecret).not.toBe(first.signingSecret);
    const got = await H.getWebhook({ workspaceId: ws });
    expect(toJsonString(WebhookSchema, got.webhook!)).not.toContain('whsec_');
    await H.deleteWebhook({ workspaceId: ws });
    await expectError(H.getWebhook({ workspaceId: ws }), Code.NotFound);
    await expectError(H.deleteWebhook({ workspaceId: ws }), Code.NotFound);
  });

  it('refuses URLs that are not http(s), naming the field', async () => {
    const ws = await workspace(ts);
    const H = client(WebhookService, ts);
    for (const url of ['ftp://example.com/x', 'file:///etc/passwd', 'javascript:alert(1)', 'not a url', '', `https://x.test/${'a'.repeat(2048)}`]) {
      await expectError(H.setWebhook({ webhook: { workspaceId: ws, url } }), Code.InvalidArgument, 'webhook.url');
    }
    await expectError(
      H.setWebhook({ webhook: { workspaceId: ws, url: rx.url, expiringNoticeDays: 400 } }),
      Code.InvalidArgument,
      'webhook.expiring_notice_days',
    );
    await expectError(H.setWebhook({ webhook: { workspaceId: '', url: rx.url } }), Code.InvalidArgument, 'webhook.workspace_id');
  });
});

describe('delivery', () => {
  it('delivers key.revoked and key.rotated, signed with the workspace secret, without any key secret', async () => {
    const ws = await workspace(ts);
    const { signingSecret } = await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const K = client(KeyService, ts);
    const created = await K.createKey({ key: { workspaceId: ws, customerId: 'cus_1', name: 'hooked' } });
    const keyId = created.key!.id;
    const rotated = await K.rotateKey({ id: keyId, gracePeriod: { seconds: 60n } });
    await K.revokeKey({ id: keyId });
    const [rot] = await until('key.rotated', () => rx.of('key.rotated', keyId).length === 1 && rx.of('key.rotated', keyId));
    const [rev] = await until('key.revoked', () => rx.of('key.revoked', keyId).length === 1 && rx.of('key.revoked', keyId));
    for (const r of [rot!, rev!]) {
      expect(verifyWebhookSignature(signingSecret, r.body, r.headers[SIGNATURE_HEADER] as string)).toBe(true);
      expect(verifyWebhookSignature('whsec_wrong', r.body, r.headers[SIGNATURE_HEADER] as string)).toBe(false);
      expect(verifyWebhookSignature(signingSecret, `${r.body} `, r.headers[SIGNATURE_HEADER] as string)).toBe(false);
      expect(r.headers[SIGNATURE_HEADER]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(r.headers[EVENT_ID_HEADER]).toBe(r.event.id);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.event).toMatchObject({ workspace_id: ws, data: { key: { id: keyId, workspace_id: ws, customer_id: 'cus_1', name: 'hooked' } } });
      for (const s of [created.secret, rotated.secret]) expect(r.body).not.toContain(s.slice(3));
    }
    expect(rev!.event.data.key.revoke_time).toEqual(expect.any(String));
    expect(rot!.event.data.previous_secret_expire_time).toEqual(expect.any(String));
  });

  it('retries after a 500 with backoff until the receiver accepts', async () => {
    const ws = await workspace(ts);
    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const K = client(KeyService, ts);
    const keyId = (await K.createKey({ key: { workspaceId: ws, name: 'flaky' } })).key!.id;
    rx.status = (r) => (r.event.data.key.id === keyId && rx.of('key.revoked', keyId).length <= 2 ? 500 : 200);
    try {
      await K.revokeKey({ id: keyId });
      await until('three attempts', () => rx.of('key.revoked', keyId).length >= 3);
      await new Promise((r) => setTimeout(r, 400));
      const attempts = rx.of('key.revoked', keyId);
      expect(attempts).toHaveLength(3); // the third was accepted: no more
      expect(new Set(attempts.map((a) => a.event.id)).size).toBe(1);
      const row = (await ts.sql(`select attempts, delivered_time, last_error from webhook_outbox where id = ?`, [attempts[0]!.event.id]))[0];
      expect(row).toMatchObject({ attempts: 3, last_error: null });
      expect(row.delivered_time).not.toBeNull();
    } finally {
      rx.status = () => 200;
    }
  });

  it('with KEYWARD_SECRETS_KEY the signing secret is sealed at rest, and deliveries are signed with the secret shown', async () => {
    const sealed = await startTestServer({ ...FAST, KEYWARD_SECRETS_KEY: randomBytes(32).toString('base64') });
    try {
      const ws = await workspace(sealed);
      const { signingSecret } = await client(WebhookService, sealed).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
      const [row] = await sealed.sql(`select secret from webhooks where workspace_id = ?`, [ws]);
      expect(row.secret).toMatch(/^sealed:v2:/);
      expect(row.secret).not.toContain(signingSecret.slice(6));
      const K = client(KeyService, sealed);
      const keyId = (await K.createKey({ key: { workspaceId: ws, name: 'sealed' } })).key!.id;
      await K.revokeKey({ id: keyId });
      const [rev] = await until('key.revoked', () => rx.of('key.revoked', keyId).length === 1 && rx.of('key.revoked', keyId));
      expect(verifyWebhookSignature(signingSecret, rev!.body, rev!.headers[SIGNATURE_HEADER] as string)).toBe(true);
    } finally {
      await sealed.close();
    }
  });

  it('by default refuses receivers on private addresses: nothing is sent, the attempt records why', async () => {
    const { KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS: _allowed, ...defaults } = FAST;
    const guarded = await startTestServer(defaults);
    try {
      const ws = await workspace(guarded);
      await client(WebhookService, guarded).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
      const K = client(KeyService, guarded);
      const keyId = (await K.createKey({ key: { workspaceId: ws, name: 'internal' } })).key!.id;
      await K.revokeKey({ id: keyId });
      const outboxRow = async () => (await guarded.sql(`select attempts, last_error, delivered_time from webhook_outbox where workspace_id = ?`, [ws]))[0];
      let outbox = await outboxRow();
      // The claim counts the attempt first; its outcome is written after.
      for (const end = Date.now() + 10_000; !outbox?.last_error && Date.now() < end; outbox = await outboxRow()) await new Promise((r) => setTimeout(r, 25));
      expect(outbox).toMatchObject({ delivered_time: null });
      expect(outbox.last_error).toMatch(/^refused: 127\.0\.0\.1 resolves to a private or non-public address/);
      expect(rx.of('key.revoked', keyId)).toHaveLength(0);

      // ListWebhookDeliveries shows it, and RedeliverWebhookEvent starts it over.
      const H = client(WebhookService, guarded);
      const [d] = (await H.listWebhookDeliveries({ workspaceId: ws })).deliveries;
      expect(d).toMatchObject({ eventType: 'key.revoked', keyId, state: DeliveryState.PENDING, lastError: expect.stringMatching(/^refused: /) });
      expect(d!.attempts).toBeGreaterThanOrEqual(1);
      expect(d!.nextAttemptTime).toBeDefined();
      const again = (await H.redeliverWebhookEvent({ workspaceId: ws, eventId: d!.eventId })).delivery!;
      expect(again).toMatchObject({ eventId: d!.eventId, attempts: 0, lastError: '', state: DeliveryState.PENDING });
      const missing = await H.redeliverWebhookEvent({ workspaceId: ws, eventId: '00000000-0000-4000-8000-000000000000' }).catch((e: unknown) => e);
      expect(String(missing)).toMatch(/not_found|NotFound|not found/i);
    } finally {
      await guarded.close();
    }
  });

  it('queues nothing for a workspace without a webhook, and drops undelivered events when the webhook is deleted', async () => {
    const ws = await workspace(ts);
    const K = client(KeyService, ts);
    await K.revokeKey({ id: (await K.createKey({ key: { workspaceId: ws, name: 'quiet' } })).key!.id });
    const count = async () => Number((await ts.sql(`select count(*)::int as n from webhook_outbox where workspace_id = ?`, [ws]))[0].n);
    expect(await count()).toBe(0);

    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    rx.status = (r) => (r.event.workspace_id === ws ? 500 : 200);
    try {
      await K.revokeKey({ id: (await K.createKey({ key: { workspaceId: ws, name: 'dropped' } })).key!.id });
      await until('a failed attempt', () => rx.received.some((r) => r.event.workspace_id === ws));
      expect(await count()).toBe(1);
      await client(WebhookService, ts).deleteWebhook({ workspaceId: ws });
      expect(await count()).toBe(0);
    } finally {
      rx.status = () => 200;
    }
  });
});

describe('SendTestEvent', () => {
  /** Waits until the worker has finished a whole pass after this point: two events queued one after the other, both received. */
  async function workerPassed(ws: string) {
    const K = client(KeyService, ts);
    for (const name of ['pass 1', 'pass 2']) {
      const keyId = (await K.createKey({ key: { workspaceId: ws, name } })).key!.id;
      await K.revokeKey({ id: keyId });
      await until(`key.revoked of ${name}`, () => rx.of('key.revoked', keyId).length === 1);
    }
  }
  const testEventsOf = (ws: string) => rx.received.filter((r) => r.event.type === 'webhook.test' && r.event.workspace_id === ws);

  it('posts a signed webhook.test event at once and answers the outcome; it is listed, audited, and never sent again', async () => {
    const ws = await workspace(ts);
    const H = client(WebhookService, ts);
    const { signingSecret } = await H.setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const res = await H.sendTestEvent({ workspaceId: ws });
    expect(res).toMatchObject({ delivered: true, httpStatus: 200, error: '' });
    expect(res.durationMs).toBeGreaterThanOrEqual(0);
    expect(res.delivery).toMatchObject({ eventType: 'webhook.test', keyId: '', state: DeliveryState.DELIVERED, attempts: 1, lastError: '' });
    expect(res.delivery!.deliveredTime).toBeDefined();
    expect(res.delivery!.nextAttemptTime).toBeUndefined();

    // The answer came after the receiver had it: signed like every event, the same envelope.
    const [got] = testEventsOf(ws);
    expect(got).toBeDefined();
    expect(verifyWebhookSignature(signingSecret, got!.body, got!.headers[SIGNATURE_HEADER] as string)).toBe(true);
    expect(verifyWebhookSignature('whsec_wrong', got!.body, got!.headers[SIGNATURE_HEADER] as string)).toBe(false);
    expect(got!.headers[EVENT_ID_HEADER]).toBe(res.delivery!.eventId);
    expect(got!.headers['content-type']).toBe('application/json');
    expect(got!.event).toEqual({
      id: res.delivery!.eventId,
      type: 'webhook.test',
      create_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      workspace_id: ws,
      data: { test: true, message: expect.stringContaining('test') },
    });

    const listed = (await H.listWebhookDeliveries({ workspaceId: ws })).deliveries;
    expect(listed.find((d) => d.eventId === res.delivery!.eventId)).toMatchObject({ eventType: 'webhook.test', state: DeliveryState.DELIVERED });
    const audited = await client(AuditService, ts).listAuditEvents({ workspaceId: ws, action: 'webhook.test' });
    expect(audited.events.map((e) => e.resourceId)).toEqual([res.delivery!.eventId]);

    await workerPassed(ws);
    expect(testEventsOf(ws)).toHaveLength(1);
    // Not redelivered either: a new test is a new SendTestEvent.
    const again = await expectError(H.redeliverWebhookEvent({ workspaceId: ws, eventId: res.delivery!.eventId }), Code.FailedPrecondition);
    expect(again.rawMessage).toContain('SendTestEvent');
  });

  it('reports a receiver that answers 500 or cannot be reached as an outcome, records it failed, and never retries it', async () => {
    const ws = await workspace(ts);
    const H = client(WebhookService, ts);
    await H.setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    rx.status = (r) => (r.event.type === 'webhook.test' && r.event.workspace_id === ws ? 500 : 200);
    try {
      const res = await H.sendTestEvent({ workspaceId: ws });
      expect(res).toMatchObject({ delivered: false, httpStatus: 500, error: 'HTTP 500' });
      expect(res.delivery).toMatchObject({ eventType: 'webhook.test', state: DeliveryState.FAILED, attempts: 1, lastError: 'HTTP 500' });
      expect(res.delivery!.failedTime).toBeDefined();
      expect(testEventsOf(ws)).toHaveLength(1);
      await workerPassed(ws);
      expect(testEventsOf(ws)).toHaveLength(1);
      const [row] = await ts.sql(`select attempts, failed_time, delivered_time from webhook_outbox where id = ?`, [res.delivery!.eventId]);
      expect(row).toMatchObject({ attempts: 1, delivered_time: null });
      expect(row!.failed_time).not.toBeNull();
    } finally {
      rx.status = () => 200;
    }

    // A closed port: no HTTP status, the network's error.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await H.setWebhook({ webhook: { workspaceId: ws, url: `http://127.0.0.1:${port}/hook` } });
    const down = await H.sendTestEvent({ workspaceId: ws });
    expect(down).toMatchObject({ delivered: false, httpStatus: 0 });
    expect(down.error).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
    expect(down.delivery).toMatchObject({ state: DeliveryState.FAILED, lastError: down.error });
  });

  it('is refused by the private-network guard like any event: nothing is sent', async () => {
    const { KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS: _allowed, ...defaults } = FAST;
    const guarded = await startTestServer(defaults);
    try {
      const ws = await workspace(guarded);
      const H = client(WebhookService, guarded);
      await H.setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
      const res = await H.sendTestEvent({ workspaceId: ws });
      expect(res).toMatchObject({ delivered: false, httpStatus: 0 });
      expect(res.error).toMatch(/^refused: 127\.0\.0\.1 resolves to a private or non-public address/);
      expect(testEventsOf(ws)).toHaveLength(0);
    } finally {
      await guarded.close();
    }
  });

  it('answers NOT_FOUND for a workspace without a webhook or that does not exist, PERMISSION_DENIED for a key restricted to another workspace', async () => {
    const H = client(WebhookService, ts);
    const bare = await workspace(ts);
    await expectError(H.sendTestEvent({ workspaceId: bare }), Code.NotFound);
    await expectError(H.sendTestEvent({ workspaceId: '00000000-0000-4000-8000-000000000000' }), Code.NotFound);
    await expectError(H.sendTestEvent({ workspaceId: '' }), Code.InvalidArgument, 'workspace_id');
    const hooked = await workspace(ts);
    await H.setWebhook({ webhook: { workspaceId: hooked, url: rx.url } });
    const other = client(WebhookService, ts, { token: await ts.sdkKey(['workspace:write'], [bare]) });
    await expectError(other.sendTestEvent({ workspaceId: hooked }), Code.PermissionDenied);
    expect(testEventsOf(hooked)).toHaveLength(0);
  });

  it('is served at POST /v1/workspaces/{workspace_id}/webhook:sendTestEvent', async () => {
    const ws = await workspace(ts);
    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const res = await fetch(`${ts.baseUrl}/v1/workspaces/${ws}/webhook:sendTestEvent`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ts.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ delivered: true, httpStatus: 200, delivery: { eventType: 'webhook.test', state: 'DELIVERY_STATE_DELIVERED' } });
    expect(testEventsOf(ws)).toHaveLength(1);
  });
});

describe('key.usage_exhausted', () => {
  const sql = <T = Record<string, unknown>>(q: string, params: unknown[] = []) => ts.sql<T[]>(q, params);
  const settle = () => new Promise((r) => setTimeout(r, 400)); // several worker polls

  it('is sent once when a verification takes the last use, signed, with the key; again after UpdateKey raises the uses and they run out', async () => {
    const ws = await workspace(ts);
    const { signingSecret } = await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const K = client(KeyService, ts);
    const expireTime = new Date(Date.now() + 30 * 24 * 3600_000 + 123);
    const created = await K.createKey({
      key: { workspaceId: ws, customerId: 'cus_metered', name: 'metered', remainingUses: 2n, expireTime: timestampFromDate(expireTime) },
    });
    const keyId = created.key!.id;
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await K.verifyKey({ key: created.secret })).code);
    expect(codes).toEqual([VerifyCode.VALID, VerifyCode.VALID, VerifyCode.USAGE_EXCEEDED]);
    const [ev] = await until('key.usage_exhausted', () => rx.of('key.usage_exhausted', keyId).length >= 1 && rx.of('key.usage_exhausted', keyId));
    await settle();
    expect(rx.of('key.usage_exhausted', keyId)).toHaveLength(1);
    expect(verifyWebhookSignature(signingSecret, ev!.body, ev!.headers[SIGNATURE_HEADER] as string)).toBe(true);
    expect(ev!.headers[EVENT_ID_HEADER]).toBe(ev!.event.id);
    expect(ev!.event).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
      type: 'key.usage_exhausted',
      create_time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      workspace_id: ws,
      data: {
        key: {
          id: keyId,
          workspace_id: ws,
          customer_id: 'cus_metered',
          name: 'metered',
          start: created.key!.start,
          masked_key: created.key!.maskedKey,
          expire_time: expireTime.toISOString(),
          revoke_time: null,
        },
      },
    });
    expect(Math.abs(Date.parse(ev!.event.create_time) - Date.now())).toBeLessThan(60_000);
    expect(ev!.body).not.toContain(created.secret.slice(3));

    // Setting remaining_uses to 0 is not an exhaustion; raising it and using it up again is.
    const setUses = (n: bigint) => K.updateKey({ key: { id: keyId, remainingUses: n }, updateMask: { paths: ['remaining_uses'] } });
    await setUses(5n);
    await setUses(0n);
    expect((await K.verifyKey({ key: created.secret })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    await settle();
    expect(rx.of('key.usage_exhausted', keyId)).toHaveLength(1);
    await setUses(1n);
    expect((await K.verifyKey({ key: created.secret })).code).toBe(VerifyCode.VALID);
    expect((await K.verifyKey({ key: created.secret })).code).toBe(VerifyCode.USAGE_EXCEEDED);
    await until('second key.usage_exhausted', () => rx.of('key.usage_exhausted', keyId).length === 2);
    const [first, second] = rx.of('key.usage_exhausted', keyId);
    expect(second!.event.id).not.toBe(first!.event.id);
    expect(verifyWebhookSignature(signingSecret, second!.body, second!.headers[SIGNATURE_HEADER] as string)).toBe(true);

    // Built in SQL, the key's data is the same as that of events built in JS.
    await K.revokeKey({ id: keyId });
    const [rev] = await until('key.revoked', () => rx.of('key.revoked', keyId).length === 1 && rx.of('key.revoked', keyId));
    expect({ ...rev!.event.data.key, revoke_time: null }).toEqual(second!.event.data.key);
    expect(Object.keys(rev!.event)).toEqual(Object.keys(second!.event));
    await settle();
    expect(rx.of('key.usage_exhausted', keyId)).toHaveLength(2);
  });

  it('is sent again when a refill is used up', async () => {
    const ws = await workspace(ts);
    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const K = client(KeyService, ts);
    const created = await K.createKey({
      key: { workspaceId: ws, name: 'refilled', remainingUses: 1n, refill: { amount: 2n, interval: RefillInterval.DAILY } },
    });
    const keyId = created.key!.id;
    const verify = async () => VerifyCode[(await K.verifyKey({ key: created.secret })).code];
    expect(await verify()).toBe('VALID');
    await until('key.usage_exhausted', () => rx.of('key.usage_exhausted', keyId).length === 1);
    // As if the key had last been refilled two days ago.
    await sql(`update api_keys set last_refill_time = now() - interval '2 days' where id = ?`, [keyId]);
    expect([await verify(), await verify(), await verify()]).toEqual(['VALID', 'VALID', 'USAGE_EXCEEDED']);
    await until('second key.usage_exhausted', () => rx.of('key.usage_exhausted', keyId).length === 2);
    await settle();
    expect(rx.of('key.usage_exhausted', keyId)).toHaveLength(2);
  });

  it('is queued once however many verifications race for the last uses, and not at all without a webhook', async () => {
    const ws = await workspace(ts);
    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url } });
    const K = client(KeyService, ts);
    const created = await K.createKey({ key: { workspaceId: ws, name: 'raced', remainingUses: 5n } });
    const codes = await Promise.all(Array.from({ length: 20 }, () => K.verifyKey({ key: created.secret })));
    expect(codes.filter((r) => r.code === VerifyCode.VALID)).toHaveLength(5);
    const queued = await sql<{ n: number }>(`select count(*)::int as n from webhook_outbox where event_type = 'key.usage_exhausted' and workspace_id = ?`, [
      ws,
    ]);
    expect(queued[0]!.n).toBe(1);
    await until('key.usage_exhausted', () => rx.of('key.usage_exhausted', created.key!.id).length === 1);

    const quiet = await workspace(ts);
    const q = await K.createKey({ key: { workspaceId: quiet, name: 'unheard', remainingUses: 1n } });
    expect((await K.verifyKey({ key: q.secret })).code).toBe(VerifyCode.VALID);
    expect((await sql<{ n: number }>(`select count(*)::int as n from webhook_outbox where workspace_id = ?`, [quiet]))[0]!.n).toBe(0);
  });
});

describe('expiry notices', () => {
  it('sends key.expiring once per key and expire_time, within the notice days', async () => {
    const ws = await workspace(ts);
    await client(WebhookService, ts).setWebhook({ webhook: { workspaceId: ws, url: rx.url, expiringNoticeDays: 3 } });
    const K = client(KeyService, ts);
    const day = 24 * 3600_000;
    const soon = (await K.createKey({ key: { workspaceId: ws, name: 'soon', expireTime: timestampFromDate(new Date(Date.now() + 2 * day)) } })).key!.id;
    const later = (await K.createKey({ key: { workspaceId: ws, name: 'later', expireTime: timestampFromDate(new Date(Date.now() + 10 * day)) } })).key!.id;
    const never = (await K.createKey({ key: { workspaceId: ws, name: 'never' } })).key!.id;
    await until('key.expiring', () => rx.of('key.expiring', soon).length === 1);
    await new Promise((r) => setTimeout(r, 500)); // several more scans
    expect(rx.of('key.expiring', soon)).toHaveLength(1);
    expect(rx.of('key.expiring', later)).toHaveLength(0);
    expect(rx.of('key.expiring', never)).toHaveLength(0);
    expect(rx.of('key.expiring', soon)[0]!.event.data.key.expire_time).toEqual(expect.any(String));
    // A new expire_time within the window is noticed again.
    await K.updateKey({ key: { id: soon, expireTime: timestampFromDate(new Date(Date.now() + day)) }, updateMask: { paths: ['expire_time'] } });
    await until('second key.expiring', () => rx.of('key.expiring', soon).length === 2);
  });

  it('ListKeys filters keys expiring before a time, with page tokens bound to it', async () => {
    const ws = await workspace(ts);
    const K = client(KeyService, ts);
    const day = 24 * 3600_000;
    const at = (d: number) => timestampFromDate(new Date(Date.now() + d * day));
    const ids = [];
    for (const d of [1, 2, 5]) ids.push((await K.createKey({ key: { workspaceId: ws, name: `in ${d}`, expireTime: at(d) } })).key!.id);
    await K.createKey({ key: { workspaceId: ws, name: 'forever' } });
    const all = await K.listKeys({ workspaceId: ws, expireBefore: at(3) });
    expect(all.keys.map((k) => k.id)).toEqual(ids.slice(0, 2));
    expect((await K.listKeys({ workspaceId: ws, expireBefore: at(3), state: KeyState.ACTIVE })).keys).toHaveLength(2);
    expect((await K.listKeys({ workspaceId: ws, expireBefore: at(0) })).keys).toHaveLength(0);
    const fixed = at(3);
    const q1 = await K.listKeys({ workspaceId: ws, expireBefore: fixed, pageSize: 1 });
    const q2 = await K.listKeys({ workspaceId: ws, expireBefore: fixed, pageSize: 1, pageToken: q1.nextPageToken });
    expect([...q1.keys, ...q2.keys].map((k) => k.id)).toEqual(ids.slice(0, 2));
    expect(q2.nextPageToken).toBe('');
    await expectError(K.listKeys({ workspaceId: ws, expireBefore: at(4), pageSize: 1, pageToken: q1.nextPageToken }), Code.InvalidArgument, 'page_token');
    const binary = client(KeyService, ts, { protocol: 'connect-binary' }); // JSON could not even carry it
    await expectError(binary.listKeys({ workspaceId: ws, expireBefore: { seconds: 0n, nanos: -1 } }), Code.InvalidArgument, 'expire_before');
  });
});

describe('durability', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ persistent: true });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('delivers events left undelivered by a server that stopped, after a restart', async () => {
    const down = await new Receiver().start();
    down.status = () => 503;
    const first = await startTestServer(FAST, { db });
    let keyId: string;
    let signingSecret: string;
    try {
      const ws = await workspace(first);
      signingSecret = (await client(WebhookService, first).setWebhook({ webhook: { workspaceId: ws, url: down.url } })).signingSecret;
      const K = client(KeyService, first);
      keyId = (await K.createKey({ key: { workspaceId: ws, name: 'durable' } })).key!.id;
      await K.revokeKey({ id: keyId });
      await until('a failed attempt', () => down.received.length >= 1);
    } finally {
      await first.close();
    }
    const failedAttempts = down.received.length;
    down.status = () => 200;
    const second = await startTestServer(FAST, { db });
    try {
      const ok = await until('delivery after restart', () => down.received.length > failedAttempts && down.received[down.received.length - 1]);
      expect(ok.event).toMatchObject({ type: 'key.revoked', data: { key: { id: keyId! } } });
      expect(verifyWebhookSignature(signingSecret!, ok.body, ok.headers[SIGNATURE_HEADER] as string)).toBe(true);
    } finally {
      await second.close();
      await down.close();
    }
  });
});

// Replicas share one Postgres; the embedded database has a single server.
describe.skipIf(!process.env.DATABASE_URL)('two replicas', () => {
  it('share the outbox: every event is delivered once', async () => {
    const db = await createTestDatabase();
    const sink = await new Receiver().start();
    const one = await startTestServer(FAST, { db });
    const two = await startTestServer(FAST, { db });
    try {
      const ws = await workspace(one);
      await client(WebhookService, one).setWebhook({ webhook: { workspaceId: ws, url: sink.url } });
      const K = client(KeyService, one);
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) ids.push((await K.createKey({ key: { workspaceId: ws, name: `r${i}` } })).key!.id);
      await Promise.all(ids.map((id) => K.revokeKey({ id })));
      await until('30 deliveries', () => sink.of('key.revoked').length >= 30);
      await new Promise((r) => setTimeout(r, 300));
      const delivered = sink.of('key.revoked').map((r) => r.event.data.key.id as string);
      expect(delivered.sort()).toEqual([...ids].sort());
    } finally {
      await one.close();
      await two.close();
      await sink.close();
      await db.drop();
    }
  });
});
