// Rules about keys shared by management and verification.

export const ACTIONS = ['read', 'create', 'update', 'delete'] as const;
export type Action = (typeof ACTIONS)[number];
export type KeyState = 'active' | 'disabled' | 'expired' | 'revoked';

export interface KeyStatus {
  enabled: boolean;
  expireTime?: Date | null;
  revokeTime?: Date | null;
}

/** REVOKED beats EXPIRED beats DISABLED. */
export function keyState(k: KeyStatus, now: number): KeyState {
  if (k.revokeTime) return 'revoked';
  if (k.expireTime && k.expireTime.getTime() <= now) return 'expired';
  if (!k.enabled) return 'disabled';
  return 'active';
}

const isScopeChar = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || c === 46 || c === 45;

/**
 * True if `s` is `scope:action`: a scope name ([a-z][a-z0-9_.-]{0,63}, as
 * SCOPE_NAME_RE) and one of ACTIONS. Checked by character code, without a
 * regular expression or a substring: VerifyKey checks every required
 * permission of every call.
 */
export function isPermission(s: string): boolean {
  const colon = s.indexOf(':');
  if (colon < 1 || colon > 64) return false;
  const first = s.charCodeAt(0);
  if (first < 97 || first > 122) return false;
  for (let i = 1; i < colon; i++) if (!isScopeChar(s.charCodeAt(i))) return false;
  const actionLength = s.length - colon - 1;
  for (const a of ACTIONS) if (a.length === actionLength && s.startsWith(a, colon + 1)) return true;
  return false;
}

export function permissionsOf(grants: readonly { scope: string; actions: readonly string[] }[]): string[] {
  return grants.flatMap((g) => g.actions.map((a) => `${g.scope}:${a}`)).sort();
}
