import { LockMode, type EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import { ApiKey, ApiKeyGrant, ApiKeySecret, Scope, Workspace } from '../db/entities.js';
import { issueApiKey, type IssuedApiKey } from '../credentials/api-key.js';
import { audit } from './audit.js';
import type { Change, ChangeBus } from './changes.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from './errors.js';
import { resolveGrants, resolveWanted, scopeNamesOf, wantedOf, type ResolvedGrant, type Wanted } from './grants.js';
import { checkPortalMask, listedCustomer } from './portal-rules.js';
import { checkImport, inEntry, type ImportItem, type NewKey } from './key-import.js';
import { KeyWriter, type TargetWorkspace } from './key-insert.js';
import type { QueryPool } from '../db/database.js';
import { violatedUnique } from '../db/errors.js';
import {
  checkCustomerId,
  checkDescription,
  checkExpireTime,
  checkName,
  limitsDetails,
  newKeyColumns,
  storedRateLimits,
  usageColumns,
  usageOf,
  workspaceOfNewKey,
  type RelativeExpiry,
} from './key-fields.js';
import { keyState, type KeyState } from './key-state.js';
import type { KeyInput, KeyView } from './key-types.js';

export type { KeyInput, KeyView } from './key-types.js';
import { isId } from '../ids.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, checkMetadata, checkUpdateMask, requireId } from './validate.js';
import { enqueueKeyEvent } from './webhooks.js';
import { findVisibleWorkspace } from './workspaces.js';
import { checkRefill, checkRemainingUses, rateLimitsOf, refillOf } from './limits.js';

const MAX_GRACE_PERIOD_MS = 30 * 24 * 3600 * 1000;
const KEY_MASK = [
  'customer_id',
  'name',
  'description',
  'grants',
  // Another name of grants (ApiKey.scopes): either replaces both.
  'scopes',
  'enabled',
  'metadata',
  'expire_time',
  'rate_limits',
  'remaining_uses',
  'refill',
] as const;

export interface IssuedKey {
  view: KeyView;
  /** The full API key, returned once. */
  secret: string;
}

export interface KeyFilter {
  workspaceId: string;
  customerId: string;
  state?: KeyState;
  /** Only keys with an expire_time before this. */
  expireBefore?: Date;
}

function stateFilter(state: KeyState, now: Date): FilterQuery<ApiKey> {
  const notExpired = { $or: [{ expireTime: null }, { expireTime: { $gt: now } }] };
  switch (state) {
    case 'revoked':
      return { revokeTime: { $ne: null } };
    case 'expired':
      return { revokeTime: null, expireTime: { $lte: now } };
    case 'disabled':
      return { revokeTime: null, enabled: false, ...notExpired };
    case 'active':
      return { revokeTime: null, enabled: true, ...notExpired };
  }
}

/** Loads a key the caller may see in a live workspace, or NOT_FOUND. */
export async function findVisibleKey(em: EntityManager, p: Principal, id: string, opts: { field?: string; lock?: boolean } = {}) {
  requireId(opts.field ?? 'id', id);
  const key = await em.findOne(ApiKey, { id }, opts.lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  if (!key || !p.canSeeKey(key)) throw notFound('key', id);
  // A deleted workspace hides its keys.
  const ws = await em.findOne(Workspace, { id: key.workspaceId, deleteTime: null });
  if (!ws) throw notFound('key', id);
  return { key, ws };
}

export class Keys {
  private readonly writer: KeyWriter;
  /** Statements that wrote new keys, and the creates and imports they carried. */
  get writeStats(): { statements: number; writes: number } {
    return this.writer.stats;
  }

  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
    /** The driver's pool: new keys are written on it, without the ORM (src/domain/key-insert.ts). */
    private readonly db: () => Promise<QueryPool>,
  ) {
    this.writer = new KeyWriter(db);
  }

  private async views(em: EntityManager, keys: ApiKey[]): Promise<KeyView[]> {
    if (keys.length === 0) return [];
    const grants = await em.find(ApiKeyGrant, { apiKeyId: { $in: keys.map((k) => k.id) } });
    const scopeIds = [...new Set(grants.map((g) => g.scopeId))];
    const scopes = scopeIds.length ? await em.find(Scope, { id: { $in: scopeIds } }) : [];
    const scopeName = new Map(scopes.map((s) => [s.id, s.name]));
    const now = Date.now();
    return keys.map((key) => ({
      key,
      grants: grants
        .filter((g) => g.apiKeyId === key.id)
        .map((g) => ({ scope: scopeName.get(g.scopeId)!, actions: g.actions }))
        .sort((a, b) => (a.scope < b.scope ? -1 : 1)),
      state: keyState(key, now),
      rateLimits: rateLimitsOf(key),
      usage: usageOf(key, now),
      refill: refillOf(key),
    }));
  }

  private async view(em: EntityManager, key: ApiKey): Promise<KeyView> {
    return (await this.views(em, [key]))[0]!;
  }

  /** Gives the key the secret `issued` (its hash stored, its masked form and start on the key); returns the plaintext. */
  private addSecret(em: EntityManager, key: ApiKey, issued: IssuedApiKey): string {
    em.create(ApiKeySecret, { hash: issued.hash, apiKeyId: key.id, expireTime: null });
    key.maskedKey = issued.masked;
    key.start = issued.start;
    return issued.plaintext;
  }

  /** `expiresIn`: an expiry relative to now instead of `input.expireTime`. */
  async create(p: Principal, keyInput: KeyInput, opts: { expiresIn?: RelativeExpiry } = {}): Promise<IssuedKey> {
    p.requireScope('api_keys:write');
    const input = { ...keyInput, workspaceId: workspaceOfNewKey(p, keyInput.workspaceId) };
    requireId('key.workspace_id', input.workspaceId);
    p.requireWorkspace(input.workspaceId);
    const columns = newKeyColumns(p, input, Date.now(), opts.expiresIn);
    const wanted = wantedOf(input, 'key.grants', 'key.scopes');
    let plaintext = '';
    const [view] = await this.write(p, input.workspaceId, [wanted], 'key.create', (ws) => {
      const issued = issueApiKey(ws.keyPrefix);
      plaintext = issued.plaintext;
      return [{ columns, wanted, secret: issued }];
    });
    return { view: view!, secret: plaintext };
  }

  /**
   * Brings existing keys in, all or none: each with its secret as it is (any
   * format) or only its SHA-256. Errors name the entry (`keys[3].key.name`).
   */
  async import(p: Principal, workspaceId: string, items: ImportItem[]): Promise<KeyView[]> {
    p.requireScope('api_keys:write');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    const now = Date.now();
    const prepared = checkImport(items, (item, i) => ({
      columns: inEntry(i, () => {
        if (item.key.workspaceId !== '' && item.key.workspaceId !== workspaceId) {
          throw invalidArgument('key.workspace_id', "must be empty or the request's workspace_id");
        }
        return newKeyColumns(p, item.key, now);
      }),
      // Named in full here: unknown scopes are found later, once the workspace's are read.
      wanted: wantedOf(item.key, `keys[${i}].key.grants`, `keys[${i}].key.scopes`),
    }));
    try {
      return await this.write(
        p,
        workspaceId,
        prepared.map((k) => k.wanted),
        'key.import',
        () => prepared,
      );
    } catch (e) {
      if (violatedUnique(e) !== 'api_key_secrets_pkey') throw e;
      const db = await this.db();
      const { rows } = await db.query<{ hash: string }>({
        text: 'select hash from api_key_secrets where hash = any($1::text[]) limit 1',
        values: [prepared.map((k) => k.secret.hash)],
      });
      const i = prepared.findIndex((k) => k.secret.hash === rows[0]?.hash);
      throw alreadyExists(`keys[${Math.max(i, 0)}]: a key with this secret already exists`);
    }
  }

  /**
   * Writes new keys into a live workspace the caller may see (else
   * NOT_FOUND), their grants resolved against its scopes, and
   * announces their secrets to every replica's membership filter (this one's
   * before the call returns). `make` builds the keys for the workspace as
   * known; if that turns out stale (a scope or the key prefix changed), the
   * workspace is read again and the keys made again.
   */
  private async write(
    p: Principal,
    workspaceId: string,
    wanted: Map<string, Wanted>[],
    action: string,
    make: (ws: TargetWorkspace) => NewKey[],
  ): Promise<KeyView[]> {
    const names = scopeNamesOf(wanted);
    let fresh = false;
    for (let attempt = 1; ; attempt++) {
      const ws = p.canSee(workspaceId) ? await this.writer.target(workspaceId, names, fresh) : null;
      if (!ws) throw notFound('workspace', workspaceId);
      let grants: ResolvedGrant[][];
      try {
        grants = resolveWanted(ws.scopes, wanted);
      } catch (e) {
        // Remembered scopes may lack an action declared since: only what was just read is an answer.
        if (ws.fresh) throw e;
        fresh = true;
        continue;
      }
      const keys = make(ws);
      // A notification carries at most 8,000 bytes: 100 hashes each.
      const changes: Change[] = [];
      for (let i = 0; i < keys.length; i += 100) changes.push({ secrets: keys.slice(i, i + 100).map((k) => k.secret.hash) });
      const written = await this.writer.write({ principal: p, workspace: ws, keys, grants, action, notices: this.changes.payloads(changes) });
      if (written === 'workspace_gone') throw notFound('workspace', workspaceId);
      if (written !== 'changed') {
        for (const c of changes) this.changes.deliver(c);
        return written;
      }
      if (attempt >= 3) throw failedPrecondition("the workspace's scopes kept changing while the keys were written; try again");
      fresh = true;
    }
  }

  async get(p: Principal, id: string): Promise<KeyView> {
    p.requireScope('api_keys:read');
    const em = this.orm.em.fork();
    const { key } = await findVisibleKey(em, p, id);
    return this.view(em, key);
  }

  async list(p: Principal, filter: KeyFilter, page: PageRequest): Promise<Page<KeyView>> {
    p.requireScope('api_keys:read');
    requireId('workspace_id', filter.workspaceId);
    p.requireWorkspace(filter.workspaceId);
    filter = { ...filter, customerId: listedCustomer(p, checkLength('customer_id', filter.customerId, 255)) };
    const cursor = openCursor(page, filter, isId);
    const em = this.orm.em.fork();
    await findVisibleWorkspace(em, p, filter.workspaceId, 'workspace_id');
    const where: FilterQuery<ApiKey>[] = [{ workspaceId: filter.workspaceId }];
    if (filter.customerId !== '') where.push({ customerId: filter.customerId });
    if (filter.state) where.push(stateFilter(filter.state, new Date()));
    if (filter.expireBefore) where.push({ expireTime: { $ne: null, $lt: filter.expireBefore } });
    if (cursor.after) where.push({ id: { $gt: cursor.after } });
    const rows = await em.find(ApiKey, { $and: where }, { orderBy: { id: 'asc' }, limit: cursor.limit });
    const page_ = closePage(rows, cursor, filter, (k) => k.id);
    return { items: await this.views(em, page_.items), nextPageToken: page_.nextPageToken };
  }

  async update(p: Principal, id: string, input: KeyInput, maskPaths: readonly string[]): Promise<KeyView> {
    p.requireScope('api_keys:write');
    const mask = checkUpdateMask(maskPaths, KEY_MASK);
    checkPortalMask(p, mask);
    const now = Date.now();
    return this.changes.transaction(this.orm.em, async (em, report) => {
      const { key } = await findVisibleKey(em, p, id, { field: 'key.id', lock: true });
      if (key.revokeTime) throw failedPrecondition('the key is revoked; a revoked key cannot be changed');
      if (mask.has('customer_id')) key.customerId = checkCustomerId(input.customerId);
      if (mask.has('name')) key.name = checkName(input.name);
      if (mask.has('description')) key.description = checkDescription(input.description);
      if (mask.has('enabled')) {
        if (input.enabled === undefined) throw invalidArgument('key.enabled', 'must be set when update_mask names it');
        key.enabled = input.enabled;
      }
      if (mask.has('metadata')) key.metadata = checkMetadata('key.metadata', input.metadata);
      if (mask.has('expire_time')) key.expireTime = checkExpireTime(input.expireTime, now);
      if (mask.has('grants') || mask.has('scopes')) {
        const grants = await resolveGrants(em, key.workspaceId, input);
        await em.nativeDelete(ApiKeyGrant, { apiKeyId: key.id });
        for (const g of grants) em.create(ApiKeyGrant, { apiKeyId: key.id, scopeId: g.scope.id, actions: g.actions });
      }
      if (mask.has('rate_limits')) {
        key.rateLimits = storedRateLimits(input.rateLimits);
      }
      if (mask.has('remaining_uses') || mask.has('refill')) {
        // What is not in the mask stays, with any refill due by now applied.
        const current = usageOf(key, now);
        const uses = mask.has('remaining_uses') ? checkRemainingUses('key.remaining_uses', input.remainingUses) : (current?.remainingUses ?? null);
        const refill = mask.has('refill') ? checkRefill('key.refill', input.refill) : refillOf(key);
        Object.assign(key, usageColumns(uses, refill, now));
      }
      key.updateTime = new Date();
      audit(em, p, 'key.update', { type: 'key', id, workspaceId: key.workspaceId }, { update_mask: [...mask], ...limitsDetails(key) });
      report({ keys: [id] });
      await em.flush();
      return this.view(em, key);
    });
  }

  /**
   * Gives the key a new secret. Secrets still valid keep verifying until
   * now + grace (an earlier expiry they already have stands).
   */
  async rotate(p: Principal, id: string, graceMs: number): Promise<IssuedKey> {
    p.requireScope('api_keys:write');
    if (!Number.isFinite(graceMs) || graceMs < 0) throw invalidArgument('grace_period', 'must not be negative');
    if (graceMs > MAX_GRACE_PERIOD_MS) throw invalidArgument('grace_period', 'must be at most 30 days');
    return this.changes.transaction(this.orm.em, async (em, report) => {
      const { key, ws } = await findVisibleKey(em, p, id, { lock: true });
      if (key.revokeTime) throw failedPrecondition('the key is revoked; a revoked key cannot be rotated');
      const now = new Date();
      const until = new Date(now.getTime() + graceMs);
      // Drop secrets already past their grace, then end the others at `until`.
      await em.nativeDelete(ApiKeySecret, { apiKeyId: id, expireTime: { $lte: now } });
      if (graceMs === 0) {
        await em.nativeDelete(ApiKeySecret, { apiKeyId: id });
      } else {
        await em.nativeUpdate(ApiKeySecret, { apiKeyId: id, $or: [{ expireTime: null }, { expireTime: { $gt: until } }] }, { expireTime: until });
      }
      const issued = issueApiKey(ws.keyPrefix);
      const secret = this.addSecret(em, key, issued);
      key.updateTime = now;
      audit(em, p, 'key.rotate', { type: 'key', id, workspaceId: key.workspaceId });
      await enqueueKeyEvent(em, 'key.rotated', key, { previous_secret_expire_time: until.toISOString() });
      report({ keys: [id], secrets: [issued.hash] });
      await em.flush();
      return { view: await this.view(em, key), secret };
    });
  }

  async revoke(p: Principal, id: string): Promise<KeyView> {
    p.requireScope('api_keys:write');
    return this.changes.transaction(this.orm.em, async (em, report) => {
      const { key } = await findVisibleKey(em, p, id, { lock: true });
      if (!key.revokeTime) {
        key.revokeTime = new Date();
        key.updateTime = key.revokeTime;
        audit(em, p, 'key.revoke', { type: 'key', id, workspaceId: key.workspaceId });
        await enqueueKeyEvent(em, 'key.revoked', key);
        report({ keys: [id] });
        await em.flush();
      }
      return this.view(em, key);
    });
  }

  async delete(p: Principal, id: string): Promise<void> {
    p.requireScope('api_keys:write');
    await this.changes.transaction(this.orm.em, async (em, report) => {
      const { key } = await findVisibleKey(em, p, id, { lock: true });
      em.remove(key);
      audit(em, p, 'key.delete', { type: 'key', id, workspaceId: key.workspaceId });
      report({ keys: [id] });
      await em.flush();
    });
  }
}
