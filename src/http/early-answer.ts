// HTTP/2 streams answered before their request body ended.
//
// connect-node answers a body over KEYWARD_MAX_REQUEST_BYTES as soon as the
// read limit is passed, and then stops reading: the stream would stay
// half-open, its unread bytes holding the flow-control windows, until the
// client gave up and reset it itself (CANCEL), which Node's HTTP/2 server
// counts against that connection's rapid-reset budget (CVE-2023-44487). RFC
// 9113 §8.1 has the server end such a stream with RST_STREAM(NO_ERROR) once
// its response is complete, and clients must not discard that response.
// A stream reset by the server is nobody's abuse: nghttp2 counts only the
// resets it receives, and Keyward has no limit of its own.
//
// Every stream the compat layer answers passes here (all RPCs, and VerifyKey
// calls the fast path hands over, an oversized body among them); the fast
// path itself answers only once the body has ended, so it needs none of this.
import http2, { type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2';

const { NGHTTP2_NO_ERROR } = http2.constants;

/**
 * For the compat layer's request listener: once the response is out, a
 * request the client is still sending is closed with RST_STREAM(NO_ERROR)
 * and the rest of its body is dropped.
 */
export function closeWhenAnsweredEarly(req: Http2ServerRequest): void {
  // Every compat response ends with trailers (empty ones too), sent in an
  // immediate queued by the compat layer's own 'wantTrailers' listener,
  // which was added before this one.
  req.stream.once('wantTrailers', () => setImmediate(closeIfUnfinished, req));
}

function closeIfUnfinished(req: Http2ServerRequest): void {
  const stream: ServerHttp2Stream = req.stream;
  if (stream.closed || stream.destroyed || stream.state.remoteClose === 1) return;
  // Node sends what is pending (the trailers) before the RST_STREAM.
  stream.close(NGHTTP2_NO_ERROR);
  // Whatever was buffered and not read is dropped, so the stream can end.
  req.resume();
}
