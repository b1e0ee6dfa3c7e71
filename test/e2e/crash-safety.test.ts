// kill -9 of the server under a write load, again and again, on the same
// database: after each restart the database opens by itself and holds every
// acknowledged write and no half of an unacknowledged one
// (test/support/crash-rounds.ts has the load and the audit). Always on
// embedded PGlite (the default install, in a temporary directory); also on
// PostgreSQL when DATABASE_URL is set.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CrashRoundsReport, runCrashRounds } from '../support/crash-rounds.js';
import { createTestDatabase } from '../support/database.js';

const SEED = process.env.KEYWARD_CRASH_SEED ? Number(process.env.KEYWARD_CRASH_SEED) : undefined;

function expectNothingLost(report: CrashRoundsReport, rounds: number): void {
  console.log(JSON.stringify({ ...report, violations: report.violations.length }));
  expect(report.violations).toEqual([]);
  expect(report.rounds).toBe(rounds);
  // The load did write, and some writes were cut off by a kill.
  expect(report.acknowledged.create).toBeGreaterThan(0);
  expect(report.acknowledged.rotate + report.acknowledged.revoke).toBeGreaterThan(0);
  expect(report.inFlight).toBeGreaterThan(0);
}

describe('kill -9 under write load, embedded PGlite', () => {
  const rounds = 20;
  it(`${rounds} rounds: every acknowledged create, rotation and revocation survives; nothing is half there`, { timeout: 900_000 }, async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'keyward-crash-'));
    try {
      expectNothingLost(await runCrashRounds({ databaseUrl: undefined, dataDir, rounds, seed: SEED, log: console.log }), rounds);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!process.env.DATABASE_URL)('kill -9 under write load, PostgreSQL', () => {
  const rounds = 5;
  it(`${rounds} rounds: the same`, { timeout: 600_000 }, async () => {
    const db = await createTestDatabase();
    try {
      expectNothingLost(await runCrashRounds({ databaseUrl: db.databaseUrl, dataDir: db.dataDir, rounds, seed: SEED, log: console.log }), rounds);
    } finally {
      await db.drop();
    }
  });
});
