// What a customer portal session (Principal.portal) may do to keys: only
// its own customer's, granted within its allowed grants, changing only name,
// description and enabled. Management (keys.ts) asks these before it writes.
import { wantedOf, type GrantsInput } from './grants.js';
import { WHOLE_SCOPE } from './permissions.js';
import { permissionDenied } from './errors.js';
import type { Principal } from './principal.js';

/** What of a new key the portal rules look at (a KeyInput). */
export interface PortalKeyInput extends GrantsInput {
  customerId: string;
  metadata: Record<string, string>;
  rateLimits: readonly unknown[];
  remainingUses?: number;
  refill?: unknown;
}

/** What a customer portal session may change of a key (UpdateKey's mask). */
const PORTAL_MASK: ReadonlySet<string> = new Set(['name', 'description', 'enabled']);

/**
 * A portal session writes keys only for its own customer, granted within its
 * allowed grants, and leaves limits and metadata to the company: returns the
 * customer id the key gets.
 */
export function checkPortalCreate(p: Principal, input: PortalKeyInput): string {
  const portal = p.portal;
  if (!portal) return input.customerId;
  if (input.customerId !== '' && input.customerId !== portal.customerId) {
    throw permissionDenied('key.customer_id: a portal session creates keys only for its own customer');
  }
  checkPortalGrants(p, input);
  const set: [string, boolean][] = [
    ['key.metadata', Object.keys(input.metadata).length > 0],
    ['key.rate_limits', input.rateLimits.length > 0],
    ['key.remaining_uses', input.remainingUses !== undefined],
    ['key.refill', input.refill !== undefined],
  ];
  const field = set.find(([, isSet]) => isSet)?.[0];
  if (field) throw permissionDenied(`${field}: a portal session may not set it`);
  return portal.customerId;
}

export function checkPortalMask(p: Principal, mask: ReadonlySet<string>): void {
  if (!p.portal) return;
  const field = [...mask].find((f) => !PORTAL_MASK.has(f));
  if (field) throw permissionDenied(`update_mask: a portal session may change only name, description and enabled, not ${field}`);
}

/** The customer a list is of: a portal session sees only its own. */
export function listedCustomer(p: Principal, customerId: string): string {
  if (!p.portal) return customerId;
  if (customerId !== '' && customerId !== p.portal.customerId) throw permissionDenied("customer_id: a portal session sees only its own customer's keys");
  return p.portal.customerId;
}

/**
 * A portal session grants only within its allowed grants (a whole scope
 * allowed allows each of its actions, and the whole scope).
 */
function checkPortalGrants(p: Principal, input: GrantsInput, field = 'key.grants', permissionsField = 'key.scopes'): void {
  const allowedGrants = p.portal?.allowedGrants;
  if (!allowedGrants) return;
  for (const [scope, w] of wantedOf(input, field, permissionsField)) {
    const allowed = allowedGrants.get(scope);
    if (allowed?.has(WHOLE_SCOPE)) continue;
    const outside = allowed ? [...w.actions].find((a) => !allowed.has(a)) : [...w.actions][0];
    if (!allowed || outside !== undefined) {
      const what = outside === undefined || outside === WHOLE_SCOPE ? scope : `${scope}:${outside}`;
      throw permissionDenied(`${w.field.replace(/\.scope$/, '')}: the portal session may not grant ${what}`);
    }
  }
}
