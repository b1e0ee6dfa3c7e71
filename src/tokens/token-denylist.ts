import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from '../log.js';

/** Why a key's tokens are refused: the key's own state (as VerifyKey's codes say it). */
export type DenyCode = 'revoked' | 'disabled' | 'not_found';

interface Entry {
  /** Tokens issued at or before this time (epoch ms) are refused. */
  cutoffMs: number;
  code: DenyCode;
  /** After this no token issued before the cutoff is unexpired: the entry is dropped. */
  expiresMs: number;
}

interface DenyRow {
  id: string;
  code: DenyCode;
  at_ms: number;
}

// Keys announced as changed, as they are now: revoked (the key's own revoke
// time, or its workspace's delete time), disabled, or (absent from the
// result) deleted.
const CHANGED_KEYS_SQL = `
  select k.id,
         case when coalesce(k.revoke_time, w.delete_time) is not null then 'revoked'
              when not k.enabled then 'disabled' end as code,
         (extract(epoch from coalesce(k.revoke_time, w.delete_time, k.update_time)) * 1000)::float8 as at_ms
    from api_keys k
    join workspaces w on w.id = k.workspace_id
   where k.id in `;

// The keys of a workspace deleted (its keys are revoked with it).
const DELETED_WORKSPACE_SQL = `
  select k.id, 'revoked' as code, (extract(epoch from coalesce(k.revoke_time, w.delete_time)) * 1000)::float8 as at_ms
    from api_keys k
    join workspaces w on w.id = k.workspace_id
   where w.id = ? and w.delete_time is not null`;

// Everything that ended a key's tokens within the last token lifetime:
// revocations (of the key or with its workspace), keys disabled now (and
// changed within it: a key disabled longer ago has no unexpired token), and
// keys deleted (their rows are gone; their audit record stays).
const RECENT_SQL = `
  select k.id::text, 'revoked' as code, (extract(epoch from coalesce(k.revoke_time, w.delete_time)) * 1000)::float8 as at_ms
    from api_keys k
    join workspaces w on w.id = k.workspace_id
   where coalesce(k.revoke_time, w.delete_time) > now() - make_interval(secs => ?)
  union all
  select k.id::text, 'disabled', (extract(epoch from k.update_time) * 1000)::float8
    from api_keys k
   where not k.enabled and k.revoke_time is null and k.update_time > now() - make_interval(secs => ?)
  union all
  select a.resource_id, 'not_found', (extract(epoch from a.time) * 1000)::float8
    from audit_events a
   where a.action = 'key.delete' and a.time > now() - make_interval(secs => ?)`;

/**
 * The API keys whose exchanged tokens (TokenService) Keyward's own verifier
 * (TokenChecker, for forward auth) refuses without a database read: a key
 * revoked or deleted refuses every token issued before that moment, a key
 * disabled every token while it stays disabled. An entry lives as long as a
 * token issued before it can (the token TTL), then goes.
 *
 * It reaches every replica through the change feed as it is: a key's change
 * announces only its id, so the replica that hears it reads that key's state
 * (one query per batch of announced keys); a listener that reconnects (and a
 * process that starts) reloads everything of the last token lifetime, so a
 * notification lost meanwhile is not missed.
 */
