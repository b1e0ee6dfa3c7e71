import { hash, randomBytes } from 'node:crypto';
import { base62DecodeNumber, base62Digit, base62Encode, base62EncodeUint32 } from './base62.js';
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

const isLowerOrDigit = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57);

/**
 * True if the string has the shape of a Keyward API key (KEY_PREFIX_RE, '_',
 * a base62 body and checksum of the right lengths) and its checksum matches.
 * One pass over the characters, no string made: it runs on every VerifyKey
 * and touches no cache or database.
 */
export function isWellFormedApiKey(s: string): boolean {
  const n = s.length;
  if (n > MAX_KEY_LENGTH) return false;
  const sep = s.indexOf('_');
  if (sep < 1 || n - sep - 1 !== BODY_LENGTH + CHECKSUM_LENGTH) return false;
  const first = s.charCodeAt(0);
  if (first < 97 || first > 122) return false;
  for (let i = 1; i < sep; i++) if (!isLowerOrDigit(s.charCodeAt(i))) return false;
  const bodyStart = sep + 1;
  const bodyEnd = bodyStart + BODY_LENGTH;
  for (let i = bodyStart; i < bodyEnd; i++) if (base62Digit(s.charCodeAt(i)) < 0) return false;
  return base62DecodeNumber(s, bodyEnd, n) === crc32Ascii(s, bodyStart, bodyEnd);
}
