import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setMaxListeners } from 'node:events';
import { App } from './app.js';
import type { Config } from './config.js';
import { ChangeListener } from './db/change-listener.js';
import { ormContextsAreSynchronous } from './db/load-orm.js';
import { openDatabase, type Database } from './db/database.js';
import type { Logger } from './log.js';
import { UnaryFastPath } from './rpc/unary-fast-path.js';
import { VerifyFastPath } from './rpc/verify-fast-path.js';
import { replayConsumedBody, type StreamListener } from './rpc/verify-stream.js';
import { sendMetrics } from './http/endpoints.js';
import { closeWhenAnsweredEarly } from './http/early-answer.js';
import type { Metrics } from './metrics/metrics.js';
import { startTracing } from './tracing.js';

export interface RunningServer {
  port: number;
  app: App;
  db: Database;
  /** Stops accepting, lets in-flight requests finish (up to the grace), flushes usage and events, closes the database. */
  close(): Promise<void>;
}

// The HTTP/2 connection preface starts with "PRI "; no HTTP/1.1 method does.
/** What every HTTP/2 cleartext connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** How long a connection may take to send enough bytes to tell its protocol. */
const SNIFF_TIMEOUT_MS = 10_000;

/**
 * One port for gRPC, gRPC-Web and Connect over both h2c and HTTP/1.1: each
 * connection is handed to the HTTP/2 or the HTTP/1.1 server by its first bytes.
 */
async function listen(app: App, host: string, port: number, shutdownGraceMs: number, opts: FastPaths = {}) {
  const abort = new AbortController();
  // Every in-flight request listens on it; many concurrent requests are normal.
  setMaxListeners(0, abort.signal);
  const handler = app.handler(abort.signal);
  const h2 =
    opts.verifyFastPath || opts.unaryFastPath
      ? withFastPaths(app, opts, abort.signal, (req, res) => {
          replayConsumedBody(req);
          closeWhenAnsweredEarly(req);
          handler(req, res);
        })
      : http2.createServer({}, (req, res) => {
          closeWhenAnsweredEarly(req);
          handler(req, res);
        });
  const h1 = http.createServer((req, res) => {
    // connect-es stops reading a body once it exceeds readMaxBytes, and Node
    // then detaches the request from its socket without draining the rest:
    // the next request on that kept-alive connection would hang until a
    // timeout resets it. Answer "connection: close" instead (Node then closes
    // the connection once the answer is out), or close it if that is too late.
    // ('aborted' is emitted synchronously when the unfinished body is dropped.)
    const socket = req.socket;
    req.once('aborted', () => {
      if (!res.headersSent) res.setHeader('connection', 'close');
      else res.once('finish', () => socket.end());
    });
    handler(req, res);
  });
  h1.requestTimeout = app.opts.maxRequestTimeoutMs;
  // h1 never listens itself (connections are handed to it), and Node only
  // tracks an http.Server's connections from its 'listening' event: without
  // it, closeIdleConnections() is a no-op (an idle keep-alive connection holds
  // shutdown up for keepAliveTimeout) and requestTimeout is never enforced.
  h1.emit('listening');
  const sessions = new Set<http2.Http2Session>();
  h2.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // The protocol is decided on the whole 24-byte preface, or on the first
    // byte that differs from it: however the client splits its first bytes
    // (a lone `P` of `POST`, say), it is answered in its own protocol.
    let head: Buffer = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && head.length < H2_PREFACE.length) return;
      socket.off('data', sniff);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // The HTTP/2 session reads the bytes given back with unshift() itself.
        h2.emit('connection', socket);
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', sniff);
    socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  const address = tcp.address() as net.AddressInfo;

  async function close(): Promise<void> {
    const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
    for (const s of sessions) s.close();
    h1.closeIdleConnections();
    const drained = Promise.all([closed, new Promise<void>((r) => h1.close(() => r()))]);
    const timer = setTimeout(() => {
      abort.abort();
      for (const s of sockets) s.destroy();
    }, shutdownGraceMs);
    await drained;
    clearTimeout(timer);
  }
  return { port: address.port, close };
}

/** The lean handlers on the raw HTTP/2 stream that are on (KEYWARD_VERIFY_FAST_PATH, KEYWARD_UNARY_FAST_PATH). */
interface FastPaths {
  verifyFastPath?: boolean;
  unaryFastPath?: boolean;
}

/**
 * An HTTP/2 server whose VerifyKey calls and other unary calls take the fast
 * paths that are on, and whose other requests reach `handler` through Node's
 * compat layer, as usual.
 *
 * Node's Http2Server turns each 'stream' into a compat (req, res) pair in a
 * 'stream' listener of its own, added when the first 'request' listener is
 * (lib/internal/http2/core.js, setupCompat). That listener is taken off and
 * called by the fast paths, with the same arguments, for every stream they
 * do not serve.
 */
