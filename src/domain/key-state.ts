// Rules about keys shared by management and verification.

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
