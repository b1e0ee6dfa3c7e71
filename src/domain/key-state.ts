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

const PERMISSION_RE = /^([a-z][a-z0-9_.-]{0,63}):(read|create|update|delete)$/;

export function isPermission(s: string): boolean {
  return PERMISSION_RE.test(s);
}

export function permissionsOf(grants: readonly { scope: string; actions: readonly string[] }[]): string[] {
  return grants.flatMap((g) => g.actions.map((a) => `${g.scope}:${a}`)).sort();
}
