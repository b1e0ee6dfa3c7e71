// HTTP/2 streams answered before the client finished sending (a body over
// KEYWARD_MAX_REQUEST_BYTES): the answer, then RST_STREAM(NO_ERROR) from the
// server (RFC 9113 §8.1), on the fast server (VerifyKey handed over to
// connect-node) and the stock one, and for another RPC; harness:
// test/support/verify-conformance.ts.
import http2 from 'node:http2';
import path from 'node:path';
import { Code } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { grpcFrame } from '../../bench/lib.js';
import {
  auth,
  CONNECT_PROTO,
  counting,
  encode,
  fast,
  GRPC,
  MAX_REQUEST_BYTES,
  stock,
  useConformanceServers,
  VERIFY_PATH,
  type Side,
} from '../support/verify-conformance.js';

useConformanceServers();

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = http2.constants;
const GET_WORKSPACE_PATH = '/keyward.v1.WorkspaceService/GetWorkspace';
const CHUNK = 16_384;
/** More than any answer needs: the client stops writing after this many chunks. */
const MAX_CHUNKS = Math.ceil((4 * MAX_REQUEST_BYTES) / CHUNK);

interface EarlyAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** The stream's RST_STREAM code; NO_ERROR on a stream the server reset with NO_ERROR. */
  rstCode: number | undefined;
  /** The stream was closed while the client was still sending ('aborted', which Node emits only then). */
  closedWhileSending: boolean;
  /** The stream was still open a while after the answer was complete: the client reset it (CANCEL). */
  gaveUp: boolean;
}

/**
 * Sends a body larger than the server takes, chunk after chunk (each once the
 * previous one is written, with a pause between them), and never ends it:
 * only the server can close this stream. If the server has not closed it a
 * while after its answer was complete, the client gives up and resets the
 * stream with CANCEL.
 */
function sendOversized(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, first: Buffer): Promise<EarlyAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let gaveUp = false;
    let closedWhileSending = false;
    let giveUp: NodeJS.Timeout | undefined;
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (d: Buffer) => chunks.push(d));
    // Once the answer is complete: not a timing assertion, only keeps a server
    // that leaves the stream open from hanging the test.
    stream.on('end', () => {
      giveUp = setTimeout(() => {
        gaveUp = true;
        stream.close(NGHTTP2_CANCEL);
      }, 5_000);
    });
    stream.on('error', reject);
    stream.on('aborted', () => (closedWhileSending = true));
    stream.on('close', () => {
      clearTimeout(giveUp);
      resolve({
        status: Number(head[':status'] ?? 0),
        headers: head,
        trailers,
        body: Buffer.concat(chunks),
        rstCode: stream.rstCode,
        closedWhileSending,
        gaveUp,
      });
    });
    let sent = 0;
    const next = () => {
      if (stream.closed || stream.destroyed) return;
      if (sent === MAX_CHUNKS) return;
      const chunk = sent === 0 ? first : Buffer.alloc(CHUNK, 0x20);
      sent++;
      stream.write(chunk, () => setTimeout(next, 2));
    };
    next();
  });
}

/** The first bytes of a gRPC message longer than the limit (its envelope says so), then its start. */
const oversizedGrpcStart = (message: Uint8Array) => {
  const frame = grpcFrame(Buffer.alloc(MAX_REQUEST_BYTES + 1000));
  Buffer.from(message).copy(frame, 5);
  return frame.subarray(0, CHUNK);
};

const sideNamed = (name: Side['name']) => (name === 'fast' ? fast : stock);

/** A connection of its own, with the GOAWAY frames it receives. */
async function withSession<T>(
  side: Side,
  fn: (session: http2.ClientHttp2Session, goaways: number[]) => Promise<T>,
  options: http2.ClientSessionOptions = {},
): Promise<T> {
  const session = http2.connect(side.ts.baseUrl, options);
  const goaways: number[] = [];
  session.on('goaway', (code) => goaways.push(code));
  session.on('error', () => {});
  try {
    return await fn(session, goaways);
  } finally {
    session.close();
  }
}

