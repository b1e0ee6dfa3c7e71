// One call on its HTTP/2 stream, for the fast paths (verify-fast-path.ts,
// unary-fast-path.ts): its body read chunk by chunk, and a call handed over
// to connect-node with the bytes already read replayed.
import type { Http2ServerRequest, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { CONNECT, GRPC, OK_TRAILERS, RESPOND, RESPOND_THEN_TRAILERS, type CompressionNegotiation, type Kind, type Negotiated } from './verify-wire.js';

const kReplay = Symbol('keyward.replay');

/** The bytes of a request read before it was handed over; see replayConsumedBody. */
interface Replay {
  chunks: Buffer[];
  /** Whether the body had ended (its 'end' event is gone). */
  ended: boolean;
}
export type FastStream = ServerHttp2Stream & { [kReplay]?: Replay };

/** A listener of Http2Server's 'stream' event. */
export type StreamListener = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/** What runs a call: a fast path. */
export interface CallOwner {
  /** Gives the call to connect-node; `ended`: the whole body was read. */
  handOver(call: Call, ended: boolean): undefined;
  /** Answers a call whose body was read completely. */
  run(call: Call): void;
}

/**
 * One call in progress, with its stream's listeners. Nothing is
 * added to the stream or its session while the call is served here (a
 * stream handed over gets its replay field): Node's HTTP/2 code handles
 * every stream of the process, and stream objects of yet another shape would
 * make that code slower for all of them.
 */
export class Call {
  chunks: Buffer[] = [];
  size = 0;
  /** Trailers to send when the stream asks for them (gRPC). */
  trailers: OutgoingHttpHeaders = OK_TRAILERS;
  /** The code the call was answered with, for metrics. */
  code = '';
  // Assigned in the constructor, not as class fields: tsx keeps function
  // names, and a named field would cost an Object.defineProperty per call.
  readonly onData: (chunk: Buffer) => void;
  readonly onEnd: () => void;
  readonly onWantTrailers: () => void;

  constructor(
    readonly fp: CallOwner,
    readonly stream: FastStream,
    readonly headers: IncomingHttpHeaders,
    readonly flags: number,
    readonly rawHeaders: string[],
    readonly kind: Kind,
    readonly compression: Negotiated,
    /** When the client's deadline ends (epoch ms, deadlineAt), if it sent one. */
    readonly deadline: number | undefined,
    /** Bytes that may be read before the call is handed over. */
    readonly limit: number,
    /** Connect: the declared content-length, else -1. */
    readonly lengthHint: number,
    /** When the call's headers came (performance.now()), for metrics; 0 without them. */
    readonly start: number,
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

/**
 * A call of kind `k` on the stream, its compression negotiated, reading at
 * most `readMaxBytes` of message (plus a gRPC envelope's 5 bytes); undefined
 * when connect-node must answer it: an unknown encoding, a Connect
 * content-length over the limit.
 */
export function newCall(
  owner: CallOwner,
  stream: FastStream,
  headers: IncomingHttpHeaders,
  flags: number,
  rawHeaders: string[],
  k: Kind,
  negotiation: CompressionNegotiation,
  readMaxBytes: number,
  deadline: number | undefined,
  start: number,
): Call | undefined {
  const compression = negotiation.of(
    headers[k.encodingHeader] as string | string[] | undefined,
    headers[k.acceptEncodingHeader] as string | string[] | undefined,
    k.acceptEncodingHeader,
  );
  if (compression === undefined) return undefined;
  let limit = readMaxBytes + 5;
  let lengthHint = -1;
  if (k.protocol === CONNECT) {
    limit = readMaxBytes;
    const cl = headers['content-length'];
    if (cl !== undefined) {
      const n = parseInt(cl, 10);
      if (Number.isSafeInteger(n) && n >= 0) {
        if (n > limit) return undefined;
        lengthHint = n;
      }
    }
  }
  return new Call(owner, stream, headers, flags, rawHeaders, k, compression, deadline, limit, lengthHint, start);
}

/**
 * The message of a call whose body was read completely, as sent (see
 * isCompressed); undefined unless the body is exactly one message: a Connect
 * body of its declared length, or one well-framed gRPC envelope (compressed
 * only with a negotiated encoding).
 */
export function messageOf(call: Call): Buffer | undefined {
  const body = call.chunks.length === 1 ? call.chunks[0]! : Buffer.concat(call.chunks, call.size);
  if (call.kind.protocol === CONNECT) return call.lengthHint >= 0 && call.lengthHint !== call.size ? undefined : body;
  if (call.size < 5 || (body[0]! & ~1) !== 0 || body.readUInt32BE(1) !== call.size - 5) return undefined;
  if (body[0] === 1 && call.compression.request === null) return undefined;
  return body.subarray(5);
}

/** Whether messageOf(call) is compressed with call.compression.request. */
export function isCompressed(call: Call): boolean {
  return call.kind.protocol === CONNECT ? call.compression.request !== null : call.chunks[0]![0] === 1;
}

/**
 * Writes the answer: its headers and body, and for gRPC call.trailers when
 * the stream asks for them. False, writing nothing, if the stream is already
 * gone. A write that fails (the client went away meanwhile) destroys the
 * stream; `failed` hears why (and of which call).
 */
export function respond(call: Call, headers: OutgoingHttpHeaders, body: Uint8Array | undefined, failed: (e: unknown, call: Call) => void): boolean {
  const s = call.stream;
  if (s.destroyed || s.closed) return false;
  try {
    if (call.kind.protocol === GRPC) {
      s.on('wantTrailers', call.onWantTrailers);
      s.respond(headers, RESPOND_THEN_TRAILERS);
    } else {
      s.respond(headers, RESPOND);
    }
    s.end(body);
  } catch (e) {
    failed(e, call);
    s.destroy();
  }
  return true;
}

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

/** Starts reading the call's body. */
export function attach(call: Call): void {
  const s = call.stream;
  s.on('error', ignore);
  s.on('data', call.onData);
  s.on('end', call.onEnd);
}

/**
 * Stops reading and leaves the bytes read so far for replayConsumedBody (the
 * rest of the body, if it has not ended, flows to the compat request once it
 * reads). False if the stream is gone.
 */
export function detach(call: Call, ended: boolean): boolean {
  const s = call.stream;
  s.removeListener('data', call.onData);
  s.removeListener('end', call.onEnd);
  s.removeListener('error', ignore);
  if (s.destroyed) return false;
  if (!ended) {
    s.pause();
    s.on('newListener', resumeForCompat);
  }
  s[kReplay] = { chunks: call.chunks, ended };
  return true;
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
