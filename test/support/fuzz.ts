// Hostile requests for any RPC, built from its descriptor with fast-check, and
// a sender that puts them on a real socket (HTTP/2 and HTTP/1.1) many at a
// time and classifies the answers. Used by test/e2e/fuzz.test.ts (and so by
// `npm run fuzz`, which only raises the count).
import http from 'node:http';
import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { create, toBinary, toJsonString, ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf';
import fc from 'fast-check';
import type { Rpc } from './descriptors.js';
import { grpcFrame } from '../../bench/lib.js';

/** Real ids and names of the server under test, so some requests reach real rows. */
export interface FuzzFixtures {
  workspaceIds: string[];
  scopeIds: string[];
  keyIds: string[];
  scopeNames: string[];
  apiKeys: string[];
  token: string;
  /** The server's largest accepted request, in bytes. */
  maxRequestBytes: number;
}

type Wire = 'connect-proto-h2' | 'connect-json-h2' | 'connect-json-h1' | 'grpc' | 'grpc-web';
type Kind = 'message' | 'mutated' | 'random-bytes' | 'invalid-utf8' | 'json-junk' | 'wrong-content-type' | 'oversized' | 'bad-headers';

export interface FuzzInput {
  kind: Kind;
  wire: Wire;
  body: Uint8Array;
  headers: Record<string, string>;
}

// ---------------------------------------------------------------------------
// Values.

const UINT32_MAX = 2 ** 32 - 1;
const hugeString = fc.integer({ min: 1_000, max: 200_000 }).map((n) => 'x'.repeat(n));
const nasty = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'é',
  '😀',
  "'; drop table api_keys; --",
  '%00',
  '../../etc/passwd',
  'kw_',
  'kws_',
  'null',
  '{}',
  '*',
  '\n\r\t',
);

/** `small`: no huge strings (items of lists nested in lists, which would multiply into messages of many megabytes). */
function stringArb(field: DescField, fx: FuzzFixtures, small = false): fc.Arbitrary<string> {
  const name = field.name;
  const specific: fc.Arbitrary<string>[] = [];
  if (/(^|_)id$/.test(name) || name === 'id') {
    specific.push(fc.constantFrom(...fx.workspaceIds, ...fx.scopeIds, ...fx.keyIds), fc.uuid(), fc.constant(randomUUID().toUpperCase()));
  }
  if (name === 'key')
    specific.push(
      fc.constantFrom(...fx.apiKeys),
      fc.constantFrom(...fx.apiKeys).map((k) => `${k.slice(0, -1)}A`),
    );
  if (name === 'page_token') {
    specific.push(
      fc.base64String(),
      fc.json().map((j) => Buffer.from(j).toString('base64url')),
      fc.record({ a: fc.oneof(fc.uuid(), fc.string()), f: fc.string({ maxLength: 12 }) }).map((t) => Buffer.from(JSON.stringify(t)).toString('base64url')),
    );
  }
  if (name === 'name' || name === 'scope') specific.push(fc.constantFrom(...fx.scopeNames), fc.stringMatching(/^[a-z][a-z0-9_.-]{0,70}$/));
  if (name === 'key_prefix') specific.push(fc.stringMatching(/^[a-z][a-z0-9]{0,20}$/));
  if (name === 'required_permissions' || name === 'scopes') {
    // Permission strings: scope:action, a whole scope, an action no scope declares, near misses.
    const scope = fc.constantFrom(...fx.scopeNames);
    specific.push(
      scope.map((s) => `${s}:read`),
      scope,
      scope.map((s) => `${s}:write`),
      fc.string().map((s) => `${s}:${s}`),
    );
  }
  if (name === 'actions' || name === 'custom_actions')
    specific.push(fc.constantFrom('read', 'write', 'create', 'delete', '*'), fc.stringMatching(/^[a-z][a-z0-9_-]{0,40}$/));
  return fc.oneof(
    { weight: 4, arbitrary: specific.length ? fc.oneof(...specific) : fc.string() },
    { weight: 3, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
    { weight: 2, arbitrary: nasty },
    { weight: small ? 0 : 1, arbitrary: hugeString },
  );
}

function scalarArb(field: DescField, t: ScalarType, fx: FuzzFixtures, small = false): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.STRING:
      return stringArb(field, fx, small);
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 300 });
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.integer(), fc.constantFrom(0, -1, 1, 1000, 1001, 2 ** 31 - 1, -(2 ** 31)));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.integer({ min: 0, max: UINT32_MAX }), fc.constant(UINT32_MAX));
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return fc.double();
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    default:
      return fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, -1n, 2n ** 63n - 1n, -(2n ** 63n)));
  }
}

