import { LockMode, type EntityManager, type FilterQuery } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import { ApiKey, ApiKeyGrant, ApiKeySecret, Scope, Workspace } from '../db/entities.js';
import { issueApiKey, type IssuedApiKey } from '../credentials/api-key.js';
import { inTransaction } from '../db/transaction.js';
import { audit } from './audit.js';
import type { ChangeBus } from './changes.js';
import { failedPrecondition, invalidArgument, notFound } from './errors.js';
import { resolveGrants } from './grants.js';
import { checkPortalCreate, checkPortalMask, listedCustomer } from './portal-rules.js';
import { keyState, type KeyState } from './key-state.js';
import type { GrantSpec } from './permissions.js';
import { isId } from '../ids.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, checkMetadata, checkUpdateMask, requireId } from './validate.js';
import { enqueueKeyEvent } from './webhooks.js';
import { findVisibleWorkspace } from './workspaces.js';
import {
  checkRateLimits,
  checkRefill,
  checkRemainingUses,
  rateLimitsOf,
  refillOf,
  usageAt,
  type RateLimitInput,
  type RateLimitSpec,
  type RefillInput,
  type RefillSpec,
  type UsageState,
} from './limits.js';

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

export interface KeyInput {
  workspaceId: string;
  customerId: string;
  name: string;
  description: string;
  grants: GrantSpec[];
  /** Permission strings (ApiKey.scopes), merged with grants. */
  permissions: string[];
  /** Undefined on create means enabled. */
  enabled?: boolean;
  metadata: Record<string, string>;
  expireTime?: Date;
  rateLimits: RateLimitInput[];
  /** Undefined: unlimited. */
  remainingUses?: number;
  /** Undefined: no refill. */
  refill?: RefillInput;
}

/** A key as callers see it: the row, its grants by scope name, and its state. */
export interface KeyView {
  key: ApiKey;
  grants: GrantSpec[];
  state: KeyState;
  rateLimits: RateLimitSpec[];
  /** Remaining uses with any due refill applied; null when unlimited. */
  usage: UsageState | null;
  refill: RefillSpec | null;
}

/** Rate limits as the api_keys column stores them, checked. */
function storedRateLimits(input: RateLimitInput[]) {
  return checkRateLimits('key.rate_limits', input).map((l) => ({ name: l.name, limit: l.limit, duration_ms: l.durationMs }));
}

/** The key's remaining uses with any refill due by `now` applied; null when unlimited. */
function usageOf(key: ApiKey, now: number): UsageState | null {
  if (key.remainingUses === null) return null;
  return usageAt({ remainingUses: Number(key.remainingUses), lastRefillTime: key.lastRefillTime ?? null }, refillOf(key), now);
}

/** The key's limits as audit details. */
function limitsDetails(key: ApiKey) {
  const refill = refillOf(key);
  return {
    rate_limits: key.rateLimits,
    remaining_uses: key.remainingUses,
    refill: refill && { amount: refill.amount, interval: refill.interval, day_of_month: refill.dayOfMonth },
  };
}

/** A key's remaining uses and refill columns, set together; a refill needs remaining uses. Starts a new refill period. */
function usageColumns(remainingUses: number | null, refill: RefillSpec | null, now: number) {
  if (refill !== null && remainingUses === null) throw invalidArgument('key.refill', 'needs remaining_uses: a key without remaining_uses has unlimited uses');
  return {
    remainingUses,
    refillAmount: refill?.amount ?? null,
    refillInterval: refill?.interval ?? null,
    refillDay: refill?.dayOfMonth ?? null,
    lastRefillTime: remainingUses === null ? null : new Date(now),
  };
}

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

const checkCustomerId = (v: string) => checkLength('key.customer_id', v, 255);
const checkName = (v: string) => checkLength('key.name', v, 120);
const checkDescription = (v: string) => checkLength('key.description', v, 1000);

