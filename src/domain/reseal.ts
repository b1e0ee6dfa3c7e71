import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { inTransaction } from '../db/transaction.js';
import type { SecretBox } from '../credentials/secret-box.js';

/**
 * Every column that holds values sealed by SecretBox, with its table's key:
 * the private halves of JWT signing keys and webhook signing secrets. A new
 * sealed column must be added here, or `keyward secrets reseal` leaves it
 * under the old key.
 */
const SEALED_COLUMNS = [
  { table: 'signing_keys', key: 'id', column: 'private_pkcs8' },
  { table: 'webhooks', key: 'workspace_id', column: 'secret' },
] as const;

export interface ResealCount {
  table: string;
  column: string;
  /** Rows looked at. */
  rows: number;
  /** Rows written: sealed under another key, in the first format, or not sealed at all. */
  resealed: number;
}

/**
 * Seals every stored secret under the current key (KEYWARD_SECRETS_KEY):
 * values sealed under a previous key, in the first format (`sealed:v1:`), or
 * stored unsealed before a key was set. One transaction per table, its rows
 * locked, so a webhook changed meanwhile is neither lost nor left behind.
 * Values already sealed under the current key are left alone, so a second run
 * writes nothing. Servers keep working throughout: they open values sealed
 * under the current key and the previous ones alike.
 */
export async function resealSecrets(orm: MikroORM, box: SecretBox): Promise<ResealCount[]> {
  if (!box.sealing) throw new Error('KEYWARD_SECRETS_KEY is not set: there is no key to seal with');
  const counts: ResealCount[] = [];
  for (const { table, key, column } of SEALED_COLUMNS) {
    const count = await inTransaction(orm.em, async (em) => {
      const sql = em as SqlEntityManager;
      const rows = await sql.execute<{ id: string; value: string }[]>(`select ${key} as id, ${column} as value from ${table} order by ${key} for update`);
      let resealed = 0;
      for (const row of rows) {
        if (box.isCurrent(row.value)) continue;
        let plain: string;
        try {
          plain = box.open(row.value);
        } catch (e) {
          throw new Error(`${table} ${row.id}: ${(e as Error).message}`);
        }
        await sql.execute(`update ${table} set ${column} = ? where ${key} = ?`, [box.seal(plain), row.id]);
        resealed++;
      }
      return { table, column, rows: rows.length, resealed };
    });
    counts.push(count);
  }
  return counts;
}
