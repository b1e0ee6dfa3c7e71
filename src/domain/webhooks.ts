import { randomBytes } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/core';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import type { SecretBox } from '../credentials/secret-box.js';
import { Webhook, type ApiKey } from '../db/entities.js';
import { inTransaction } from '../db/transaction.js';
import { audit } from './audit.js';
import { failedPrecondition, invalidArgument, notFound } from './errors.js';
import { isId, newId } from '../ids.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, requireId } from './validate.js';
import { findVisibleWorkspace } from './workspaces.js';

/** Events a workspace's webhook receives. */
export type WebhookEventType = 'key.expiring' | 'key.revoked' | 'key.rotated' | 'key.usage_exhausted';

/** The event SendTestEvent sends: posted at once, never queued, never retried. */
export const TEST_EVENT_TYPE = 'webhook.test';

const TEST_EVENT_DATA = { test: true, message: 'A test event sent with SendTestEvent; nothing changed.' };

/** A webhook's URL and its signing secret as stored (sealed). */
export interface WebhookTarget {
  url: string;
  secret: string;
}

/** What became of one attempt to post an event. */
export interface SendOutcome {
  /** The receiver answered 2xx. */
  delivered: boolean;
  /** The receiver's HTTP status; 0 if it did not answer. */
  httpStatus: number;
  /** Why it was not delivered (`HTTP 500`, `refused: ...`, a network error); '' when delivered. */
  error: string;
  durationMs: number;
}

/** Posts one signed event now (src/webhooks/sender.ts). */
export type PostWebhookEvent = (target: WebhookTarget, eventId: string, payload: string) => Promise<SendOutcome>;

/** A test event's outcome and its record. */
export interface TestEventResult extends SendOutcome {
  delivery: Delivery;
}

const DEFAULT_EXPIRING_NOTICE_DAYS = 7;
const MAX_URL_LENGTH = 2048;

export interface WebhookInput {
  workspaceId: string;
  url: string;
  /** 0 means the default, 7. */
  expiringNoticeDays: number;
}

export interface SetWebhookResult {
  webhook: Webhook;
  /** Set when a new signing secret was made: shown once. */
  signingSecret: string;
}

