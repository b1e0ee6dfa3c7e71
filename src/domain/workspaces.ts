import { LockMode, type EntityManager } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import { ApiKey, Workspace } from '../db/entities.js';
import { violatedUnique } from '../db/errors.js';
import { KEY_PREFIX_RE, KEY_PREFIX_SHAPE } from '../credentials/api-key.js';
import { audit } from './audit.js';
import type { ChangeBus } from './changes.js';
import { alreadyExists, notFound, permissionDenied } from './errors.js';
import { isId } from '../ids.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, checkPattern, checkUpdateMask, requireId } from './validate.js';

const DEFAULT_KEY_PREFIX = 'kw';
const WORKSPACE_MASK = ['name', 'key_prefix'] as const;

export interface WorkspaceInput {
  name: string;
  keyPrefix: string;
}

function checkName(name: string): string {
  return checkLength('workspace.name', name, 120, { required: true });
}

function checkKeyPrefix(prefix: string): string {
  return checkPattern('workspace.key_prefix', prefix, KEY_PREFIX_RE, KEY_PREFIX_SHAPE);
}

function nameTaken(e: unknown, name: string): Error {
  return violatedUnique(e) !== undefined ? alreadyExists(`workspace.name: a workspace named ${JSON.stringify(name)} already exists`) : (e as Error);
}

/**
 * How a transaction holds the workspace it loaded until it ends: `share` for a
 * write of something inside the workspace (a key, a scope, a webhook), so a
 * delete waits for it; `update` for the delete itself, which waits for those
 * writes and makes later ones find no workspace (Postgres re-reads the locked
 * row, and its delete_time, once the lock is granted).
 */
export type WorkspaceLock = 'share' | 'update';

const LOCK_MODES = { share: LockMode.PESSIMISTIC_READ, update: LockMode.PESSIMISTIC_WRITE } as const;

/**
 * Loads a live workspace the caller may see, or throws NOT_FOUND: one that
 * does not exist and one the caller may not see are indistinguishable. With
 * `lock`, `em` must be in a transaction.
 */
export async function findVisibleWorkspace(em: EntityManager, p: Principal, id: string, field = 'id', lock?: WorkspaceLock): Promise<Workspace> {
  requireId(field, id);
  const ws = p.canSee(id) ? await em.findOne(Workspace, { id, deleteTime: null }, lock ? { lockMode: LOCK_MODES[lock] } : {}) : null;
  if (!ws) throw notFound('workspace', id);
  return ws;
}

export class Workspaces {
  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
  ) {}

  async create(p: Principal, input: WorkspaceInput): Promise<Workspace> {
    p.requireScope('workspace:write');
    if (p.restricted) throw permissionDenied('an SDK key restricted to workspaces cannot create workspaces');
    const name = checkName(input.name);
    const keyPrefix = input.keyPrefix === '' ? DEFAULT_KEY_PREFIX : checkKeyPrefix(input.keyPrefix);
    const em = this.orm.em.fork();
    const ws = em.create(Workspace, { name, keyPrefix });
    audit(em, p, 'workspace.create', { type: 'workspace', id: ws.id, workspaceId: ws.id });
    try {
      await em.flush();
    } catch (e) {
      throw nameTaken(e, name);
    }
    return ws;
  }

  async get(p: Principal, id: string): Promise<Workspace> {
    p.requireScope('workspace:read');
    return findVisibleWorkspace(this.orm.em.fork(), p, id);
  }

  async list(p: Principal, page: PageRequest): Promise<Page<Workspace>> {
    p.requireScope('workspace:read');
    const visible = p.visibleWorkspaces();
    const cursor = openCursor(page, { visible }, isId);
    const rows = await this.orm.em.fork().find(
      Workspace,
      {
        deleteTime: null,
        ...(visible ? { id: { $in: [...visible] } } : {}),
        ...(cursor.after ? { $and: [{ id: { $gt: cursor.after } }] } : {}),
      },
      { orderBy: { id: 'asc' }, limit: cursor.limit },
    );
    return closePage(rows, cursor, { visible }, (w) => w.id);
  }

  async update(p: Principal, id: string, input: WorkspaceInput, maskPaths: readonly string[]): Promise<Workspace> {
    p.requireScope('workspace:write');
    const mask = checkUpdateMask(maskPaths, WORKSPACE_MASK);
    const em = this.orm.em.fork();
    const ws = await findVisibleWorkspace(em, p, id, 'workspace.id');
    if (mask.has('name')) ws.name = checkName(input.name);
    if (mask.has('key_prefix')) ws.keyPrefix = checkKeyPrefix(input.keyPrefix);
    audit(em, p, 'workspace.update', { type: 'workspace', id, workspaceId: id });
    try {
      await em.flush();
    } catch (e) {
      throw nameTaken(e, ws.name);
    }
    return ws;
  }

  /**
   * Marks the workspace deleted and revokes all its keys in one transaction.
   * The workspace row is locked first: writes inside the workspace that hold
   * it (share) commit before, and their keys are revoked here; writes that
   * come after find no workspace.
   */
  async delete(p: Principal, id: string): Promise<void> {
    p.requireScope('workspace:write');
    await this.changes.transaction(this.orm.em, async (em, report) => {
      const ws = await findVisibleWorkspace(em, p, id, 'id', 'update');
      const now = new Date();
      ws.deleteTime = now;
      await em.nativeUpdate(ApiKey, { workspaceId: id, revokeTime: null }, { revokeTime: now, updateTime: now });
      audit(em, p, 'workspace.delete', { type: 'workspace', id, workspaceId: id });
      report({ workspace: id });
    });
  }
}
