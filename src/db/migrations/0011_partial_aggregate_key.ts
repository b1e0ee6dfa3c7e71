import { Migration } from '@mikro-orm/migrations';

/**
 * Only aggregated security events have an aggregate_key; every other audit
 * event (one per key created, imported or changed) put a null into its
 * unique index for nothing. The index now holds only the keys.
 */
export class Migration0011PartialAggregateKey extends Migration {
  override name = '0011_partial_aggregate_key';

  override up(): void {
    this.addSql(`drop index audit_events_aggregate_key`);
    this.addSql(`create unique index audit_events_aggregate_key on audit_events (aggregate_key) where aggregate_key is not null`);
  }
}
