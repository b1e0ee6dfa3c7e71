// Times, states, permissions and durations as the console shows them.
import { timestampDate, type Timestamp, type Duration } from '@bufbuild/protobuf/wkt';
import { Action, KeyState, type Grant } from '../../gen/keyward/v1/key_pb.js';
import { VerifyCode } from '../../gen/keyward/v1/key_service_pb.js';

export function toDate(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

const dateTime = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const dateOnly = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
const hourOnly = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

export function formatTime(t: Timestamp | undefined, empty = '—'): string {
  const d = toDate(t);
  return d ? dateTime.format(d) : empty;
}

export function formatDate(t: Timestamp | undefined, empty = '—'): string {
  const d = toDate(t);
  return d ? dateOnly.format(d) : empty;
}

export function formatHour(d: Date): string {
  return hourOnly.format(d);
}

/** "3 min ago", "in 5 days": for last used and expiry columns. */
export function relative(t: Timestamp | undefined, empty = 'never', now = Date.now()): string {
  const d = toDate(t);
  if (!d) return empty;
  const diff = d.getTime() - now;
  const abs = Math.abs(diff);
  const units: [number, string, string][] = [
    [365 * 86_400_000, 'year', 'years'],
    [30 * 86_400_000, 'month', 'months'],
    [86_400_000, 'day', 'days'],
    [3_600_000, 'h', 'h'],
    [60_000, 'min', 'min'],
  ];
  for (const [ms, one, many] of units) {
    if (abs >= ms) {
      const n = Math.round(abs / ms);
      const s = `${n} ${n === 1 ? one : many}`;
      return diff < 0 ? `${s} ago` : `in ${s}`;
    }
  }
  return diff < 0 ? 'just now' : 'in a minute';
}

export const KEY_STATES: { value: KeyState; label: string }[] = [
  { value: KeyState.ACTIVE, label: 'Active' },
  { value: KeyState.DISABLED, label: 'Disabled' },
  { value: KeyState.EXPIRED, label: 'Expired' },
  { value: KeyState.REVOKED, label: 'Revoked' },
];

export function stateLabel(s: KeyState): string {
  return KEY_STATES.find((x) => x.value === s)?.label ?? 'Unknown';
}

/** Badge colour for a key state. */
export function stateTone(s: KeyState): Tone {
  switch (s) {
    case KeyState.ACTIVE:
      return 'green';
    case KeyState.DISABLED:
      return 'gray';
    case KeyState.EXPIRED:
      return 'amber';
    case KeyState.REVOKED:
      return 'red';
    default:
      return 'gray';
  }
}

export type Tone = 'green' | 'gray' | 'amber' | 'red' | 'blue';

/** What a scope declares when created without actions. */
export const STANDARD_ACTIONS = ['read', 'create', 'update', 'delete'] as const;

const ACTION_NAMES: Record<number, string> = {
  [Action.READ]: 'read',
  [Action.CREATE]: 'create',
  [Action.UPDATE]: 'update',
  [Action.DELETE]: 'delete',
};

function actionName(a: Action): string {
  return ACTION_NAMES[a] ?? 'unknown';
}

/** A grant's permission strings: `scope:action` each, or the bare scope for the whole scope. */
function grantPermissions(grants: readonly Grant[]): string[] {
  return grants.flatMap((g) =>
    g.allActions ? [g.scope] : [...[...g.actions].sort((a, b) => a - b).map(actionName), ...g.customActions].map((a) => `${g.scope}:${a}`),
  );
}

/** A key's permissions as VerifyKey returns them: `inference:write`, `admin` (sorted, as the server sends `scopes`). */
export function permissions(k: { scopes: readonly string[]; grants: readonly Grant[] }): string[] {
  return k.scopes.length > 0 ? [...k.scopes] : [...new Set(grantPermissions(k.grants))].sort();
}

/** `inference:write` → {scope: inference, action: write}; `admin` → {scope: admin, action: undefined} (the whole scope). */
export function splitPermission(p: string): { scope: string; action?: string } {
  const i = p.indexOf(':');
  return i < 0 ? { scope: p } : { scope: p.slice(0, i), action: p.slice(i + 1) };
}

/** Action names typed by an operator: separated by commas or spaces, duplicates dropped, order kept. */
export function parseActions(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

const VERIFY_CODES: Record<number, { label: string; color: string }> = {
  [VerifyCode.VALID]: { label: 'Valid', color: '#16a34a' },
  [VerifyCode.NOT_FOUND]: { label: 'Not found', color: '#94a3b8' },
  [VerifyCode.DISABLED]: { label: 'Disabled', color: '#64748b' },
  [VerifyCode.EXPIRED]: { label: 'Expired', color: '#d97706' },
  [VerifyCode.REVOKED]: { label: 'Revoked', color: '#dc2626' },
  [VerifyCode.INSUFFICIENT_PERMISSIONS]: { label: 'Insufficient permissions', color: '#7c3aed' },
  [VerifyCode.RATE_LIMITED]: { label: 'Rate limited', color: '#ea580c' },
  [VerifyCode.USAGE_EXCEEDED]: { label: 'Usage exceeded', color: '#db2777' },
};

export function verifyCodeInfo(c: VerifyCode): { label: string; color: string } {
  return VERIFY_CODES[c] ?? { label: 'Other', color: '#475569' };
}

export function durationMs(d: Duration | undefined): number {
  if (!d) return 0;
  return Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
}

/** 3600000 → "1 h", 90000 → "90 s". */
export function formatDuration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
  ];
  for (const [u, name] of units) if (ms >= u && ms % u === 0) return `${ms / u} ${name}`;
  return `${ms} ms`;
}

export function formatCount(n: bigint | number): string {
  return new Intl.NumberFormat().format(n);
}

/** Short id for tables: the last 8 characters (ids are UUIDv7, whose first characters are a timestamp). */
export function shortId(id: string): string {
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

/** What may be shown of a key: its start and its last 4 characters, `kw_3xGv…5PW0`. */
export function keyHint(k: { start: string; maskedKey: string }): string {
  return `${k.start}…${k.maskedKey.slice(-4)}`;
}
