// The runtime's limit: a bare node:http2 server that answers every POST with a
// fixed, small gRPC response (headers, one length-prefixed message, trailers
// grpc-status 0). It reads the request to its end, as any unary server must,
// and does nothing else.
import http2 from 'node:http2';

// VerifyKeyResponse{valid: true, code: VERIFY_CODE_VALID}: fields 1 and 2, varint 1.
const MESSAGE = Buffer.from([0x08, 0x01, 0x10, 0x01]);
const FRAME = Buffer.concat([Buffer.from([0, 0, 0, 0, MESSAGE.length]), MESSAGE]);
const HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto' };
const TRAILERS = { 'grpc-status': '0' };

const server = http2.createServer();
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.on('data', () => {});
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond(HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(TRAILERS));
    stream.end(FRAME);
  });
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`LISTENING ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