/** The answer is complete and the server closed the stream with RST_STREAM(NO_ERROR) while the client was still sending. */
function expectAnsweredThenClosed(r: EarlyAnswer) {
  expect(r.gaveUp, 'the server left the stream open').toBe(false);
  expect(r.closedWhileSending).toBe(true);
  expect(r.rstCode).toBe(NGHTTP2_NO_ERROR);
}

const GRPC_WEB = { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' };

describe('HTTP/2: a request answered before its body ended is closed with RST_STREAM(NO_ERROR) after the answer', () => {
  for (const name of ['fast', 'stock'] as const) {
    describe(`${name} server`, () => {
      it('gRPC VerifyKey over the limit, sent slowly: RESOURCE_EXHAUSTED in the trailers, then NO_ERROR', async () => {
        const side = sideNamed(name);
        const { result: r, handedOver } = await counting(() =>
          withSession(side, (s) => sendOversized(s, { ':path': VERIFY_PATH, ...GRPC, ...auth(side) }, oversizedGrpcStart(encode(side)))),
        );
        expect(r.status).toBe(200);
        expect(r.trailers['grpc-status']).toBe(String(Code.ResourceExhausted));
        expectAnsweredThenClosed(r);
        // The fast path hands an oversized body to connect-node, which answers it.
        expect(handedOver).toBe(name === 'fast' ? 1 : 0);
      });

      it('gRPC-Web VerifyKey over the limit: RESOURCE_EXHAUSTED in the trailer frame, then NO_ERROR', async () => {
        const side = sideNamed(name);
        const r = await withSession(side, (s) => sendOversized(s, { ':path': VERIFY_PATH, ...GRPC_WEB, ...auth(side) }, oversizedGrpcStart(encode(side))));
        expect(r.status).toBe(200);
        expect(r.body.toString('latin1')).toContain(`grpc-status: ${Code.ResourceExhausted}`);
        expectAnsweredThenClosed(r);
      });

      it('Connect VerifyKey over the limit, without content-length: HTTP 429 resource_exhausted, then NO_ERROR', async () => {
        const side = sideNamed(name);
        const r = await withSession(side, (s) => sendOversized(s, { ':path': VERIFY_PATH, ...CONNECT_PROTO, ...auth(side) }, Buffer.from(encode(side))));
        expect(r.status).toBe(429);
        expect(JSON.parse(r.body.toString('utf8'))).toMatchObject({ code: 'resource_exhausted' });
        expectAnsweredThenClosed(r);
      });

      it('another RPC (GetWorkspace, connect-node on both servers), gRPC: RESOURCE_EXHAUSTED, then NO_ERROR', async () => {
        const side = sideNamed(name);
        const r = await withSession(side, (s) =>
          sendOversized(s, { ':path': GET_WORKSPACE_PATH, ...GRPC, authorization: `Bearer ${side.ts.adminToken}` }, oversizedGrpcStart(new Uint8Array())),
        );
        expect(r.trailers['grpc-status']).toBe(String(Code.ResourceExhausted));
        expectAnsweredThenClosed(r);
      });
    });
  }
});

/** A well-formed VerifyKey call on `session`: its grpc-status. */
function verifyOn(session: http2.ClientHttp2Session, side: Side): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': VERIFY_PATH, ...GRPC, ...auth(side) });
    let status: string | undefined;
    stream.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
    stream.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
    stream.on('data', () => {});
    stream.on('error', reject);
    stream.on('close', () => resolve(status));
    stream.end(grpcFrame(encode(side)));
  });
}

// nghttp2 (Node's HTTP/2) ends a connection whose client resets streams past
// a burst of 1,000 (then 33 a second): were these streams left for the client
// to reset, a client sending oversized bodies would be cut off after that
// many. Resets sent by the server count against no one.
const IN_A_ROW = 1_100;

