// New keys written in bulk: their rows, secrets, grants and audit records in
// four statements whatever their number (each takes its rows as one JSON
// document, jsonb_to_recordset), and the keys as callers see them built from
// what was written, without reading them back. Shared by CreateKey (one key)
// and ImportKeys (up to 1,000).
import type { EntityManager } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { ApiKey } from '../db/entities.js';
import { newId } from '../ids.js';
import type { ResolvedGrant } from './grants.js';
import type { NewKey } from './key-import.js';
import { limitsDetails, usageOf } from './key-fields.js';
import { keyState } from './key-state.js';
import type { KeyView } from './key-types.js';
import { rateLimitsOf, refillOf } from './limits.js';
import type { Principal } from './principal.js';

const INSERT_KEYS_SQL = `
  insert into api_keys (id, workspace_id, customer_id, name, description, enabled, masked_key, start, metadata, expire_time,
                        last_used_time, revoke_time, create_time, update_time, rate_limits, remaining_uses, refill_amount,
                        refill_interval, refill_day, last_refill_time, version)
  select id, workspace_id, customer_id, name, description, enabled, masked_key, start, metadata, expire_time,
         null, null, create_time, create_time, rate_limits, remaining_uses, refill_amount,
         refill_interval, refill_day, last_refill_time, 1
    from jsonb_to_recordset(?::jsonb) as r(id uuid, workspace_id uuid, customer_id text, name text, description text, enabled boolean,
                                           masked_key text, start text, metadata jsonb, expire_time timestamptz, create_time timestamptz,
                                           rate_limits jsonb, remaining_uses bigint, refill_amount bigint, refill_interval text,
                                           refill_day smallint, last_refill_time timestamptz)`;

const INSERT_SECRETS_SQL = `
  insert into api_key_secrets (hash, api_key_id, expire_time, create_time)
  select hash, api_key_id, null, create_time from jsonb_to_recordset(?::jsonb) as r(hash text, api_key_id uuid, create_time timestamptz)`;

const INSERT_GRANTS_SQL = `
  insert into api_key_grants (api_key_id, scope_id, actions)
  select api_key_id, scope_id, actions from jsonb_to_recordset(?::jsonb) as r(api_key_id uuid, scope_id uuid, actions jsonb)`;

const INSERT_AUDIT_SQL = `
  insert into audit_events (id, time, actor, action, resource_type, resource_id, workspace_id, details, request_id, count, aggregate_key)
  select id, time, actor, action, 'key', resource_id, workspace_id, details, request_id, 1, null
    from jsonb_to_recordset(?::jsonb) as r(id uuid, time timestamptz, actor text, action text, resource_id text, workspace_id uuid,
                                           details jsonb, request_id text)`;

/** Writes `keys` (with `grants[i]` each) into the workspace; audited as `action`. */
export async function insertKeys(
  em: EntityManager,
  p: Principal,
  workspaceId: string,
  keys: NewKey[],
  grants: ResolvedGrant[][],
  action: string,
): Promise<KeyView[]> {
  const sql = em as SqlEntityManager;
  const now = new Date();
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  const rows = keys.map((k) =>
    // Not persisted by the unit of work: the statements below write it.
    em.create(
      ApiKey,
      { ...k.columns, id: newId(now.getTime()), workspaceId, maskedKey: k.secret.masked, start: k.secret.start, createTime: now, updateTime: now, version: 1 },
      { persist: false },
    ),
  );
  await sql.execute(INSERT_KEYS_SQL, [
    JSON.stringify(
      rows.map((r) => ({
        id: r.id,
        workspace_id: workspaceId,
        customer_id: r.customerId,
        name: r.name,
        description: r.description,
        enabled: r.enabled,
        masked_key: r.maskedKey,
        start: r.start,
        metadata: r.metadata,
        expire_time: iso(r.expireTime ?? null),
        create_time: iso(now),
        rate_limits: r.rateLimits,
        remaining_uses: r.remainingUses,
        refill_amount: r.refillAmount,
        refill_interval: r.refillInterval,
        refill_day: r.refillDay,
        last_refill_time: iso(r.lastRefillTime ?? null),
      })),
    ),
  ]);
  await sql.execute(INSERT_SECRETS_SQL, [JSON.stringify(rows.map((r, i) => ({ hash: keys[i]!.secret.hash, api_key_id: r.id, create_time: iso(now) })))]);
  const grantRows = rows.flatMap((r, i) => grants[i]!.map((g) => ({ api_key_id: r.id, scope_id: g.scope.id, actions: g.actions })));
  if (grantRows.length > 0) await sql.execute(INSERT_GRANTS_SQL, [JSON.stringify(grantRows)]);
  await sql.execute(INSERT_AUDIT_SQL, [
    JSON.stringify(
      rows.map((r) => ({
        id: newId(now.getTime()),
        time: iso(now),
        actor: p.actor,
        action,
        resource_id: r.id,
        workspace_id: workspaceId,
        details: limitsDetails(r),
        request_id: p.requestId,
      })),
    ),
  ]);
  const at = now.getTime();
  return rows.map((key, i) => ({
    key,
    grants: grants[i]!.map((g) => ({ scope: g.scope.name, actions: g.actions })).sort((a, b) => (a.scope < b.scope ? -1 : 1)),
    state: keyState(key, at),
    rateLimits: rateLimitsOf(key),
    usage: usageOf(key, at),
    refill: refillOf(key),
  }));
}
