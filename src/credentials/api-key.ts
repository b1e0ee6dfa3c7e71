import { hash, randomBytes } from 'node:crypto';
import { base62Encode, base62EncodeUint32, isBase62 } from './base62.js';
import { crc32Ascii } from './crc32.js';

// API key format (GitHub's token format): `{prefix}_{body}{checksum}`.
// body: base62 of 32 random bytes (256 bits), always BODY_LENGTH chars;
// checksum: base62 of CRC32(body), always CHECKSUM_LENGTH chars, so a typo is
// rejected without any lookup.
const SECRET_BYTES = 32;
const BODY_LENGTH = 43;
const CHECKSUM_LENGTH = 6;
export const KEY_PREFIX_RE = /^[a-z][a-z0-9]{0,15}$/;
const MAX_KEY_LENGTH = 16 + 1 + BODY_LENGTH + CHECKSUM_LENGTH;

export interface IssuedApiKey {
  /** The full key, returned to the caller once and never stored. */
  plaintext: string;
  /** SHA-256 of the full key, hex: the only form kept at rest. */
  hash: string;
  /** Safe to display: prefix and the last 4 characters. */
  masked: string;
  /** Safe to display: prefix and the first 4 characters of the body. */
  start: string;
}

function checksum(body: string): string {
  return base62EncodeUint32(crc32Ascii(body), CHECKSUM_LENGTH);
}

export function hashApiKey(plaintext: string): string {
  // One-shot hash: no Hash object per verification.
  return hash('sha256', plaintext, 'hex');
}

export function issueApiKey(prefix: string): IssuedApiKey {
  const body = base62Encode(randomBytes(SECRET_BYTES), BODY_LENGTH);
  const plaintext = `${prefix}_${body}${checksum(body)}`;
  return {
    plaintext,
    hash: hashApiKey(plaintext),
    masked: `${prefix}_****${plaintext.slice(-4)}`,
    start: `${prefix}_${body.slice(0, 4)}`,
  };
}

/**
 * True if the string has the shape of a Keyward API key and its checksum
 * matches. Costs a few microseconds and touches no cache or database.
 */
export function isWellFormedApiKey(s: string): boolean {
  if (s.length > MAX_KEY_LENGTH) return false;
  const sep = s.indexOf('_');
  if (sep < 1) return false;
  const rest = s.slice(sep + 1);
  if (rest.length !== BODY_LENGTH + CHECKSUM_LENGTH) return false;
  if (!KEY_PREFIX_RE.test(s.slice(0, sep)) || !isBase62(rest)) return false;
  const body = rest.slice(0, BODY_LENGTH);
  return checksum(body) === rest.slice(BODY_LENGTH);
}
