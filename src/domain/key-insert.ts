// New keys written in one statement whatever their number, on the driver's
// pool without the ORM: their rows, secrets, grants, audit records and change
// notices, each table's rows as one JSON document (jsonb_to_recordset). Shared
// by CreateKey (one key) and ImportKeys (up to 1,000).
//
// A key needs its workspace's key prefix and the scopes its grants name
// before it is written. KeyWriter keeps what it last read of each workspace
// (target()); the write takes the locks a transaction around read and write
// would have taken (the workspace and those scopes, shared) and checks that
// what the caller used still holds: if the workspace was deleted, its prefix
// changed or a scope was deleted, renamed or changed, it writes nothing and
// says so (the caller reads again and retries). One round trip where a
// transaction needs ten; two when the workspace is not known yet. CreateKeys
// that arrive together share the statement (group commit).
import type { QueryPool } from '../db/database.js';
import { CHANGE_CHANNEL } from '../db/change-feed.js';
import { isConnectionError } from '../db/errors.js';
import type { ApiKey } from '../db/entities.js';
import { newId } from '../ids.js';
import type { ResolvedGrant, ScopeRow } from './grants.js';
import type { NewKey } from './key-import.js';
import { limitsDetails, usageOf } from './key-fields.js';
import { keyState } from './key-state.js';
import type { KeyView } from './key-types.js';
import { rateLimitsOf, refillOf } from './limits.js';
import type { Principal } from './principal.js';

/** A workspace new keys go into, with the scopes their grants name, as read. */
export interface TargetWorkspace {
  id: string;
  keyPrefix: string;
  scopes: ScopeRow[];
  /** Read from the database for this call, rather than remembered from an earlier one. */
  fresh: boolean;
}

const READ_TARGET_SQL = `
  select w.key_prefix,
         coalesce((select json_agg(json_build_object('id', s.id, 'name', s.name, 'actions', s.actions))
                     from scopes s
                    where s.workspace_id = w.id and s.name = any($2::text[])), '[]') as scopes
    from workspaces w
   where w.id = $1 and w.delete_time is null`;

// One row of $1 per write (w: its index): the workspace and what the write's
// keys were made with. A write's rows go in only if all of that still holds.
const WRITE_KEYS_SQL = `
  with t as (
    select * from jsonb_to_recordset($1::jsonb) as t(w int, workspace_id uuid, key_prefix text, scopes jsonb, actor text, action text, request_id text)
  ), ws as (
    select id, key_prefix from workspaces where id in (select workspace_id from t) and delete_time is null for share
  ), seen as (
    select t.w, s.id, s.name, s.actions from t cross join lateral jsonb_to_recordset(t.scopes) as s(id uuid, name text, actions jsonb)
  ), sc as (
    select id, name, actions from scopes where id in (select id from seen) for share
  ), verdict as (
    select t.w, ws.key_prefix,
           ws.key_prefix is not distinct from t.key_prefix
           and not exists (select 1 from seen left join sc on sc.id = seen.id and sc.name = seen.name and sc.actions = seen.actions
                            where seen.w = t.w and sc.id is null) as go
      from t left join ws on ws.id = t.workspace_id
  ), go as (
    select w from verdict where go
  ), r as materialized (
    -- The rows of the writes that go, the document parsed once, with what
    -- their write has in common.
    select r.*, t.workspace_id, t.actor, t.action, t.request_id
      from jsonb_to_recordset($2::jsonb) as r(w int, id uuid, customer_id text, name text, description text, enabled boolean,
                                            masked_key text, start text, metadata jsonb, expire_time timestamptz,
                                            rate_limits jsonb, remaining_uses bigint, refill_amount bigint, refill_interval text,
                                            refill_day smallint, last_refill_time timestamptz, hash text, grants jsonb,
                                            audit_id uuid, details jsonb)
      join t on t.w = r.w
     where r.w in (select w from go)
  ), new_keys as (
    insert into api_keys (id, workspace_id, customer_id, name, description, enabled, masked_key, start, metadata, expire_time,
                          last_used_time, revoke_time, create_time, update_time, rate_limits, remaining_uses, refill_amount,
                          refill_interval, refill_day, last_refill_time, version)
    select id, workspace_id, customer_id, name, description, enabled, masked_key, start, metadata, expire_time,
           null, null, $3::timestamptz, $3::timestamptz, rate_limits, remaining_uses, refill_amount,
           refill_interval, refill_day, last_refill_time, 1
      from r
  ), new_secrets as (
    insert into api_key_secrets (hash, api_key_id, expire_time, create_time)
    select hash, id, null, $3::timestamptz from r
  ), new_grants as (
    insert into api_key_grants (api_key_id, scope_id, actions)
    select r.id, g.scope_id, g.actions from r cross join lateral jsonb_to_recordset(r.grants) as g(scope_id uuid, actions jsonb)
  ), new_audit as (
    insert into audit_events (id, time, actor, action, resource_type, resource_id, workspace_id, details, request_id, count, aggregate_key)
    select audit_id, $3::timestamptz, actor, action, 'key', id, workspace_id, details, request_id, 1, null from r
  ), notified as (
    select pg_notify($5::text, payload) from unnest($4::text[]) as payload where exists (select 1 from go)
  )
  select w, key_prefix, go, (select count(*) from notified) as notified from verdict`;

