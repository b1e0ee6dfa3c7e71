// The database probe behind gRPC health and /readyz, against a database that
// answers, one that hangs and one that fails.
import { describe, expect, it } from 'vitest';
import type { MikroORM } from '@mikro-orm/postgresql';
import { migrationsList } from '../../src/db/migrations/index.js';
import { DatabaseProbe } from '../../src/health/database-probe.js';

/** Just enough of an ORM for the probe: em.fork().execute(). */
function fakeOrm(execute: () => Promise<unknown>) {
  let calls = 0;
  const orm = {
    em: {
      fork: () => ({
        execute: () => {
          calls++;
          return execute();
        },
      }),
    },
  } as unknown as MikroORM;
  return { orm, calls: () => calls };
}

const allMigrations = () => Promise.resolve(migrationsList.map((m) => ({ name: m.name })));

describe('DatabaseProbe', () => {
  it('reachable and migrated when every migration is recorded; one query per cache period', async () => {
    const db = fakeOrm(allMigrations);
    const probe = new DatabaseProbe(db.orm, { timeoutMs: 500, cacheMs: 60_000 });
    expect(await probe.status()).toEqual({ reachable: true, migrated: true });
    await Promise.all([probe.status(), probe.status(), probe.status()]);
    expect(db.calls()).toBe(1);
  });

  it('reachable but not migrated when a migration is missing', async () => {
    const probe = new DatabaseProbe(fakeOrm(() => Promise.resolve([{ name: '0001_initial' }])).orm, { timeoutMs: 500, cacheMs: 0 });
    expect(await probe.status()).toEqual({ reachable: true, migrated: false });
  });

  it('down when the query fails', async () => {
    const probe = new DatabaseProbe(fakeOrm(() => Promise.reject(new Error('ECONNREFUSED'))).orm, { timeoutMs: 500, cacheMs: 0 });
    expect(await probe.status()).toEqual({ reachable: false, migrated: false });
  });

  it('down after the timeout when the database hangs, without piling up more queries behind it', async () => {
    const db = fakeOrm(() => new Promise(() => {}));
    const probe = new DatabaseProbe(db.orm, { timeoutMs: 50, cacheMs: 0 });
    const started = Date.now();
    expect(await probe.status()).toEqual({ reachable: false, migrated: false });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await probe.status()).toEqual({ reachable: false, migrated: false });
    expect(db.calls()).toBe(1);
  });

  it('drain() is seen at once', () => {
    const probe = new DatabaseProbe(fakeOrm(allMigrations).orm);
    expect(probe.isDraining).toBe(false);
    probe.drain();
    expect(probe.isDraining).toBe(true);
    expect(probe.drainSignal.aborted).toBe(true);
  });
});