function wktArb(m: DescMessage, field: DescField, _fx: FuzzFixtures): fc.Arbitrary<unknown> | undefined {
  switch (m.typeName) {
    case 'google.protobuf.Timestamp':
    case 'google.protobuf.Duration':
      return fc.record({
        seconds: fc.oneof(
          fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
          fc.bigInt({ min: -100_000n, max: 10n ** 11n }),
          // Just outside what a Timestamp (and PostgreSQL) holds: years 0 and 10000.
          fc.bigInt({ min: 253_402_300_800n, max: 253_402_400_000n }),
          fc.bigInt({ min: -62_135_700_000n, max: -62_135_596_801n }),
          fc.constant(BigInt(Math.floor(Date.now() / 1000) + 3600)),
        ),
        nanos: fc.oneof(fc.integer(), fc.integer({ min: 0, max: 999_999_999 })),
      });
    case 'google.protobuf.FieldMask': {
      const parent = field.parent;
      const valid = parent.fields.flatMap((f) => (f.message ? f.message.fields.map((g) => g.name) : [f.name]));
      return fc.record({
        paths: fc.array(fc.oneof(fc.constantFrom(...valid, '*', '', 'id', 'create_time', 'key.name'), fc.string(), hugeString), { maxLength: 12 }),
      });
    }
  }
  return undefined;
}

/** `inList`: the field's message is an item of a list. */
function fieldArb(field: DescField, fx: FuzzFixtures, depth: number, inList = false): fc.Arbitrary<unknown> {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarArb(field, field.scalar, fx, inList);
    case 'enum':
      return fc.oneof(fc.constantFrom(...field.enum.values.map((v) => v.number)), fc.integer());
    case 'message':
      // A message inside a list item (ImportKeys' keys[].key) is small too.
      return messageArb(field.message, fx, depth + 1, field, inList);
    case 'list': {
      // A list inside a message that is itself in a list (a Grant's custom_actions) stays small: long lists of huge items would
      // make messages of tens of megabytes, which only test the read limit (oversizedArb does, on purpose).
      const nested = inList;
      const item =
        field.listKind === 'scalar'
          ? scalarArb(field, field.scalar, fx, nested)
          : field.listKind === 'enum'
            ? fc.oneof(fc.constantFrom(...field.enum.values.map((v) => v.number)), fc.integer())
            : messageArb(field.message, fx, depth + 1, field, true);
      return fc.oneof(
        { weight: 5, arbitrary: fc.array(item, { maxLength: 8 }) },
        { weight: nested ? 0 : 1, arbitrary: fc.array(item, { minLength: 100, maxLength: 3000 }) },
      );
    }
    case 'map': {
      const value =
        field.mapKind === 'scalar'
          ? scalarArb(field, field.scalar, fx)
          : field.mapKind === 'enum'
            ? fc.integer()
            : messageArb(field.message, fx, depth + 1, field);
      const key = inList ? fc.oneof(fc.string({ maxLength: 40 }), nasty) : fc.oneof(fc.string({ maxLength: 40 }), nasty, hugeString);
      return fc.oneof(
        { weight: 5, arbitrary: fc.dictionary(key, value, { maxKeys: 8 }) },
        { weight: inList ? 0 : 1, arbitrary: fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), value, { minKeys: 100, maxKeys: 3000 }) },
      );
    }
  }
}

/** A message init object: any subset of the fields, each any value of its type. */
function messageArb(m: DescMessage, fx: FuzzFixtures, depth = 0, field?: DescField, inList = false): fc.Arbitrary<Record<string, unknown>> {
  if (field) {
    const wkt = wktArb(m, field, fx);
    if (wkt) return wkt as fc.Arbitrary<Record<string, unknown>>;
  }
  if (depth > 3) return fc.constant({});
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of m.fields) model[f.localName] = fieldArb(f, fx, depth, inList);
  return fc.record(model, { requiredKeys: [] });
}