/** The longest relative expiry accepted on create: 100 years (36,500 days). */
const MAX_EXPIRES_IN_MS = 36_500 * 86_400_000;

/** An expiry relative to creation: `expires_in_days` or `expires_in` on CreateKey, named by `field`. */
export interface RelativeExpiry {
  field: string;
  ms: number;
}

/** When a new key expires: its expire_time, or now + a relative expiry (never both). */
function expireTimeOnCreate(t: Date | undefined, relative: RelativeExpiry | undefined, now: number): Date | null {
  if (!relative) return checkExpireTime(t, now);
  if (t) throw invalidArgument(relative.field, 'must not be set together with key.expire_time (set one of them)');
  if (!Number.isFinite(relative.ms) || relative.ms <= 0) throw invalidArgument(relative.field, 'must be positive');
  if (relative.ms > MAX_EXPIRES_IN_MS) throw invalidArgument(relative.field, 'must be at most 36500 days');
  return new Date(now + relative.ms);
}

/**
 * The workspace a new key goes to: the one named, else the caller's only
 * workspace when its SDK key (or portal session) is restricted to exactly one
 * ("scoped to your organization").
 */
function workspaceOfNewKey(p: Principal, named: string): string {
  if (named !== '') return named;
  const visible = p.visibleWorkspaces();
  if (visible?.length === 1) return visible[0]!;
  throw invalidArgument('key.workspace_id', 'is required (it may be left out only by an SDK key restricted to exactly one workspace)');
}

function checkExpireTime(t: Date | undefined, now: number): Date | null {
  if (!t) return null;
  if (Number.isNaN(t.getTime())) throw invalidArgument('key.expire_time', 'is not a valid time');
  if (t.getTime() <= now) throw invalidArgument('key.expire_time', 'must be in the future');
  return t;
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
  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
  ) {}

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
    const now = Date.now();
    const fields = {
      customerId: checkCustomerId(checkPortalCreate(p, input)),
      name: checkName(input.name),
      description: checkDescription(input.description),
      metadata: checkMetadata('key.metadata', input.metadata),
      expireTime: expireTimeOnCreate(input.expireTime, opts.expiresIn, now),
      enabled: input.enabled ?? true,
      rateLimits: storedRateLimits(input.rateLimits),
    };
    const remainingUses = checkRemainingUses('key.remaining_uses', input.remainingUses);
    const refill = checkRefill('key.refill', input.refill);
    return inTransaction(this.orm.em, async (em) => {
      const ws = await findVisibleWorkspace(em, p, input.workspaceId, 'key.workspace_id', 'share');
      const grants = await resolveGrants(em, ws.id, input);
      const issued = issueApiKey(ws.keyPrefix);
      const key = em.create(ApiKey, {
        ...fields,
        workspaceId: ws.id,
        maskedKey: issued.masked,
        start: issued.start,
        lastUsedTime: null,
        revokeTime: null,
        ...usageColumns(remainingUses, refill, now),
      });
      // The entities carry plain id columns, not relations, so the unit of work
      // cannot order inserts by foreign key: write the key before its secret
      // and grants.
      await em.flush();
      const secret = this.addSecret(em, key, issued);
      for (const g of grants) em.create(ApiKeyGrant, { apiKeyId: key.id, scopeId: g.scope.id, actions: g.actions });
      audit(em, p, 'key.create', { type: 'key', id: key.id, workspaceId: ws.id }, limitsDetails(key));
      await em.flush();
      return { view: await this.view(em, key), secret };
    });
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
      const secret = this.addSecret(em, key, issueApiKey(ws.keyPrefix));
      key.updateTime = now;
      audit(em, p, 'key.rotate', { type: 'key', id, workspaceId: key.workspaceId });
      await enqueueKeyEvent(em, 'key.rotated', key, { previous_secret_expire_time: until.toISOString() });
      report({ keys: [id] });
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