export interface KeyWrite {
  principal: Principal;
  workspace: TargetWorkspace;
  keys: NewKey[];
  /** Each key's grants, resolved against workspace.scopes. */
  grants: ResolvedGrant[][];
  /** The audit action: key.create or key.import. */
  action: string;
  /**
   * pg_notify payloads on the change channel (ChangeBus.payloads), sent with
   * the statement if it writes any keys: another write's in it may not be
   * written, which costs a replica's filter a false positive, never a miss.
   */
  notices: string[];
}

/** The most workspaces a KeyWriter remembers. */
const MAX_REMEMBERED = 10_000;
/** Statements writing keys at once; writes that come meanwhile wait and go together in the next. */
const MAX_IN_FLIGHT = 2;
/** The most single-key writes in one statement. */
const MAX_BATCH = 100;

type Written = KeyView[] | 'workspace_gone' | 'changed';

interface Pending {
  write: KeyWrite;
  resolve(r: Written): void;
  reject(e: unknown): void;
}

export class KeyWriter {
  /** Each workspace as last read: its key prefix and the scopes read, by name. */
  private readonly known = new Map<string, { keyPrefix: string; scopes: Map<string, ScopeRow> }>();
  private readonly queued: Pending[] = [];
  private inFlight = 0;
  /** Statements that wrote keys, and the writes they carried. */
  readonly stats = { statements: 0, writes: 0 };

  constructor(private readonly db: () => Promise<QueryPool>) {}

  /**
   * Workspace `id` with its scopes of these names (those it has): as
   * remembered if it knows them all and `fresh` is not asked for, else read;
   * null if it is not live.
   */
  async target(id: string, scopeNames: string[], fresh: boolean): Promise<TargetWorkspace | null> {
    const known = this.known.get(id);
    if (!fresh && known && scopeNames.every((n) => known.scopes.has(n))) {
      return { id, keyPrefix: known.keyPrefix, scopes: scopeNames.map((n) => known.scopes.get(n)!), fresh: false };
    }
    const db = await this.db();
    const { rows } = await db.query<{ key_prefix: string; scopes: ScopeRow[] }>({
      name: 'keyward_read_target',
      text: READ_TARGET_SQL,
      values: [id, scopeNames],
    });
    const row = rows[0];
    if (!row) {
      this.known.delete(id);
      return null;
    }
    const scopes = new Map(known?.keyPrefix === row.key_prefix ? known.scopes : []);
    for (const s of row.scopes) scopes.set(s.name, s);
    this.known.delete(id);
    if (this.known.size >= MAX_REMEMBERED) this.known.delete(this.known.keys().next().value!);
    this.known.set(id, { keyPrefix: row.key_prefix, scopes });
    return { id, keyPrefix: row.key_prefix, scopes: row.scopes, fresh: true };
  }

