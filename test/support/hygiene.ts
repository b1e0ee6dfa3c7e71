// The suite's secret-hygiene record. Every test process writes here what it
// was issued (API key and SDK key plaintexts) and what it saw (server log
// lines, error messages, database contents before a test database is
// dropped); test/support/global-setup.ts scans all of it after the whole
// suite, fuzz and load tests included, for any issued plaintext. Records go
// to files in the directory named by KEYWARD_TEST_SINK (set by the global
// setup); without it, nothing is recorded.
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';

const dir = process.env.KEYWARD_TEST_SINK;
const file = dir ? path.join(dir, `${process.pid}-${randomBytes(4).toString('hex')}.jsonl`) : undefined;

let buffered: string[] = [];
let bufferedBytes = 0;
/** Texts already recorded by this process: the same error message a thousand times is kept once. */
const seen = new Set<string>();

function push(line: string): void {
  if (!file) return;
  buffered.push(line);
  bufferedBytes += line.length;
  if (bufferedBytes > 1 << 20) flushHygiene();
}

/** A plaintext the suite was issued: an API key, or an SDK key token. */
export function recordSecret(secret: string): void {
  if (secret) push(`${JSON.stringify({ secret })}\n`);
}

/** Something a secret must never appear in: a log line, an error message, a database dump. */
export function recordText(where: string, text: string): void {
  if (!file || text === '') return;
  const k = `${where}\u0000${text}`;
  if (text.length < 4096) {
    if (seen.has(k)) return;
    if (seen.size < 100_000) seen.add(k);
  }
  push(`${JSON.stringify({ where, text })}\n`);
}

/**
 * What a child process wrote: SDK key tokens on stdout (where a bootstrap
 * admin key or a CLI-issued token is meant to be shown) are issued secrets;
 * stderr is logs, recorded line by line under `where`.
 */
export function recordProcessOutput(stdout: string, stderr: string, where: string): void {
  for (const token of stdout.match(/kws_\S+/g) ?? []) recordSecret(token);
  for (const line of stderr.split('\n')) recordText(where, line);
}

/** Records every `secret` field of a response message (CreateKey, RotateKey, ...). */
export function recordSecretsOf(message: unknown): void {
  if (!file || message === null || typeof message !== 'object') return;
  const secret = (message as { secret?: unknown }).secret;
  if (typeof secret === 'string') recordSecret(secret);
}

export function flushHygiene(): void {
  if (!file || buffered.length === 0) return;
  appendFileSync(file, buffered.join(''));
  buffered = [];
  bufferedBytes = 0;
}
process.on('exit', flushHygiene);

/** Every text-like column of every table: what a `pg_dump` of the data would show. */
const DUMP_COLUMNS_SQL = `
  select table_name, column_name from information_schema.columns
   where table_schema = 'public'
     and (data_type in ('text', 'character varying', 'character', 'json', 'jsonb', 'bytea', 'ARRAY', 'USER-DEFINED'))
   order by table_name, ordinal_position`;

const dumpColumnSql = (table: string, column: string) =>
  `select string_agg(${pg.escapeIdentifier(column)}::text, E'\\n') as v from ${pg.escapeIdentifier(table)}`;

/** Records the database's contents through `query` (any client of it). */
export async function recordDatabase(where: string, query: (sql: string) => Promise<Record<string, unknown>[]>): Promise<void> {
  if (!file) return;
  const cols = await query(DUMP_COLUMNS_SQL);
  for (const c of cols) {
    const rows = await query(dumpColumnSql(String(c.table_name), String(c.column_name)));
    const v = rows[0]?.v;
    if (typeof v === 'string') recordText(`${where} ${c.table_name}.${c.column_name}`, v);
  }
  flushHygiene();
}