function checkUrl(url: string): string {
  const field = 'webhook.url';
  if (url === '') throw invalidArgument(field, 'is required');
  checkLength(field, url, MAX_URL_LENGTH);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidArgument(field, 'is not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidArgument(field, 'must be an http or https URL');
  return url;
}

function checkNoticeDays(days: number): number {
  if (!Number.isInteger(days) || days < 0 || days > 365) throw invalidArgument('webhook.expiring_notice_days', 'must be between 0 and 365');
  return days === 0 ? DEFAULT_EXPIRING_NOTICE_DAYS : days;
}

/** A webhook event and where it is in its delivery. */
export interface Delivery {
  eventId: string;
  eventType: string;
  /** The key the event is about ('' if none). */
  keyId: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastError: string;
  nextAttemptTime: Date | null;
  deliveredTime: Date | null;
  failedTime: Date | null;
  createTime: Date;
}

interface DeliveryRow {
  id: string;
  event_type: string;
  key_id: string | null;
  attempts: number;
  last_error: string | null;
  next_attempt_time: Date;
  delivered_time: Date | null;
  failed_time: Date | null;
  create_time: Date;
}

const DELIVERY_SQL = `select id, event_type, payload::jsonb #>> '{data,key,id}' as key_id, attempts, last_error,
  next_attempt_time, delivered_time, failed_time, create_time from webhook_outbox`;

function deliveryOf(r: DeliveryRow): Delivery {
  const state = r.delivered_time ? 'delivered' : r.failed_time ? 'failed' : 'pending';
  return {
    eventId: r.id,
    eventType: r.event_type,
    keyId: r.key_id ?? '',
    state,
    attempts: r.attempts,
    lastError: r.last_error ?? '',
    nextAttemptTime: state === 'pending' ? new Date(r.next_attempt_time) : null,
    deliveredTime: r.delivered_time && new Date(r.delivered_time),
    failedTime: r.failed_time && new Date(r.failed_time),
    createTime: new Date(r.create_time),
  };
}

/** A new signing secret: 32 random bytes. */
const newSigningSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

/** The webhook of a workspace the caller may see, or NOT_FOUND. */
async function findWebhook(em: EntityManager, p: Principal, workspaceId: string): Promise<Webhook> {
  await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
  const webhook = await em.findOne(Webhook, { workspaceId });
  if (!webhook) throw notFound('webhook of workspace', workspaceId);
  return webhook;
}

/**
 * A workspace's webhook. The signing secret must stay usable, since signing
 * needs it (a hash could only check a signature, not make one): it is stored
 * sealed with KEYWARD_SECRETS_KEY if set (SecretBox), and shown once, when
 * it is made.
 */
export class Webhooks {
  constructor(
    private readonly orm: MikroORM,
    private readonly secrets: SecretBox,
    private readonly post: PostWebhookEvent,
  ) {}

  /** The outbox at a glance, for metrics: events by state, and the age of the oldest not yet delivered. */
  async outboxStats(): Promise<{ pending: number; delivered: number; failed: number; oldestPendingSeconds: number }> {
    const [row] = await this.orm.em.fork().execute<{ pending: string; delivered: string; failed: string; oldest: number | null }[]>(
      `select count(*) filter (where delivered_time is null and failed_time is null) as pending,
              count(*) filter (where delivered_time is not null) as delivered,
              count(*) filter (where failed_time is not null) as failed,
              extract(epoch from now() - min(create_time) filter (where delivered_time is null and failed_time is null))::float8 as oldest
         from webhook_outbox`,
    );
    return {
      pending: Number(row?.pending ?? 0),
      delivered: Number(row?.delivered ?? 0),
      failed: Number(row?.failed ?? 0),
      oldestPendingSeconds: row?.oldest ?? 0,
    };
  }

  async set(p: Principal, input: WebhookInput, rotateSecret: boolean): Promise<SetWebhookResult> {
    p.requireScope('workspace:write');
    requireId('webhook.workspace_id', input.workspaceId);
    p.requireWorkspace(input.workspaceId);
    const url = checkUrl(input.url);
    const expiringNoticeDays = checkNoticeDays(input.expiringNoticeDays);
    return inTransaction(this.orm.em, async (em) => {
      // Locked for update: concurrent sets of one workspace's webhook take turns
      // (the first makes it, the next replace it), and a concurrent
      // DeleteWorkspace waits for them or makes them NOT_FOUND.
      const ws = await findVisibleWorkspace(em, p, input.workspaceId, 'webhook.workspace_id', 'update');
      let webhook = await em.findOne(Webhook, { workspaceId: ws.id });
      let signingSecret = '';
      if (!webhook) {
        signingSecret = newSigningSecret();
        webhook = em.create(Webhook, { workspaceId: ws.id, url, secret: this.secrets.seal(signingSecret), expiringNoticeDays });
      } else {
        webhook.url = url;
        webhook.expiringNoticeDays = expiringNoticeDays;
        if (rotateSecret) {
          signingSecret = newSigningSecret();
          webhook.secret = this.secrets.seal(signingSecret);
        }
        webhook.updateTime = new Date();
      }
      audit(em, p, 'webhook.set', { type: 'webhook', id: ws.id, workspaceId: ws.id });
      await em.flush();
      return { webhook, signingSecret };
    });
  }

  async get(p: Principal, workspaceId: string): Promise<Webhook> {
    p.requireScope('workspace:read');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    return findWebhook(this.orm.em.fork(), p, workspaceId);
  }

  /** The workspace's events with their delivery state, newest first. */
  async deliveries(p: Principal, workspaceId: string, page: PageRequest): Promise<Page<Delivery>> {
    p.requireScope('workspace:read');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    const cursor = openCursor(page, { workspaceId }, isId);
    const em = this.orm.em.fork() as SqlEntityManager;
    await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
    const rows = await em.execute<DeliveryRow[]>(`${DELIVERY_SQL} where workspace_id = ? ${cursor.after ? 'and id < ?' : ''} order by id desc limit ?`, [
      workspaceId,
      ...(cursor.after ? [cursor.after] : []),
      cursor.limit,
    ]);
    const out = closePage(rows, cursor, { workspaceId }, (r) => r.id);
    return { items: out.items.map(deliveryOf), nextPageToken: out.nextPageToken };
  }

  /** Sends an event again from its first attempt, now. */
  async redeliver(p: Principal, workspaceId: string, eventId: string): Promise<Delivery> {
    p.requireScope('workspace:write');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    requireId('event_id', eventId);
    return inTransaction(this.orm.em, async (em) => {
      await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
      const sql = em as SqlEntityManager;
      const [event] = await sql.execute<{ event_type: string }[]>(`select event_type from webhook_outbox where workspace_id = ? and id = ? for update`, [
        workspaceId,
        eventId,
      ]);
      if (!event) throw notFound('webhook event', eventId);
      if (event.event_type === TEST_EVENT_TYPE) throw failedPrecondition('a webhook.test event is not redelivered; send a new one with SendTestEvent');
      await sql.execute(
        `update webhook_outbox set attempts = 0, next_attempt_time = now(), delivered_time = null, failed_time = null, last_error = null where id = ?`,
        [eventId],
      );
      audit(em, p, 'webhook.redeliver', { type: 'webhook_event', id: eventId, workspaceId });
      const [row] = await sql.execute<DeliveryRow[]>(`${DELIVERY_SQL} where id = ?`, [eventId]);
      return deliveryOf(row!);
    });
  }

  /**
   * Posts a `webhook.test` event to the workspace's webhook now, through the
   * same sender as every event, and records it with this one attempt as
   * delivered or failed, so the worker never picks it up again. A receiver's
   * failure is an outcome, not an error.
   */
  async sendTestEvent(p: Principal, workspaceId: string): Promise<TestEventResult> {
    p.requireScope('workspace:write');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    const em = this.orm.em.fork() as SqlEntityManager;
    const webhook = await findWebhook(em, p, workspaceId);
    const id = newId();
    const now = new Date();
    const [built] = await em.execute<{ payload: string }[]>(`select ${eventPayloadSql('e')} as payload from (${EVENT_SOURCE_SQL}) e`, [
      id,
      workspaceId,
      TEST_EVENT_TYPE,
      now,
      JSON.stringify(TEST_EVENT_DATA),
    ]);
    const payload = built!.payload;
    const outcome = await this.post({ url: webhook.url, secret: webhook.secret }, id, payload);
    return inTransaction(this.orm.em, async (tx) => {
      const sql = tx as SqlEntityManager;
      await sql.execute(
        `insert into webhook_outbox (id, workspace_id, event_type, payload, attempts, next_attempt_time, create_time, delivered_time, failed_time, last_error)
         values (?, ?, ?, ?, 1, now(), ?, case when ? then now() end, case when ? then null else now() end, ?)`,
        [id, workspaceId, TEST_EVENT_TYPE, payload, now, outcome.delivered, outcome.delivered, outcome.delivered ? null : outcome.error.slice(0, 500)],
      );
      audit(tx, p, 'webhook.test', { type: 'webhook_event', id, workspaceId }, { delivered: outcome.delivered, http_status: outcome.httpStatus });
      const [row] = await sql.execute<DeliveryRow[]>(`${DELIVERY_SQL} where id = ?`, [id]);
      return { ...outcome, delivery: deliveryOf(row!) };
    });
  }

  /** Removes the webhook and drops its undelivered events. */
  async delete(p: Principal, workspaceId: string): Promise<void> {
    p.requireScope('workspace:write');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    await inTransaction(this.orm.em, async (em) => {
      em.remove(await findWebhook(em, p, workspaceId));
      await (em as SqlEntityManager).execute(`delete from webhook_outbox where workspace_id = ? and delivered_time is null`, [workspaceId]);
      audit(em, p, 'webhook.delete', { type: 'webhook', id: workspaceId, workspaceId });
      await em.flush();
    });
  }
}

/**
 * An insert into webhook_outbox of the events `source` selects, for
 * workspaces with a webhook only. `source` is a select of the columns `id`
 * (uuid), `workspace_id`, `type`, `create_time` (timestamptz) and `data`
 * (json). The one definition of an event's payload: every event, whether
 * queued from JS (enqueueWebhookEvent) or inside another statement (as
 * UsageLimits raises key.usage_exhausted), is built here.
 */
export function insertEventsSql(source: string): string {
  return `insert into webhook_outbox (id, workspace_id, event_type, payload, attempts, next_attempt_time, create_time)
    select e.id, e.workspace_id, e.type, ${eventPayloadSql('e')}, 0, e.create_time, e.create_time
      from (${source}) e
     where exists (select 1 from webhooks w where w.workspace_id = e.workspace_id)`;
}

/** The JSON body of the event row `alias` (columns as insertEventsSql's source), as text. */
const eventPayloadSql = (alias: string) =>
  `json_build_object('id', ${alias}.id, 'type', ${alias}.type, 'create_time', ${isoTimeSql(`${alias}.create_time`)},
                     'workspace_id', ${alias}.workspace_id, 'data', ${alias}.data)::text`;

/** A timestamptz as JS's toISOString() writes it (UTC, milliseconds). */
const isoTimeSql = (expr: string) => `to_char(${expr} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** One event from parameters: id, workspace id, type, create time, data (JSON text). */
const EVENT_SOURCE_SQL = `select ?::uuid as id, ?::uuid as workspace_id, ?::text as type, ?::timestamptz as create_time, ?::json as data`;

const QUEUE_SQL = insertEventsSql(EVENT_SOURCE_SQL);

/**
 * Queues a webhook event for the workspace, if it has a webhook. Call it with
 * the transaction's EntityManager: the event is delivered only if the change
 * it reports commits, and is not lost if the process stops before delivery
 * (src/webhooks/worker.ts delivers it).
 */
export async function enqueueWebhookEvent(
  em: EntityManager,
  workspaceId: string,
  type: WebhookEventType,
  data: Record<string, unknown>,
  now = new Date(),
): Promise<void> {
  await (em as SqlEntityManager).execute(QUEUE_SQL, [newId(), workspaceId, type, now, JSON.stringify(data)]);
}

type KeyEventKey = Pick<ApiKey, 'id' | 'workspaceId' | 'customerId' | 'name' | 'start' | 'maskedKey' | 'expireTime' | 'revokeTime'>;

/**
 * What an event tells about a key (never its secret): each field, named as
 * its api_keys column, and the ApiKey property it comes from. keyEventData
 * (from an entity) and keyEventDataSql (from a row) are both made from this.
 */
const KEY_EVENT_FIELDS: readonly { column: string; prop: keyof KeyEventKey; time?: true }[] = [
  { column: 'id', prop: 'id' },
  { column: 'workspace_id', prop: 'workspaceId' },
  { column: 'customer_id', prop: 'customerId' },
  { column: 'name', prop: 'name' },
  { column: 'start', prop: 'start' },
  { column: 'masked_key', prop: 'maskedKey' },
  { column: 'expire_time', prop: 'expireTime', time: true },
  { column: 'revoke_time', prop: 'revokeTime', time: true },
];

/** What an event tells about a key: never its secret. */
function keyEventData(key: KeyEventKey): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const f of KEY_EVENT_FIELDS) {
    const v = key[f.prop];
    data[f.column] = f.time ? (v ? (v as Date).toISOString() : null) : v;
  }
  return data;
}

/** keyEventData of the api_keys row `alias`, as a json expression. */
export function keyEventDataSql(alias: string): string {
  const fields = KEY_EVENT_FIELDS.map((f) => `'${f.column}', ${f.time ? isoTimeSql(`${alias}.${f.column}`) : `${alias}.${f.column}`}`);
  return `json_build_object(${fields.join(', ')})`;
}

/** Queues an event about a key (see enqueueWebhookEvent). */
export function enqueueKeyEvent(em: EntityManager, type: WebhookEventType, key: KeyEventKey, extra: Record<string, unknown> = {}): Promise<void> {
  return enqueueWebhookEvent(em, key.workspaceId, type, { key: keyEventData(key), ...extra });
}