// ---------------------------------------------------------------------------
// Requests.

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** Encodings of a valid-typed message; undefined when the value cannot be encoded (e.g. a timestamp JSON cannot spell). */
function encode(rpc: Rpc, init: Record<string, unknown>, json: boolean): Uint8Array | undefined {
  try {
    const msg = create(rpc.method.input, init as never);
    return json ? Buffer.from(toJsonString(rpc.method.input, msg)) : toBinary(rpc.method.input, msg);
  } catch {
    return undefined;
  }
}

const WIRES: Wire[] = ['connect-proto-h2', 'connect-json-h2', 'connect-json-h1', 'grpc', 'grpc-web'];
const isJson = (w: Wire) => w === 'connect-json-h2' || w === 'connect-json-h1';

/** Any hostile request for `rpc`. */
export function inputArb(rpc: Rpc, fx: FuzzFixtures): fc.Arbitrary<FuzzInput> {
  const msg = messageArb(rpc.method.input, fx);
  const wire = fc.constantFrom(...WIRES);
  const stringFields = rpc.method.input.fields.filter((f) => f.fieldKind === 'scalar' && f.scalar === ScalarType.STRING);
  const fallback = new Uint8Array();
  const message = fc.tuple(msg, wire).map(
    ([init, w]): FuzzInput => ({
      kind: 'message',
      wire: w,
      body: encode(rpc, init, isJson(w)) ?? encode(rpc, init, false) ?? fallback,
      headers: {},
    }),
  );
  const mutated = fc
    .tuple(
      msg,
      fc.constantFrom<Wire>('connect-proto-h2', 'grpc', 'grpc-web'),
      fc.nat(),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.boolean(),
    )
    .map(([init, w, cut, flips, truncate]): FuzzInput => {
      const bytes = Uint8Array.from(encode(rpc, init, false) ?? fallback);
      for (const [at, v] of flips) if (bytes.length) bytes[at % bytes.length] = v;
      return { kind: 'mutated', wire: w, body: truncate && bytes.length ? bytes.subarray(0, cut % bytes.length) : bytes, headers: {} };
    });
  const randomBytes = fc
    .tuple(fc.uint8Array({ maxLength: 600 }), fc.constantFrom<Wire>('connect-proto-h2', 'grpc', 'grpc-web'))
    .map(([body, w]): FuzzInput => ({ kind: 'random-bytes', wire: w, body, headers: {} }));
  const invalidUtf8 = fc
    .tuple(
      // A message without fields (GetCurrentSdkKeyRequest) still gets junk in an unknown field 1.
      fc.constantFrom(...(stringFields.length ? stringFields : rpc.method.input.fields).map((f) => f.number), ...(rpc.method.input.fields.length ? [] : [1])),
      fc.uint8Array({ minLength: 1, maxLength: 40 }),
      msg,
      fc.constantFrom<Wire>('connect-proto-h2', 'grpc', 'grpc-web'),
    )
    .map(([number, junk, init, w]): FuzzInput => {
      const bad = Buffer.concat([Buffer.from(junk), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80])]);
      const field = Buffer.from([...varint((number << 3) | 2), ...varint(bad.length), ...bad]);
      return { kind: 'invalid-utf8', wire: w, body: Buffer.concat([Buffer.from(encode(rpc, init, false) ?? fallback), field]), headers: {} };
    });
  const jsonJunk = fc
    .tuple(
      fc.oneof(
        fc.json(),
        fc.dictionary(fc.constantFrom(...rpc.method.input.fields.map((f) => f.jsonName), 'unknownField'), fc.jsonValue()).map((o) => JSON.stringify(o)),
        fc.string(),
        fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString('latin1')),
      ),
      fc.boolean(),
      fc.constantFrom<Wire>('connect-json-h2', 'connect-json-h1'),
    )
    .map(
      ([text, invalidUtf8, w]): FuzzInput => ({
        kind: 'json-junk',
        wire: w,
        body: invalidUtf8 ? Buffer.concat([Buffer.from(text), Buffer.from([0xff, 0xfe])]) : Buffer.from(text),
        headers: {},
      }),
    );
  const wrongType = fc
    .tuple(
      msg,
      fc.constantFrom(
        'text/plain',
        'application/xml',
        'application/protobuf',
        'application/grpc+json',
        'application/json; charset=latin1',
        'multipart/form-data',
        'application/connect+proto',
        '',
      ),
      fc.constantFrom<Wire>('connect-json-h2', 'connect-json-h1'),
    )
    .map(([init, ct, w]): FuzzInput => ({ kind: 'wrong-content-type', wire: w, body: encode(rpc, init, true) ?? fallback, headers: { 'content-type': ct } }));
  const badHeaders = fc
    .tuple(
      msg,
      fc.constantFrom(...WIRES),
      fc.record(
        {
          authorization: fc.oneof(
            fc.string({ maxLength: 300 }),
            fc.constant('Bearer '),
            fc.uuid().map((u) => `Bearer kws_${u}_${'A'.repeat(43)}`),
            fc.string({ maxLength: 2000 }).map((s) => `Bearer ${s}`),
          ),
          'connect-timeout-ms': fc.oneof(fc.nat().map(String), fc.string({ maxLength: 20 }), fc.constant('99999999999999999999')),
          'grpc-timeout': fc.oneof(
            fc.nat({ max: 99_999_999 }).map((n) => `${n}m`),
            fc.string({ maxLength: 10 }),
            fc.constant('1n'),
          ),
          'x-request-id': fc.string({ maxLength: 500 }),
        },
        { requiredKeys: [] },
      ),
    )
    .map(
      ([init, w, headers]): FuzzInput => ({
        kind: 'bad-headers',
        wire: w,
        body: encode(rpc, init, isJson(w)) ?? fallback,
        // Header values must be visible ASCII for the client to send them at all.
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.replace(/[^\x20-\x7e]/g, '?')])),
      }),
    );
  return fc.oneof(
    { weight: 8, arbitrary: message },
    { weight: 3, arbitrary: mutated },
    { weight: 2, arbitrary: randomBytes },
    { weight: 2, arbitrary: invalidUtf8 },
    { weight: 2, arbitrary: jsonJunk },
    { weight: 1, arbitrary: wrongType },
    { weight: 2, arbitrary: badHeaders },
  );
}

