// Keyward under test: a fresh database, the server process, and the
// workspace, scope and keys the scenarios send.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { createClient, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { Action } from '../gen/keyward/v1/key_pb.js';
import { KeyService } from '../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../gen/keyward/v1/scope_service_pb.js';
import { WorkspaceService } from '../gen/keyward/v1/workspace_service_pb.js';
import { issueApiKey } from '../src/credentials/api-key.js';
import { ROOT, progress } from './options.js';
import { BASE_ENV, cleanups, startServer, tmpPath, type Server } from './processes.js';

export interface Keyward extends Server {
  adminToken: string;
  /** Which database it runs on, for the report. */
  database: string;
}

/** A database of its own for a run (dropped at the end): on DATABASE_URL's server if set, else an embedded one in a temporary directory. */
export async function freshDatabase(label: string): Promise<{ env: NodeJS.ProcessEnv; description: string }> {
  const base = process.env.DATABASE_URL;
  if (base) {
    const name = `keyward_bench_${label}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
    await admin.connect();
    try {
      await admin.query(`create database ${name}`);
    } finally {
      await admin.end();
    }
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5000 });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    });
    const url = new URL(base);
    url.pathname = `/${name}`;
    return { env: { DATABASE_URL: url.toString() }, description: `PostgreSQL (fresh database ${name}, dropped at the end)` };
  }
  const dir = tmpPath(`keyward-${label}`);
  return { env: { KEYWARD_DATA_DIR: dir }, description: 'embedded PGlite (fresh data dir, removed at the end)' };
}

/**
 * Starts `keyward serve` on a fresh database (named by `label`) with a
 * bootstrap admin key; or on `again.db`, started before, whose admin key
 * (printed only when the database was new) is `again.adminToken`.
 */
export async function startKeyward(
  name: string,
  label: string,
  extraEnv: NodeJS.ProcessEnv,
  again?: { db: { env: NodeJS.ProcessEnv; description: string }; adminToken: string },
): Promise<Keyward> {
  const db = again?.db ?? (await freshDatabase(label));
  const env: NodeJS.ProcessEnv = {
    ...BASE_ENV,
    ...db.env,
    PORT: '0',
    HOST: '127.0.0.1',
    KEYWARD_LOG_LEVEL: 'info',
    KEYWARD_BOOTSTRAP_ADMIN: 'true',
    KEYWARD_SHUTDOWN_GRACE_MS: '2000',
    ...extraEnv,
  };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  let adminToken = again?.adminToken ?? '';
  const server = await startServer(
    name,
    [path.join(ROOT, 'bin/keyward.js'), 'serve'],
    env,
    (out, err) => {
      adminToken ||= /^\s+(kws_\S+)\s*$/m.exec(out)?.[1] ?? '';
      for (const line of err.split('\n')) {
        if (!line.includes('keyward listening')) continue;
        try {
          const port = (JSON.parse(line) as { port?: number }).port;
          // The admin key is printed before the server listens.
          if (port && adminToken) return port;
        } catch {
          /* not a log line */
        }
      }
      return undefined;
    },
    120_000,
  );
  if (!adminToken) throw new Error(`${name}: no admin SDK key on stdout`);
  return { ...server, adminToken, database: db.description };
}

export interface Fixture {
  workspaceId: string;
  secret: string;
  /** A key with one rate limit it never reaches in a run. */
  rateLimitedSecret: string;
  /** A key with remaining uses enough for any run. */
  usesSecret: string;
  /** Secrets of keys created for the cold scenario, never verified before it. */
  coldSecrets: string[];
}

/** A workspace with scope balance_transfers, one key that may read it, and `coldKeys` more such keys (imported). */
export async function setUp(kw: Keyward, coldKeys: number): Promise<Fixture> {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set('authorization', `Bearer ${kw.adminToken}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${kw.port}`, httpVersion: '2', useBinaryFormat: true, interceptors: [auth] });
  const ws = (await createClient(WorkspaceService, transport).createWorkspace({ workspace: { name: 'bench', keyPrefix: 'bench' } })).workspace!;
  await createClient(ScopeService, transport).createScope({ scope: { workspaceId: ws.id, name: 'balance_transfers' } });
  const keys = createClient(KeyService, transport);
  const newKey = async (name: string, limits: { rateLimits?: { name: string; limit: bigint; duration: { seconds: bigint } }[]; remainingUses?: bigint } = {}) =>
    (
      await keys.createKey({
        key: { workspaceId: ws.id, customerId: 'cus_bench', name, grants: [{ scope: 'balance_transfers', actions: [Action.READ] }], ...limits },
      })
    ).secret;
  const secret = await newKey('bench');
  const rateLimitedSecret = await newKey('bench rate-limited', { rateLimits: [{ name: 'requests', limit: 1_000_000_000n, duration: { seconds: 60n } }] });
  const usesSecret = await newKey('bench remaining uses', { remainingUses: 1_000_000_000_000n });
  // The cold keys are imported, 1,000 a call: in Keyward's own format, they verify as created ones do.
  const coldSecrets = Array.from({ length: coldKeys }, () => issueApiKey('bench').plaintext);
  if (coldKeys > 0) {
    const t0 = Date.now();
    const grants = [{ scope: 'balance_transfers', actions: [Action.READ] }];
    for (let i = 0; i < coldKeys; i += 1000) {
      await keys.importKeys({
        workspaceId: ws.id,
        keys: coldSecrets.slice(i, i + 1000).map((plaintext, j) => ({
          key: { customerId: 'cus_bench', name: `cold ${i + j}`, grants },
          secret: { case: 'plaintext' as const, value: plaintext },
        })),
      });
    }
    progress(`  imported ${coldKeys} keys for the cold scenario in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { workspaceId: ws.id, secret, rateLimitedSecret, usesSecret, coldSecrets };
}
