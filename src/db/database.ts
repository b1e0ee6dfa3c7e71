import pg from 'pg';
import { MikroORM, type PostgreSqlConnection } from '@mikro-orm/postgresql';
import { Migrator } from '@mikro-orm/migrations';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded.js';
import { entities } from './entities.js';
import { migrationsList } from './migrations/index.js';

/**
 * The driver's pool, as `pg` has it. The statements that skip the ORM run on
 * it: VerifyKey's (src/verify/key-lookup.ts, usage-limits.ts) and the writes
 * of new keys (src/domain/key-insert.ts).
 */
export interface QueryPool {
  /**
   * `name` prepares the statement under that name on each connection, so
   * that it is planned once there (not with the embedded database: see
   * lazyDriverPool).
   */
  query<R>(config: { name?: string; text: string; values: unknown[]; query_timeout?: number }): Promise<{ rows: R[] }>;
}

/** The driver's own pool under the ORM. */
function driverPool(orm: MikroORM): Promise<pg.Pool> {
  return (orm.em.getConnection() as PostgreSqlConnection).getNativeClient();
}

/** The driver's pool, with its gauges. */
export type DriverPool = QueryPool & Pick<pg.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>;

/**
 * driverPool(), asked once it is first needed and kept; asked again after a
 * failure (the database was away). With `inlineValues` (the embedded
 * database), each statement goes as one simple-protocol message with its
 * values written into the text: the embedded database's socket server runs
 * the messages of all its connections in one session, one message at a time,
 * so the several messages of a statement with parameters (Parse, Bind,
 * Execute, Sync) from two connections could interleave; and a statement
 * prepared by one connection would already exist for the next.
 */
export function lazyDriverPool(orm: MikroORM, opts: { inlineValues: boolean }): () => Promise<DriverPool> {
  let pool: Promise<DriverPool> | undefined;
  return () =>
    (pool ??= driverPool(orm).then(
      (p) => (opts.inlineValues ? inliningValues(p) : p),
      (e: unknown) => {
        pool = undefined;
        throw e;
      },
    ));
}

function inliningValues(p: pg.Pool): DriverPool {
  const raw: QueryPool = p;
  return {
    // Without values, the driver sends a simple query: one message.
    query: (c) => raw.query({ text: inlineValues(c.text, c.values), values: [], query_timeout: c.query_timeout }),
    get totalCount() {
      return p.totalCount;
    },
    get idleCount() {
      return p.idleCount;
    },
    get waitingCount() {
      return p.waitingCount;
    },
  };
}

/**
 * `text` with each `$n` replaced by values[n - 1] as an SQL literal (strings
 * quoted by the driver's escapeLiteral; arrays as array literals; other
 * objects as JSON). Only for Keyward's own statements, whose text has no `$`
 * but placeholders.
 */
export function inlineValues(text: string, values: unknown[]): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => sqlLiteral(values[Number(n) - 1]));
}

function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  // Quoted as the driver would send it: typed by where it stands, as a parameter is.
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return pg.escapeLiteral(String(v));
  if (v instanceof Date) return pg.escapeLiteral(v.toISOString());
  if (Array.isArray(v)) return pg.escapeLiteral(`{${v.map((e) => (e === null ? 'NULL' : `"${String(e).replace(/["\\]/g, '\\$&')}"`)).join(',')}}`);
  return pg.escapeLiteral(JSON.stringify(v));
}

export interface DatabaseOptions {
  /** Postgres URL; unset selects the embedded database in dataDir. */
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize: number;
  /** With the embedded database: connect to the process that has it open, if any (the CLI does). */
  joinRunning?: boolean;
  /** Longest a statement may run (the server passes its longest client deadline); default 30 s. */
  statementTimeoutMs?: number;
  /** Apply migrations only up to this one (`keyward restore` loads a backup into the schema it was taken from). */
  migrateTo?: string;
}

export interface Database {
  orm: MikroORM;
  /** The connection URL (may hold credentials: never log it). */
  url: string;
  /** True for an external Postgres that other processes may share; false for the embedded one. */
  shared: boolean;
  /** Where the database was reached; for logs, without credentials. */
  description: string;
  close(): Promise<void>;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres';
  }
}

// Any constant works; it only has to be the same in every replica.
const MIGRATION_LOCK = 0x6b657977;

/**
 * Applies pending migrations. Replicas starting together on one Postgres take
 * turns through an advisory lock held on a connection of its own; the
 * embedded database has only one process and needs none.
 */
async function migrate(orm: MikroORM, lockUrl: string | undefined, to: string | undefined): Promise<void> {
  const up = () => orm.migrator.up(to === undefined ? undefined : { to });
  if (!lockUrl) {
    await up();
    return;
  }
  const lock = new pg.Client({ connectionString: lockUrl, connectionTimeoutMillis: 5000 });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await up();
  } finally {
    await lock.end();
  }
}

/** Connects (starting the embedded database if no URL is given) and applies migrations. */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  let url = opts.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres(opts.dataDir, opts.joinRunning ?? false);
    url = embedded.url;
  }
  const orm = await MikroORM.init({
    clientUrl: url,
    entities,
    extensions: [Migrator],
    migrations: { migrationsList, snapshot: false, silent: true, tableName: 'keyward_migrations' },
    pool: { min: 0, max: opts.poolSize },
    driverOptions: {
      connectionTimeoutMillis: 5000,
      statement_timeout: opts.statementTimeoutMs ?? 30_000,
      // A database that stopped answering (a dead host, a black hole) fails a query a second after its
      // statement timeout instead of holding its connection until TCP gives up: the client is dropped.
      query_timeout: (opts.statementTimeoutMs ?? 30_000) + 1000,
    },
    debug: false,
    ensureDatabase: false,
  });
  try {
    await migrate(orm, embedded ? undefined : url, opts.migrateTo);
    embedded?.publish();
  } catch (e) {
    await orm.close(true);
    await embedded?.stop();
    throw e;
  }
  return {
    orm,
    url,
    shared: !embedded,
    description: embedded ? `embedded (${opts.dataDir})` : redactUrl(url),
    async close() {
      await orm.close(true);
      await embedded?.stop();
    },
  };
}