/** Oversized requests are few and costly; made apart from the others. */
export function oversizedArb(rpc: Rpc, fx: FuzzFixtures): fc.Arbitrary<FuzzInput> {
  return fc.tuple(fc.integer({ min: 1, max: 4096 }), fc.constantFrom(...WIRES)).map(([extra, w]): FuzzInput => {
    const n = fx.maxRequestBytes + extra;
    const body = isJson(w)
      ? Buffer.from(JSON.stringify({ [rpc.method.input.fields[0]?.jsonName ?? 'padding']: 'x'.repeat(n) }))
      : Buffer.concat([Buffer.from([((rpc.method.input.fields[0]?.number ?? 1) << 3) | 2, ...varint(n)]), Buffer.alloc(n, 0x78)]);
    return { kind: 'oversized', wire: w, body, headers: {} };
  });
}

// ---------------------------------------------------------------------------
// Sending and judging.

export interface Outcome {
  /** A gRPC status or Connect code name, an HTTP status, or a network error. */
  code: string;
  /** Why the outcome breaks a promise, if it does. */
  problem?: string;
}

// UNKNOWN, INTERNAL, DATA_LOSS, and UNAVAILABLE: the database is up
// throughout, so UNAVAILABLE would mean a request was taken for an outage.
const GRPC_BAD = new Set(['2', '13', '14', '15']);
const CONNECT_BAD = new Set(['unknown', 'internal', 'unavailable', 'data_loss']);

function judgeConnect(status: number, body: Buffer): Outcome {
  if (status === 200) return { code: 'ok' };
  let code: string | undefined;
  try {
    code = (JSON.parse(body.toString('utf8')) as { code?: string }).code;
  } catch {
    // not a Connect error body
  }
  if (code === undefined) return status >= 500 ? { code: `http ${status}`, problem: `HTTP ${status} without a Connect error` } : { code: `http ${status}` };
  return CONNECT_BAD.has(code) ? { code, problem: `code ${code}: ${body.toString('utf8').slice(0, 300)}` } : { code };
}

