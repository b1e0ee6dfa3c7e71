// A bare HTTP/2 client for the rows h2load cannot send (a different gRPC body
// for every request, each once: bench/loadgen.ts). node:http2's client spends
// more CPU on a request than the server it measures does on answering it, so
// those rows measured the generator; this writes the frames itself: one
// header block encoded once for every request (HPACK literals, no table),
// one DATA frame with the body, and of the answer only the frame types.
//
// A request succeeded when its stream carried a message (DATA) before the
// frame that ended it: a gRPC error is a trailers-only answer, with no
// message. (The runner checks the answers' content before and after a row.)
import net from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const MAX_WINDOW = 2 ** 31 - 1;
/** The largest body sent: one DATA frame of the default maximum frame size (16,384 bytes), within any stream's first window. */
export const RAW_MAX_BODY = 16_384;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with a 7-bit prefix (RFC 7541 §5.1), the string's H bit off. */
function hpackLength(n: number): Buffer {
  if (n < 127) return Buffer.from([n]);
  const bytes = [127];
  n -= 127;
  while (n >= 128) {
    bytes.push((n & 0x7f) | 0x80);
    n >>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** Headers as HPACK literals without indexing, new names (RFC 7541 §6.2.2): the same block serves every request. */
function headerBlock(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    parts.push(Buffer.from([0]), hpackLength(n.length), n, hpackLength(v.length), v);
  }
  return Buffer.concat(parts);
}

export interface RawOutcome {
  ok: boolean;
  status: string;
}

/** One HTTP/2 connection sending gRPC requests as raw frames. */
export class RawH2Connection {
  private readonly socket: net.Socket;
  private readonly block: Buffer;
  private nextStream = 1;
  private readonly open = new Map<number, { data: boolean; done(o: RawOutcome): void }>();
  private readBuf: Buffer = Buffer.alloc(0);
  /** What the server lets us send on the connection (its streams' windows are never reached: one small body each). */
  private sendWindow = 65_535;
  private readonly waiting: { body: Buffer; resolve(o: RawOutcome): void }[] = [];
  private closed: Error | undefined;
  private corked = false;

  private constructor(socket: net.Socket, authority: string, path: string, headers: Record<string, string>) {
    this.socket = socket;
    this.block = headerBlock([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':authority', authority],
      [':path', path],
      ...Object.entries(headers).map(([k, v]): [string, string] => [k.toLowerCase(), v]),
    ]);
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.read(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static connect(origin: string, path: string, headers: Record<string, string>): Promise<RawH2Connection> {
    const url = new URL(origin);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(url.port), url.hostname, () => {
        const c = new RawH2Connection(socket, url.host, path, headers);
        // Our settings: streams' receive windows as large as allowed; then the connection's.
        const settings = Buffer.alloc(6);
        settings.writeUInt16BE(0x4, 0);
        settings.writeUInt32BE(MAX_WINDOW, 2);
        const increment = Buffer.alloc(4);
        increment.writeUInt32BE(MAX_WINDOW - 65_535, 0);
        socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(WINDOW_UPDATE, 0, 0, increment)]));
        resolve(c);
      });
      socket.once('error', reject);
    });
  }

  /** Sends one request with this gRPC-framed body (once the connection's window has room for it); resolves when its stream ends. */
  request(body: Buffer): Promise<RawOutcome> {
    return new Promise((resolve) => {
      this.waiting.push({ body, resolve });
      this.sendDue();
    });
  }

  private sendDue(): void {
    while (this.waiting.length > 0 && (this.closed || this.sendWindow >= this.waiting[0]!.body.length)) {
      const { body, resolve } = this.waiting.shift()!;
      if (this.closed) {
        resolve({ ok: false, status: 'error' });
        continue;
      }
      const id = this.nextStream;
      this.nextStream += 2;
      this.sendWindow -= body.length;
      this.open.set(id, { data: false, done: resolve });
      // The requests of one turn of the event loop go in one write, as h2load sends them.
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      this.socket.write(Buffer.concat([frame(HEADERS, END_HEADERS, id, this.block), frame(DATA, END_STREAM, id, body)]));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = e;
    for (const s of this.open.values()) s.done({ ok: false, status: 'error' });
    this.open.clear();
    this.sendDue();
  }

  private read(d: Buffer): void {
    this.readBuf = this.readBuf.length === 0 ? d : Buffer.concat([this.readBuf, d]);
    let at = 0;
    while (this.readBuf.length - at >= 9) {
      const length = this.readBuf.readUIntBE(at, 3);
      if (this.readBuf.length - at < 9 + length) break;
      const type = this.readBuf[at + 3]!;
      const flags = this.readBuf[at + 4]!;
      const stream = this.readBuf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = this.readBuf.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      this.onFrame(type, flags, stream, payload);
    }
    this.readBuf = at === this.readBuf.length ? Buffer.alloc(0) : this.readBuf.subarray(at);
  }

  private onFrame(type: number, flags: number, stream: number, payload: Buffer): void {
    switch (type) {
      case SETTINGS:
        if (!(flags & ACK)) this.socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        return;
      case PING:
        if (!(flags & ACK)) this.socket.write(frame(PING, ACK, 0, Buffer.from(payload)));
        return;
      case WINDOW_UPDATE:
        if (stream === 0) {
          this.sendWindow += payload.readUInt32BE(0) & 0x7fffffff;
          this.sendDue();
        }
        return;
      case GOAWAY:
        this.fail(new Error(`GOAWAY, error code ${payload.readUInt32BE(4)}`));
        return;
      case DATA: {
        const s = this.open.get(stream);
        if (s && payload.length > 0) s.data = true;
        if (s && flags & END_STREAM) this.end(stream, s.data ? '0' : 'no message');
        return;
      }
      case HEADERS:
        if (flags & END_STREAM) {
          const s = this.open.get(stream);
          if (s) this.end(stream, s.data ? '0' : 'no message');
        }
        return;
      case RST_STREAM:
        this.end(stream, `reset ${payload.readUInt32BE(0)}`);
        return;
    }
  }

  private end(stream: number, status: string): void {
    const s = this.open.get(stream);
    if (!s) return;
    this.open.delete(stream);
    s.done({ ok: status === '0', status });
  }
}
