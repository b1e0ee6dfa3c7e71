import { WriteBehind } from '../db/write-behind.js';
import { errorFields } from '../log.js';
import { newId } from '../ids.js';

/** Kinds of security event, recorded in audit_events under these actions. */
type SecurityEventKind =
  /** An SDK key was refused: missing, malformed, unknown, revoked, or a wrong secret. */
  | 'sdk_key.auth_failed'
  /** A portal token was refused: unknown or expired. */
  | 'portal_session.auth_failed'
  /** A revoked API key was presented to VerifyKey. */
  | 'key.used_revoked'
  /** An expired API key was presented to VerifyKey. */
  | 'key.used_expired';

export interface SecurityEvent {
  kind: SecurityEventKind;
  /** The SDK key that presented an API key, or `unauthenticated` for a refused SDK key. */
  actor: string;
  resourceType: 'sdk_key' | 'key' | 'portal_session';
  /** The key concerned; for SDK keys only an id that exists, else `unknown`, `malformed` or `missing`. Never a secret. */
  resourceId: string;
  workspaceId: string | null;
}

interface Pending extends SecurityEvent {
  minute: number;
  count: number;
}

const MINUTE_MS = 60_000;
/** Distinct (kind, subject) buckets kept between flushes; beyond it events are counted under `overflow`. */
const MAX_PENDING = 10_000;

/**
 * Records security events without a write per event, and so that a flood
 * cannot fill the disk: events are counted in memory per (kind, subject, actor,
 * minute) and written every `flushMs` as at most one audit row per bucket,
 * whose `count` column grows (one statement per flush). Subjects are bounded:
 * SDK keys that do not exist are all `unknown`, and once MAX_PENDING buckets
 * are waiting the rest are counted under `overflow`.
 */
export class SecurityEventRecorder extends WriteBehind {
  private pending = new Map<string, Pending>();

  note(e: SecurityEvent, now = Date.now()): void {
    const minute = Math.floor(now / MINUTE_MS);
    let resourceId = e.resourceId;
    let key = `${e.kind}|${resourceId}|${e.actor}|${minute}`;
    let p = this.pending.get(key);
    if (p === undefined && this.pending.size >= MAX_PENDING) {
      resourceId = 'overflow';
      key = `${e.kind}|${resourceId}|${e.actor}|${minute}`;
      p = this.pending.get(key);
    }
    if (p === undefined) {
      p = { ...e, resourceId, workspaceId: resourceId === 'overflow' ? null : e.workspaceId, minute, count: 0 };
      this.pending.set(key, p);
    }
    p.count++;
  }

  protected async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const rows = [...batch].map(([key, p]) => ({
      id: newId(),
      t: new Date(p.minute * MINUTE_MS).toISOString(),
      actor: p.actor,
      action: p.kind,
      rt: p.resourceType,
      rid: p.resourceId,
      w: p.workspaceId,
      n: p.count,
      ak: key,
    }));
    try {
      await this.orm.em.fork().execute(
        `insert into audit_events (id, time, actor, action, resource_type, resource_id, workspace_id, request_id, count, aggregate_key)
         select e.id, e.t, e.actor, e.action, e.rt, e.rid, e.w, null, e.n, e.ak
           from jsonb_to_recordset(?::jsonb) as e(id uuid, t timestamptz, actor text, action text, rt text, rid text, w uuid, n integer, ak text)
         on conflict (aggregate_key) where aggregate_key is not null do update set count = audit_events.count + excluded.count`,
        [JSON.stringify(rows)],
      );
    } catch (e) {
      // Keep the counts for the next attempt.
      for (const [key, p] of batch) {
        const q = this.pending.get(key);
        if (q) q.count += p.count;
        else this.pending.set(key, p);
      }
      this.log.warn('could not record security events; will retry', { events: batch.size, ...errorFields(e) });
    }
  }
}
