// OpenTelemetry tracing on a real server, exporting to an OTLP/HTTP receiver
// on a local socket: management RPCs make SERVER spans under the caller's
// traceparent, VerifyKey makes a span only when it reads the database (on
// each path: fast, stock, forward auth), never for a cache hit, and no span
// carries a key. Without OTEL_ configuration tracing is off.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Code } from '@connectrpc/connect';
import { KeyService, VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';
import { loadConfig } from '../../src/config.js';
import { httpRequest, newKey, newWorkspace } from '../support/fixtures.js';
import { recordSecret, recordText } from '../support/hygiene.js';
import { expectError } from '../support/rpc.js';
import { client, startTestServer, type TestServer } from '../support/server.js';

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
  status?: { code?: number };
}
interface OtlpBody {
  resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

const SERVER = 2;

/** An OTLP/HTTP receiver: keeps every span posted to /v1/traces (JSON), and the resource attributes. */
async function startReceiver() {
  const spans: OtlpSpan[] = [];
  const resources: OtlpAttribute[][] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      recordText('otlp-export', body);
      if (req.url === '/v1/traces') {
        const parsed = JSON.parse(body) as OtlpBody;
        for (const rs of parsed.resourceSpans) {
          resources.push(rs.resource.attributes);
          for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, resources, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : v?.boolValue);
};

/** A fresh W3C trace context: its traceparent header, trace id and parent span id. */
function traceContext() {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceparent: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

describe('tracing with an OTLP endpoint', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let ts: TestServer;
  let ws: string;
  let closed = false;
  const calls: { name: string; trace: ReturnType<typeof traceContext> }[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
    ts = await startTestServer({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'keyward-under-test',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    ws = await newWorkspace(ts, { scopes: ['orders'] });
  });
  afterAll(async () => {
    if (!closed) await ts?.close();
    await receiver?.close();
  });

  /** Closes the server (which sends every span still batched) and answers the spans of `trace`. */
  async function spansOf(trace: { traceId: string }): Promise<OtlpSpan[]> {
    if (!closed) {
      closed = true;
      await ts.close();
    }
    return receiver.spans.filter((s) => s.traceId === trace.traceId);
  }

  it('runs every call of the test (the spans are read below, once the server has flushed them)', async () => {
    // A management RPC over Connect and over gRPC, and one that fails with the caller's error.
    for (const protocol of ['connect-json', 'grpc'] as const) {
      const trace = traceContext();
      await client(WorkspaceService, ts, { protocol }).getWorkspace({ id: ws }, { headers: { traceparent: trace.traceparent } });
      calls.push({ name: `get-${protocol}`, trace });
    }
    const missing = traceContext();
    await expectError(
      client(KeyService, ts).getKey({ id: '00000000-0000-4000-8000-000000000000' }, { headers: { traceparent: missing.traceparent } }),
      Code.NotFound,
    );
    calls.push({ name: 'get-missing', trace: missing });

    // VerifyKey: a cold key, then the same key again (a cache hit), on the fast path (gRPC over HTTP/2).
    const fast = await newKey(ts, { workspaceId: ws, scopes: ['orders:read'] });
    recordSecret(fast.secret);
    const cold = traceContext();
    const grpc = client(KeyService, ts, { protocol: 'grpc' });
    expect((await grpc.verifyKey({ key: fast.secret }, { headers: { traceparent: cold.traceparent } })).code).toBe(VerifyCode.VALID);
    calls.push({ name: 'verify-cold-fast', trace: cold });
    const hit = traceContext();
    expect((await grpc.verifyKey({ key: fast.secret }, { headers: { traceparent: hit.traceparent } })).code).toBe(VerifyCode.VALID);
    calls.push({ name: 'verify-hit-fast', trace: hit });

    // The stock handler (Connect JSON over HTTP/1.1) and forward auth, each with a key not yet cached.
    const stock = await newKey(ts, { workspaceId: ws });
    recordSecret(stock.secret);
    const stockTrace = traceContext();
    expect((await client(KeyService, ts).verifyKey({ key: stock.secret }, { headers: { traceparent: stockTrace.traceparent } })).code).toBe(VerifyCode.VALID);
    calls.push({ name: 'verify-cold-stock', trace: stockTrace });
    const gate = await newKey(ts, { workspaceId: ws });
    recordSecret(gate.secret);
    const gateTrace = traceContext();
    const reply = await httpRequest(`${ts.baseUrl}/v1/authorize`, {
      headers: { 'x-keyward-sdk-key': ts.adminToken, authorization: `Bearer ${gate.secret}`, traceparent: gateTrace.traceparent },
    });
    expect(reply.status).toBe(200);
    calls.push({ name: 'verify-cold-forward-auth', trace: gateTrace });
  });

  const traceOf = (name: string) => calls.find((c) => c.name === name)!.trace;

  it('a management RPC is a SERVER span, the child of the caller’s traceparent, over Connect and gRPC', async () => {
    for (const [name, system] of [
      ['get-connect-json', 'connect_rpc'],
      ['get-grpc', 'grpc'],
    ] as const) {
      const trace = traceOf(name);
      const spans = await spansOf(trace);
      expect(spans, name).toHaveLength(1);
      const [s] = spans;
      expect(s!.name).toBe('keyward.v1.WorkspaceService/GetWorkspace');
      expect(s!.kind).toBe(SERVER);
      expect(s!.parentSpanId).toBe(trace.spanId);
      expect(attr(s!, 'rpc.system')).toBe(system);
      expect(attr(s!, 'rpc.service')).toBe('keyward.v1.WorkspaceService');
      expect(attr(s!, 'rpc.method')).toBe('GetWorkspace');
      expect(attr(s!, 'rpc.grpc.status_code')).toBe(0);
      expect(attr(s!, 'rpc.response.status_code')).toBe('ok');
    }
  });

  it('a call that fails with the caller’s error carries its code, and is not marked an error of the server', async () => {
    const [s] = await spansOf(traceOf('get-missing'));
    expect(s!.name).toBe('keyward.v1.KeyService/GetKey');
    expect(attr(s!, 'rpc.grpc.status_code')).toBe(Code.NotFound);
    expect(attr(s!, 'rpc.response.status_code')).toBe('not_found');
    expect(s!.status?.code ?? 0).toBe(0);
  });

  it('VerifyKey makes a span where it reads the database, on every path, and none for a cache hit', async () => {
    for (const name of ['verify-cold-fast', 'verify-cold-stock', 'verify-cold-forward-auth']) {
      const trace = traceOf(name);
      const spans = await spansOf(trace);
      expect(
        spans.map((s) => s.name),
        name,
      ).toEqual(['keyward.verify.lookup']);
      expect(spans[0]!.parentSpanId, name).toBe(trace.spanId);
      expect(attr(spans[0]!, 'keyward.key.found'), name).toBe(true);
    }
    expect(await spansOf(traceOf('verify-hit-fast'))).toEqual([]);
  });

  it('names the service as configured, and sends no key (the hygiene scan reads every export)', async () => {
    await spansOf(traceOf('get-grpc'));
    const resource = receiver.resources[0]!;
    const value = (k: string) => resource.find((a) => a.key === k)?.value.stringValue;
    expect(value('service.name')).toBe('keyward-under-test');
    expect(value('deployment.environment')).toBe('test');
    expect(value('service.version')).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('tracing configuration', () => {
  it('is off unless an endpoint or an exporter is named, and OTEL_SDK_DISABLED wins', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SERVICE_NAME: 'x' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing?.endpoint).toBe('http://collector:4318/v1/traces');
    expect(loadConfig({ OTEL_TRACES_EXPORTER: 'console' }).tracing?.exporter).toBe('console');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).tracing).toBeUndefined();
  });

  it('refuses a value it cannot use, naming the variable', () => {
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_RESOURCE_ATTRIBUTES: 'novalue' })).toThrow(/OTEL_RESOURCE_ATTRIBUTES/);
  });
});
