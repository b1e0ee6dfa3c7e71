// OpenTelemetry tracing, off unless configured (src/config.ts, tracingOf).
//
// Instrumented code uses @opentelemetry/api only; without a registered SDK its
// calls do nothing, and the helpers here skip even that. What is traced:
// - every RPC but VerifyKey, as a SERVER span (tracingInterceptor, in
//   src/rpc/interceptors.ts);
// - VerifyKey only when it reaches the database (a cache miss), as
//   `keyward.verify.lookup` under the caller's `traceparent` (a cache hit is
//   no span: at tens of thousands a second it would drown the trace store).
// The SDK (exporter, batch processor, context manager) is loaded only when
// tracing is on.
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { TracingConfig } from './config.js';
import { VERSION } from './version.js';

const tracer = trace.getTracer('keyward');

let users = 0;
let started: Promise<() => Promise<void>> | undefined;

/** Whether spans are being recorded in this process. */
export const tracingOn = (): boolean => users > 0;

/**
 * Registers the SDK for this process (once, however many servers it runs)
 * and returns the function that flushes and unregisters it when the last
 * server using it stops.
 */
export async function startTracing(cfg: TracingConfig): Promise<() => Promise<void>> {
  users++;
  started ??= registerSdk(cfg);
  let shutdown: () => Promise<void>;
  try {
    shutdown = await started;
  } catch (e) {
    users--;
    started = undefined;
    throw e;
  }
  let stopped = false;
  return async () => {
    if (stopped) return;
    stopped = true;
    if (--users > 0) return;
    started = undefined;
    await shutdown();
  };
}

async function registerSdk(cfg: TracingConfig): Promise<() => Promise<void>> {
  const [sdk, { AsyncLocalStorageContextManager }, core, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const exporter = cfg.exporter === 'console' ? new sdk.ConsoleSpanExporter() : new OTLPTraceExporter({ url: cfg.endpoint });
  const ratio = new sdk.TraceIdRatioBasedSampler(cfg.samplerRatio);
  const root = cfg.sampler.endsWith('always_off') ? new sdk.AlwaysOffSampler() : cfg.sampler.endsWith('traceidratio') ? ratio : new sdk.AlwaysOnSampler();
  const provider = new sdk.TracerProvider({
    resource: resourceFromAttributes({ ...cfg.resourceAttributes, 'service.name': cfg.serviceName, 'service.version': VERSION }),
    sampler: cfg.sampler.startsWith('parentbased_') ? new sdk.ParentBasedSampler({ root }) : root,
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter, scheduledDelayMillis: cfg.scheduleDelayMs })],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new core.CompositePropagator({ propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()] }));
  trace.setGlobalTracerProvider(provider);
  return async () => {
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
  };
}

/** Request headers as the transports hold them: an object (node:http, node:http2) or fetch Headers (connect-es). */
export type TraceCarrier = Record<string, string | string[] | undefined> | Headers;

const headersGetter = {
  get: (carrier: TraceCarrier, key: string) => (carrier instanceof Headers ? (carrier.get(key) ?? undefined) : carrier[key]),
  keys: (carrier: TraceCarrier) => (carrier instanceof Headers ? [...carrier.keys()] : Object.keys(carrier)),
};

/** Runs `fn` in the trace context the caller sent (`traceparent`, `tracestate`, `baggage`), if tracing is on. */
export function withCallerTrace<T>(carrier: TraceCarrier, fn: () => T): T {
  if (!tracingOn()) return fn();
  return context.with(propagation.extract(ROOT_CONTEXT, carrier, headersGetter), fn);
}

/** The codes the OpenTelemetry RPC conventions count as the server's failure (the others are the caller's). */
const SERVER_FAULT_CODES = new Set(['unknown', 'deadline_exceeded', 'unimplemented', 'internal', 'unavailable', 'data_loss']);

/**
 * Runs an RPC's `fn` in a SERVER span named `service/method`, a child of the
 * caller's trace context; `outcome` names the RPC's status code (`ok`, or
 * the error's as Connect names it) and numbers it, from what `fn` returned or threw.
 */
export async function inServerSpan<T>(
  carrier: TraceCarrier,
  name: string,
  attributes: Attributes,
  fn: () => Promise<T>,
  outcome: (e: unknown) => { code: string; number: number; message?: string },
): Promise<T> {
  const parent = propagation.extract(ROOT_CONTEXT, carrier, headersGetter);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  try {
    const res = await context.with(trace.setSpan(parent, span), fn);
    span.setAttributes({ 'rpc.response.status_code': 'ok', 'rpc.grpc.status_code': 0 });
    return res;
  } catch (e) {
    const o = outcome(e);
    span.setAttributes({ 'rpc.response.status_code': o.code, 'rpc.grpc.status_code': o.number });
    if (SERVER_FAULT_CODES.has(o.code)) span.setStatus({ code: SpanStatusCode.ERROR, message: o.message });
    throw e;
  } finally {
    span.end();
  }
}

/** Runs `fn` in an INTERNAL span, a child of the active one (a no-op when tracing is off). */
export function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (!tracingOn()) return fn(undefined);
  return tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  });
}
