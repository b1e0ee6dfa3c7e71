import { inTransaction } from '../db/transaction.js';
import { randomBytes } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/core';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { Webhook, type ApiKey } from '../db/entities.js';
import { audit } from './audit.js';
import { invalidArgument, notFound } from './errors.js';
import { newId } from './ids.js';
import type { Principal } from './principal.js';
import { requireId } from './validate.js';
import { findVisibleWorkspace } from './workspaces.js';

/** Events a workspace's webhook receives. */
export type WebhookEventType = 'key.expiring' | 'key.revoked' | 'key.rotated' | 'key.usage_exhausted';

export const DEFAULT_EXPIRING_NOTICE_DAYS = 7;
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
  if (url.length > MAX_URL_LENGTH) throw invalidArgument(field, `must be at most ${MAX_URL_LENGTH} characters`);
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

/** A new signing secret: 32 random bytes. */
const newSigningSecret = () => `whsec_${randomBytes(32).toString('base64url')}`;

/**
 * A workspace's webhook. The signing secret is stored as is, since signing
 * needs it (a hash could only check a signature, not make one); it is shown
 * once, when it is made.
 */
export class Webhooks {
  constructor(private readonly orm: MikroORM) {}

  async set(p: Principal, input: WebhookInput, rotateSecret: boolean): Promise<SetWebhookResult> {
    p.requireScope('workspace:write');
    requireId('webhook.workspace_id', input.workspaceId);
    p.requireWorkspace(input.workspaceId);
    const url = checkUrl(input.url);
    const expiringNoticeDays = checkNoticeDays(input.expiringNoticeDays);
    return inTransaction(this.orm.em, async (em) => {
      const ws = await findVisibleWorkspace(em, p, input.workspaceId, 'webhook.workspace_id');
      let webhook = await em.findOne(Webhook, { workspaceId: ws.id });
      let signingSecret = '';
      if (!webhook) {
        signingSecret = newSigningSecret();
        webhook = em.create(Webhook, { workspaceId: ws.id, url, secret: signingSecret, expiringNoticeDays });
      } else {
        webhook.url = url;
        webhook.expiringNoticeDays = expiringNoticeDays;
        if (rotateSecret) webhook.secret = signingSecret = newSigningSecret();
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
    const em = this.orm.em.fork();
    await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
    const webhook = await em.findOne(Webhook, { workspaceId });
    if (!webhook) throw notFound('webhook of workspace', workspaceId);
    return webhook;
  }

  /** Removes the webhook and drops its undelivered events. */
  async delete(p: Principal, workspaceId: string): Promise<void> {
    p.requireScope('workspace:write');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    await inTransaction(this.orm.em, async (em) => {
      await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
      const webhook = await em.findOne(Webhook, { workspaceId });
      if (!webhook) throw notFound('webhook of workspace', workspaceId);
      em.remove(webhook);
      await (em as SqlEntityManager).execute(`delete from webhook_outbox where workspace_id = ? and delivered_time is null`, [workspaceId]);
      audit(em, p, 'webhook.delete', { type: 'webhook', id: workspaceId, workspaceId });
      await em.flush();
    });
  }
}

/**
 * Queues a webhook event for the workspace, if it has a webhook. Call it with
 * the transaction's EntityManager: the event is delivered only if the change
 * it reports commits, and is not lost if the process stops before delivery
 * (src/webhooks/worker.ts delivers it).
 *
 * Other modules raise events through this; `key.usage_exhausted` is meant to
 * be raised by the usage limits, in the transaction that uses a key's last
 * use: `await enqueueKeyEvent(em, 'key.usage_exhausted', key)`.
 */
export async function enqueueWebhookEvent(
  em: EntityManager,
  workspaceId: string,
  type: WebhookEventType,
  data: Record<string, unknown>,
  now = new Date(),
): Promise<void> {
  const id = newId();
  const payload = JSON.stringify({ id, type, create_time: now.toISOString(), workspace_id: workspaceId, data });
  await (em as SqlEntityManager).execute(
    `insert into webhook_outbox (id, workspace_id, event_type, payload, attempts, next_attempt_time, create_time)
     select ?, ?, ?, ?, 0, ?, ? where exists (select 1 from webhooks where workspace_id = ?)`,
    [id, workspaceId, type, payload, now, now, workspaceId],
  );
}

/** What an event tells about a key: never its secret. */
export function keyEventData(key: Pick<ApiKey, 'id' | 'workspaceId' | 'customerId' | 'name' | 'start' | 'maskedKey' | 'expireTime' | 'revokeTime'>) {
  return {
    id: key.id,
    workspace_id: key.workspaceId,
    customer_id: key.customerId,
    name: key.name,
    start: key.start,
    masked_key: key.maskedKey,
    expire_time: key.expireTime ? key.expireTime.toISOString() : null,
    revoke_time: key.revokeTime ? key.revokeTime.toISOString() : null,
  };
}

/** Queues an event about a key (see enqueueWebhookEvent). */
export function enqueueKeyEvent(
  em: EntityManager,
  type: WebhookEventType,
  key: Parameters<typeof keyEventData>[0],
  extra: Record<string, unknown> = {},
): Promise<void> {
  return enqueueWebhookEvent(em, key.workspaceId, type, { key: keyEventData(key), ...extra });
}
