import { Migration } from '@mikro-orm/migrations';

/** Keys that sign the JWTs TokenService/ExchangeKey issues (src/tokens/signing-keys.ts). */
export class Migration0004SigningKeys extends Migration {
  override name = '0004_signing_keys';

  override up(): void {
    this.addSql(`
      create table signing_keys (
        id uuid primary key,
        algorithm text not null,
        public_jwk jsonb not null,
        private_pkcs8 text not null,
        create_time timestamptz not null,
        retire_time timestamptz null
      )`);
    // At most one key signs at a time: replicas creating the first one
    // concurrently agree on a single key.
    this.addSql(`create unique index signing_keys_one_active on signing_keys ((true)) where retire_time is null`);
  }
}
