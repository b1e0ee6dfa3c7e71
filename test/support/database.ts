import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { recordDatabase, recordText } from './hygiene.js';

export interface TestDatabase {
  /** Postgres URL of a fresh, empty database; undefined means embedded in-memory PGlite. */
  databaseUrl: string | undefined;
  dataDir: string;
  drop(): Promise<void>;
}

/**
 * A fresh database for one test file: with DATABASE_URL, a new database on
 * that server (dropped afterwards); without it, an in-memory PGlite, or with
 * `persistent` one in a temporary directory, so that servers can be restarted on it.
 */
export async function createTestDatabase(opts: { persistent?: boolean } = {}): Promise<TestDatabase> {
  const base = process.env.DATABASE_URL;
  if (!base && opts.persistent) {
    // Survives a server restart: an embedded database in a temporary directory.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'keyward-test-'));
    return { databaseUrl: undefined, dataDir, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  if (!base) return { databaseUrl: undefined, dataDir: ':memory:', drop: async () => {} };
  const name = `keyward_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    databaseUrl: url.toString(),
    dataDir: ':memory:',
    async drop() {
      // What the suite left in the database is scanned for secrets after the run.
      const d = new pg.Client({ connectionString: url.toString() });
      try {
        await d.connect();
        await recordDatabase(`database ${name}`, async (sql) => (await d.query(sql)).rows);
      } catch (e) {
        recordText('database-dump-failed', (e as Error).message);
      } finally {
        await d.end().catch(() => {});
      }
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
