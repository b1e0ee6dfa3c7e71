// What Keyward keeps, and for how long: usage counts (each key's and each
// workspace's) are hourly for KEYWARD_USAGE_HOURLY_DAYS, then rolled up into
// one row per key (or workspace), code and day (kept in that day's 00:00 hour, so reports read both alike), and
// deleted after KEYWARD_USAGE_RETENTION_DAYS; audit events are deleted after
// KEYWARD_AUDIT_RETENTION_DAYS (0 keeps either for good). Each run moves or
// deletes at most BATCH rows a statement, in a loop, so a first run over a
// large backlog holds no lock for long; replicas may run it at the same time
// (a row is moved by whichever deletes it first, never twice).
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { errorFields, type Logger } from '../log.js';

const DAY_MS = 86_400_000;
const BATCH = 50_000;

export interface RetentionSettings {
  usageHourlyDays: number;
  usageRetentionDays: number;
  auditRetentionDays: number;
}

/** The usage tables: each key's counts, and each workspace's (the same counts summed). */
const USAGE_TABLES = [
  { table: 'key_usage', key: ['workspace_id', 'key_id'] },
  { table: 'workspace_usage', key: ['workspace_id'] },
];

// ? the cutoff: hourly rows before it (but a day's 00:00 row, which is where its daily row lives) become daily.
const rollUpSql = ({ table, key }: (typeof USAGE_TABLES)[number]) => {
  const k = key.join(', ');
  return `
  with moved as (
    delete from ${table} u
     where (${key.map((c) => `u.${c}`).join(', ')}, u.hour, u.code) in (
             select ${k}, hour, code from ${table}
              where hour < ? and hour <> date_trunc('day', hour, 'UTC')
              limit ${BATCH})
    returning ${key.map((c) => `u.${c}`).join(', ')}, date_trunc('day', u.hour, 'UTC') as day, u.code, u.count
  )
  , rolled as (
    insert into ${table} (${k}, hour, code, count)
    select ${k}, day, code, sum(count) from moved group by ${k}, day, code
    on conflict (${k}, hour, code) do update set count = ${table}.count + excluded.count
  )
  select count(*)::int as n from moved`;
};

const deleteUsageSql = ({ table, key }: (typeof USAGE_TABLES)[number]) => `
  with gone as (
    delete from ${table} where (${key.join(', ')}, hour, code) in (
      select ${key.join(', ')}, hour, code from ${table} where hour < ? limit ${BATCH})
    returning 1)
  select count(*)::int as n from gone`;

const DELETE_AUDIT_SQL = `
  with gone as (delete from audit_events where id in (select id from audit_events where time < ? limit ${BATCH}) returning 1)
  select count(*)::int as n from gone`;

/** Rows each step touched in one run. */
export interface RetentionRun {
  usageRolledUp: number;
  usageDeleted: number;
  auditDeleted: number;
}

export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly settings: RetentionSettings & { scanMs: number },
    private readonly log: Logger,
  ) {}

  /** Runs every `scanMs`, the first time a minute after start. */
  start(): void {
    const tick = (delay: number) => {
      this.timer = setTimeout(() => {
        this.running = this.run()
          .then(
            (r) => {
              if (r.usageRolledUp + r.usageDeleted + r.auditDeleted > 0) this.log.info('retention', { ...r });
            },
            (e: unknown) => this.log.warn('retention failed; will try again', errorFields(e)),
          )
          .finally(() => {
            if (!this.stopped) tick(this.settings.scanMs);
          });
      }, delay);
      this.timer.unref();
    };
    tick(Math.min(60_000, this.settings.scanMs));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Rolls up and deletes what is due at `now`. */
  async run(now = Date.now()): Promise<RetentionRun> {
    const s = this.settings;
    const out: RetentionRun = { usageRolledUp: 0, usageDeleted: 0, auditDeleted: 0 };
    for (const t of USAGE_TABLES) {
      out.usageRolledUp += await this.repeat(rollUpSql(t), new Date(now - s.usageHourlyDays * DAY_MS));
      if (s.usageRetentionDays > 0) out.usageDeleted += await this.repeat(deleteUsageSql(t), new Date(now - s.usageRetentionDays * DAY_MS));
    }
    if (s.auditRetentionDays > 0) out.auditDeleted = await this.repeat(DELETE_AUDIT_SQL, new Date(now - s.auditRetentionDays * DAY_MS));
    return out;
  }

  /** Runs `sql` until a run touches less than a batch; the rows it touched in all. */
  private async repeat(sql: string, cutoff: Date): Promise<number> {
    let total = 0;
    for (;;) {
      const em = this.orm.em.fork() as SqlEntityManager;
      const n = (await em.execute<{ n: number }[]>(sql, [cutoff]))[0]?.n ?? 0;
      total += n;
      if (n < BATCH) return total;
    }
  }
}
