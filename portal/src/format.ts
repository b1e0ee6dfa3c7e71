import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Action, KeyState, type Grant } from '../../gen/keyward/v1/key_pb.js';
import { VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';

export const ACTIONS: Action[] = [Action.READ, Action.CREATE, Action.UPDATE, Action.DELETE];

export function actionName(a: Action): string {
  return (Action[a] ?? String(a)).toLowerCase();
}

/** A grant's permission strings: `scope:action` (standard actions first, then the scope's own), or the bare scope for the whole scope. */
export function permissionsOf(grants: readonly Grant[]): string[] {
  const out: string[] = [];
  for (const g of grants) {
    if (g.allActions) {
      out.push(g.scope);
      continue;
    }
    const actions = [...[...new Set(g.actions)].sort((x, y) => x - y).map(actionName), ...g.customActions];
    for (const a of new Set(actions)) out.push(`${g.scope}:${a}`);
  }
  return [...new Set(out)];
}

/** A key's permissions: its `scopes` strings (`inference:write`, `admin`), as VerifyKey returns them. */
export function keyPermissions(k: { scopes: readonly string[]; grants: readonly Grant[] }): string[] {
  return k.scopes.length > 0 ? [...k.scopes] : permissionsOf(k.grants).sort();
}

/** What a portal session lets a key be granted, per scope: single actions, and whether the whole scope. */
export interface Offer {
  scope: string;
  /** Action names, e.g. `read`, `write`. */
  actions: string[];
  /** The whole scope (`admin`) may be granted. */
  whole: boolean;
}

/**
 * The session's allowed grants as choices, one per scope in the order given.
 * A scope allowed whole is offered whole only: the portal does not see which
 * actions the scope declares.
 */
export function offersOf(allowed: readonly Grant[]): Offer[] {
  const by = new Map<string, Offer>();
  for (const g of allowed) {
    const o = by.get(g.scope) ?? { scope: g.scope, actions: [], whole: false };
    o.whole ||= g.allActions;
    for (const p of permissionsOf([{ ...g, allActions: false }])) {
      const a = p.slice(g.scope.length + 1);
      if (!o.actions.includes(a)) o.actions.push(a);
    }
    by.set(g.scope, o);
  }
  return [...by.values()].map((o) => (o.whole ? { ...o, actions: [] } : o));
}

export function stateLabel(s: KeyState): string {
  switch (s) {
    case KeyState.ACTIVE:
      return 'Active';
    case KeyState.DISABLED:
      return 'Disabled';
    case KeyState.EXPIRED:
      return 'Expired';
    case KeyState.REVOKED:
      return 'Revoked';
    default:
      return 'Unknown';
  }
}

export function codeLabel(c: VerifyCode): string {
  switch (c) {
    case VerifyCode.VALID:
      return 'Valid';
    case VerifyCode.NOT_FOUND:
      return 'Not found';
    case VerifyCode.DISABLED:
      return 'Disabled';
    case VerifyCode.EXPIRED:
      return 'Expired';
    case VerifyCode.REVOKED:
      return 'Revoked';
    case VerifyCode.INSUFFICIENT_PERMISSIONS:
      return 'Missing permission';
    case VerifyCode.RATE_LIMITED:
      return 'Rate limited';
    case VerifyCode.USAGE_EXCEEDED:
      return 'Usage exceeded';
    default:
      return 'Other';
  }
}

export function dateOf(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

const dateFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });

export function formatDate(d: Date | undefined): string {
  return d ? dateFmt.format(d) : '—';
}

const shortFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/** "Nov 24" within this year, "Nov 24, 2027" otherwise. */
export function formatShortDate(d: Date, now = Date.now()): string {
  return d.getFullYear() === new Date(now).getFullYear() ? shortFmt.format(d) : dateFmt.format(d);
}

export function formatDateTime(d: Date | undefined): string {
  return d ? dateTimeFmt.format(d) : '—';
}

export function formatTime(d: Date): string {
  return timeFmt.format(d);
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago", "in 29 days", "never". */
export function formatRelative(d: Date | undefined, now = Date.now(), never = 'Never'): string {
  if (!d) return never;
  const s = Math.round((d.getTime() - now) / 1000);
  const abs = Math.abs(s);
  // Within a minute either way is now: the server's clock may run a little ahead.
  if (abs < 60) return 'Just now';
  if (abs < 45 * 60) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 26 * 86400) return rtf.format(Math.round(s / 86400), 'day');
  return formatDate(d);
}
