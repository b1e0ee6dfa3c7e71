import { Migration } from '@mikro-orm/migrations';

/**
 * The next signing key is made ahead of a rotation and published in the
 * JWKS before it signs anything, so a verifier that fetched the JWKS before
 * the rotation already knows the key of the tokens made after it. At most
 * one key is active and at most one is next.
 */
export class Migration0007NextSigningKey extends Migration {
  override name = '0007_next_signing_key';

  override up(): void {
    this.addSql(`alter table signing_keys add column next boolean not null default false`);
    this.addSql(`drop index signing_keys_one_active`);
    this.addSql(`create unique index signing_keys_one_active on signing_keys ((true)) where retire_time is null and not next`);
    this.addSql(`create unique index signing_keys_one_next on signing_keys ((true)) where next`);
  }
}
