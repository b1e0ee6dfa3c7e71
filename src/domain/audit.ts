import type { EntityManager } from '@mikro-orm/core';
import { AuditEvent } from '../db/entities.js';
import type { Principal } from './principal.js';

/**
 * Adds an audit record to the unit of work, so it commits in the same
 * transaction as the change it describes.
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
  });
}
