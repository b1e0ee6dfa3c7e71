import { hash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { base62Encode } from './base62.js';

// SDK key format: `kws_{id}_{secret}`; the id locates the row, the secret is
// checked against its bcrypt hash.
const PREFIX = 'kws_';
const BCRYPT_COST = 10;
const SECRET_LENGTH = 43;
// The id must have the UUID shape: it is looked up in a uuid column, which
// rejects anything else with a database error (INTERNAL, not UNAUTHENTICATED).
const TOKEN_RE = /^kws_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_([0-9A-Za-z]{43})$/;

export interface ParsedSdkKey {
  id: string;
  secret: string;
}

export function parseSdkKey(token: string): ParsedSdkKey | undefined {
  const m = TOKEN_RE.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

export function formatSdkKey(id: string, secret: string): string {
  return `${PREFIX}${id}_${secret}`;
}

export function newSdkKeySecret(): string {
  return base62Encode(randomBytes(32), SECRET_LENGTH);
}

export function hashSdkKeySecret(secret: string): Promise<string> {
  return bcrypt.hash(secret, BCRYPT_COST);
}

export function checkSdkKeySecret(secret: string, hash: string): Promise<boolean> {
  return bcrypt.compare(secret, hash);
}

/** Fingerprint used to remember a verified token in memory without keeping it. */
export function sdkKeyFingerprint(token: string): string {
  // One-shot hash: no Hash object per call (this runs on every RPC).
  return hash('sha256', token, 'hex');
}
