import { isPortalToken, hashPortalToken } from '../credentials/portal-token.js';
import type { PortalSession } from '../db/entities.js';
import { unauthenticated } from '../domain/errors.js';
import { Principal } from '../domain/principal.js';

/** Scopes a portal session acts with: reading and writing keys (narrowed to its customer by Principal.portal). */
const PORTAL_SCOPES = new Set(['api_keys:read', 'api_keys:write']);
const MAX_REMEMBERED = 10_000;

/** What a portal token meets on any RPC but the portal's. */
export const PORTAL_TOKEN_REFUSED =
  'a customer portal token may call only ListKeys, GetKey, CreateKey, UpdateKey, RotateKey, RevokeKey, DeleteKey, GetKeyUsage and GetPortalSession; this needs an SDK key (kws_...)';

/**
 * Authenticates customer portal tokens. A session never changes and ends at
 * its expire_time, so a found one is remembered (by the SHA-256 of its token)
 * until then; a token that is not found is looked up again next time (one
 * indexed read: the token is a 256-bit random secret, nothing to throttle).
 */
export class PortalAuthenticator {
  private readonly remembered = new Map<string, { principal: Principal; expireMs: number }>();

  constructor(
    /** The live session of a token's SHA-256, if any. */
    private readonly find: (tokenHash: string) => Promise<PortalSession | undefined>,
    /** Told of every refusal (never the token). */
    private readonly onFailure: () => void,
  ) {}

  async authenticate(token: string): Promise<Principal> {
    if (!isPortalToken(token)) return this.refuse('the portal token is malformed');
    const fp = hashPortalToken(token);
    const now = Date.now();
    const hit = this.remembered.get(fp);
    if (hit && hit.expireMs > now) return hit.principal;
    if (hit) this.remembered.delete(fp);
    const session = await this.find(fp);
    if (!session) return this.refuse('the portal session is invalid or expired');
    const principal = sessionPrincipal(session);
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(fp, { principal, expireMs: session.expireTime.getTime() });
    return principal;
  }

  private refuse(message: string): never {
    this.onFailure();
    throw unauthenticated(message);
  }
}

function sessionPrincipal(s: PortalSession): Principal {
  const allowed = new Map(s.allowedGrants.map((g) => [g.scope, new Set(g.actions)] as const));
  return new Principal(`portal:${s.id}`, PORTAL_SCOPES, [s.workspaceId], null, {
    sessionId: s.id,
    customerId: s.customerId,
    allowedGrants: allowed,
    expireTime: s.expireTime,
  });
}