function judgeGrpc(status: number, grpcStatus: string | undefined, message: string | undefined): Outcome {
  if (grpcStatus === undefined)
    return status >= 500 || status === 200 ? { code: `http ${status}`, problem: `HTTP ${status} without grpc-status` } : { code: `http ${status}` };
  return GRPC_BAD.has(grpcStatus) ? { code: `grpc ${grpcStatus}`, problem: `grpc-status ${grpcStatus}: ${message}` } : { code: `grpc ${grpcStatus}` };
}

function contentType(input: FuzzInput): string {
  if (input.headers['content-type'] !== undefined) return input.headers['content-type'];
  switch (input.wire) {
    case 'connect-proto-h2':
      return 'application/proto';
    case 'connect-json-h1':
    case 'connect-json-h2':
      return 'application/json';
    case 'grpc':
      return 'application/grpc+proto';
    case 'grpc-web':
      return 'application/grpc-web+proto';
  }
}

/**
 * Streams a client resets on one connection before it opens another. Node's
 * HTTP/2 server (nghttp2) ends a connection whose client resets streams
 * faster than its rapid-reset limit allows (a burst of 1,000, then 33 a
 * second; CVE-2023-44487) with GOAWAY INTERNAL_ERROR; `npm run fuzz` sends
 * thousands of oversized bodies per RPC, each answered before it was sent and
 * so reset by the client. That limit is Node's defence, not what is tested.
 */
const RESETS_PER_SESSION = 500;