export class TokenDenylist {
  private readonly entries = new Map<string, Entry>();
  private readonly changed = new Set<string>();
  private draining: Promise<void> | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly log: Logger,
    private readonly opts: { tokenTtlMs: number; maxEntries?: number },
  ) {}

  /** The code a token of `keyId` issued at `iat` (epoch seconds; undefined if absent) is refused with, or undefined. */
  refusal(keyId: string, iat: number | undefined, now = Date.now()): DenyCode | undefined {
    const e = this.entries.get(keyId);
    if (!e) return undefined;
    if (now >= e.expiresMs) {
      this.entries.delete(keyId);
      return undefined;
    }
    // iat has whole seconds: a token of the cutoff's own second counts as issued before it.
    if (iat !== undefined && iat * 1000 > e.cutoffMs) return undefined;
    return e.code;
  }

  /** Keys announced as changed (here or by another replica): their state is read, and the list follows it. */
  keysChanged(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.changed.add(id);
    this.draining ??= this.drain();
    return this.draining;
  }

  /** A workspace announced as changed: if it was deleted, its keys were revoked with it. */
  async workspaceChanged(workspaceId: string): Promise<void> {
    try {
      this.apply(await this.orm.em.fork().execute<DenyRow[]>(DELETED_WORKSPACE_SQL, [workspaceId]), Date.now());
    } catch (e) {
      this.unread(e);
    }
  }

  /** Loads everything that ended tokens within the last token lifetime (at start, and when the change listener listens again). */
  async reload(): Promise<void> {
    const secs = this.opts.tokenTtlMs / 1000;
    try {
      const rows = await this.orm.em.fork().execute<DenyRow[]>(RECENT_SQL, [secs, secs, secs]);
      // Keys enabled again while this process was not listening.
      const disabled = new Set(rows.filter((r) => r.code === 'disabled').map((r) => r.id));
      for (const [id, e] of this.entries) if (e.code === 'disabled' && !disabled.has(id)) this.entries.delete(id);
      this.apply(rows, Date.now());
    } catch (e) {
      this.unread(e);
    }
  }

  /**
   * Reads the announced keys one batch at a time, so that answers apply in
   * the order they were read. `draining` is cleared in the same step that
   * finds nothing left (no await between), so ids added later start anew.
   */
  private async drain(): Promise<void> {
    try {
      while (this.changed.size > 0) {
        const ids = [...this.changed];
        this.changed.clear();
        await this.readChanged(ids);
      }
    } finally {
      this.draining = undefined;
    }
  }

  private async readChanged(ids: readonly string[]): Promise<void> {
    try {
      const sql = `${CHANGED_KEYS_SQL}(${ids.map(() => '?').join(', ')})`;
      const rows = await this.orm.em.fork().execute<(Omit<DenyRow, 'code'> & { code: DenyCode | null })[]>(sql, [...ids]);
      const now = Date.now();
      const found = new Set(rows.map((r) => r.id));
      const denied: DenyRow[] = [];
      for (const r of rows) {
        if (r.code !== null) denied.push({ id: r.id, code: r.code, at_ms: r.at_ms });
        // Enabled again: a disable refuses tokens only while it lasts.
        else if (this.entries.get(r.id)?.code === 'disabled') this.entries.delete(r.id);
      }
      for (const id of ids) if (!found.has(id)) denied.push({ id, code: 'not_found', at_ms: now });
      this.apply(denied, now);
    } catch (e) {
      this.unread(e);
    }
  }

  private apply(rows: readonly DenyRow[], now: number): void {
    const max = this.opts.maxEntries ?? 100_000;
    for (const r of rows) {
      // A disable refuses tokens issued up to now, whenever it began.
      const cutoffMs = r.code === 'disabled' ? Math.max(r.at_ms, now) : r.at_ms;
      // One second more than a token lives: iat and exp have whole seconds.
      const expiresMs = (r.code === 'disabled' ? now : cutoffMs) + this.opts.tokenTtlMs + 1000;
      if (expiresMs <= now) continue;
      const previous = this.entries.get(r.id);
      if (previous && previous.code !== 'disabled' && previous.cutoffMs >= cutoffMs) continue;
      this.entries.delete(r.id);
      if (this.entries.size >= max) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(r.id, { cutoffMs, code: r.code, expiresMs });
    }
  }

  /**
   * The state could not be read (the database is unreachable): nothing is
   * lost for the tokens, whose key state TokenChecker still reads on a miss
   * (and fails closed), and the next reload catches up.
   */
  private unread(e: unknown): void {
    this.log.warn('token denylist: could not read key changes', { reason: (e as Error).message });
  }
}
