// One call on its HTTP/2 stream, for the fast paths (verify-fast-path.ts,
// unary-fast-path.ts): its body read chunk by chunk, and a call handed over
// to connect-node with the bytes already read replayed.
import type { Http2ServerRequest, IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { OK_TRAILERS, type Kind, type Negotiated } from './verify-wire.js';

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
