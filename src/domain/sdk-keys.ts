import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { SdkKey, Workspace } from '../db/entities.js';
import { formatSdkKey, hashSdkKeySecret, newSdkKeySecret } from '../credentials/sdk-key.js';
import { isId, newId } from '../ids.js';
import { audit } from './audit.js';
import type { ChangeBus } from './changes.js';
import { invalidArgument, notFound, permissionDenied } from './errors.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import { ALL_SCOPES, CLI_PRINCIPAL, isSdkScope, SDK_SCOPES, type Principal } from './principal.js';
import { checkLength, requireId } from './validate.js';

export interface SdkKeyInput {
  name: string;
  scopes: string[];
  workspaceIds: string[];
}

export interface IssuedSdkKey {
  sdkKey: SdkKey;
  /** The full token, `kws_{id}_{secret}`, shown once. */
  token: string;
}

/** Whether the caller may see an SDK key: any, unless restricted; then only keys restricted to its own workspaces. */
function visible(p: Principal, k: SdkKey): boolean {
  return !p.restricted || (k.workspaceIds.length > 0 && k.workspaceIds.every((w) => p.canSee(w)));
}

/**
 * SDK keys: made by the operator with the CLI (as CLI_PRINCIPAL), or over RPC
 * by an SDK key with `sdk_keys:write`, which can hand out no more than it
 * holds: none of its scopes it lacks, and, if it is restricted to workspaces,
 * only keys restricted to some of them.
 */
export class SdkKeys {
  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
  ) {}

  async create(input: SdkKeyInput, p: Principal = CLI_PRINCIPAL): Promise<IssuedSdkKey> {
    p.requireScope('sdk_keys:write');
    const name = checkLength('sdk_key.name', input.name, 120, { required: true });
    if (input.scopes.length === 0) throw invalidArgument('sdk_key.scopes', 'at least one is required');
    for (const s of input.scopes) {
      if (!isSdkScope(s))
        throw invalidArgument('sdk_key.scopes', `unknown scope ${JSON.stringify(s.slice(0, 64))}; use ${ALL_SCOPES} or ${SDK_SCOPES.join(', ')}`);
      if (!p.scopes.has(ALL_SCOPES) && !p.scopes.has(s)) throw permissionDenied(`sdk_key.scopes: the caller may not grant ${s}, which it does not hold`);
    }
    const workspaceIds = [...new Set(input.workspaceIds)];
    if (p.restricted && workspaceIds.length === 0) {
      throw permissionDenied('sdk_key.workspace_ids: an SDK key restricted to workspaces may only create keys restricted to some of them');
    }
    const em = this.orm.em.fork();
    for (const w of workspaceIds) {
      requireId('sdk_key.workspace_ids', w);
      p.requireWorkspace(w);
      if (!(await em.findOne(Workspace, { id: w, deleteTime: null }))) throw notFound('workspace', w);
    }
    const secret = newSdkKeySecret();
    const sdkKey = em.create(SdkKey, {
      id: newId(),
      name,
      secretHash: await hashSdkKeySecret(secret),
      scopes: [...new Set(input.scopes)],
      workspaceIds,
      revokeTime: null,
      lastUsedTime: null,
    });
    audit(em, p, 'sdk_key.create', { type: 'sdk_key', id: sdkKey.id }, { scopes: sdkKey.scopes, workspace_ids: workspaceIds });
    await em.flush();
    return { sdkKey, token: formatSdkKey(sdkKey.id, secret) };
  }

  /** Every SDK key, for the operator's CLI. */
  async list(): Promise<SdkKey[]> {
    return this.orm.em.fork().find(SdkKey, {}, { orderBy: { id: 'asc' } });
  }

  /** The SDK keys the caller may see (see visible()), a page at a time. */
  async listVisible(p: Principal, page: PageRequest): Promise<Page<SdkKey>> {
    p.requireScope('sdk_keys:write');
    const visible = p.visibleWorkspaces() ?? null;
    const cursor = openCursor(page, { visible }, isId);
    const em = this.orm.em.fork() as SqlEntityManager;
    const where = ['true'];
    const params: unknown[] = [];
    if (cursor.after) {
      where.push('id > ?');
      params.push(cursor.after);
    }
    if (visible) {
      // Restricted keys whose workspaces are all the caller's (jsonb containment).
      where.push('jsonb_array_length(workspace_ids) > 0 and workspace_ids <@ ?::jsonb');
      params.push(JSON.stringify(visible));
    }
    const ids = await em.execute<{ id: string }[]>(`select id from sdk_keys where ${where.join(' and ')} order by id limit ?`, [...params, cursor.limit]);
    const rows = ids.length ? await em.find(SdkKey, { id: { $in: ids.map((r) => r.id) } }, { orderBy: { id: 'asc' } }) : [];
    return closePage(rows, cursor, { visible }, (k) => k.id);
  }

  /** The caller's own SDK key. */
  async current(p: Principal): Promise<SdkKey> {
    if (p.portal || p === CLI_PRINCIPAL) throw permissionDenied('only an SDK key can describe itself');
    const row = await this.orm.em.fork().findOne(SdkKey, { id: p.actor });
    if (!row) throw notFound('SDK key', p.actor);
    return row;
  }

  async revoke(id: string, p: Principal = CLI_PRINCIPAL): Promise<SdkKey> {
    p.requireScope('sdk_keys:write');
    requireId('id', id);
    return this.changes.transaction(this.orm.em, async (em, report) => {
      const sdkKey = await em.findOne(SdkKey, { id });
      if (!sdkKey || !visible(p, sdkKey)) throw notFound('SDK key', id);
      if (!sdkKey.revokeTime) {
        sdkKey.revokeTime = new Date();
        audit(em, p, 'sdk_key.revoke', { type: 'sdk_key', id });
        report({ sdkKey: id });
        await em.flush();
      }
      return sdkKey;
    });
  }

  /**
   * On a database that has never had an SDK key, issues one admin key (all
   * scopes) and returns its token so the operator can be shown it once.
   */
  async bootstrapAdmin(): Promise<string | undefined> {
    const count = await this.orm.em.fork().count(SdkKey, {});
    if (count > 0) return undefined;
    return (await this.create({ name: 'admin', scopes: [ALL_SCOPES], workspaceIds: [] })).token;
  }
}
