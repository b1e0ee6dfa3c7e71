import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, createReadStream, createWriteStream, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip, createGzip } from 'node:zlib';
import pg from 'pg';
import { openDatabase } from './database.js';
import { claimDataDir } from './embedded.js';
import { migrationsList } from './migrations/index.js';

// Backups of the embedded database, in a format of Keyward's own: gzipped
// JSON lines. The first line describes the backup (format version, the
// migrations its schema had, each table's row count and the sequences), then
// each table as a line naming it followed by its rows (`row_to_json`), and a
// last line that marks the end, so that a cut-off file is refused.
//
// Why a logical dump and not a copy of PGlite's files (`dumpDataDir`): the
// files of a running database are at best what a crash leaves behind, and
// only the process that has the database open can copy them. The dump is read
// through the running server's database (the CLI joins it), in one
// REPEATABLE READ transaction, so every table is read from one snapshot: what
// pg_dump does. PGlite runs one transaction at a time besides, so the server's
// writes wait (they are not refused) until the dump has been read. A restore
// rebuilds the schema with the migrations the backup names and loads the rows,
// so a backup restores into this or any later version of Keyward.

const FORMAT = 'keyward-backup';
const VERSION = 1;
const MIGRATIONS_TABLE = 'keyward_migrations';
/** Rows fetched from the cursor, and inserted, at a time. */
const BATCH = 500;

interface Header {
  format: typeof FORMAT;
  version: number;
  create_time: string;
  migrations: string[];
  tables: { name: string; rows: number }[];
  sequences: { name: string; last_value: string | null }[];
}

export interface BackupSummary {
  tables: number;
  rows: number;
  /** The last migration of the backup's schema. */
  schema: string;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Writes a backup of the embedded database in `dataDir` to `file`: through
 * the running server if there is one, else by opening the database. The file
 * appears only when complete (written aside, then renamed), readable by its
 * owner only: it holds everything the database does.
 */
export async function backupEmbedded(dataDir: string, file: string): Promise<BackupSummary> {
  if (dataDir === ':memory:') throw new Error('KEYWARD_DATA_DIR is :memory:, which keeps nothing to back up');
  const db = await openDatabase({ databaseUrl: undefined, dataDir, poolSize: 1, joinRunning: true });
  const partial = `${file}.partial-${process.pid}`;
  try {
    const client = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query('begin transaction isolation level repeatable read read only');
      const summary = await dump(client, partial);
      await client.query('commit');
      renameSync(partial, file);
      return summary;
    } finally {
      await client.end().catch(() => {});
    }
  } finally {
    rmSync(partial, { force: true });
    await db.close();
  }
}

async function dump(client: pg.Client, path: string): Promise<BackupSummary> {
  const tables = (await client.query<{ name: string }>(`select tablename as name from pg_tables where schemaname = 'public' order by tablename`)).rows
    .map((r) => r.name)
    .filter((t) => t !== MIGRATIONS_TABLE);
  const counts: { name: string; rows: number }[] = [];
  for (const name of tables) {
    const { rows } = await client.query<{ n: string }>(`select count(*) as n from ${quote(name)}`);
    counts.push({ name, rows: Number(rows[0]!.n) });
  }
  const header: Header = {
    format: FORMAT,
    version: VERSION,
    create_time: new Date().toISOString(),
    migrations: (await client.query<{ name: string }>(`select name from ${MIGRATIONS_TABLE} order by id`)).rows.map((r) => r.name),
    tables: counts,
    sequences: (
      await client.query<{ name: string; last_value: string | null }>(
        `select sequencename as name, last_value::text from pg_sequences where schemaname = 'public' order by sequencename`,
      )
    ).rows,
  };
  const schema = header.migrations[header.migrations.length - 1];
  if (schema === undefined) throw new Error('the database has no migrations applied: there is nothing to back up');

  const gzip = createGzip();
  const out = createWriteStream(path, { mode: 0o600 });
  const done = new Promise<void>((ok, fail) => {
    out.once('finish', ok);
    out.once('error', fail);
    gzip.once('error', fail);
  });
  gzip.pipe(out);
  const write = async (line: string) => {
    if (!gzip.write(`${line}\n`)) await once(gzip, 'drain');
  };
  let total = 0;
  try {
    await write(JSON.stringify(header));
    for (const { name, rows } of counts) {
      await write(JSON.stringify({ table: name }));
      await client.query(`declare backup_rows no scroll cursor for select row_to_json(t)::text as r from ${quote(name)} t`);
      let read = 0;
      for (;;) {
        const batch = await client.query<{ r: string }>(`fetch ${BATCH} from backup_rows`);
        for (const row of batch.rows) await write(row.r);
        read += batch.rows.length;
        if (batch.rows.length < BATCH) break;
      }
      await client.query('close backup_rows');
      // Counted in the same snapshot, so a difference means a bug, not a race.
      if (read !== rows) throw new Error(`table ${name}: counted ${rows} rows, read ${read}`);
      total += read;
    }
    await write(JSON.stringify({ end: true, rows: total }));
  } finally {
    gzip.end();
    await done;
  }
  chmodSync(path, 0o600);
  return { tables: counts.length, rows: total, schema };
}

