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
// deadline, database) are mapped by rpcFailureOf, the function connect-node's
// error interceptor uses. test/e2e/verify-conformance.test.ts holds both paths
// to the same answers.
//
// A cached verification runs synchronously from the request's 'end' event to
// stream.respond(): no promise; one small object per call, with its three
// stream listeners.
import type { Http2ServerRequest, Http2Session, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { ConnectError } from '@connectrpc/connect';
import {
  compressionNegotiate,
  createMethodSerializationLookup,
  encodeEnvelope,
  validateUniversalHandlerOptions,
  type Compression,
} from '@connectrpc/connect/protocol';
import {
  codeToHttpStatus,
  errorToJsonBytes,
  parseContentType as parseConnectContentType,
  parseTimeout as parseConnectTimeout,
} from '@connectrpc/connect/protocol-connect';
import { parseContentType as parseGrpcContentType, parseTimeout as parseGrpcTimeout, setTrailerStatus } from '@connectrpc/connect/protocol-grpc';
import { parseContentType as parseGrpcWebContentType, trailerFlag, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';
import { KeyService, type VerifyKeyRequest } from '../../gen/keyward/v1/key_service_pb.js';
import type { App } from '../app.js';
import type { Remembered } from '../auth/sdk-key-auth.js';
import type { Principal } from '../domain/principal.js';
import type { VerifyInput, VerifyResult } from '../verify/verifier.js';
import { verifyInputFromProto, verifyResultToProto } from './convert.js';
import { decodeVerifyKeyRequest } from './verify-request.js';
import { beforeDeadline, cappedTimeoutMs, deadlineAt, deadlineExceeded } from './deadline.js';
import { REQUEST_ID_HEADER, requestIdOf, rpcFailureOf } from './interceptors.js';

/** A listener of Http2Server's 'stream' event. */
export type StreamListener = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

export const VERIFY_KEY_PATH = `/${KeyService.typeName}/${KeyService.method.verifyKey.name}`;
const RPC_NAME = `${KeyService.typeName}/${KeyService.method.verifyKey.name}`;

const GRPC = 0;
const GRPC_WEB = 1;
const CONNECT = 2;

/** A protocol and format this path serves, with the names of its headers. */
interface Kind {
  protocol: typeof GRPC | typeof GRPC_WEB | typeof CONNECT;
  binary: boolean;
  /** The response content type, as connect-node writes it. */
  contentType: string;
  timeoutHeader: string;
  encodingHeader: string;
  acceptEncodingHeader: string;
}

function kind(protocol: Kind['protocol'], binary: boolean, contentType: string): Kind {
  const grpcLike = protocol !== CONNECT;
  return {
    protocol,
    binary,
    contentType,
    timeoutHeader: grpcLike ? 'grpc-timeout' : 'connect-timeout-ms',
    encodingHeader: grpcLike ? 'grpc-encoding' : 'content-encoding',
    acceptEncodingHeader: grpcLike ? 'grpc-accept-encoding' : 'accept-encoding',
  };
}

const GRPC_PROTO = kind(GRPC, true, 'application/grpc+proto');
const GRPC_JSON = kind(GRPC, false, 'application/grpc+json');
const GRPC_WEB_PROTO = kind(GRPC_WEB, true, 'application/grpc-web+proto');
const GRPC_WEB_JSON = kind(GRPC_WEB, false, 'application/grpc-web+json');
const CONNECT_PROTO = kind(CONNECT, true, 'application/proto');
const CONNECT_JSON = kind(CONNECT, false, 'application/json');

let date = '';
let dateUntil = 0;

/** The date header Node would add: the current second, as toUTCString() writes it. */
function currentDate(): string {
  const now = Date.now();
  if (now >= dateUntil) {
    date = new Date(now).toUTCString();
    dateUntil = now - (now % 1000) + 1000;
  }
  return date;
}

/**
 * The headers of a successful call. Each is one object literal of a fixed
 * shape, with undefined for a header not sent (Node skips those): stream.
 * respond() copies the headers and adds a date unless there is one, and with
 * objects of varying shapes (spread copies, an added property) that code
 * misses V8's inline caches on every call once the process has also served
 * other routes.
 */
function okHeadersOf(k: Kind, encoding: string | undefined, requestId: string | undefined, contentLength = 0): OutgoingHttpHeaders {
  // Literal keys (x-request-id is REQUEST_ID_HEADER): a computed key would make V8 build the object slowly.
  if (k.protocol === CONNECT) {
    return {
      ':status': 200,
      'content-type': k.contentType,
      date: currentDate(),
      'content-encoding': encoding,
      'x-request-id': requestId,
      'content-length': String(contentLength),
    };
  }
  return { ':status': 200, 'content-type': k.contentType, date: currentDate(), 'grpc-encoding': encoding, 'x-request-id': requestId };
}

/** The protocol connect-node's router would pick for this content type, if this path serves it. */
function kindOf(contentType: string | undefined): Kind | undefined {
  switch (contentType) {
    case 'application/grpc':
    case 'application/grpc+proto':
      return GRPC_PROTO;
    case 'application/proto':
      return CONNECT_PROTO;
    case 'application/json':
      return CONNECT_JSON;
    case 'application/grpc-web+proto':
    case 'application/grpc-web':
      return GRPC_WEB_PROTO;
    case undefined:
      return undefined;
  }
  // Case and charset variants, through connect-es's own matchers.
  const grpc = parseGrpcContentType(contentType);
  if (grpc) return grpc.binary ? GRPC_PROTO : GRPC_JSON;
  const web = parseGrpcWebContentType(contentType);
  if (web) return web.text ? undefined : web.binary ? GRPC_WEB_PROTO : GRPC_WEB_JSON;
  const connect = parseConnectContentType(contentType);
  if (connect && !connect.stream) return connect.binary ? CONNECT_PROTO : CONNECT_JSON;
  return undefined;
}

/**
 * A request header as connect-node sees it through the fetch Headers class:
 * null when absent, leading and trailing HTTP whitespace removed.
 */
function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  if (typeof v !== 'string') return v.map(trimHttpWhitespace).join(', ');
  return trimHttpWhitespace(v);
}

function trimHttpWhitespace(v: string): string {
  const n = v.length;
  if (n === 0 || (v.charCodeAt(0) > 32 && v.charCodeAt(n - 1) > 32)) return v;
  return v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

interface Negotiated {
  request: Compression | null;
  response: Compression | null;
}
const IDENTITY: Negotiated = { request: null, response: null };

/** What a connection's last authorization header resolved to. */
interface AuthMemo {
  authorization: string;
  entry: Remembered;
}
const kReplay = Symbol('keyward.replay');

/** The bytes of a request read before it was handed over; see replayConsumedBody. */
interface Replay {
  chunks: Buffer[];
  /** Whether the body had ended (its 'end' event is gone). */
  ended: boolean;
}
type FastStream = ServerHttp2Stream & { [kReplay]?: Replay };

/**
 * One VerifyKey call in progress, with its stream's listeners. Nothing is
 * added to the stream or its session: Node's HTTP/2 code handles every
 * stream of the process, and stream objects of yet another shape would make
 * that code slower for all of them.
 */
class Call {
  chunks: Buffer[] = [];
  size = 0;
  /** Trailers to send when the stream asks for them (gRPC). */
  trailers: OutgoingHttpHeaders = OK_TRAILERS;
  // Assigned in the constructor, not as class fields: tsx keeps function
  // names, and a named field would cost an Object.defineProperty per call.
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
  readonly onWantTrailers: () => void;

  constructor(
    readonly fp: VerifyFastPath,
    readonly stream: FastStream,
    readonly headers: IncomingHttpHeaders,
    readonly flags: number,
    readonly rawHeaders: string[],
    readonly kind: Kind,
    readonly compression: Negotiated,
    readonly deadline: number | undefined,
    /** Bytes that may be read before the call is handed over. */
    readonly limit: number,
    /** Connect: the declared content-length, else -1. */
    readonly lengthHint: number,
  ) {
    this.onData = (chunk) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      if (this.size > this.limit) this.fp.handOver(this, false);
    };
    this.onEnd = () => this.fp.run(this);
    this.onWantTrailers = () => {
      try {
        this.stream.sendTrailers(this.trailers);
      } catch {
        // The client went away.
      }
    };
  }
}

const OK_TRAILERS: OutgoingHttpHeaders = { 'grpc-status': '0' };

function ignore(): void {
  // Stream errors (a reset by the client) end the call; there is no one to answer.
}

/**
 * Waits, on a stream handed over in mid-body and paused, for the compat
 * request to start reading it (Http2ServerRequest adds its 'data' listener on
 * its first read, without resuming an explicitly paused stream), then lets the
 * rest of the body flow to it.
 */
function resumeForCompat(this: FastStream, event: string | symbol): void {
  if (event !== 'data') return;
  this.removeListener('newListener', resumeForCompat);
  process.nextTick(resumeStream, this);
}

function resumeStream(stream: FastStream): void {
  stream.resume();
}

// Options for stream.respond() in the shape Node's compat layer passes them
// (the same properties, in the same order): respond() copies its options and
// sets endStream, which stays a cheap store only while every caller's options
// look alike.
const RESPOND_THEN_TRAILERS = { endStream: false, waitForTrailers: true, sendDate: true };
const RESPOND = { endStream: false, waitForTrailers: false, sendDate: true };
const GRPC_WEB_OK_TRAILER = encodeEnvelope(trailerFlag, trailerSerialize(new Headers(OK_TRAILERS as Record<string, string>)));

/** One enveloped message (flags, length, data), followed by `tail` (the gRPC-Web trailer). */
function envelope(flags: number, data: Uint8Array, tail?: Uint8Array): Buffer {
  const n = data.byteLength;
  const out = Buffer.allocUnsafe(5 + n + (tail ? tail.byteLength : 0));
  out[0] = flags;
  out.writeUInt32BE(n, 1);
  out.set(data, 5);
  if (tail) out.set(tail, 5 + n);
  return out;
}

/** Headers as a Node header object, names in lower case. */
function nodeHeaders(h: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  h.forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

export class VerifyFastPath {
  private readonly opt;
  private readonly serialization;
  private readonly negotiated = new Map<string, Negotiated>();
  private readonly encodings = new WeakMap<VerifyResult, { binary?: Uint8Array; json?: Uint8Array }>();
  /** Per HTTP/2 connection, see rememberedPrincipal. */
  private readonly authMemos = new WeakMap<Http2Session, AuthMemo>();
  private readonly stats;
  private readonly deadlineCapMs: number;

  constructor(
    private readonly app: App,
    /** Whoever handles what this path does not: Node's compat layer and connect-node. */
    private readonly fallback: StreamListener,
  ) {
    this.stats = app.fastPathStats;
    this.deadlineCapMs = app.opts.maxRequestTimeoutMs;
    this.opt = validateUniversalHandlerOptions(app.protocolOptions());
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
    const s = call.stream;
    s.on('error', ignore);
    s.on('data', call.onData);
    s.on('end', call.onEnd);
  };

  /** A call if everything the headers say is served here, else undefined. */
  private accept(stream: FastStream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]): Call | undefined {
    if (headers[':method'] !== 'POST' || headers.expect !== undefined) return undefined;
    // connect-node rejects a request without an authority in its own way.
    if (headers[':authority'] === undefined && headers.host === undefined) return undefined;
    const k = kindOf(headers['content-type']);
    if (k === undefined) return undefined;
    const opt = this.opt;

    let deadline: number | undefined;
    const timeoutHeader = headers[k.timeoutHeader] as string | string[] | undefined;
    if (timeoutHeader !== undefined) {
      const value = headerValue(timeoutHeader);
      const t = k.protocol === CONNECT ? parseConnectTimeout(value, Number.MAX_SAFE_INTEGER) : parseGrpcTimeout(value, Number.MAX_SAFE_INTEGER);
      if (t.error || t.timeoutMs === undefined) return undefined;
      deadline = deadlineAt(cappedTimeoutMs(t.timeoutMs, this.deadlineCapMs)!);
    }

    const compression = this.negotiate(
      headers[k.encodingHeader] as string | string[] | undefined,
      headers[k.acceptEncodingHeader] as string | string[] | undefined,
      k.acceptEncodingHeader,
    );
    if (compression === undefined) return undefined;

    let limit = opt.readMaxBytes + 5;
    let lengthHint = -1;
    if (k.protocol === CONNECT) {
      limit = opt.readMaxBytes;
      const cl = headers['content-length'];
      if (cl !== undefined) {
        const n = parseInt(cl, 10);
        if (Number.isSafeInteger(n) && n >= 0) {
          if (n > limit) return undefined;
          lengthHint = n;
        }
      }
    }
    return new Call(this, stream, headers, flags, rawHeaders, k, compression, deadline, limit, lengthHint);
  }

  /** connect-es's negotiation, remembered per distinct pair of header values; undefined on an unknown encoding. */
  private negotiate(encoding: string | string[] | undefined, accept: string | string[] | undefined, acceptHeader: string): Negotiated | undefined {
    if (encoding === undefined && accept === undefined) return IDENTITY;
    const requested = headerValue(encoding);
    const accepted = headerValue(accept);
    const memo = `${acceptHeader}\n${requested}\n${accepted}`;
    let n = this.negotiated.get(memo);
    if (n) return n;
    const r = compressionNegotiate(this.opt.acceptCompression, requested, accepted, acceptHeader);
    if (r.error) return undefined;
    n = { request: r.request, response: r.response };
    if (this.negotiated.size >= 256) this.negotiated.clear();
    this.negotiated.set(memo, n);
    return n;
  }

  /**
   * Gives the request to the fallback as if it had never been touched: the
   * bytes read so far are replayed into the compat request, the rest (if the
   * body has not ended) flows to it from the stream.
   */
  handOver(call: Call, ended: boolean): undefined {
    const s = call.stream;
    s.removeListener('data', call.onData);
    s.removeListener('end', call.onEnd);
    s.removeListener('error', ignore);
    if (s.destroyed) return undefined;
    if (!ended) {
      s.pause();
      s.on('newListener', resumeForCompat);
    }
    s[kReplay] = { chunks: call.chunks, ended };
    this.stats.handedOver++;
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

  private bug(call: Call, e: unknown): void {
    // Not the caller's doing: log it and reset the stream.
    this.app.log.error('request failed', { rpc: RPC_NAME, error: (e as Error)?.message ?? String(e) });
    call.stream.destroy();
  }

  /**
   * The request; a promise of it if it must be decompressed; undefined after
   * handing the call over (framing, decompression or parsing failed).
   */
  private parse(call: Call): VerifyInput | undefined | Promise<VerifyInput | undefined> {
    const { kind: k, compression } = call;
    const body = call.chunks.length === 1 ? call.chunks[0]! : Buffer.concat(call.chunks, call.size);
    let data: Buffer = body;
    if (k.protocol === CONNECT) {
      if (call.lengthHint >= 0 && call.lengthHint !== call.size) return this.handOver(call, true);
      if (compression.request !== null) return this.decompressAndParse(call, compression.request, data);
    } else {
      if (call.size < 5 || (body[0]! & ~1) !== 0 || body.readUInt32BE(1) !== call.size - 5) return this.handOver(call, true);
      data = body.subarray(5);
      if (body[0] === 1) {
        if (compression.request === null) return this.handOver(call, true);
        return this.decompressAndParse(call, compression.request, data);
      }
    }
    return (k.binary ? decodeVerifyKeyRequest(data) : undefined) ?? this.parseMessage(call, data);
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

  /** Authenticates, checks the deadline, verifies; waits only for what is not in memory. */
  private answer(call: Call, input: VerifyInput): void {
    const h = call.headers;
    const requestId = headerValue(h[REQUEST_ID_HEADER]);
    const authorization = headerValue(h.authorization);
    let verdict: VerifyResult | Promise<VerifyResult> | undefined;
    let remainingMs: number | undefined;
    try {
      const principal = this.rememberedPrincipal(call.stream, authorization);
      if (principal !== undefined) {
        remainingMs = this.remainingMs(call);
        verdict = this.app.verifier.verify(principal, input);
      }
    } catch (e) {
      this.fail(call, requestId, e);
      return;
    }
    if (verdict === undefined || verdict instanceof Promise) void this.answerLater(call, requestId, authorization, input, verdict, remainingMs);
    else this.succeed(call, requestId, verdict);
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
      const p = this.app.auth.principalOf(memo.entry);
      if (p !== undefined) return p;
    }
    const entry = this.app.auth.rememberedEntry(authorization);
    if (entry !== undefined && session !== undefined && authorization !== null) this.authMemos.set(session, { authorization, entry });
    return entry?.principal;
  }

  /**
   * answer() for what has to be waited for: the SDK key's check (`pending` is
   * undefined then), or a verdict that needs the database or Redis. Never rejects.
   */
  private async answerLater(
    call: Call,
    requestId: string | null,
    authorization: string | null,
    input: VerifyInput,
    pending: Promise<VerifyResult> | undefined,
    remainingMs: number | undefined,
  ): Promise<void> {
    let result: VerifyResult;
    try {
      let verdict: VerifyResult | Promise<VerifyResult> | undefined = pending;
      if (verdict === undefined) {
        const principal = await this.app.auth.authenticate(authorization, call.stream.session?.socket?.remoteAddress ?? '');
        remainingMs = this.remainingMs(call);
        verdict = this.app.verifier.verify(principal, input);
      }
      result = await beforeDeadline(verdict, remainingMs);
    } catch (e) {
      this.fail(call, requestId, e);
      return;
    }
    this.succeed(call, requestId, result);
  }

  /** The time left before the client's deadline; throws DEADLINE_EXCEEDED if there is none left. */
  private remainingMs(call: Call): number | undefined {
    if (call.deadline === undefined) return undefined;
    const remaining = call.deadline - Date.now();
    if (remaining <= 0) throw deadlineExceeded();
    return remaining;
  }

  /** `requestId` is the caller's; a successful answer carries no generated one (see errorInterceptor). */
  private succeed(call: Call, requestId: string | null, result: VerifyResult): void {
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
    const { code, message } = rpcFailureOf(e, this.app.log, RPC_NAME, requestId);
    this.sendError(call, new ConnectError(message, code, { [REQUEST_ID_HEADER]: requestId })).catch((err: unknown) => this.bug(call, err));
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
      return this.write(call, { ':status': codeToHttpStatus(error.code), ...nodeHeaders(headers) }, body);
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
    const s = call.stream;
    this.stats.served++;
    if (s.destroyed || s.closed) return;
    try {
      if (call.kind.protocol === GRPC) {
        s.on('wantTrailers', call.onWantTrailers);
        s.respond(headers, RESPOND_THEN_TRAILERS);
      } else {
        s.respond(headers, RESPOND);
      }
      s.end(body);
    } catch (e) {
      this.app.log.warn('could not write a response', { rpc: RPC_NAME, error: (e as Error).message });
      s.destroy();
    }
  }
}

/**
 * For the compat layer's request listener: puts back the bytes the fast path
 * read before it handed this request over, so connect-node sees the whole body.
 */
export function replayConsumedBody(req: Http2ServerRequest): void {
  const s = req.stream as FastStream;
  const replay = s[kReplay];
  if (replay === undefined) return;
  s[kReplay] = undefined;
  for (const chunk of replay.chunks) req.push(chunk);
  if (replay.ended) req.push(null);
}
