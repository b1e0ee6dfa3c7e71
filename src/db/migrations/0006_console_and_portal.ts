import { Migration } from '@mikro-orm/migrations';

/**
 * SDK keys made over RPC (SdkKeyService) show when they were last used; portal
 * sessions let a company's customer manage its own keys from a browser.
 */
export class Migration0006ConsoleAndPortal extends Migration {
  override name = '0006_console_and_portal';

  override up(): void {
    this.addSql(`alter table sdk_keys add column last_used_time timestamptz null`);
    this.addSql(`
      create table portal_sessions (
        id uuid primary key,
        token_hash text not null unique,
        workspace_id uuid not null references workspaces (id) on delete cascade,
        customer_id text not null,
        allowed_grants jsonb not null,
        created_by text not null,
        create_time timestamptz not null,
        expire_time timestamptz not null
      )`);
    this.addSql(`create index portal_sessions_expire_time on portal_sessions (expire_time)`);
  }
}
