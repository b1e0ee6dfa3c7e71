import { LockMode, type EntityManager } from '@mikro-orm/core';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import { Scope, Workspace } from '../db/entities.js';
import { violatedUnique } from '../db/errors.js';
import { inTransaction } from '../db/transaction.js';
import { audit } from './audit.js';
import type { ChangeBus } from './changes.js';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from './errors.js';
import { ACTION_PATTERN, isActionName, MAX_SCOPE_ACTIONS, STANDARD_ACTIONS } from './permissions.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, checkPattern, checkUpdateMask, requireId } from './validate.js';
import { findVisibleWorkspace } from './workspaces.js';

export const SCOPE_NAME_RE = /^[a-z][a-z0-9_.-]{0,63}$/;
const SCOPE_MASK = ['name', 'description', 'actions'] as const;

export interface ScopeInput {
  workspaceId: string;
  name: string;
  description: string;
  /** Empty on create: the standard four. */
  actions: string[];
}

const checkName = (name: string) => checkPattern('scope.name', name, SCOPE_NAME_RE, '[a-z][a-z0-9_.-]{0,63}');
const checkDescription = (d: string) => checkLength('scope.description', d, 1000);

/** Declared actions: each an action name, duplicates dropped, order kept. */
function checkActions(actions: readonly string[]): string[] {
  if (actions.length === 0) throw invalidArgument('scope.actions', 'must name at least one action');
  actions.forEach((a, i) => {
    if (!isActionName(a)) throw invalidArgument(`scope.actions[${i}]`, `must match ${ACTION_PATTERN}`);
  });
  const distinct = [...new Set(actions)];
  if (distinct.length > MAX_SCOPE_ACTIONS) throw invalidArgument('scope.actions', `must have at most ${MAX_SCOPE_ACTIONS} entries`);
  return distinct;
}

/** Removing an action still granted to a live key would change what it may do behind its owner's back. */
async function checkRemovedActions(em: SqlEntityManager, scope: Scope, next: readonly string[]): Promise<void> {
  const removed = scope.actions.filter((a) => !next.includes(a));
  if (removed.length === 0) return;
  const rows = await em.execute<{ action: string }[]>(
    `select a.action from api_key_grants g
       join api_keys k on k.id = g.api_key_id
       cross join jsonb_array_elements_text(g.actions) as a(action)
      where g.scope_id = ? and k.revoke_time is null
        and a.action in (select jsonb_array_elements_text(?::jsonb))
      limit 1`,
    [scope.id, JSON.stringify(removed)],
  );
  if (rows[0]) {
    throw failedPrecondition(`scope.actions: ${scope.name}:${rows[0].action} is still granted to a key that is not revoked; change its grants first`);
  }
}

function nameTaken(e: unknown, name: string): Error {
  return violatedUnique(e) !== undefined ? alreadyExists(`scope.name: the workspace already has a scope named ${JSON.stringify(name)}`) : (e as Error);
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
    const actions = input.actions.length === 0 ? [...STANDARD_ACTIONS] : checkActions(input.actions);
    try {
      return await inTransaction(this.orm.em, async (em) => {
        // Held until commit: a concurrent DeleteWorkspace waits, or has committed and this finds no workspace.
        await findVisibleWorkspace(em, p, input.workspaceId, 'scope.workspace_id', 'share');
        const scope = em.create(Scope, { workspaceId: input.workspaceId, name, description, actions });
        audit(em, p, 'scope.create', { type: 'scope', id: scope.id, workspaceId: scope.workspaceId });
        await em.flush();
        return scope;
      });
    } catch (e) {
      throw nameTaken(e, name);
    }
  }

  /** `lock`: held until commit, against concurrent grants of the scope's actions. */
  private async findVisible(em: EntityManager, p: Principal, id: string, field = 'id', lock = false): Promise<Scope> {
    requireId(field, id);
    const scope = await em.findOne(Scope, { id }, lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
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
    const actions = mask.has('actions') ? checkActions(input.actions) : undefined;
    try {
      return await this.changes.transaction(this.orm.em, async (em, report) => {
        const scope = await this.findVisible(em, p, id, 'scope.id', actions !== undefined);
        // A rename changes the permission strings of every key granted the scope.
        if (name !== undefined && name !== scope.name) report({ workspace: scope.workspaceId });
        scope.name = name ?? scope.name;
        scope.description = description ?? scope.description;
        if (actions !== undefined) {
          await checkRemovedActions(em as SqlEntityManager, scope, actions);
          scope.actions = actions;
        }
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
