import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { App } from './app.js';
import type { Config } from './config.js';
import { ChangeListener } from './db/change-listener.js';
import { openDatabase, type Database } from './db/database.js';
import type { Logger } from './log.js';

export interface RunningServer {
  port: number;
  app: App;
  db: Database;
  /** Stops accepting, lets in-flight requests finish (up to the grace), flushes usage, closes the database. */
  close(): Promise<void>;
}

// The HTTP/2 connection preface starts with "PRI "; no HTTP/1.1 method does.
const H2_PREFACE_START = Buffer.from('PRI ');

/**
 * One port for gRPC, gRPC-Web and Connect over both h2c and HTTP/1.1: each
 * connection is handed to the HTTP/2 or the HTTP/1.1 server by its first bytes.
 */
export async function listen(app: App, host: string, port: number, shutdownGraceMs: number) {
  const abort = new AbortController();
  const handler = app.handler(abort.signal);
  const h2 = http2.createServer({}, handler);
  const h1 = http.createServer(handler);
  h1.requestTimeout = app.opts.maxRequestTimeoutMs;
  const sessions = new Set<http2.Http2Session>();
  h2.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.once('data', (chunk) => {
      socket.pause();
      socket.unshift(chunk);
      const isH2 = H2_PREFACE_START.subarray(0, chunk.length).equals(chunk.subarray(0, H2_PREFACE_START.length));
      if (isH2) {
        // The HTTP/2 session reads the bytes given back with unshift() itself.
        h2.emit('connection', socket);
      } else {
        h1.emit('connection', socket);
        socket.resume();
      }
    });
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

export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize });
  try {
    const app = new App(db.orm, log, config, db.shared);
    let listener: ChangeListener | undefined;
    if (db.shared) {
      // Until other replicas' changes can be heard, nothing is cached.
      app.keyCache.setEnabled(false);
      listener = new ChangeListener(db.url, (c) => app.changes.deliver(c), (on) => app.keyCache.setEnabled(on), log);
      await listener.start();
    }
    if (config.bootstrapAdmin) {
      const token = await app.sdkKeys.bootstrapAdmin();
      if (token) {
        // Shown once, on stdout only, never in the logs.
        process.stdout.write(
          `\nKeyward created an admin SDK key (all scopes). It is shown only now; store it safely:\n\n  ${token}\n\n`,
        );
      }
    }
    app.usage.start();
    const server = await listen(app, config.host, config.port, config.shutdownGraceMs);
    log.info('keyward listening', { host: config.host, port: server.port, database: db.description });
    return {
      port: server.port,
      app,
      db,
      async close() {
        await server.close();
        await listener?.stop();
        await app.usage.stop();
        await db.close();
      },
    };
  } catch (e) {
    await db.close();
    throw e;
  }
}
