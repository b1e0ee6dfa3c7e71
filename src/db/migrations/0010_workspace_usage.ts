import { Migration } from '@mikro-orm/migrations';

/**
 * A workspace's verification counts per hour and code, kept beside the
 * per-key counts (key_usage) and written by the same statement
 * (src/verify/analytics.ts): GetWorkspaceUsage reads at most one row per hour
 * and code, however many keys the workspace has, where summing key_usage read
 * every key's rows (3M for a month of a large workspace).
 */
export class Migration0010WorkspaceUsage extends Migration {
  override name = '0010_workspace_usage';

  override up(): void {
    this.addSql(`
      create table workspace_usage (
        workspace_id uuid not null,
        hour timestamptz not null,
        code text not null,
        count bigint not null,
        primary key (workspace_id, hour, code)
      )`);
    this.addSql(`create index workspace_usage_hour_idx on workspace_usage (hour)`);
    this.addSql(`
      insert into workspace_usage (workspace_id, hour, code, count)
      select workspace_id, hour, code, sum(count) from key_usage group by workspace_id, hour, code`);
  }
}
