import type { EntityManager } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import { Scope, Workspace } from '../db/entities.js';
import { violatedUnique } from '../db/errors.js';
import { inTransaction } from '../db/transaction.js';
import { audit } from './audit.js';
import type { ChangeBus } from './changes.js';
import { alreadyExists, notFound } from './errors.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, checkPattern, checkUpdateMask, requireId } from './validate.js';
import { findVisibleWorkspace } from './workspaces.js';

export const SCOPE_NAME_RE = /^[a-z][a-z0-9_.-]{0,63}$/;
const SCOPE_MASK = ['name', 'description'] as const;

export interface ScopeInput {
  workspaceId: string;
  name: string;
  description: string;
}

const checkName = (name: string) => checkPattern('scope.name', name, SCOPE_NAME_RE, '[a-z][a-z0-9_.-]{0,63}');
const checkDescription = (d: string) => checkLength('scope.description', d, 1000);

function nameTaken(e: unknown, name: string): Error {
  return violatedUnique(e) !== undefined
    ? alreadyExists(`scope.name: the workspace already has a scope named ${JSON.stringify(name)}`)
    : (e as Error);
}

export class Scopes {
  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
  ) {}

  async create(p: Principal, input: ScopeInput): Promise<Scope> {
    p.requireScope('workspace_scopes:write');
    requireId('scope.workspace_id', input.workspaceId);
    p.requireWorkspace(input.workspaceId);
    const name = checkName(input.name);
    const description = checkDescription(input.description);
    try {
      return await inTransaction(this.orm.em, async (em) => {
        // Held until commit: a concurrent DeleteWorkspace waits, or has committed and this finds no workspace.
        await findVisibleWorkspace(em, p, input.workspaceId, 'scope.workspace_id', 'share');
        const scope = em.create(Scope, { workspaceId: input.workspaceId, name, description });
        audit(em, p, 'scope.create', { type: 'scope', id: scope.id, workspaceId: scope.workspaceId });
        await em.flush();
        return scope;
      });
    } catch (e) {
      throw nameTaken(e, name);
    }
  }

  private async findVisible(em: EntityManager, p: Principal, id: string, field = 'id'): Promise<Scope> {
    requireId(field, id);
    const scope = await em.findOne(Scope, { id });
    if (!scope || !p.canSee(scope.workspaceId)) throw notFound('scope', id);
    // A deleted workspace hides its scopes.
    if (!(await em.findOne(Workspace, { id: scope.workspaceId, deleteTime: null }))) throw notFound('scope', id);
    return scope;
  }

  async get(p: Principal, id: string): Promise<Scope> {
    p.requireScope('workspace_scopes:read');
    return this.findVisible(this.orm.em.fork(), p, id);
  }

  async list(p: Principal, workspaceId: string, page: PageRequest): Promise<Page<Scope>> {
    p.requireScope('workspace_scopes:read');
    requireId('workspace_id', workspaceId);
    p.requireWorkspace(workspaceId);
    const cursor = openCursor(page, { workspaceId }, (name) => SCOPE_NAME_RE.test(name));
    const em = this.orm.em.fork();
    await findVisibleWorkspace(em, p, workspaceId, 'workspace_id');
    const rows = await em.find(
      Scope,
      { workspaceId, ...(cursor.after ? { name: { $gt: cursor.after } } : {}) },
      { orderBy: { name: 'asc' }, limit: cursor.limit },
    );
    return closePage(rows, cursor, { workspaceId }, (s) => s.name);
  }

  async update(p: Principal, id: string, input: ScopeInput, maskPaths: readonly string[]): Promise<Scope> {
    p.requireScope('workspace_scopes:write');
    const mask = checkUpdateMask(maskPaths, SCOPE_MASK);
    const name = mask.has('name') ? checkName(input.name) : undefined;
    const description = mask.has('description') ? checkDescription(input.description) : undefined;
    try {
      return await this.changes.transaction(this.orm.em, async (em, report) => {
        const scope = await this.findVisible(em, p, id, 'scope.id');
        // A rename changes the permission strings of every key granted the scope.
        if (name !== undefined && name !== scope.name) report({ workspace: scope.workspaceId });
        scope.name = name ?? scope.name;
        scope.description = description ?? scope.description;
        audit(em, p, 'scope.update', { type: 'scope', id, workspaceId: scope.workspaceId });
        await em.flush();
        return scope;
      });
    } catch (e) {
      throw nameTaken(e, name ?? '');
    }
  }

  /** Deletes the scope; the foreign key removes it from every key's grants. */
  async delete(p: Principal, id: string): Promise<void> {
    p.requireScope('workspace_scopes:write');
    await this.changes.transaction(this.orm.em, async (em, report) => {
      const scope = await this.findVisible(em, p, id);
      em.remove(scope);
      audit(em, p, 'scope.delete', { type: 'scope', id, workspaceId: scope.workspaceId });
      report({ workspace: scope.workspaceId });
      await em.flush();
    });
  }
}