  /**
   * Writes the keys, or nothing if the workspace is gone (`workspace_gone`)
   * or its key prefix or a scope of workspace.scopes is not what the keys
   * were made with (`changed`: ask target() for a fresh one and retry).
   *
   * Single keys (CreateKey) written while MAX_IN_FLIGHT statements run go
   * together in the next (group commit): one statement and one commit for
   * many. A write of several keys (ImportKeys) goes alone, so that only it
   * fails if one of its secrets already exists.
   */
  write(write: KeyWrite): Promise<Written> {
    return new Promise((resolve, reject) => {
      this.queued.push({ write, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    while (this.queued.length > 0 && this.inFlight < MAX_IN_FLIGHT) {
      let n = 1;
      if (this.queued[0]!.write.keys.length === 1) {
        while (n < this.queued.length && n < MAX_BATCH && this.queued[n]!.write.keys.length === 1) n++;
      }
      const batch = this.queued.splice(0, n);
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        this.flush();
      });
    }
  }

  private async run(batch: Pending[]): Promise<void> {
    try {
      const outcomes = await this.writeAll(batch.map((p) => p.write));
      batch.forEach((p, i) => p.resolve(outcomes[i]!));
    } catch (e) {
      // A statement the database refused fails only the write that caused it: each goes again alone.
      if (batch.length > 1 && !isConnectionError(e)) {
        for (const p of batch) await this.run([p]);
        return;
      }
      for (const p of batch) p.reject(e);
    }
  }

  private async writeAll(writes: KeyWrite[]): Promise<Written[]> {
    const now = new Date();
    const at = now.getTime();
    const keysOf = writes.map((w) =>
      w.keys.map(
        // Object.assign rather than a spread, which costs V8 microseconds a key.
        (k): ApiKey =>
          Object.assign(
            { id: newId(at), workspaceId: w.workspace.id, maskedKey: k.secret.masked, start: k.secret.start, createTime: now, updateTime: now, version: 1 },
            k.columns,
          ),
      ),
    );
    const db = await this.db();
    this.stats.statements++;
    this.stats.writes += writes.length;
    const { rows: verdicts } = await db.query<{ w: number; key_prefix: string | null; go: boolean }>({
      name: 'keyward_write_keys',
      text: WRITE_KEYS_SQL,
      values: [targetsDocument(writes), rowsDocument(writes, keysOf, at), now, writes.flatMap((w) => w.notices), CHANGE_CHANNEL],
    });
    const verdictOf = new Map(verdicts.map((v) => [v.w, v]));
    return writes.map((w, i) => {
      const v = verdictOf.get(i)!;
      if (v.key_prefix === null) {
        this.known.delete(w.workspace.id);
        return 'workspace_gone';
      }
      if (!v.go) return 'changed';
      return keysOf[i]!.map((key, j) => ({
        key,
        grants: w.grants[j]!.map((g) => ({ scope: g.scope.name, actions: g.actions })).sort((a, b) => (a.scope < b.scope ? -1 : 1)),
        state: keyState(key, at),
        rateLimits: rateLimitsOf(key),
        usage: usageOf(key, at),
        refill: refillOf(key),
      }));
    });
  }
}

/** $1 of WRITE_KEYS_SQL: one row per write. */
function targetsDocument(writes: KeyWrite[]): string {
  return JSON.stringify(
    writes.map((w, i) => ({
      w: i,
      workspace_id: w.workspace.id,
      key_prefix: w.workspace.keyPrefix,
      scopes: w.workspace.scopes.map((s) => ({ id: s.id, name: s.name, actions: s.actions })),
      actor: w.principal.actor,
      action: w.action,
      request_id: w.principal.requestId,
    })),
  );
}

/**
 * $2 of WRITE_KEYS_SQL: one row per key. A row leaves out what its write has
 * in common (in targetsDocument) and what is null (a field absent from the
 * document reads as null): 35 % less JSON to write and for PostgreSQL to
 * read. Built outside writeAll, so that its objects are garbage before the
 * statement is waited for.
 */
function rowsDocument(writes: KeyWrite[], keysOf: ApiKey[][], at: number): string {
  const orAbsent = <T>(v: T | null) => v ?? undefined;
  return JSON.stringify(
    writes.flatMap((w, i) =>
      keysOf[i]!.map((r, j) => ({
        w: i,
        id: r.id,
        hash: w.keys[j]!.secret.hash,
        customer_id: r.customerId,
        name: r.name,
        description: r.description,
        enabled: r.enabled,
        masked_key: r.maskedKey,
        start: r.start,
        metadata: r.metadata,
        expire_time: r.expireTime?.toISOString(),
        rate_limits: r.rateLimits,
        remaining_uses: orAbsent(r.remainingUses),
        refill_amount: orAbsent(r.refillAmount),
        refill_interval: orAbsent(r.refillInterval),
        refill_day: orAbsent(r.refillDay),
        last_refill_time: r.lastRefillTime?.toISOString(),
        grants: w.grants[j]!.map((g) => ({ scope_id: g.scope.id, actions: g.actions })),
        audit_id: newId(at),
        details: limitsDetails(r),
      })),
    ),
  );
}