/** Sends hostile inputs to one server over a few HTTP/2 connections and a keep-alive HTTP/1.1 agent. */
export class FuzzClient {
  private sessions: http2.ClientHttp2Session[] = [];
  /** Streams each session has reset (see RESETS_PER_SESSION). */
  private readonly resets = new WeakMap<http2.ClientHttp2Session, number>();
  private next = 0;
  private readonly agent: http.Agent;
  /** Why HTTP/2 connections ended, if they did (a GOAWAY or an error). */
  readonly sessionEvents: string[] = [];

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    /** Bodies larger than this are refused by the server, which then closes an HTTP/1.1 connection. */
    private readonly maxRequestBytes: number,
    connections = 4,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    for (let i = 0; i < connections; i++) this.sessions.push(this.connect());
  }

  private connect(): http2.ClientHttp2Session {
    // The client's own session memory must not be what refuses a stream.
    const s = http2.connect(this.baseUrl, { maxSessionMemory: 1024 });
    s.on('error', (e) => this.sessionEvents.push(`error ${e.message}`));
    s.on('goaway', (code) => this.sessionEvents.push(`goaway ${code}`));
    return s;
  }

  private session(): http2.ClientHttp2Session {
    const i = this.next++ % this.sessions.length;
    let s = this.sessions[i]!;
    if (s.closed || s.destroyed || (this.resets.get(s) ?? 0) >= RESETS_PER_SESSION) {
      s.removeAllListeners('goaway'); // the server's answer to our own GOAWAY
      s.close(); // its streams in flight finish first
      s = this.sessions[i] = this.connect();
    }
    return s;
  }

  private headersOf(_rpc: Rpc, input: FuzzInput): Record<string, string> {
    const h: Record<string, string> = { authorization: `Bearer ${this.token}`, ...input.headers, 'content-type': contentType(input) };
    if (input.wire === 'grpc' || input.wire === 'grpc-web') {
      h.te = 'trailers';
      delete h['connect-timeout-ms'];
    } else {
      delete h['grpc-timeout'];
    }
    return h;
  }

  send(rpc: Rpc, input: FuzzInput): Promise<Outcome> {
    const grpcLike = input.wire === 'grpc' || input.wire === 'grpc-web';
    const body = grpcLike && input.kind !== 'wrong-content-type' ? grpcFrame(input.body) : Buffer.from(input.body);
    return input.wire === 'connect-json-h1' ? this.sendH1(rpc, input, body) : this.sendH2(rpc, input, body);
  }

  private sendH1(rpc: Rpc, input: FuzzInput, body: Buffer, retried = false): Promise<Outcome> {
    return new Promise((resolve) => {
      // A body over the limit gets a connection of its own: the server closes
      // it after answering, and a request queued on it would be lost.
      const agent = retried || body.length > this.maxRequestBytes ? false : this.agent;
      const req = http.request(
        `${this.baseUrl}${rpc.path}`,
        { method: 'POST', agent, headers: { ...this.headersOf(rpc, input), 'content-length': String(body.length) }, timeout: 20_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(judgeConnect(res.statusCode ?? 0, Buffer.concat(chunks))));
          res.on('error', (e) => resolve(networkOutcome(input, e, this.maxRequestBytes)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 20 s')));
      req.on('error', (e) => {
        // A kept-alive connection the server closed as idle just as it was
        // reused: the request never reached the server (see Node's
        // request.reusedSocket); send it again on a new connection.
        if (req.reusedSocket && !retried && /ECONNRESET|socket hang up/.test(e.message)) {
          resolve(this.sendH1(rpc, input, body, true));
          return;
        }
        resolve(networkOutcome(input, e, this.maxRequestBytes));
      });
      req.end(body);
    });
  }

  private sendH2(rpc: Rpc, input: FuzzInput, body: Buffer, refusals = 0): Promise<Outcome> {
    return new Promise((resolve) => {
      const session = this.session();
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request({ ':method': 'POST', ':path': rpc.path, ...this.headersOf(rpc, input) });
      } catch (e) {
        resolve(networkOutcome(input, e as Error, this.maxRequestBytes));
        return;
      }
      let status = 0;
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), 20_000);
      stream.on('response', (h) => {
        headers = h;
        status = Number(h[':status']);
      });
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => {});
      let judged = false;
      const judge = () => {
        if (judged) return;
        judged = true;
        clearTimeout(timer);
        const data = Buffer.concat(chunks);
        // REFUSED_STREAM guarantees the request was not processed (RFC 9113
        // §8.7): the server had as many streams open as its SETTINGS allow,
        // which a loaded machine reaches while earlier streams close. Sent
        // again, as gRPC clients do.
        if (status === 0 && stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && refusals < 5) {
          setTimeout(() => resolve(this.sendH2(rpc, input, body, refusals + 1)), 20 * (refusals + 1));
          return;
        }
        if (status === 0) return resolve(networkOutcome(input, new Error(`stream closed without a response (rst ${stream.rstCode})`), this.maxRequestBytes));
        if (input.wire === 'grpc') {
          const s = (trailers['grpc-status'] ?? headers['grpc-status']) as string | undefined;
          return resolve(judgeGrpc(status, s, (trailers['grpc-message'] ?? headers['grpc-message']) as string | undefined));
        }
        if (input.wire === 'grpc-web') {
          const s = (headers['grpc-status'] as string | undefined) ?? /grpc-status:\s*(\d+)/.exec(data.toString('latin1'))?.[1];
          return resolve(judgeGrpc(status, s, /grpc-message:\s*([^\r\n]*)/.exec(data.toString('latin1'))?.[1]));
        }
        resolve(judgeConnect(status, data));
      };
      // A server may answer before reading the whole body (an error): the
      // answer is complete when its end arrives, even if our body is not sent.
      // Only a stream whose body is still being sent is reset: resetting every
      // stream trips the server's rapid-reset protection (CVE-2023-44487),
      // which ends the whole connection with GOAWAY INTERNAL_ERROR.
      stream.on('end', () => {
        judge();
        if (!stream.closed && !stream.writableFinished) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          this.resets.set(session, (this.resets.get(session) ?? 0) + 1);
        }
      });
      stream.on('close', judge);
      stream.end(body);
    });
  }

  close(): void {
    for (const s of this.sessions) s.close();
    this.agent.destroy();
  }
}

function networkOutcome(input: FuzzInput, e: Error, maxRequestBytes: number): Outcome {
  // A body past the read limit may be cut off once the answer is out.
  if (input.kind === 'oversized' || input.body.length > maxRequestBytes) return { code: 'closed' };
  return { code: 'network error', problem: `network error: ${e.message}` };
}

/** Runs `work` over `items` with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, work: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (i < items.length) await work(items[i++]!);
    }),
  );
}

/** For a failure report: the input, short. */
export function describeInput(input: FuzzInput): string {
  const b = Buffer.from(input.body);
  return `${input.kind} over ${input.wire}, headers ${JSON.stringify(input.headers).slice(0, 200)}, ${b.length} bytes: ${b.subarray(0, 120).toString('hex')}`;
}
