// Unary RPCs over gRPC without connect-node's per-call machinery.
//
// connect-node spends about 400 µs of CPU on a unary call whose handler does
// nothing (bench row connect-node-empty: a Headers object per direction, an
// AbortController with a DOMException per call, a chain of async iterators
// for one message), more than CreateKey's own work. This path serves every
// unary method but VerifyKey (verify-fast-path.ts serves that one) when it is
// called over gRPC with a protobuf body, as SDKs and gRPC clients call it: it
// reads the one message, runs the very interceptors and implementation
// connect-node runs (connect's invokeUnaryImplementation), and writes the
// answer as connect-node's gRPC handler would (same headers and trailers,
// errors through setTrailerStatus). Everything else goes to connect-node
// untouched: other protocols and formats, streaming methods, unknown
// encodings, a malformed timeout, and (replayed, see verify-stream.ts) a body
// over the size limit, anything but one well-framed message, a message that
// fails to decompress or parse. test/e2e/grpc-conformance.test.ts holds both
// paths to the same answers.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { Code, ConnectError, createContextValues, createHandlerContext, type HandlerContext, type Interceptor, type MethodImplSpec } from '@connectrpc/connect';
import {
  createMethodSerializationLookup,
  invokeUnaryImplementation,
  validateUniversalHandlerOptions,
  type Compression,
  type MethodSerializationLookup,
  type UniversalHandlerOptions,
} from '@connectrpc/connect/protocol';
import { parseTimeout, setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import type { ServiceImplSpec } from '@connectrpc/connect';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import type { ClientAddress } from '../auth/client-address.js';
import { errorFields, type Logger } from '../log.js';
import { deadlineAt } from '../verify/deadline.js';
import { peerKey } from './context.js';
import { attach, Call, detach, type CallOwner, type FastStream, type StreamListener } from './verify-stream.js';
import { CompressionNegotiation, envelope, GRPC, headerValue, kindOf, nodeHeaders, RESPOND_THEN_TRAILERS } from './verify-wire.js';

type UnarySpec = Extract<MethodImplSpec, { kind: 'unary' }>;

interface Route {
  spec: UnarySpec;
  serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

export interface UnaryFastPathDeps {
  /** The services served, with their implementations (App.services). */
  services: ServiceImplSpec[];
  /** Paths this path leaves alone (VerifyKey's: its own fast path, or connect-node when that is off). */
  except: ReadonlySet<string>;
  interceptors: Interceptor[];
  /** The limits and encodings connect-node is configured with (App.protocolOptions). */
  protocolOptions: Partial<UniversalHandlerOptions>;
  /** Aborts every call's signal when the server shuts down, as connect-node's shutdownSignal. */
  shutdownSignal: AbortSignal | undefined;
  clientAddress: ClientAddress;
  log: Logger;
  /** Calls served here and calls handed to connect-node, counted. */
  stats: { served: number; handedOver: number };
}

/** The reason a finished call's signal is aborted with: one object, so that no call makes a DOMException. */
const CALL_ENDED = new ConnectError('the call has ended', Code.Canceled);

export class UnaryFastPath implements CallOwner {
  private readonly routes = new Map<string, Route>();
  private readonly opt;
  private readonly negotiation;

  constructor(
    private readonly deps: UnaryFastPathDeps,
    /** Whoever handles what this path does not. */
    private readonly fallback: StreamListener,
  ) {
    this.opt = validateUniversalHandlerOptions(deps.protocolOptions);
    this.negotiation = new CompressionNegotiation(this.opt.acceptCompression);
    for (const service of deps.services) {
      for (const spec of Object.values(service.methods)) {
        const path = `/${service.service.typeName}/${spec.method.name}`;
        if (spec.kind !== 'unary' || deps.except.has(path)) continue;
        this.routes.set(path, { spec, serialization: createMethodSerializationLookup(spec.method, this.opt.binaryOptions, this.opt.jsonOptions, this.opt) });
      }
    }
  }

  /** The 'stream' listener: unary gRPC calls it can serve, everything else to the fallback. */
  readonly onStream: StreamListener = (stream, headers, flags, rawHeaders) => {
    if (!this.routes.has(headers[':path']!)) {
      this.fallback(stream, headers, flags, rawHeaders);
      return;
    }
    const call = this.accept(stream as FastStream, headers, flags, rawHeaders);
    if (call === undefined) {
      this.deps.stats.handedOver++;
      this.fallback(stream, headers, flags, rawHeaders);
      return;
    }
    attach(call);
  };

  /** A call if its headers say it is gRPC with protobuf, with a well-formed timeout and a known encoding. */
  private accept(stream: FastStream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]): Call | undefined {
    if (headers[':method'] !== 'POST' || headers.expect !== undefined) return undefined;
    if (headers[':authority'] === undefined && headers.host === undefined) return undefined;
    const k = kindOf(headers['content-type']);
    if (k === undefined || k.protocol !== GRPC || !k.binary) return undefined;
    const timeout = parseTimeout(headerValue(headers['grpc-timeout']), this.opt.maxTimeoutMs);
    if (timeout.error) return undefined;
    const compression = this.negotiation.of(headers['grpc-encoding'], headers['grpc-accept-encoding'], 'grpc-accept-encoding');
    if (compression === undefined) return undefined;
    // Counted from the headers, as connect-node's context counts it.
    const deadline = timeout.timeoutMs === undefined ? undefined : deadlineAt(timeout.timeoutMs);
    return new Call(this, stream, headers, flags, rawHeaders, k, compression, deadline, this.opt.readMaxBytes + 5, -1, 0);
  }

  handOver(call: Call, ended: boolean): undefined {
    if (!detach(call, ended)) return undefined;
    this.deps.stats.handedOver++;
    this.fallback(call.stream, call.headers, call.flags, call.rawHeaders);
    return undefined;
  }

  run(call: Call): void {
    this.serve(call).catch((e: unknown) => {
      this.deps.log.error('request failed', { rpc: call.headers[':path'], ...errorFields(e, { stack: true }) });
      call.stream.destroy();
    });
  }

  private async serve(call: Call): Promise<void> {
    const route = this.routes.get(call.headers[':path']!)!;
    const input = await this.read(call, route);
    if (input === undefined) return;
    const context = this.contextOf(call, route);
    let output: Uint8Array | undefined;
    try {
      const message = await invokeUnaryImplementation(route.spec, context, input, this.deps.interceptors);
      output = route.serialization.getO(true).serialize(message);
    } catch (e) {
      setTrailerStatus(context.responseTrailer, e instanceof ConnectError ? e : new ConnectError('internal error', Code.Internal, undefined, undefined, e));
    } finally {
      context.abort(CALL_ENDED);
    }
    let body: Buffer | undefined;
    if (output !== undefined) {
      const response = call.compression.response;
      const compressed = response !== null && output.byteLength >= this.opt.compressMinBytes;
      body = envelope(compressed ? 1 : 0, compressed ? await response.compress(output) : output);
    }
    this.write(call, context, body);
  }

  /** The request message; undefined once the call is handed over (framing, decompression or parsing failed). */
  private async read(call: Call, route: Route): Promise<Message | undefined> {
    const body = call.chunks.length === 1 ? call.chunks[0]! : Buffer.concat(call.chunks, call.size);
    if (call.size < 5 || (body[0]! & ~1) !== 0 || body.readUInt32BE(1) !== call.size - 5) return this.handOver(call, true);
    let data: Uint8Array = body.subarray(5);
    if (body[0] === 1) {
      const c: Compression | null = call.compression.request;
      if (c === null) return this.handOver(call, true);
      try {
        data = await c.decompress(data, this.opt.readMaxBytes);
      } catch {
        return this.handOver(call, true);
      }
    }
    try {
      return route.serialization.getI(true).parse(data);
    } catch {
      return this.handOver(call, true);
    }
  }

  /** The handler's context, as connect-node's gRPC handler makes it (without a request signal: no method here reads one). */
  private contextOf(call: Call, route: Route): ReturnType<typeof createHandlerContext> {
    const h = call.headers;
    // A record: the context copies it into its own Headers.
    const requestHeader: Record<string, string> = {};
    for (const name in h) {
      const v = h[name];
      if (v !== undefined && name.charCodeAt(0) !== 58 /* ':', a pseudo-header */) requestHeader[name] = typeof v === 'string' ? v : v.join(', ');
    }
    const context = createHandlerContext({
      service: route.spec.method.parent,
      method: route.spec.method,
      protocolName: 'grpc',
      requestMethod: 'POST',
      url: `http://${h[':authority'] ?? h.host}${h[':path']}`,
      timeoutMs: call.deadline === undefined ? undefined : call.deadline - Date.now(),
      shutdownSignal: this.deps.shutdownSignal,
      requestHeader,
      responseHeader: { 'content-type': call.kind.contentType },
      responseTrailer: { 'grpc-status': '0' },
      contextValues: createContextValues().set(peerKey, this.deps.clientAddress(call.stream.session?.socket?.remoteAddress, h['x-forwarded-for'])),
    });
    const response = call.compression.response;
    if (response !== null) context.responseHeader.set('grpc-encoding', response.name);
    return context;
  }

  private write(call: Call, context: HandlerContext, body: Buffer | undefined): void {
    const s = call.stream;
    this.deps.stats.served++;
    if (s.destroyed || s.closed) return;
    call.trailers = nodeHeaders(context.responseTrailer);
    const headers: OutgoingHttpHeaders = { ':status': 200, ...nodeHeaders(context.responseHeader) };
    try {
      s.on('wantTrailers', call.onWantTrailers);
      s.respond(headers, RESPOND_THEN_TRAILERS);
      s.end(body);
    } catch (e) {
      this.deps.log.warn('could not write a response', { rpc: call.headers[':path'], ...errorFields(e) });
      s.destroy();
    }
  }
}
