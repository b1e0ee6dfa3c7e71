import { Migration } from '@mikro-orm/migrations';

/** Rate limits and usage limits of keys; details of audit records. */
export class Migration0002KeyLimits extends Migration {
  override name = '0002_key_limits';

  override up(): void {
    // rate_limits: [{name, limit, duration_ms}], at most 5 (checked by the domain).
    this.addSql(`alter table api_keys add column rate_limits jsonb not null default '[]'::jsonb`);
    // Null remaining_uses means unlimited; refill_* are all null or all set.
    this.addSql(`alter table api_keys add column remaining_uses bigint null`);
    this.addSql(`alter table api_keys add column refill_amount bigint null`);
    this.addSql(`alter table api_keys add column refill_interval text null`);
    this.addSql(`alter table api_keys add column refill_day smallint null`);
    this.addSql(`alter table api_keys add column last_refill_time timestamptz null`);
    this.addSql(`alter table api_keys add constraint api_keys_remaining_uses_check check (remaining_uses is null or remaining_uses >= 0)`);
    // What a change set, for changes whose values matter later (a key's limits).
    this.addSql(`alter table audit_events add column details jsonb null`);
  }
}
