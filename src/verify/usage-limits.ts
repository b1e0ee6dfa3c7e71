// Remaining uses of keys, kept in Postgres and never in the verify cache.
//
// One UPDATE takes the cost, with any refill due applied first, only if
// enough is left: Postgres locks the row, so concurrent verifications on any
// number of replicas admit exactly as many requests as there were uses. The
// take that leaves 0 uses queues key.usage_exhausted in the same statement,
// so each exhaustion is reported exactly once (and a refill or UpdateKey
// followed by another exhaustion again); UpdateKey setting 0 reports nothing.
import type { MikroORM } from '@mikro-orm/postgresql';
import { newId } from '../ids.js';
import { lastRefillAt, needOf, type RefillSpec } from '../domain/limits.js';
import { insertEventsSql, keyEventDataSql, type WebhookEventType } from '../domain/webhooks.js';

// A refill is due when a refill time (the `?` of DUE) has passed since the
// last one; a refill applied records that refill time.
const DUE = `(k.refill_amount is not null and k.last_refill_time < ?::timestamptz)`;
const USES = `(case when ${DUE} then k.refill_amount else k.remaining_uses end)`;

const EXHAUSTED: WebhookEventType = 'key.usage_exhausted';

// One round trip: the update; key.usage_exhausted queued when it took the
// last use (remaining_uses became 0), atomically with it; and (from the
// statement's snapshot, before it) what was left, for the answer when nothing
// could be taken. The event's data is only built for the update that
// exhausts the key, so other takes cost about what they did.
const TAKE_SQL = `
  with taken as (
    update api_keys k
       set remaining_uses = ${USES} - ?,
           last_refill_time = case when ${DUE} then ?::timestamptz else k.last_refill_time end
     where k.id = ? and k.remaining_uses is not null and ${USES} >= ?
    returning k.remaining_uses, k.workspace_id,
              case when k.remaining_uses = 0 then ${keyEventDataSql('k')} end as exhausted_key
  ),
  exhausted as (
    ${insertEventsSql(`
      select ?::uuid as id, t.workspace_id, '${EXHAUSTED}'::text as type, ?::timestamptz as create_time,
             json_build_object('key', t.exhausted_key) as data
        from taken t
       where t.exhausted_key is not null`)}
  )
  select t.remaining_uses as taken, ${USES} as uses
    from api_keys k left join taken t on true
   where k.id = ?`;

const PEEK_SQL = `select ${USES} as uses from api_keys k where k.id = ?`;

export interface UsageOutcome {
  admitted: boolean;
  /** Uses left after the request; null when the key has none (unlimited) any more. */
  remaining: number | null;
}

export class UsageLimits {
  constructor(private readonly orm: MikroORM) {}

  /**
   * Takes `cost` uses of the key, or nothing if fewer are left (a cost of 0
   * needs 1 left). Undefined when the key no longer exists.
   */
  async take(keyId: string, refill: RefillSpec | null, cost: number, now: number): Promise<UsageOutcome | undefined> {
    const refillAt = refill === null ? null : new Date(lastRefillAt(refill, now)).toISOString();
    const em = this.orm.em.fork();
    const need = needOf(cost);
    const rows = await em.execute<{ taken: string | number | null; uses: string | number | null }[]>(TAKE_SQL, [
      refillAt,
      cost,
      refillAt,
      refillAt,
      keyId,
      refillAt,
      need,
      newId(),
      new Date(now),
      refillAt,
      keyId,
    ]);
    if (!rows[0]) return undefined;
    if (rows[0].taken !== null) return { admitted: true, remaining: Number(rows[0].taken) };
    let uses = rows[0].uses;
    // The snapshot predates a concurrent taker that the update waited for: read what is left now.
    if (uses !== null && Number(uses) >= need) uses = (await em.execute<{ uses: string | number | null }[]>(PEEK_SQL, [refillAt, keyId]))[0]?.uses ?? null;
    // Made unlimited since the key was cached: nothing to take.
    if (uses === null) return { admitted: true, remaining: null };
    return { admitted: false, remaining: Number(uses) };
  }
}
