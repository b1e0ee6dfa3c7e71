import { Migration } from '@mikro-orm/migrations';

export class Migration0001Initial extends Migration {
  override name = '0001_initial';

  override up(): void {
    this.addSql(`
      create table workspaces (
        id uuid primary key,
        name text not null,
        key_prefix text not null,
        create_time timestamptz not null,
        update_time timestamptz not null,
        delete_time timestamptz null
      )`);
    // Names are unique among live workspaces only: a deleted one frees its name.
    this.addSql(`create unique index workspaces_name_live_key on workspaces (name) where delete_time is null`);

    this.addSql(`
      create table scopes (
        id uuid primary key,
        workspace_id uuid not null references workspaces (id) on delete cascade,
        name text not null,
        description text not null,
        create_time timestamptz not null,
        update_time timestamptz not null,
        constraint scopes_workspace_name_key unique (workspace_id, name)
      )`);

    this.addSql(`
      create table api_keys (
        id uuid primary key,
        workspace_id uuid not null references workspaces (id) on delete cascade,
        customer_id text not null,
        name text not null,
        description text not null,
        enabled boolean not null,
        masked_key text not null,
        start text not null,
        metadata jsonb not null,
        expire_time timestamptz null,
        last_used_time timestamptz null,
        revoke_time timestamptz null,
        create_time timestamptz not null,
        update_time timestamptz not null,
        version integer not null default 1
      )`);
    this.addSql(`create index api_keys_workspace_idx on api_keys (workspace_id, id)`);
    this.addSql(`create index api_keys_customer_idx on api_keys (workspace_id, customer_id, id)`);

    this.addSql(`
      create table api_key_secrets (
        hash text primary key,
        api_key_id uuid not null references api_keys (id) on delete cascade,
        expire_time timestamptz null,
        create_time timestamptz not null
      )`);
    this.addSql(`create index api_key_secrets_key_idx on api_key_secrets (api_key_id)`);

    this.addSql(`
      create table api_key_grants (
        api_key_id uuid not null references api_keys (id) on delete cascade,
        scope_id uuid not null references scopes (id) on delete cascade,
        actions jsonb not null,
        primary key (api_key_id, scope_id)
      )`);
    this.addSql(`create index api_key_grants_scope_idx on api_key_grants (scope_id)`);

    this.addSql(`
      create table sdk_keys (
        id uuid primary key,
        name text not null,
        secret_hash text not null,
        scopes jsonb not null,
        workspace_ids jsonb not null,
        create_time timestamptz not null,
        revoke_time timestamptz null
      )`);

    this.addSql(`
      create table audit_events (
        id uuid primary key,
        time timestamptz not null,
        actor text not null,
        action text not null,
        resource_type text not null,
        resource_id text not null,
        workspace_id uuid null
      )`);
    this.addSql(`create index audit_events_resource_idx on audit_events (resource_type, resource_id, time)`);
  }
}