/**
 * Restores a backup made by `backupEmbedded` into the embedded database in
 * `dataDir`. Refuses while a process has that database open, and refuses a
 * data directory that already holds a database unless `force`. The database
 * is built beside it and moved into place only once complete, so a failed
 * restore (a cut-off or foreign file) leaves the data directory as it was.
 */
export async function restoreEmbedded(dataDir: string, file: string, force: boolean): Promise<BackupSummary> {
  if (dataDir === ':memory:') throw new Error('KEYWARD_DATA_DIR is :memory:, which keeps nothing to restore into');
  if (!existsSync(file)) throw new Error(`${file}: no such file`);
  const dir = resolve(dataDir);
  const release = claimDataDir(dir);
  const building = join(dir, `restore-${process.pid}`);
  try {
    const pgdata = join(dir, 'pgdata');
    if (existsSync(pgdata) && readdirSync(pgdata).length > 0 && !force) {
      throw new Error(`${dir} already holds a database: restore into an empty KEYWARD_DATA_DIR, or pass --force to replace it`);
    }
    rmSync(building, { recursive: true, force: true });
    const summary = await load(building, file);
    // The old database (if any) goes only now that the new one is complete.
    const replaced = join(dir, `pgdata.replaced-${process.pid}`);
    if (existsSync(pgdata)) renameSync(pgdata, replaced);
    renameSync(join(building, 'pgdata'), pgdata);
    rmSync(replaced, { recursive: true, force: true });
    return summary;
  } finally {
    rmSync(building, { recursive: true, force: true });
    release();
  }
}

/** Builds a database in dataDir from the backup in `file`. */
async function load(dataDir: string, file: string): Promise<BackupSummary> {
  const lines = readLines(file);
  try {
    return await loadLines(dataDir, file, lines);
  } finally {
    await lines.return(undefined); // closes the file
  }
}

