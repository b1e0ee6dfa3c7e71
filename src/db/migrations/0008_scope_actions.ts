import { Migration } from '@mikro-orm/migrations';

/**
 * A scope declares the actions keys may be granted on it; existing scopes
 * keep the four they always had. A grant's actions may now also be `*`, the
 * whole scope.
 */
export class Migration0008ScopeActions extends Migration {
  override name = '0008_scope_actions';

  override up(): void {
    this.addSql(`alter table scopes add column actions jsonb not null default '["read", "create", "update", "delete"]'`);
  }
}
