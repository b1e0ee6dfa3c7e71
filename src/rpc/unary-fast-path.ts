// Unary RPCs over HTTP/2 without connect-node's per-call machinery.
//
// connect-node spends about 500 µs of CPU on a unary call whose handler does
// nothing (bench row connect-node-empty: a Headers object per direction, an
// AbortController with a DOMException per call, a chain of async iterators
// for one message), more than CreateKey's own work. This path serves every
// unary method but VerifyKey (verify-fast-path.ts serves that one) when it is
// called over gRPC with protobuf (SDKs, grpc-js, grpcio) or Connect with
// protobuf or JSON (Keyward's TypeScript client, connect-es clients) and no
// Origin header: it reads the one message, runs the very interceptors and
// implementation connect-node runs (connect's invokeUnaryImplementation), and
// answers as connect-node's handlers would (same status, headers, trailers and
// compression; errors through setTrailerStatus for gRPC, as Connect's JSON
// error body otherwise). Everything else goes to connect-node untouched:
// browsers (CORS is its wrapper's), gRPC-Web, gRPC with JSON, GET, streaming
// methods, unknown encodings, a malformed timeout, and (replayed, see
// verify-stream.ts) a body over the size limit, anything but one well-framed
// message, a message that fails to decompress or parse.
// test/e2e/unary-conformance.test.ts holds both paths to the same answers.
import type { IncomingHttpHeaders } from 'node:http2';
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImplSpec,
} from '@connectrpc/connect';
import {
  createMethodSerializationLookup,
  invokeUnaryImplementation,
  mergeNonProtocolHeaders,
  validateUniversalHandlerOptions,
  type MethodSerializationLookup,
  type UniversalHandlerOptions,
} from '@connectrpc/connect/protocol';
import { codeToHttpStatus, contentTypeUnaryJson, errorToJsonBytes, trailerMux } from '@connectrpc/connect/protocol-connect';
import { setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import type { ClientAddress } from '../auth/client-address.js';
import { errorFields, type Logger } from '../log.js';
import { deadlineAt } from '../verify/deadline.js';
import { peerKey } from './context.js';
import { attach, type Call, type CallOwner, detach, type FastStream, isCompressed, messageOf, newCall, respond, type StreamListener } from './verify-stream.js';
import { CompressionNegotiation, CONNECT, envelope, GRPC, GRPC_WEB, isPlainPost, kindOf, nodeHeaders, timeoutMsOf } from './verify-wire.js';

type UnarySpec = Extract<MethodImplSpec, { kind: 'unary' }>;

interface Route {
  spec: UnarySpec;
  serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

export interface UnaryFastPathDeps {
  /** The services served, with their implementations (App.services). */
  services: ServiceImplSpec[];
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
        // VerifyKey is its own fast path's, or connect-node's when that is off.
        if (spec.kind !== 'unary' || spec.method === KeyService.method.verifyKey) continue;
        this.routes.set(`/${service.service.typeName}/${spec.method.name}`, {
          spec,
          serialization: createMethodSerializationLookup(spec.method, this.opt.binaryOptions, this.opt.jsonOptions, this.opt),
        });
      }
    }
  }

  /** The 'stream' listener: unary calls it can serve, everything else to the fallback. */
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

  /** A call if its headers say gRPC with protobuf or Connect unary, with a well-formed timeout and known encodings. */
  private accept(stream: FastStream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]): Call | undefined {
    // A browser's call (Origin): its CORS headers are connect-node's wrapper's to write (src/http/cors.ts).
    if (!isPlainPost(headers) || headers.origin !== undefined) return undefined;
    const k = kindOf(headers['content-type']);
    if (k === undefined || k.protocol === GRPC_WEB || (k.protocol === GRPC && !k.binary)) return undefined;
    const timeoutMs = timeoutMsOf(k, headers);
    if (timeoutMs === null) return undefined;
    // Counted from the headers, as connect-node's context counts it.
    const deadline = timeoutMs === undefined ? undefined : deadlineAt(timeoutMs);
    return newCall(this, stream, headers, flags, rawHeaders, k, this.negotiation, this.opt.readMaxBytes, deadline, 0);
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
    const connect = call.kind.protocol === CONNECT;
    const context = this.contextOf(call, route);
    let status = 200;
    let output: Uint8Array | undefined;
    try {
      const message = await invokeUnaryImplementation(route.spec, context, input, this.deps.interceptors);
      output = route.serialization.getO(call.kind.binary).serialize(message);
    } catch (e) {
      const error = e instanceof ConnectError ? e : new ConnectError('internal error', Code.Internal, undefined, undefined, e);
      if (connect) {
        status = codeToHttpStatus(error.code);
        context.responseHeader.set('content-type', contentTypeUnaryJson);
        if (!error.isWireError) mergeNonProtocolHeaders(context.responseHeader, error.metadata);
        output = errorToJsonBytes(error, this.opt.jsonOptions);
      } else {
        setTrailerStatus(context.responseTrailer, error);
      }
    } finally {
      context.abort(CALL_ENDED);
    }
    const response = call.compression.response;
    const compress = response !== null && output !== undefined && output.byteLength >= this.opt.compressMinBytes;
    if (compress) output = await response.compress(output!);
    if (connect) {
      // A Connect answer is one body; its trailers travel as trailer- headers.
      if (compress) context.responseHeader.set('content-encoding', response!.name);
      const header = trailerMux(context.responseHeader, context.responseTrailer);
      header.set('content-length', String(output!.byteLength));
      this.write(call, status, header, output);
    } else {
      call.trailers = nodeHeaders(context.responseTrailer);
      this.write(call, status, context.responseHeader, output && envelope(compress ? 1 : 0, output));
    }
  }

  /** The request message; undefined once the call is handed over (framing, decompression or parsing failed). */
  private async read(call: Call, route: Route): Promise<Message | undefined> {
    let data: Uint8Array | undefined = messageOf(call);
    if (data === undefined) return this.handOver(call, true);
    try {
      if (isCompressed(call)) data = await call.compression.request!.decompress(data, this.opt.readMaxBytes);
      return route.serialization.getI(call.kind.binary).parse(data);
    } catch {
      return this.handOver(call, true);
    }
  }

  /** The handler's context, as connect-node's handlers make it (without a request signal: no method here reads one). */
  private contextOf(call: Call, route: Route): ReturnType<typeof createHandlerContext> {
    const h = call.headers;
    const grpc = call.kind.protocol === GRPC;
    // A record: the context copies it into its own Headers.
    const requestHeader: Record<string, string> = {};
    for (const name in h) {
      const v = h[name];
      if (v !== undefined && name.charCodeAt(0) !== 58 /* ':', a pseudo-header */) requestHeader[name] = typeof v === 'string' ? v : v.join(', ');
    }
    const context = createHandlerContext({
      service: route.spec.method.parent,
      method: route.spec.method,
      protocolName: grpc ? 'grpc' : 'connect',
      requestMethod: 'POST',
      url: `http://${h[':authority'] ?? h.host}${h[':path']}`,
      timeoutMs: call.deadline === undefined ? undefined : call.deadline - Date.now(),
      shutdownSignal: this.deps.shutdownSignal,
      requestHeader,
      responseHeader: { 'content-type': call.kind.contentType },
      responseTrailer: grpc ? { 'grpc-status': '0' } : {},
      contextValues: createContextValues().set(peerKey, this.deps.clientAddress(call.stream.session?.socket?.remoteAddress, h['x-forwarded-for'])),
    });
    // gRPC names the response encoding whenever one was negotiated; Connect only on a compressed body.
    const response = call.compression.response;
    if (grpc && response !== null) context.responseHeader.set('grpc-encoding', response.name);
    return context;
  }

  private write(call: Call, status: number, header: Headers, body: Uint8Array | undefined): void {
    this.deps.stats.served++;
    respond(call, nodeHeaders(header, status), body, this.writeFailed);
  }

  private readonly writeFailed = (e: unknown, call: Call) =>
    this.deps.log.warn('could not write a response', { rpc: call.headers[':path'], ...errorFields(e) });
}
