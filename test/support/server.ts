import type { Transport } from '@connectrpc/connect';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import type { DescService } from '@bufbuild/protobuf';
import { loadConfig } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestServer {
  server: RunningServer;
  baseUrl: string;
  /** An SDK key with every scope. */
  adminToken: string;
  /** Every log line the server wrote. */
  logs: string[];
  /** Issues an SDK key through the same code path as the CLI. */
  sdkKey(scopes: string[], workspaceIds?: string[]): Promise<string>;
  close(): Promise<void>;
}

/**
 * A server on a fresh database, dropped on close; or, with `db`, on that
 * database, which the caller drops (to restart a server on the same data).
 */
export async function startTestServer(env: Record<string, string> = {}, opts: { db?: TestDatabase } = {}): Promise<TestServer> {
  const db = opts.db ?? (await createTestDatabase());
  const config = {
    ...loadConfig({ KEYWARD_LOG_LEVEL: 'info', ...env }),
    port: 0,
    host: '127.0.0.1',
    databaseUrl: db.databaseUrl,
    dataDir: db.dataDir,
    bootstrapAdmin: false,
    dbPoolSize: 4,
  };
  const logs: string[] = [];
  const log: Logger = createLogger(config.logLevel, (line) => logs.push(line));
  const server = await startServer(config, log);
  const sdkKey = async (scopes: string[], workspaceIds: string[] = []) =>
    (await server.app.sdkKeys.create({ name: `test ${scopes.join(' ')}`.slice(0, 120), scopes, workspaceIds })).token;
  const adminToken = await sdkKey(['*']);
  return {
    server,
    baseUrl: `http://127.0.0.1:${server.port}`,
    adminToken,
    logs,
    sdkKey,
    async close() {
      await server.close();
      if (!opts.db) await db.drop();
    },
  };
}

export type ProtocolName = 'connect-json' | 'connect-binary' | 'grpc' | 'grpc-web';
export const PROTOCOLS: ProtocolName[] = ['connect-json', 'connect-binary', 'grpc', 'grpc-web'];

export function transport(baseUrl: string, protocol: ProtocolName, token?: string): Transport {
  const interceptors = token
    ? [
        (next: Parameters<import('@connectrpc/connect').Interceptor>[0]) =>
          async (req: Parameters<typeof next>[0]) => {
            req.header.set('authorization', `Bearer ${token}`);
            return next(req);
          },
      ]
    : [];
  switch (protocol) {
    case 'connect-json':
      return createConnectTransport({ baseUrl, httpVersion: '1.1', useBinaryFormat: false, interceptors });
    case 'connect-binary':
      return createConnectTransport({ baseUrl, httpVersion: '2', useBinaryFormat: true, interceptors });
    case 'grpc':
      return createGrpcTransport({ baseUrl, interceptors });
    case 'grpc-web':
      return createGrpcWebTransport({ baseUrl, httpVersion: '1.1', interceptors });
  }
}

export function client<S extends DescService>(service: S, ts: TestServer, opts: { protocol?: ProtocolName; token?: string | null } = {}): Client<S> {
  const token = opts.token === null ? undefined : (opts.token ?? ts.adminToken);
  return createClient(service, transport(ts.baseUrl, opts.protocol ?? 'connect-json', token));
}
