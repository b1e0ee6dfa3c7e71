// The wire format of the HTTP/2 fast paths (verify-fast-path.ts,
// unary-fast-path.ts): the protocols and formats they serve with their header
// names, the headers and framing connect-node would write, and header values
// as connect-node reads them. No state beyond a cached date string.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { compressionNegotiate, encodeEnvelope, type Compression } from '@connectrpc/connect/protocol';
import { parseContentType as parseConnectContentType, parseTimeout as parseConnectTimeout } from '@connectrpc/connect/protocol-connect';
import { parseContentType as parseGrpcContentType, parseTimeout as parseGrpcTimeout } from '@connectrpc/connect/protocol-grpc';
import { parseContentType as parseGrpcWebContentType, trailerFlag, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';

export const GRPC = 0;
export const GRPC_WEB = 1;
export const CONNECT = 2;

/** A protocol and format this path serves, with the names of its headers. */
export interface Kind {
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
export function okHeadersOf(k: Kind, encoding: string | undefined, requestId: string | undefined, contentLength = 0): OutgoingHttpHeaders {
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
export function kindOf(contentType: string | undefined): Kind | undefined {
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

/** Whether connect-node would read the request: a POST with an authority and no `expect` (it answers the others in its own way). */
export function isPlainPost(h: IncomingHttpHeaders): boolean {
  return h[':method'] === 'POST' && h.expect === undefined && (h[':authority'] !== undefined || h.host !== undefined);
}

/** The client's timeout in ms as connect-node parses it: undefined when none was sent, null when it is malformed. */
export function timeoutMsOf(k: Kind, h: IncomingHttpHeaders): number | undefined | null {
  const header = h[k.timeoutHeader] as string | string[] | undefined;
  if (header === undefined) return undefined;
  const value = headerValue(header);
  const t = k.protocol === CONNECT ? parseConnectTimeout(value, Number.MAX_SAFE_INTEGER) : parseGrpcTimeout(value, Number.MAX_SAFE_INTEGER);
  return t.error || t.timeoutMs === undefined ? null : t.timeoutMs;
}

/**
 * A request header as connect-node sees it through the fetch Headers class:
 * null when absent, leading and trailing HTTP whitespace removed.
 */
export function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null;
  if (typeof v !== 'string') return v.map(trimHttpWhitespace).join(', ');
  return trimHttpWhitespace(v);
}

function trimHttpWhitespace(v: string): string {
  const n = v.length;
  if (n === 0 || (v.charCodeAt(0) > 32 && v.charCodeAt(n - 1) > 32)) return v;
  return v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

export interface Negotiated {
  request: Compression | null;
  response: Compression | null;
}
const IDENTITY: Negotiated = { request: null, response: null };

/** connect-es's negotiation, remembered per distinct pair of header values. */
export class CompressionNegotiation {
  private readonly memo = new Map<string, Negotiated>();

  constructor(private readonly accepted: Compression[]) {}

  /** The request's and response's compression; undefined on an unknown encoding. */
  of(encoding: string | string[] | undefined, accept: string | string[] | undefined, acceptHeader: string): Negotiated | undefined {
    if (encoding === undefined && accept === undefined) return IDENTITY;
    const requested = headerValue(encoding);
    const accepted = headerValue(accept);
    const key = `${acceptHeader}\n${requested}\n${accepted}`;
    let n = this.memo.get(key);
    if (n) return n;
    const r = compressionNegotiate(this.accepted, requested, accepted, acceptHeader);
    if (r.error) return undefined;
    n = { request: r.request, response: r.response };
    if (this.memo.size >= 256) this.memo.clear();
    this.memo.set(key, n);
    return n;
  }
}

export const OK_TRAILERS: OutgoingHttpHeaders = { 'grpc-status': '0' };

// Options for stream.respond() in the shape Node's compat layer passes them
// (the same properties, in the same order): respond() copies its options and
// sets endStream, which stays a cheap store only while every caller's options
// look alike.
export const RESPOND_THEN_TRAILERS = { endStream: false, waitForTrailers: true, sendDate: true };
export const RESPOND = { endStream: false, waitForTrailers: false, sendDate: true };
export const GRPC_WEB_OK_TRAILER = encodeEnvelope(trailerFlag, trailerSerialize(new Headers(OK_TRAILERS as Record<string, string>)));

/** One enveloped message (flags, length, data), followed by `tail` (the gRPC-Web trailer). */
export function envelope(flags: number, data: Uint8Array, tail?: Uint8Array): Buffer {
  const n = data.byteLength;
  const out = Buffer.allocUnsafe(5 + n + (tail ? tail.byteLength : 0));
  out[0] = flags;
  out.writeUInt32BE(n, 1);
  out.set(data, 5);
  if (tail) out.set(tail, 5 + n);
  return out;
}

/** Headers as a Node header object, names in lower case; with `:status` when one is given (a response's headers). */
export function nodeHeaders(h: Headers, status?: number): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = status === undefined ? {} : { ':status': status };
  h.forEach((value, key) => {
    out[key] = value;
  });
  return out;
}
