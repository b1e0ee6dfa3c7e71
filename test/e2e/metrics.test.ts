// Prometheus metrics on a real server: GET /metrics shows every family the
// operations docs name, and the values move under traffic over each VerifyKey
// path (fast, stock, forward auth), the management RPCs, SDK-key failures and
// the webhook outbox. KEYWARD_METRICS_PORT moves /metrics to a port of its
// own; KEYWARD_METRICS=false turns it off.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { wellFormedUnknownKey } from '../support/fixtures.js';
import { recordSecret } from '../support/hygiene.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

/** The samples of a Prometheus text: `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    samples.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return samples;
}

async function scrape(url: string): Promise<{ status: number; type: string | null; samples: Map<string, number>; text: string }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), samples: parse(text), text };
}

const value = (s: Map<string, number>, name: string) => s.get(name) ?? 0;

describe('GET /metrics', () => {
  let ts: TestServer;
  let secret: string;

  beforeAll(async () => {
    ts = await startTestServer();
    const ws = (await client(WorkspaceService, ts).createWorkspace({ workspace: { name: 'metrics' } })).workspace!.id;
    await client(ScopeService, ts).createScope({ scope: { workspaceId: ws, name: 'orders' } });
    const created = await client(KeyService, ts).createKey({ key: { workspaceId: ws, scopes: ['orders:read'] } });
    secret = created.secret;
    recordSecret(secret);
  });
  afterAll(async () => {
    await ts?.close();
  });

  it('shows every family, and the values move under traffic', async () => {
    const before = await scrape(`${ts.baseUrl}/metrics`);
    expect(before.status).toBe(200);
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const family of [
      'keyward_verify_total',
      'keyward_verify_duration_seconds',
      'keyward_verify_cache_total',
      'keyward_verify_lookup_queries_total',
      'keyward_verify_filter_bytes',
      'keyward_verify_filter_keys',
      'keyward_change_barriers_total',
      'keyward_remaining_uses_statements_total',
      'keyward_remaining_uses_takes_total',
      'keyward_rpc_total',
      'keyward_rpc_duration_seconds',
      'keyward_change_listener_connected',
      'keyward_change_notifications_total',
      'keyward_rate_limit_decisions_total',
      'keyward_redis_outages_total',
      'keyward_sdk_key_auth_failures_total',
      'keyward_sdk_key_throttled_total',
      'keyward_webhook_events',
      'keyward_webhook_oldest_pending_seconds',
      'keyward_database_pool_connections',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(before.text, family).toContain(`# TYPE ${family} `);
    }

    // The fast path (gRPC and Connect over HTTP/2), hits after the first lookup, an unknown key, a refusal.
    const grpc = client(KeyService, ts, { protocol: 'grpc' });
    for (let i = 0; i < 5; i++) expect((await grpc.verifyKey({ key: secret, requiredPermissions: ['orders:read'] })).code).toBe(VerifyCode.VALID);
    const unknown = wellFormedUnknownKey();
    for (let i = 0; i < 3; i++) expect((await grpc.verifyKey({ key: unknown })).code).toBe(VerifyCode.NOT_FOUND);
    await client(KeyService, ts, { protocol: 'connect-binary' }).verifyKey({ key: secret, requiredPermissions: ['orders:write'] });
    await expect(grpc.verifyKey({ key: '' })).rejects.toThrow();
    // The stock path (REST), and forward auth.
    const rest = await fetch(`${ts.baseUrl}/v1/api-keys:verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ts.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key: secret }),
    });
    expect(rest.status).toBe(200);
    const gateway = await ts.sdkKey(['api_keys:verify']);
    expect((await fetch(`${ts.baseUrl}/v1/authorize`, { headers: { authorization: `Bearer ${secret}`, 'x-keyward-sdk-key': gateway } })).status).toBe(200);
    expect((await fetch(`${ts.baseUrl}/v1/authorize`, { headers: { 'x-keyward-sdk-key': gateway } })).status).toBe(401);
    // A wrong SDK key.
    await expect(client(WorkspaceService, ts, { token: 'kws_nope' }).listWorkspaces({})).rejects.toThrow();

    const after = (await scrape(`${ts.baseUrl}/metrics`)).samples;
    const moved = (name: string) => value(after, name) - value(before.samples, name);
    expect(moved('keyward_verify_total{code="valid",protocol="grpc",path="fast"}')).toBe(5);
    expect(moved('keyward_verify_total{code="not_found",protocol="grpc",path="fast"}')).toBe(3);
    expect(moved('keyward_verify_total{code="insufficient_permissions",protocol="connect",path="fast"}')).toBe(1);
    expect(moved('keyward_verify_total{code="invalid_argument",protocol="grpc",path="fast"}')).toBe(1);
    expect(moved('keyward_verify_total{code="valid",protocol="connect",path="stock"}')).toBe(1);
    expect(moved('keyward_verify_total{code="valid",protocol="http",path="forward_auth"}')).toBe(1);
    expect(moved('keyward_verify_total{code="missing_key",protocol="http",path="forward_auth"}')).toBe(1);
    expect(moved('keyward_verify_duration_seconds_count{path="fast"}')).toBe(10);
    // Server-side latency: a cached verification lands in the low buckets.
    expect(value(after, 'keyward_verify_duration_seconds_bucket{path="fast",le="0.25"}')).toBe(
      value(after, 'keyward_verify_duration_seconds_count{path="fast"}'),
    );
    expect(moved('keyward_verify_cache_total{result="hit"}')).toBeGreaterThanOrEqual(4);
    // Unknown keys are answered by the membership filter, without a lookup.
    expect(moved('keyward_verify_cache_total{result="filtered"}')).toBeGreaterThanOrEqual(3);
    expect(moved('keyward_verify_cache_total{result="miss"}')).toBeGreaterThanOrEqual(1);
    expect(moved('keyward_rpc_total{service="keyward.v1.WorkspaceService",method="ListWorkspaces",code="unauthenticated"}')).toBe(1);
    expect(moved('keyward_rpc_duration_seconds_count{service="keyward.v1.KeyService",method="VerifyKey"}')).toBe(1);
    expect(moved('keyward_sdk_key_auth_failures_total')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'keyward_database_pool_connections{state="used"}') + value(after, 'keyward_database_pool_connections{state="free"}')).toBeGreaterThan(
      0,
    );
    expect(value(after, 'keyward_webhook_events{state="pending"}')).toBeGreaterThanOrEqual(0);
    expect(value(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });
});

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe('where /metrics is served', () => {
  it('KEYWARD_METRICS_PORT: only there, not on the public port', async () => {
    const port = await freePort();
    const ts = await startTestServer({ KEYWARD_METRICS_PORT: String(port) });
    try {
      expect((await fetch(`${ts.baseUrl}/metrics`)).status).toBe(404);
      const apart = await scrape(`http://127.0.0.1:${port}/metrics`);
      expect(apart.status).toBe(200);
      expect(apart.text).toContain('# TYPE keyward_verify_total counter');
      expect((await fetch(`http://127.0.0.1:${port}/v1/workspaces`)).status).toBe(404);
    } finally {
      await ts.close();
    }
  });

  it('KEYWARD_METRICS=false: not at all', async () => {
    const ts = await startTestServer({ KEYWARD_METRICS: 'false' });
    try {
      expect((await fetch(`${ts.baseUrl}/metrics`)).status).toBe(404);
    } finally {
      await ts.close();
    }
  });
});