describe(`HTTP/2: ${IN_A_ROW} oversized requests in a row on one connection`, () => {
  for (const name of ['fast', 'stock'] as const) {
    it(`${name} server: each answered and closed with NO_ERROR, no GOAWAY, and the connection still serves`, async () => {
      const side = sideNamed(name);
      await withSession(
        side,
        async (session, goaways) => {
          const requests = [
            { ':path': VERIFY_PATH, ...GRPC, ...auth(side) },
            { ':path': GET_WORKSPACE_PATH, ...GRPC, authorization: `Bearer ${side.ts.adminToken}` },
          ];
          const answers: EarlyAnswer[] = [];
          // A few at a time, as a busy client would send them.
          const lanes = Array.from({ length: 10 }, async (_, lane) => {
            for (let i = lane; i < IN_A_ROW; i += 10) {
              answers.push(await sendOversized(session, requests[i % 2]!, oversizedGrpcStart(i % 2 === 0 ? encode(side) : new Uint8Array())));
            }
          });
          await Promise.all(lanes);
          expect(answers).toHaveLength(IN_A_ROW);
          const outcomes = new Map<string, number>();
          for (const r of answers) {
            const key = `${String(r.trailers['grpc-status'])} rst=${r.rstCode} closedWhileSending=${r.closedWhileSending} gaveUp=${r.gaveUp}`;
            outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
          }
          expect(Object.fromEntries(outcomes)).toEqual({
            [`${Code.ResourceExhausted} rst=${NGHTTP2_NO_ERROR} closedWhileSending=true gaveUp=false`]: IN_A_ROW,
          });
          expect(goaways).toEqual([]);
          expect(session.closed || session.destroyed).toBe(false);
          expect(await verifyOn(session, side)).toBe('0');
          // Node's HTTP/2 client (v20) keeps counting a write still queued on a
          // stream the peer resets against its own session memory (about a
          // chunk per such stream here), and past its maxSessionMemory (10 MB)
          // resets incoming answers itself with ENHANCE_YOUR_CALM: a limit of
          // this client, not of the server, raised for this many.
        },
        { maxSessionMemory: 100 },
      );
    });
  }
});

const grpcJsDefinition = protoLoader.loadSync('keyward/v1/key_service.proto', {
  includeDirs: [path.resolve(import.meta.dirname, '../../proto')],
  longs: String,
  enums: String,
  defaults: true,
});
type GrpcJsKeyService = grpc.Client & {
  verifyKey(req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void): grpc.ClientUnaryCall;
};
const GrpcJsKeyService = (
  grpc.loadPackageDefinition(grpcJsDefinition) as unknown as {
    keyward: { v1: { KeyService: new (address: string, creds: grpc.ChannelCredentials) => GrpcJsKeyService } };
  }
).keyward.v1.KeyService;

/** grpc-js's outcome of one VerifyKey call: the status code's name, and `valid` on success. */
function grpcJsVerify(stub: GrpcJsKeyService, side: Side, key: string): Promise<string> {
  const md = new grpc.Metadata();
  md.set('authorization', auth(side).authorization!);
  return new Promise((resolve) => {
    stub.verifyKey({ key }, md, (err, res) => resolve(err ? `${grpc.status[err.code]}: ${err.details}` : `OK valid=${String(res.valid)}`));
  });
}

describe('@grpc/grpc-js sending an oversized VerifyKey request', () => {
  for (const name of ['fast', 'stock'] as const) {
    it(`${name} server: RESOURCE_EXHAUSTED every time (not CANCELLED or INTERNAL from the reset), and the channel still serves`, async () => {
      const side = sideNamed(name);
      const stub = new GrpcJsKeyService(`127.0.0.1:${side.ts.server.port}`, grpc.credentials.createInsecure());
      try {
        // 1 MB: the client is still sending when the answer comes.
        const oversized = 'k'.repeat(1_000_000);
        const outcomes = await Promise.all(Array.from({ length: 20 }, () => grpcJsVerify(stub, side, oversized)));
        for (const o of outcomes) expect(o).toMatch(/^RESOURCE_EXHAUSTED: /);
        expect(await grpcJsVerify(stub, side, side.keys.valid)).toBe('OK valid=true');
      } finally {
        stub.close();
      }
    });
  }
});
