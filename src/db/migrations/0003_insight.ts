import { Migration } from '@mikro-orm/migrations';

/** Usage analytics, audit trail details and aggregated security events, webhooks and their outbox. */
export class Migration0003Insight extends Migration {
  override name = '0003_insight';

  override up(): void {
    // Verifications per key, outcome and hour, written behind in batches
    // (src/verify/analytics.ts). Unknown keys are counted under the nil key id
    // in the workspace the request named. No foreign keys: counts outlive a
    // deleted key and arrive after it.
    this.addSql(`
      create table key_usage (
        workspace_id uuid not null,
        key_id uuid not null,
        hour timestamptz not null,
        code text not null,
        count bigint not null,
        primary key (workspace_id, key_id, hour, code)
      )`);
    this.addSql(`create index key_usage_workspace_hour_idx on key_usage (workspace_id, hour)`);

    // Who (actor), what (action), which (resource), when (time), and the
    // request that did it. Security events (failed SDK-key authentications,
    // use of revoked or expired keys) are aggregated per kind, subject and
    // minute: aggregate_key names that bucket and count says how often.
    this.addSql(`alter table audit_events add column request_id text null`);
    this.addSql(`alter table audit_events add column count integer not null default 1`);
    this.addSql(`alter table audit_events add column aggregate_key text null`);
    this.addSql(`create unique index audit_events_aggregate_key on audit_events (aggregate_key)`);
    this.addSql(`create index audit_events_workspace_idx on audit_events (workspace_id, id)`);

    // One webhook per workspace. The signing secret is kept as is: HMAC needs it.
    this.addSql(`
      create table webhooks (
        workspace_id uuid primary key references workspaces (id) on delete cascade,
        url text not null,
        secret text not null,
        expiring_notice_days integer not null,
        create_time timestamptz not null,
        update_time timestamptz not null
      )`);

    // Events to deliver, written in the transaction of the change they report.
    // payload is the exact body that is signed and sent.
    this.addSql(`
      create table webhook_outbox (
        id uuid primary key,
        workspace_id uuid not null,
        event_type text not null,
        payload text not null,
        attempts integer not null default 0,
        next_attempt_time timestamptz not null,
        delivered_time timestamptz null,
        failed_time timestamptz null,
        last_error text null,
        create_time timestamptz not null
      )`);
    this.addSql(`
      create index webhook_outbox_due_idx on webhook_outbox (next_attempt_time)
       where delivered_time is null and failed_time is null`);

    // key.expiring is sent once per key and expire_time.
    this.addSql(`
      create table key_expiry_notices (
        key_id uuid not null,
        expire_time timestamptz not null,
        create_time timestamptz not null,
        primary key (key_id, expire_time)
      )`);
  }
}
