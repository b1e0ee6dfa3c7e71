import { createContextKey, type HandlerContext } from '@connectrpc/connect';
import type { Principal } from '../domain/principal.js';

/** The authenticated caller, set by the auth interceptor for every RPC. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: 'principal' });

/** The call's request id, set by the error interceptor (which runs first). */
export const requestIdKey = createContextKey<string | null>(null, { description: 'request id' });

/** The caller's network origin (remote address), for throttling failed SDK key checks. */
export const peerKey = createContextKey<string>('', { description: 'peer' });

export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  // The auth interceptor runs before every handler; reaching here without it is a wiring bug.
  if (!p) throw new Error('no principal in context');
  return p;
}
