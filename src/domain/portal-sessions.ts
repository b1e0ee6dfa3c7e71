import type { MikroORM } from '@mikro-orm/postgresql';
import { PortalSession } from '../db/entities.js';
import { issuePortalToken } from '../credentials/portal-token.js';
import { inTransaction } from '../db/transaction.js';
import { audit } from './audit.js';
import { invalidArgument, permissionDenied } from './errors.js';
import { resolveGrants } from './grants.js';
import type { GrantSpec } from './permissions.js';
import type { Principal } from './principal.js';
import { checkLength, requireId } from './validate.js';
import { findVisibleWorkspace } from './workspaces.js';

const MINUTE_MS = 60_000;
const DEFAULT_PORTAL_TTL_MS = 15 * MINUTE_MS;
const MAX_PORTAL_TTL_MS = 24 * 60 * MINUTE_MS;

export interface PortalSessionInput {
  workspaceId: string;
  customerId: string;
  allowedGrants: GrantSpec[];
  /** Undefined: the default, 15 minutes. */
  ttlMs?: number;
}

export interface PortalSessionView {
  workspaceId: string;
  customerId: string;
  allowedGrants: GrantSpec[];
  expireTime: Date;
  keyPrefix: string;
}

export interface IssuedPortalSession {
  session: PortalSession;
  /** `kwp_…`, returned once. */
  token: string;
}

/**
 * Customer portal sessions: a company's backend, with an SDK key allowed to
 * write keys, mints one for one of its customers; the customer's browser then
 * manages that customer's keys with it (see Principal.portal).
 */
export class PortalSessions {
  constructor(private readonly orm: MikroORM) {}

  async create(p: Principal, input: PortalSessionInput): Promise<IssuedPortalSession> {
    p.requireScope('api_keys:write');
    if (p.portal) throw permissionDenied('a portal session cannot create portal sessions');
    requireId('workspace_id', input.workspaceId);
    p.requireWorkspace(input.workspaceId);
    const customerId = checkLength('customer_id', input.customerId, 255, { required: true });
    const ttlMs = input.ttlMs ?? DEFAULT_PORTAL_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs < MINUTE_MS || ttlMs > MAX_PORTAL_TTL_MS) throw invalidArgument('ttl', 'must be between 1 minute and 24 hours');
    return inTransaction(this.orm.em, async (em) => {
      const ws = await findVisibleWorkspace(em, p, input.workspaceId, 'workspace_id', 'share');
      const grants = await resolveGrants(em, ws.id, { grants: input.allowedGrants, permissions: [] }, 'allowed_grants');
      const issued = issuePortalToken();
      const session = em.create(PortalSession, {
        tokenHash: issued.hash,
        workspaceId: ws.id,
        customerId,
        allowedGrants: grants.map((g) => ({ scope: g.scope.name, actions: g.actions })),
        createdBy: p.actor,
        expireTime: new Date(Date.now() + ttlMs),
      });
      audit(em, p, 'portal_session.create', { type: 'portal_session', id: session.id, workspaceId: ws.id }, { customer_id: customerId });
      await em.flush();
      return { session, token: issued.plaintext };
    });
  }

  /** The live session of a token's SHA-256 (hashPortalToken), or undefined. */
  async find(tokenHash: string): Promise<PortalSession | undefined> {
    const row = await this.orm.em.fork().findOne(PortalSession, { tokenHash, expireTime: { $gt: new Date() } });
    return row ?? undefined;
  }

  /** What the calling portal session allows, for the browser to offer no more. */
  async describe(p: Principal): Promise<PortalSessionView> {
    const portal = p.portal;
    if (!portal) throw permissionDenied('only a customer portal token (kwp_...) has a portal session');
    const workspaceId = p.visibleWorkspaces()![0]!;
    const ws = await findVisibleWorkspace(this.orm.em.fork(), p, workspaceId, 'workspace_id');
    return {
      workspaceId,
      customerId: portal.customerId,
      allowedGrants: [...portal.allowedGrants].map(([scope, actions]) => ({ scope, actions: [...actions] })),
      expireTime: portal.expireTime,
      keyPrefix: ws.keyPrefix,
    };
  }
}
