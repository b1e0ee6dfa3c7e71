// VerifyKey over HTTP/2 without connect-node's per-call machinery.
//
// Gateways call VerifyKey on every request they proxy. connect-node spends most
// of a cached verification on plumbing (a Headers object per direction, an
// AbortController and a deadline signal per call, a chain of async iterators
// for a single message), so this module answers exactly one route,
// `/keyward.v1.KeyService/VerifyKey` over HTTP/2, on the raw stream: gRPC,
// gRPC-Web and Connect unary, binary or JSON.
//
// It does itself only what a well-formed call needs: read one message, parse
// it, authenticate the SDK key, verify, and write the answer in the exact
// shape connect-node would (same headers, trailers, error bodies and
// messages; the connect-es functions that produce them are reused). Anything
// else is handed to connect-node, which then answers it as it answers every
// other route:
// - before reading: another method or content type, an unknown encoding, a
//   malformed or too long timeout, an `expect` header, no authority;
// - while or after reading (the bytes read so far are replayed into the
//   compat request, see replayConsumedBody): a body over the size limit,
//   anything but exactly one well-framed message, a message that fails to
//   decompress or parse.
// Errors raised by the call itself (authentication, permissions, arguments,
// deadline, database) are mapped by rpcErrorOf, the function connect-node's
// error interceptor uses. test/e2e/verify-conformance-*.test.ts hold both paths
// to the same answers.
//
// A cached verification runs synchronously from the request's 'end' event to
// stream.respond(): no promise; one small object per call, with its three
// stream listeners.
import type { Http2Session, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { ConnectError } from '@connectrpc/connect';
import { createMethodSerializationLookup, validateUniversalHandlerOptions, type Compression, type UniversalHandlerOptions } from '@connectrpc/connect/protocol';
import { codeToHttpStatus, codeToString, errorToJsonBytes } from '@connectrpc/connect/protocol-connect';
import { setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import { trailerFlag, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';
import { KeyService, type VerifyKeyRequest } from '../../gen/keyward/v1/key_service_pb.js';
import type { Remembered, SdkKeyAuthenticator } from '../auth/sdk-key-auth.js';
import type { Principal } from '../domain/principal.js';
import { errorFields, type Logger } from '../log.js';
import type { VerifyInput, VerifyResult } from '../verify/contract.js';
import { cappedTimeoutMs, deadlineAt } from '../verify/deadline.js';
import type { VerifyCall } from '../verify/verify-call.js';
import type { VerifyMetrics } from '../metrics/verify-metrics.js';
import { verifyInputFromProto, verifyResultToProto } from './convert.js';
import { decodeVerifyKeyRequest } from './verify-request.js';
import { attach, type Call, detach, isCompressed, messageOf, newCall, respond, type FastStream, type StreamListener } from './verify-stream.js';
import {
  CONNECT,
  envelope,
  GRPC,
  GRPC_WEB,
  CompressionNegotiation,
  GRPC_WEB_OK_TRAILER,
  headerValue,
  isPlainPost,
  kindOf,
  nodeHeaders,
  okHeadersOf,
  timeoutMsOf,
} from './verify-wire.js';
import { REQUEST_ID_HEADER, requestIdOf, rpcErrorOf } from './interceptors.js';
import type { ClientAddress } from '../auth/client-address.js';
import { tracingOn, withCallerTrace } from '../tracing.js';

const VERIFY_KEY_PATH = `/${KeyService.typeName}/${KeyService.method.verifyKey.name}`;
const RPC_NAME = `${KeyService.typeName}/${KeyService.method.verifyKey.name}`;

/** What a connection's last authorization header resolved to. */
interface AuthMemo {
  authorization: string;
  entry: Remembered;
}
/** What the fast path uses. */
export interface FastPathDeps {
  verifyCall: Pick<VerifyCall, 'verify' | 'authenticateAndVerify'>;
  /** The SDK keys already checked, for answering without waiting. */
  auth: Pick<SdkKeyAuthenticator, 'principalIfFresh' | 'rememberedEntry'>;
  /** Calls served here and calls handed to connect-node, counted. */
  stats: { served: number; handedOver: number };
  log: Logger;
  /** The limits and encodings connect-node is configured with (App.protocolOptions). */
  protocolOptions: Partial<UniversalHandlerOptions>;
  /** The longest deadline honoured (KEYWARD_MAX_REQUEST_TIMEOUT_MS). */
  deadlineCapMs: number;
  /** The caller's address (TrustedProxies.clientAddress), for throttling failed SDK key checks. */
  clientAddress: ClientAddress;
  /** Counts each answer and its latency (path fast); absent without metrics. */
  metrics?: Pick<VerifyMetrics, 'record'> | undefined;
}

/** The metrics' name of each protocol this path serves. */
const PROTOCOL_NAMES = { [GRPC]: 'grpc', [GRPC_WEB]: 'grpc_web', [CONNECT]: 'connect' } as const;

export class VerifyFastPath {
  private readonly opt;
  private readonly serialization;
  private readonly negotiation;
  private readonly encodings = new WeakMap<VerifyResult, { binary?: Uint8Array; json?: Uint8Array }>();
  /** Per HTTP/2 connection, see rememberedPrincipal. */
  private readonly authMemos = new WeakMap<Http2Session, AuthMemo>();
  private readonly stats;
  private readonly deadlineCapMs: number;

  constructor(
    private readonly deps: FastPathDeps,
    /** Whoever handles what this path does not: Node's compat layer and connect-node. */
    private readonly fallback: StreamListener,
  ) {
    this.stats = deps.stats;
    this.deadlineCapMs = deps.deadlineCapMs;
    this.opt = validateUniversalHandlerOptions(deps.protocolOptions);
    this.negotiation = new CompressionNegotiation(this.opt.acceptCompression);
    this.serialization = createMethodSerializationLookup(KeyService.method.verifyKey, this.opt.binaryOptions, this.opt.jsonOptions, this.opt);
  }

  /** The 'stream' listener: VerifyKey calls it can serve, everything else to the fallback. */
  readonly onStream: StreamListener = (stream, headers, flags, rawHeaders) => {
    if (headers[':path'] !== VERIFY_KEY_PATH) {
      this.fallback(stream, headers, flags, rawHeaders);
      return;
    }
    const call = this.accept(stream as FastStream, headers, flags, rawHeaders);
    if (call === undefined) {
      this.stats.handedOver++;
      this.fallback(stream, headers, flags, rawHeaders);
      return;
    }
    attach(call);
  };

  /** A call if everything the headers say is served here, else undefined. */
  private accept(stream: FastStream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]): Call | undefined {
    if (!isPlainPost(headers)) return undefined;
    const k = kindOf(headers['content-type']);
    if (k === undefined) return undefined;
    const timeoutMs = timeoutMsOf(k, headers);
    if (timeoutMs === null) return undefined;
    const deadline = timeoutMs === undefined ? undefined : deadlineAt(cappedTimeoutMs(timeoutMs, this.deadlineCapMs)!);
    const start = this.deps.metrics ? performance.now() : 0;
    return newCall(this, stream, headers, flags, rawHeaders, k, this.negotiation, this.opt.readMaxBytes, deadline, start);
  }

  /**
   * Gives the request to the fallback as if it had never been touched: the
   * bytes read so far are replayed into the compat request, the rest (if the
   * body has not ended) flows to it from the stream.
   */
  handOver(call: Call, ended: boolean): undefined {
    if (!detach(call, ended)) return undefined;
    this.stats.handedOver++;
    const s = call.stream;
    this.fallback(s, call.headers, call.flags, call.rawHeaders);
    return undefined;
  }

  /**
   * Runs a call whose body has been read completely: what connect-node's
   * interceptors and VerifyKey handler do, then the response. Synchronous
   * unless something must be waited for (decompression, an SDK key or API key
   * not in memory, response compression).
   */
  run(call: Call): void {
    try {
      const request = this.parse(call);
      if (request === undefined) return;
      if (request instanceof Promise) {
        request.then((r) => r && this.answer(call, r)).catch((e: unknown) => this.bug(call, e));
        return;
      }
      this.answer(call, request);
    } catch (e) {
      this.bug(call, e);
    }
  }

  private readonly writeFailed = (e: unknown) => this.deps.log.warn('could not write a response', { rpc: RPC_NAME, ...errorFields(e) });

  private bug(call: Call, e: unknown): void {
    // Not the caller's doing: log it and reset the stream.
    this.deps.log.error('request failed', { rpc: RPC_NAME, ...errorFields(e, { stack: true }) });
    call.stream.destroy();
  }

  /**
   * The request; a promise of it if it must be decompressed; undefined after
   * handing the call over (framing, decompression or parsing failed).
   */
  private parse(call: Call): VerifyInput | undefined | Promise<VerifyInput | undefined> {
    const data = messageOf(call);
    if (data === undefined) return this.handOver(call, true);
    if (isCompressed(call)) return this.decompressAndParse(call, call.compression.request!, data);
    return (call.kind.binary ? decodeVerifyKeyRequest(data) : undefined) ?? this.parseMessage(call, data);
  }

  private async decompressAndParse(call: Call, c: Compression, data: Uint8Array): Promise<VerifyInput | undefined> {
    let plain: Uint8Array;
    try {
      plain = await c.decompress(data, this.opt.readMaxBytes);
    } catch {
      return this.handOver(call, true);
    }
    return this.parseMessage(call, plain);
  }

  /** The request as protobuf-es parses it, binary or JSON. */
  private parseMessage(call: Call, data: Uint8Array): VerifyInput | undefined {
    let m: VerifyKeyRequest;
    try {
      m = this.serialization.getI(call.kind.binary).parse(data);
    } catch {
      return this.handOver(call, true);
    }
    return verifyInputFromProto(m);
  }

  /** Authenticates, checks the deadline, verifies (VerifyCall); waits only for what is not in memory. */
  private answer(call: Call, input: VerifyInput): void {
    const h = call.headers;
    const requestId = headerValue(h[REQUEST_ID_HEADER]);
    let verdict: VerifyResult | Promise<VerifyResult>;
    try {
      // In the caller's trace only when tracing is on: no closure per call otherwise.
      verdict = tracingOn() ? withCallerTrace(h, () => this.verdict(call, input)) : this.verdict(call, input);
    } catch (e) {
      this.fail(call, requestId, e);
      return;
    }
    if (verdict instanceof Promise) {
      verdict.then(
        (r) => this.succeed(call, requestId, r),
        (e: unknown) => this.fail(call, requestId, e),
      );
    } else {
      this.succeed(call, requestId, verdict);
    }
  }

  /** The verdict for the caller of `call`: remembered on its connection, else authenticated first. */
  private verdict(call: Call, input: VerifyInput): VerifyResult | Promise<VerifyResult> {
    const h = call.headers;
    const authorization = headerValue(h.authorization);
    const principal = this.rememberedPrincipal(call.stream, authorization);
    if (principal !== undefined) return this.deps.verifyCall.verify(principal, input, call.deadline);
    const address = this.deps.clientAddress(call.stream.session?.socket?.remoteAddress, h['x-forwarded-for']);
    return this.deps.verifyCall.authenticateAndVerify(authorization, address, input, call.deadline);
  }

  /**
   * The SDK key's principal if it is remembered and fresh. A gateway sends
   * the same authorization header on every call of its connection, so the
   * connection keeps the entry that header resolved to, and the next call
   * with that exact header skips parsing and hashing it. (The connection's
   * HPACK table already holds the header; nothing is kept beyond it.)
   */
  private rememberedPrincipal(stream: ServerHttp2Stream, authorization: string | null): Principal | undefined {
    const session = stream.session;
    const memo = session === undefined ? undefined : this.authMemos.get(session);
    if (memo !== undefined && memo.authorization === authorization) {
      const p = this.deps.auth.principalIfFresh(memo.entry);
      if (p !== undefined) return p;
    }
    const entry = this.deps.auth.rememberedEntry(authorization);
    if (entry !== undefined && session !== undefined && authorization !== null) this.authMemos.set(session, { authorization, entry });
    return entry?.principal;
  }

  /** `requestId` is the caller's; a successful answer carries no generated one (see errorInterceptor). */
  private succeed(call: Call, requestId: string | null, result: VerifyResult): void {
    call.code = result.code;
    let message: Uint8Array;
    try {
      message = this.encode(result, call.kind.binary);
    } catch (e) {
      this.fail(call, requestId, e);
      return;
    }
    const response = call.compression.response;
    if (response === null || message.byteLength < this.opt.compressMinBytes) {
      this.sendOk(call, requestId, message, false);
    } else {
      response.compress(message).then(
        (compressed) => this.sendOk(call, requestId, compressed, true),
        (e: unknown) => this.bug(call, e),
      );
    }
  }

  private fail(call: Call, sentRequestId: string | null, e: unknown): void {
    const requestId = requestIdOf(sentRequestId);
    const error = rpcErrorOf(e, this.deps.log, RPC_NAME, requestId);
    call.code = codeToString(error.code);
    this.sendError(call, error).catch((err: unknown) => this.bug(call, err));
  }

  /**
   * The encoded answer. A verdict without limits is one object per cached
   * record and code, shared by every call it answers (see KeyVerifier), so
   * its encoding is made once per format and kept as long as that object
   * lives; not so an answer with the state of the key's limits, which
   * changes every call.
   */
  private encode(result: VerifyResult, binary: boolean): Uint8Array {
    if (result.limits !== undefined) return this.serialize(result, binary);
    let memo = this.encodings.get(result);
    if (memo === undefined) this.encodings.set(result, (memo = {}));
    return binary ? (memo.binary ??= this.serialize(result, true)) : (memo.json ??= this.serialize(result, false));
  }

  private serialize(result: VerifyResult, binary: boolean): Uint8Array {
    return this.serialization.getO(binary).serialize(verifyResultToProto(result));
  }

  /** A successful answer; `message` is compressed with the negotiated response encoding if `compressed`. */
  private sendOk(call: Call, requestId: string | null, message: Uint8Array, compressed: boolean): void {
    const k = call.kind;
    const response = call.compression.response;
    // gRPC names the response encoding whenever one was negotiated; Connect
    // only when the body is compressed (from compressMinBytes on).
    const encoding = response !== null && (compressed || k.protocol !== CONNECT) ? response.name : undefined;
    const id = requestId === null ? undefined : requestIdOf(requestId);
    if (k.protocol === CONNECT) {
      this.write(call, okHeadersOf(k, encoding, id, message.byteLength), message);
    } else {
      this.write(call, okHeadersOf(k, encoding, id), envelope(compressed ? 1 : 0, message, k.protocol === GRPC_WEB ? GRPC_WEB_OK_TRAILER : undefined));
    }
  }

  private async sendError(call: Call, error: ConnectError): Promise<void> {
    const { kind: k } = call;
    const response = call.compression.response;
    if (k.protocol === CONNECT) {
      const headers = new Headers({ 'content-type': 'application/json' });
      error.metadata.forEach((value, key) => headers.append(key, value));
      let body: Uint8Array = errorToJsonBytes(error, this.opt.jsonOptions);
      if (response && body.byteLength >= this.opt.compressMinBytes) {
        body = await response.compress(body);
        headers.set('content-encoding', response.name);
      }
      headers.set('content-length', String(body.byteLength));
      return this.write(call, nodeHeaders(headers, codeToHttpStatus(error.code)), body);
    }
    const headers: OutgoingHttpHeaders = { ':status': 200, 'content-type': k.contentType };
    if (response) headers[k.encodingHeader] = response.name;
    const trailers = setTrailerStatus(new Headers(), error);
    if (k.protocol === GRPC_WEB) {
      const data = trailerSerialize(trailers);
      const compressed = response !== null && data.byteLength >= this.opt.compressMinBytes;
      return this.write(call, headers, envelope(trailerFlag | (compressed ? 1 : 0), compressed ? await response.compress(data) : data));
    }
    call.trailers = nodeHeaders(trailers);
    this.write(call, headers, undefined);
  }

  private write(call: Call, headers: OutgoingHttpHeaders, body: Uint8Array | undefined): void {
    this.stats.served++;
    if (!respond(call, headers, body, this.writeFailed)) return;
    const metrics = this.deps.metrics;
    if (metrics) metrics.record('fast', PROTOCOL_NAMES[call.kind.protocol], call.code, (performance.now() - call.start) / 1000);
  }
}
