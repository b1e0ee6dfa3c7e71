import type { MikroORM } from '@mikro-orm/postgresql';
import { WriteBehind } from '../db/write-behind.js';
import { errorFields, type Logger } from '../log.js';
import type { Principal } from '../domain/principal.js';
import type { SecurityEventRecorder } from '../domain/security-events.js';
import type { VerifyResult } from './contract.js';

export const HOUR_MS = 3_600_000;
const MAX_RETRY_ROWS = 100_000;
/** The key id under which verifications of unknown keys are counted. */
const UNKNOWN_KEY_ID = '00000000-0000-0000-0000-000000000000';

// Outcome codes get a small index on first sight, so a tally is a plain
// array of numbers; codes added later (rate limits, usage limits) need no
// change here.
const codeIndex = new Map<string, number>();
const codeNames: string[] = [];
function indexOf(code: string): number {
  let i = codeIndex.get(code);
  if (i === undefined) {
    i = codeNames.length;
    codeNames.push(code);
    codeIndex.set(code, i);
  }
  return i;
}
for (const c of ['valid', 'not_found', 'disabled', 'expired', 'revoked', 'insufficient_permissions']) indexOf(c);

/** Verifications of one key (or of unknown keys in one workspace) in one hour, by code index. */
interface Tally {
  workspaceId: string;
  keyId: string;
  hour: number;
  counts: number[];
}

interface Row {
  w: string;
  k: string;
  h: string;
  c: string;
  n: number;
}

/**
 * Counts every verification per key, outcome code and hour, and writes the
 * counts behind in batches: one upsert per flush (every `flushMs`, and on
 * shutdown), never a write per verification.
 *
 * Counting a verification of a known key is a Map lookup and an array
 * increment; a new object only when a key is first seen in an hour.
 *
 * Unknown keys (NOT_FOUND without a key: malformed, unknown, deleted, or
 * another workspace's) are counted under UNKNOWN_KEY_ID in the workspace the
 * request named; when it named none they are not counted, since no workspace
 * can be told about them (nobody could read such a count).
 *
 * Revoked and expired keys that are presented are also security events
 * (aggregated per minute in audit_events).
 */
export class UsageAnalytics extends WriteBehind {
  private byKey = new Map<string, Tally>();
  private unknownByWorkspace = new Map<string, Tally>();
  /** Tallies of an earlier hour that a later one replaced before the flush. */
  private closed: Tally[] = [];
  /** Rows a failed flush could not write, added to the next one. */
  private retry: Row[] = [];

  constructor(
    orm: MikroORM,
    log: Logger,
    flushMs: number,
    private readonly security: SecurityEventRecorder,
  ) {
    super(orm, log, flushMs);
  }

  /** Counts one verification and returns its result unchanged. */
  count(p: Principal, requestedWorkspaceId: string, result: VerifyResult, now: number): VerifyResult {
    const key = result.key;
    const hour = Math.floor(now / HOUR_MS);
    let t: Tally | undefined;
    if (key !== undefined) {
      t = this.byKey.get(key.id);
      if (t === undefined || t.hour !== hour) t = this.open(this.byKey, key.id, key.workspaceId, key.id, hour, t);
    } else if (requestedWorkspaceId !== '') {
      t = this.unknownByWorkspace.get(requestedWorkspaceId);
      if (t === undefined || t.hour !== hour) t = this.open(this.unknownByWorkspace, requestedWorkspaceId, requestedWorkspaceId, UNKNOWN_KEY_ID, hour, t);
    } else {
      return result;
    }
    const i = indexOf(result.code);
    t.counts[i] = (t.counts[i] ?? 0) + 1;
    if (key !== undefined && (result.code === 'revoked' || result.code === 'expired')) {
      this.security.note(
        {
          kind: result.code === 'revoked' ? 'key.used_revoked' : 'key.used_expired',
          actor: p.actor,
          resourceType: 'key',
          resourceId: key.id,
          workspaceId: key.workspaceId,
        },
        now,
      );
    }
    return result;
  }

  private open(map: Map<string, Tally>, mapKey: string, workspaceId: string, keyId: string, hour: number, previous: Tally | undefined): Tally {
    if (previous !== undefined) this.closed.push(previous);
    const t: Tally = { workspaceId, keyId, hour, counts: new Array<number>(codeNames.length).fill(0) };
    map.set(mapKey, t);
    return t;
  }

  private take(): Row[] {
    const tallies = [...this.closed, ...this.byKey.values(), ...this.unknownByWorkspace.values()];
    this.closed = [];
    this.byKey = new Map();
    this.unknownByWorkspace = new Map();
    // One row per (workspace, key, hour, code): an upsert may not touch a row twice.
    const rows = new Map<string, Row>();
    const add = (r: Row) => {
      const id = `${r.w}|${r.k}|${r.h}|${r.c}`;
      const seen = rows.get(id);
      if (seen) seen.n += r.n;
      else rows.set(id, { ...r });
    };
    for (const r of this.retry) add(r);
    this.retry = [];
    for (const t of tallies) {
      const h = new Date(t.hour * HOUR_MS).toISOString();
      t.counts.forEach((n, i) => {
        if (n > 0) add({ w: t.workspaceId, k: t.keyId, h, c: codeNames[i]!, n });
      });
    }
    return [...rows.values()];
  }

  protected async write(): Promise<void> {
    const rows = this.take();
    if (rows.length === 0) return;
    try {
      await this.orm.em.fork().execute(
        // Each key's counts, and the workspace's (src/domain/usage.ts reads those for a whole workspace).
        `with u as (
           select * from jsonb_to_recordset(?::jsonb) as u(w uuid, k uuid, h timestamptz, c text, n bigint)
         ), per_key as (
           insert into key_usage (workspace_id, key_id, hour, code, count)
           select w, k, h, c, n from u
           on conflict (workspace_id, key_id, hour, code) do update set count = key_usage.count + excluded.count
         )
         insert into workspace_usage (workspace_id, hour, code, count)
         select w, h, c, sum(n) from u group by w, h, c
         on conflict (workspace_id, hour, code) do update set count = workspace_usage.count + excluded.count`,
        [JSON.stringify(rows)],
      );
    } catch (e) {
      // Keep them for the next attempt, up to a bound, so an outage cannot exhaust memory.
      this.retry = rows.length > MAX_RETRY_ROWS ? rows.slice(0, MAX_RETRY_ROWS) : rows;
      this.log.warn('could not record verification counts; will retry', { rows: rows.length, ...errorFields(e) });
    }
  }
}