async function loadLines(dataDir: string, file: string, lines: AsyncGenerator<string>): Promise<BackupSummary> {
  const first = await lines.next();
  const header = parseHeader(first.done ? undefined : first.value, file);
  const known = migrationsList.map((m) => m.name);
  const unknown = header.migrations.find((m, i) => known[i] !== m);
  if (unknown !== undefined) throw new Error(`${file} was made by a later or different version of Keyward (migration ${unknown} is unknown here)`);
  const schema = header.migrations[header.migrations.length - 1]!;

  const db = await openDatabase({ databaseUrl: undefined, dataDir, poolSize: 1, migrateTo: schema });
  try {
    const client = new pg.Client({ connectionString: db.url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query('begin');
      // Rows go in as they were, in any order: no foreign key checks and no triggers while loading.
      await client.query('set local session_replication_role = replica');
      const tables = header.tables.map((t) => t.name);
      if (tables.length > 0) await client.query(`truncate ${tables.map(quote).join(', ')}`);
      const total = await insertRows(client, lines, header, file);
      for (const s of header.sequences) {
        if (s.last_value !== null) await client.query('select setval($1::regclass, $2::bigint)', [quote(s.name), s.last_value]);
      }
      await client.query('commit');
      // Then the migrations this version of Keyward has and the backup's did not.
      await db.orm.migrator.up();
      return { tables: tables.length, rows: total, schema };
    } finally {
      await client.end().catch(() => {});
    }
  } finally {
    await db.close();
  }
}

async function insertRows(client: pg.Client, lines: AsyncIterator<string>, header: Header, file: string): Promise<number> {
  const expected = new Map(header.tables.map((t) => [t.name, t.rows]));
  const truncated = () => new Error(`${file} is incomplete (cut off): restore a whole backup`);
  let total = 0;
  let next = await lines.next();
  for (const { name } of header.tables) {
    if (next.done) throw truncated();
    if ((parseLine(next.value) as { table?: string } | undefined)?.table !== name) throw new Error(`${file} is damaged: expected table ${name}`);
    const columns = (
      await client.query<{ name: string }>(
        `select attname as name from pg_attribute
          where attrelid = $1::regclass and attnum > 0 and not attisdropped and attgenerated = '' order by attnum`,
        [quote(name)],
      )
    ).rows.map((r) => quote(r.name));
    const insert = `insert into ${quote(name)} (${columns.join(', ')}) select ${columns.join(', ')} from json_populate_recordset(null::${quote(name)}, $1::json)`;
    let batch: string[] = [];
    let rows = 0;
    const flush = async () => {
      try {
        if (batch.length > 0) await client.query(insert, [`[${batch.join(',')}]`]);
      } catch (e) {
        // Not Postgres's message: it may quote a value of the row.
        throw new Error(`${file} is damaged: rows of table ${name} do not load (${(e as { code?: string }).code ?? 'error'})`);
      }
      rows += batch.length;
      batch = [];
    };
    for (next = await lines.next(); !next.done && rows + batch.length < expected.get(name)!; next = await lines.next()) {
      batch.push(next.value);
      if (batch.length === BATCH) await flush();
    }
    await flush();
    if (rows !== expected.get(name)) throw truncated();
    total += rows;
  }
  if (next.done) throw truncated();
  const end = parseLine(next.value) as { end?: boolean; rows?: number } | undefined;
  if (end?.end !== true || end.rows !== total) throw new Error(`${file} is damaged: its rows do not add up`);
  return total;
}

/** A line's JSON, or undefined if it is none (JSON.parse's message would quote the line: it may hold a secret's hash). */
function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

function parseHeader(line: string | undefined, file: string): Header {
  const header = line === undefined ? undefined : (parseLine(line) as Partial<Header> | undefined);
  if (header?.format !== FORMAT) {
    throw new Error(`${file} is not a backup made by \`keyward backup\` of the embedded database (a pg_dump file is restored with pg_restore)`);
  }
  if (header.version !== VERSION) throw new Error(`${file} is a backup of format version ${header.version}, which this version of Keyward cannot read`);
  return header as Header;
}

/** The lines of a gzipped file; a file that is not gzip fails with a message naming it. */
async function* readLines(file: string): AsyncGenerator<string> {
  const gunzip = createGunzip();
  const input = createReadStream(file).pipe(gunzip);
  try {
    for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) yield line;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code?.startsWith('Z_')) throw new Error(`${file} is not a backup made by \`keyward backup\` (not gzip, or cut off)`);
    throw e;
  }
}

/**
 * With PostgreSQL (DATABASE_URL) the backup is pg_dump's: one snapshot of the
 * whole database, in its custom format, restored with pg_restore. The
 * password goes to pg_dump in its environment, not on its command line.
 */
export async function backupPostgres(databaseUrl: string, file: string): Promise<void> {
  const url = new URL(databaseUrl);
  const password = decodeURIComponent(url.password);
  url.password = '';
  const partial = `${file}.partial-${process.pid}`;
  const env = { ...process.env, ...(password ? { PGPASSWORD: password } : {}) };
  const child = spawn('pg_dump', ['--format=custom', '--no-owner', `--file=${partial}`, `--dbname=${url.toString()}`], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    const [code] = await Promise.race([
      once(child, 'exit') as Promise<[number | null]>,
      once(child, 'error').then(([e]) => {
        throw e;
      }),
    ]);
    if (code !== 0) throw new Error(`pg_dump failed (exit ${code}); its message is above`);
    chmodSync(partial, 0o600);
    renameSync(partial, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'pg_dump is not installed. With DATABASE_URL, back up with PostgreSQL\'s own tools (the client of the server\'s version or later): pg_dump --format=custom --file FILE "$DATABASE_URL"; restore with pg_restore (docs/operations.md#backups)',
      );
    }
    throw e;
  } finally {
    rmSync(partial, { force: true });
  }
}