function withFastPaths(
  app: App,
  opts: FastPaths,
  shutdownSignal: AbortSignal,
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
) {
  const h2 = http2.createServer({}, handler);
  const compat = h2.listeners('stream') as StreamListener[];
  if (compat.length !== 1) throw new Error(`expected Node's one compat 'stream' listener, found ${compat.length}`);
  let next = compat[0]!;
  h2.removeListener('stream', next);
  const protocolOptions = app.protocolOptions();
  if (opts.unaryFastPath) {
    const deps = {
      services: app.services(),
      interceptors: app.interceptors(),
      protocolOptions,
      shutdownSignal,
      clientAddress: app.clientAddress,
      log: app.log,
      stats: app.unaryFastPathStats,
    };
    next = new UnaryFastPath(deps, next).onStream;
  }
  if (opts.verifyFastPath) {
    const deps = {
      verifyCall: app.verifyCall,
      auth: app.auth,
      clientAddress: app.clientAddress,
      stats: app.fastPathStats,
      log: app.log,
      protocolOptions,
      deadlineCapMs: app.opts.maxRequestTimeoutMs,
      metrics: app.verifyMetrics,
    };
    next = new VerifyFastPath(deps, next).onStream;
  }
  h2.on('stream', next);
  return h2;
}

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  if (!ormContextsAreSynchronous) {
    log.warn('MikroORM was loaded before src/db/load-orm.ts: async hooks stay on and every request costs more');
  }
  const stopTracing = config.tracing ? await startTracing(config.tracing) : async () => {};
  const db = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.dbPoolSize,
    statementTimeoutMs: config.maxRequestTimeoutMs,
  });
  // With a shared database, other replicas' changes come through the listener
  // (started below, once the app that hears them exists).
  const listener = db.shared
    ? new ChangeListener(
        db.url,
        (c) => {
          app.metrics?.changeReceived();
          app.changes.deliver(c);
        },
        (on) => {
          app.metrics?.listeningChanged(on);
          // Until other replicas' changes can be heard, nothing is cached, and no key is said not to exist.
          app.keyCache.setEnabled(on);
          void app.tokenChecker.setListening(on);
          if (on) void app.keyFilter.rebuild();
          else app.keyFilter.distrust();
        },
        log,
      )
    : undefined;
  // Builds objects only (a Redis client connects in the background); stopBackground() undoes it.
  const app: App = new App(db.orm, log, config, db.shared, listener);
  if (!app.secrets.sealing) log.info('KEYWARD_SECRETS_KEY is not set: JWT signing keys and webhook secrets are stored unsealed');
  let metricsServer: http.Server | undefined;
  try {
    if (listener) {
      app.keyCache.setEnabled(false);
      await listener.start();
    }
    // The filter of issued keys, before the first call (the listener began building it once it listened).
    await (listener ? app.keyFilter.whenBuilt() : app.keyFilter.rebuild());
    if (config.bootstrapAdmin) {
      const token = await app.sdkKeys.bootstrapAdmin();
      if (token) {
        // Shown once, on stdout only, never in the logs.
        process.stdout.write(`\nKeyward created an admin SDK key (all scopes). It is shown only now; store it safely:\n\n  ${token}\n\n`);
      }
    }
    // The signing key exists before the first ExchangeKey, so verifiers that
    // fetch the JWKS once at their start find it there.
    await app.signingKeys.current();
    await app.startBackground();
    const server = await listen(app, config.host, config.port, config.shutdownGraceMs, {
      verifyFastPath: config.verifyFastPath,
      unaryFastPath: config.unaryFastPath,
    });
    log.info('keyward listening', { host: config.host, port: server.port, database: db.description });
    if (app.metrics && config.metricsPort !== undefined) {
      metricsServer = await listenForMetrics(app.metrics, config.host, config.metricsPort);
      log.info('metrics listening', { host: config.host, port: config.metricsPort, path: '/metrics' });
    }
    return {
      port: server.port,
      app,
      db,
      async close() {
        // Health checks and /readyz answer NOT_SERVING while in-flight requests finish.
        app.probe.drain();
        await server.close();
        await closeServer(metricsServer);
        await listener?.stop();
        await app.stopBackground();
        await db.close();
        await stopTracing();
      },
    };
  } catch (e) {
    // E.g. the port is taken: stop what started, or its timers and connections keep the process alive.
    await closeServer(metricsServer);
    await listener?.stop();
    await app.stopBackground();
    await db.close();
    await stopTracing();
    throw e;
  }
}

/** /metrics alone on a port of its own (KEYWARD_METRICS_PORT), so it can stay off the public one. */
async function listenForMetrics(metrics: Metrics, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics is served here\n');
      return;
    }
    sendMetrics(metrics, req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function closeServer(server: http.Server | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
