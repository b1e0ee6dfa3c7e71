import type { EntityManager, FilterQuery } from '@mikro-orm/core';
import type { MikroORM } from '@mikro-orm/postgresql';
import { AuditEvent } from '../db/entities.js';
import { isId } from '../ids.js';
import { closePage, openCursor, type Page, type PageRequest } from './paging.js';
import type { Principal } from './principal.js';
import { checkLength, checkTimeOrder, requireId } from './validate.js';

/**
 * Adds an audit record to the unit of work, so it commits in the same
 * transaction as the change it describes: who (the SDK key id, or `cli`),
 * what (`key.revoke`), which resource, when, and the request id of the RPC.
 */
export function audit(
  em: EntityManager,
  principal: Principal,
  action: string,
  resource: { type: string; id: string; workspaceId?: string | null },
  /** What the change set, where it matters later (e.g. a key's limits). */
  details?: Record<string, unknown>,
): void {
  em.create(AuditEvent, {
    actor: principal.actor,
    action,
    resourceType: resource.type,
    resourceId: resource.id,
    workspaceId: resource.workspaceId ?? null,
    details: details ?? null,
    requestId: principal.requestId,
    count: 1,
    aggregateKey: null,
  });
}

export interface AuditFilter {
  /** Only events of this workspace, if set. */
  workspaceId: string;
  /** `workspace`, `scope`, `key`, `sdk_key`, `webhook`. */
  resourceType: string;
  resourceId: string;
  /** An SDK key id, `cli`, or `unauthenticated`. */
  actor: string;
  /** e.g. `key.revoke`, `sdk_key.auth_failed`. */
  action: string;
  startTime: Date | undefined;
  endTime: Date | undefined;
}

const AUDIT_FILTER_MAX = 200;

/** Reads the audit trail, newest first. */
export class AuditLog {
  constructor(private readonly orm: MikroORM) {}

  /**
   * A caller restricted to workspaces sees only events of those workspaces
   * (events without a workspace, such as SDK-key events, are the operator's).
   */
  async list(p: Principal, filter: AuditFilter, page: PageRequest): Promise<Page<AuditEvent>> {
    p.requireScope('audit:read');
    if (filter.workspaceId !== '') {
      requireId('workspace_id', filter.workspaceId);
      p.requireWorkspace(filter.workspaceId);
    }
    checkLength('resource_type', filter.resourceType, AUDIT_FILTER_MAX);
    checkLength('resource_id', filter.resourceId, AUDIT_FILTER_MAX);
    checkLength('actor', filter.actor, AUDIT_FILTER_MAX);
    checkLength('action', filter.action, AUDIT_FILTER_MAX);
    checkTimeOrder(filter.startTime, filter.endTime);
    const visible = p.visibleWorkspaces();
    const bound = { ...filter, visible };
    const cursor = openCursor(page, bound, isId);
    const where: FilterQuery<AuditEvent>[] = [];
    if (filter.workspaceId !== '') where.push({ workspaceId: filter.workspaceId });
    else if (visible) where.push({ workspaceId: { $in: [...visible] } });
    if (filter.resourceType !== '') where.push({ resourceType: filter.resourceType });
    if (filter.resourceId !== '') where.push({ resourceId: filter.resourceId });
    if (filter.actor !== '') where.push({ actor: filter.actor });
    if (filter.action !== '') where.push({ action: filter.action });
    if (filter.startTime) where.push({ time: { $gte: filter.startTime } });
    if (filter.endTime) where.push({ time: { $lt: filter.endTime } });
    if (cursor.after) where.push({ id: { $lt: cursor.after } });
    const rows = await this.orm.em.fork().find(AuditEvent, where.length ? { $and: where } : {}, { orderBy: { id: 'desc' }, limit: cursor.limit });
    return closePage(rows, cursor, bound, (e) => e.id);
  }
}
