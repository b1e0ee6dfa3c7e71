import { Migration } from '@mikro-orm/migrations';

/**
 * Retention (src/domain/retention.ts) finds old usage counts and audit events
 * by time alone, across workspaces: an index for each, so a run reads what it
 * moves or deletes, not the whole table.
 */
export class Migration0009Retention extends Migration {
  override name = '0009_retention';

  override up(): void {
    this.addSql(`create index key_usage_hour_idx on key_usage (hour)`);
    this.addSql(`create index audit_events_time_idx on audit_events (time)`);
  }
}
