import type { Transport } from '@connectrpc/connect';
import { createClient, type Client } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import type { DescService } from '@bufbuild/protobuf';
import { loadConfig } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { ConnectError, type Interceptor } from '@connectrpc/connect';
import { createTestDatabase, type TestDatabase } from './database.js';
import { flushHygiene, recordDatabase, recordSecret, recordSecretsOf, recordText } from './hygiene.js';

export interface TestServer {
  server: RunningServer;
  /** The test database's own URL (not rewritten), when it is an external Postgres. */
  databaseUrl: string | undefined;
  baseUrl: string;
  /** An SDK key with every scope. */
  adminToken: string;
  /** Every log line the server wrote. */
  logs: string[];
  /** Issues an SDK key through the same code path as the CLI. */
  sdkKey(scopes: string[], workspaceIds?: string[]): Promise<string>;
  /** Runs SQL on the server's database (to look at or arrange rows the API does not show). */
  sql<T = Record<string, unknown>[]>(query: string, params?: unknown[]): Promise<T>;
  /** The few parts of the server tests look into: counters, caches, and management calls with no RPC (as the CLI makes them). */
  internals: TestInternals;
  close(): Promise<void>;
}

type TestInternals = Pick<
  RunningServer['app'],
  | 'orm'
  | 'sdkKeys'
  | 'keys'
  | 'auth'
  | 'keyCache'
  | 'keyFilter'
  | 'usageLimits'
  | 'retention'
  | 'analytics'
  | 'securityEvents'
  | 'rateLimitStats'
  | 'fastPathStats'
  | 'unaryFastPathStats'
  | 'signingKeys'
  | 'tokenChecker'
>;

export interface TestServerOptions {
  /** Rewrites the test database's URL before the server connects (e.g. through a TcpProxy). */
  mapDatabaseUrl?: (url: string) => string;
  /** Runs on this database, which the caller drops (to restart a server on the same data). */
  db?: TestDatabase;
}

/** A server on a fresh database, dropped on close, or on `opts.db`. */
export async function startTestServer(env: Record<string, string> = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  const db = opts.db ?? (await createTestDatabase());
  const config = {
    ...loadConfig({ KEYWARD_LOG_LEVEL: 'info', ...env }),
    port: 0,
    host: '127.0.0.1',
    databaseUrl: db.databaseUrl && opts.mapDatabaseUrl ? opts.mapDatabaseUrl(db.databaseUrl) : db.databaseUrl,
    dataDir: db.dataDir,
    bootstrapAdmin: false,
    dbPoolSize: 4,
  };
  const logs: string[] = [];
  const log: Logger = createLogger(config.logLevel, (line) => {
    logs.push(line);
    recordText('server-log', line);
  });
  const server = await startServer(config, log);
  recordIssuedSecrets(server);
  const sdkKey = async (scopes: string[], workspaceIds: string[] = []) => {
    const { token } = await server.app.sdkKeys.create({ name: `test ${scopes.join(' ')}`.slice(0, 120), scopes, workspaceIds });
    recordSecret(token);
    return token;
  };
  const adminToken = await sdkKey(['*']);
  return {
    server,
    databaseUrl: db.databaseUrl,
    baseUrl: `http://127.0.0.1:${server.port}`,
    adminToken,
    logs,
    sdkKey,
    sql: <T>(query: string, params: unknown[] = []) => server.app.orm.em.fork().execute(query, params) as Promise<T>,
    internals: server.app,
    async close() {
      // An external database is dumped by db.drop(); the embedded one lives in this server.
      if (!db.databaseUrl) {
        await recordDatabase('database', (sql) => server.app.orm.em.fork().execute(sql)).catch((e: Error) => recordText('database-dump-failed', e.message));
      }
      await server.close();
      if (!opts.db) await db.drop();
      flushHygiene();
    },
  };
}

/** Every API key the server issues, whichever client asked for it, is recorded for the hygiene scan. */
function recordIssuedSecrets(server: RunningServer): void {
  const keys = server.app.keys;
  for (const m of ['create', 'rotate'] as const) {
    const original = keys[m].bind(keys) as (...args: unknown[]) => Promise<{ secret: string }>;
    (keys as unknown as Record<string, unknown>)[m] = async (...args: unknown[]) => {
      const issued = await original(...args);
      recordSecret(issued.secret);
      return issued;
    };
  }
}

/** Records the secrets a test client receives and the errors it is told. */
const hygieneInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    if (!res.stream) recordSecretsOf(res.message);
    return res;
  } catch (e) {
    recordError(e);
    throw e;
  }
};

function recordError(e: unknown): void {
  const err = ConnectError.from(e);
  recordText('client-error', err.rawMessage);
  for (const [k, v] of err.metadata) recordText('client-error-metadata', `${k}: ${v}`);
}

export type ProtocolName = 'connect-json' | 'connect-binary' | 'grpc' | 'grpc-web';
export const PROTOCOLS: ProtocolName[] = ['connect-json', 'connect-binary', 'grpc', 'grpc-web'];

export function transport(baseUrl: string, protocol: ProtocolName, token?: string): Transport {
  const interceptors: Interceptor[] = [hygieneInterceptor];
  if (token) {
    interceptors.push((next) => async (req) => {
      req.header.set('authorization', `Bearer ${token}`);
      return next(req);
    });
  }
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
