import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { jsonColumn } from '../db/json.js';
import { inTransaction } from '../db/transaction.js';
import { enqueueWebhookEvent, keyEventDataSql, TEST_EVENT_TYPE } from '../domain/webhooks.js';
import { errorFields, type Logger } from '../log.js';
import type { WebhookSender } from './sender.js';

export interface WebhookWorkerOptions {
  /** How often due events are looked for. */
  pollMs: number;
  /** Wait before the first retry; doubles with each further attempt, at most an hour. */
  retryBaseMs: number;
  /** Attempts before an event is given up (failed_time set). */
  maxAttempts: number;
  /** How long a receiver may take to answer (the sender's timeout; a claim's lease is longer). */
  timeoutMs: number;
  /** How often keys about to expire are looked for (key.expiring). */
  expiryScanMs: number;
  /** Posts the events (with its private-network guard and resolver, shared with SendTestEvent). */
  sender: WebhookSender;
}

const MAX_BACKOFF_MS = 3_600_000;
const CLAIM_BATCH = 20;

interface Claimed {
  id: string;
  payload: string;
  attempts: number;
  url: string;
  secret: string;
}

/**
 * Delivers webhook events from the outbox (webhook_outbox), where changes
 * write them in their own transaction. Any number of replicas run one each:
 * a worker claims due rows with `for update skip locked` in one short
 * statement that also moves their next_attempt_time past the delivery
 * timeout (a lease: if the process dies mid-delivery, the row is due again
 * after it), delivers outside any transaction, and records the outcome.
 * Failures are retried with exponential backoff. Delivery is at least once.
 *
 * It also raises key.expiring, once per key and expire_time, for keys of
 * workspaces with a webhook that expire within the webhook's notice days.
 */
export class WebhookWorker {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inflight = new Set<Promise<unknown>>();
  private stopped = true;

  constructor(
    private readonly orm: MikroORM,
    private readonly log: Logger,
    private readonly opts: WebhookWorkerOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.loop('deliver', () => this.deliverDue(), this.opts.pollMs);
    this.loop(
      'expiry',
      async () => {
        await this.scanExpiring();
        await this.prune();
      },
      this.opts.expiryScanMs,
    );
  }

  /** Stops the loops and waits for the work in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    await Promise.all(this.inflight);
  }

  /** Runs `work` now and then `everyMs` after each run ends, so runs never overlap. */
  private loop(name: string, work: () => Promise<unknown>, everyMs: number, delayMs = 0): void {
    const t = setTimeout(() => {
      if (this.stopped) return;
      const run = work()
        .catch((e: unknown) => this.log.warn(`webhook ${name} failed; will retry`, errorFields(e)))
        .finally(() => {
          this.inflight.delete(run);
          if (!this.stopped) this.loop(name, work, everyMs, everyMs);
        });
      this.inflight.add(run);
    }, delayMs);
    t.unref();
    this.timers.set(name, t);
  }

  /** Delivers due events until none are left; returns how many were attempted. */
  async deliverDue(): Promise<number> {
    let attempted = 0;
    for (;;) {
      const claimed = await this.claim();
      attempted += claimed.length;
      await Promise.all(claimed.map((c) => this.deliver(c)));
      if (claimed.length < CLAIM_BATCH || this.stopped) return attempted;
    }
  }

  private async claim(): Promise<Claimed[]> {
    const leaseMs = this.opts.timeoutMs + 5000;
    return (this.orm.em.fork() as SqlEntityManager).execute<Claimed[]>(
      // Only events whose workspace still has a webhook: one queued while its
      // webhook was being deleted must not sit at the head of the queue. Never
      // a test event: SendTestEvent posts it once and records the outcome.
      `with due as (
         select o.id from webhook_outbox o
          where o.delivered_time is null and o.failed_time is null and o.next_attempt_time <= now()
            and o.event_type <> ?
            and exists (select 1 from webhooks w where w.workspace_id = o.workspace_id)
          order by o.next_attempt_time
          limit ?
          for update skip locked)
       update webhook_outbox o
          set attempts = o.attempts + 1, next_attempt_time = now() + ? * interval '1 millisecond'
         from due, webhooks w
        where o.id = due.id and w.workspace_id = o.workspace_id
       returning o.id, o.payload, o.attempts, w.url, w.secret`,
      [TEST_EVENT_TYPE, CLAIM_BATCH, leaseMs],
    );
  }

