// Remaining uses of keys, kept in Postgres and never in the verify cache.
//
// One statement takes the cost, with any refill due applied first, only if
// enough is left: it locks the key's row (select ... for update, which reads
// the row as the last concurrent taker left it), so concurrent verifications
// on any number of replicas admit exactly as many requests as there were
// uses. The take that leaves 0 uses queues key.usage_exhausted in the same
// statement, so each exhaustion is reported exactly once (and a refill or
// UpdateKey followed by another exhaustion again); UpdateKey setting 0
// reports nothing.
//
// Group commit: concurrent takes of one key in this process wait for the
// statement in flight for that key and then go together in the next one
// (the row lock would serialise them anyway), which admits the first of them
// that fit, in arrival order, exactly as one statement each would. A hot
// key costs one statement per batch, not one per verification.
import { newId } from '../ids.js';
import { PerKeyBatches } from './per-key-batches.js';
import type { QueryPool } from '../db/database.js';
import { lastRefillAt, needOf, type RefillSpec } from '../domain/limits.js';
import { insertEventsSql, keyEventDataSql, type WebhookEventType } from '../domain/webhooks.js';

// $1 the refill time (null without refill), $2 the key id, $3 the cost of
// each take, $4 what each needs left (cost, at least 1), $5 how many takes,
// $6 the exhaustion event's id, $7 now.
// A refill is due when a refill time has passed since the last one; a refill
// applied records that refill time.
const DUE = `(k.refill_amount is not null and k.last_refill_time < $1::timestamptz)`;
const USES = `(case when ${DUE} then k.refill_amount else k.remaining_uses end)`;

const EXHAUSTED: WebhookEventType = 'key.usage_exhausted';

// One round trip: how many of the takes fit, the update, key.usage_exhausted
// queued when it took the last use (atomically with it), and whether the key
// exists and still has remaining uses.
const TAKE_SQL = `
  with cur as (
    select k.id, ${USES} as uses, ${DUE} as due
      from api_keys k
     where k.id = $2 and k.remaining_uses is not null
       for update
  ),
  fits as (
    select c.*, case when c.uses < $4::bigint then 0
                     when $3::bigint = 0 then $5::bigint
                     else least($5::bigint, c.uses / $3::bigint) end as admitted
      from cur c
  ),
  taken as (
    update api_keys k
       set remaining_uses = f.uses - $3::bigint * f.admitted,
           last_refill_time = case when f.due then $1::timestamptz else k.last_refill_time end
      from fits f
     where k.id = f.id and f.admitted > 0
    returning k.workspace_id, case when k.remaining_uses = 0 then ${keyEventDataSql('k')} end as exhausted_key
  ),
  exhausted as (
    ${insertEventsSql(`
      select $6::uuid as id, t.workspace_id, '${EXHAUSTED}'::text as type, $7::timestamptz as create_time,
             json_build_object('key', t.exhausted_key) as data
        from taken t
       where t.exhausted_key is not null`)}
  )
  select f.uses, f.admitted
    from api_keys k left join fits f on true
   where k.id = $2`;

interface Take {
  keyId: string;
  cost: number;
  refillAt: string | null;
  now: number;
  resolve(o: UsageOutcome | undefined): void;
  reject(e: unknown): void;
}

export interface UsageOutcome {
  admitted: boolean;
  /** Uses left after the request; null when the key has none (unlimited) any more. */
  remaining: number | null;
}

export class UsageLimits {
  /** Takes of one key that arrive together go in one statement (group commit). */
  private readonly batches = new PerKeyBatches<Take>((takes) => this.decideAll(takes));
  /** Statements run, and the takes they decided. */
  readonly stats = { statements: 0, takes: 0 };

  constructor(private readonly pool: () => Promise<QueryPool>) {}

  /**
   * Takes `cost` uses of the key, or nothing if fewer are left (a cost of 0
   * needs 1 left). Undefined when the key no longer exists.
   */
  take(keyId: string, refill: RefillSpec | null, cost: number, now: number): Promise<UsageOutcome | undefined> {
    const refillAt = refill === null ? null : new Date(lastRefillAt(refill, now)).toISOString();
    return new Promise((resolve, reject) => this.batches.add(keyId, { keyId, cost, refillAt, now, resolve, reject }));
  }

  /** Takes alike (same cost and refill time) go in one statement, in arrival order. */
  private async decideAll(takes: Take[]): Promise<void> {
    while (takes.length > 0) {
      const first = takes[0]!;
      const alike = takes.filter((t) => t.cost === first.cost && t.refillAt === first.refillAt);
      takes = takes.filter((t) => !alike.includes(t));
      await this.decide(first.keyId, alike);
    }
  }

  private async decide(keyId: string, takes: Take[]): Promise<void> {
    const { cost, refillAt, now } = takes[0]!;
    try {
      const pool = await this.pool();
      this.stats.statements++;
      this.stats.takes += takes.length;
      const { rows } = await pool.query<{ uses: string | number | null; admitted: string | number | null }>({
        text: TAKE_SQL,
        values: [refillAt, keyId, cost, needOf(cost), takes.length, newId(), new Date(now)],
      });
      const row = rows[0];
      takes.forEach((t, i) => {
        if (!row) t.resolve(undefined);
        // Made unlimited since the key was cached: nothing to take.
        else if (row.uses === null) t.resolve({ admitted: true, remaining: null });
        else {
          const admitted = Number(row.admitted);
          const uses = Number(row.uses);
          t.resolve(i < admitted ? { admitted: true, remaining: uses - cost * (i + 1) } : { admitted: false, remaining: uses - cost * admitted });
        }
      });
    } catch (e) {
      for (const t of takes) t.reject(e);
    }
  }
}