  private async deliver(c: Claimed): Promise<void> {
    const error = await this.send(c);
    const em = this.orm.em.fork() as SqlEntityManager;
    if (error === undefined) {
      await em.execute(`update webhook_outbox set delivered_time = now(), last_error = null where id = ?`, [c.id]);
      return;
    }
    const giveUp = c.attempts >= this.opts.maxAttempts;
    const backoffMs = Math.min(this.opts.retryBaseMs * 2 ** (c.attempts - 1), MAX_BACKOFF_MS);
    await em.execute(
      `update webhook_outbox
          set last_error = ?,
              failed_time = case when ? then now() else null end,
              next_attempt_time = now() + ? * interval '1 millisecond'
        where id = ?`,
      [error.slice(0, 500), giveUp, backoffMs, c.id],
    );
    this.log.warn(giveUp ? 'webhook delivery failed; giving up' : 'webhook delivery failed; will retry', {
      event: c.id,
      attempt: c.attempts,
      error: error.slice(0, 200),
    });
  }

  /** Posts one event; the error, or undefined when the receiver took it (2xx). */
  private async send(c: Claimed): Promise<string | undefined> {
    const outcome = await this.opts.sender.send({ url: c.url, secret: c.secret }, c.id, c.payload);
    return outcome.delivered ? undefined : outcome.error;
  }

  /**
   * Forgets delivered events after a week and given-up ones after 30 days,
   * and notices of expire_times that have passed (a key's expire_time can only
   * be set in the future again, which is a new notice anyway).
   */
  async prune(): Promise<void> {
    const em = this.orm.em.fork() as SqlEntityManager;
    await em.execute(
      `delete from webhook_outbox
        where delivered_time < now() - interval '7 days' or failed_time < now() - interval '30 days'
           or not exists (select 1 from webhooks w where w.workspace_id = webhook_outbox.workspace_id)`,
    );
    await em.execute(`delete from key_expiry_notices where expire_time < now() - interval '1 day'`);
  }

  /** Queues key.expiring for keys that newly came within their webhook's notice days; returns how many. */
  async scanExpiring(): Promise<number> {
    return inTransaction(this.orm.em, async (em) => {
      // Recording the notice and queueing the event commit together; a key
      // already noticed for this expire_time conflicts and is skipped, also
      // when replicas scan at once.
      const rows = await (em as SqlEntityManager).execute<{ workspace_id: string; key_data: Record<string, unknown> | string }[]>(
        `with due as (
           select k.id, k.workspace_id, k.expire_time, ${keyEventDataSql('k')} as key_data
             from api_keys k
             join webhooks w on w.workspace_id = k.workspace_id
             join workspaces ws on ws.id = k.workspace_id and ws.delete_time is null
            where k.revoke_time is null and k.expire_time > now()
              and k.expire_time <= now() + w.expiring_notice_days * interval '1 day'
              and not exists (select 1 from key_expiry_notices n where n.key_id = k.id and n.expire_time = k.expire_time)
            limit 1000),
         noticed as (
           insert into key_expiry_notices (key_id, expire_time, create_time)
           select id, expire_time, now() from due
           on conflict do nothing
           returning key_id)
         select due.workspace_id, due.key_data
           from due join noticed on noticed.key_id = due.id`,
      );
      for (const r of rows) {
        await enqueueWebhookEvent(em, r.workspace_id, 'key.expiring', { key: jsonColumn(r.key_data) });
      }
      return rows.length;
    });
  }
}
