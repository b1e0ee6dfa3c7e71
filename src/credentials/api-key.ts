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
// A workspace's key prefix: a lowercase letter, then letters, digits and
// hyphens. One ending in a hyphen carries its own separator (Openlayer's
// `sk-ol-` gives `sk-ol-<body>`); any other is followed by `_` (`kw_<body>`).
export const KEY_PREFIX_RE = /^[a-z][a-z0-9-]{0,15}$/;
export const KEY_PREFIX_SHAPE = '[a-z][a-z0-9-]{0,15}';
const MAX_PREFIX_LENGTH = 16;
const SECRET_LENGTH = BODY_LENGTH + CHECKSUM_LENGTH;

/** The prefix with its separator, as keys start: `kw_`, `sk-ol-`. */
const lead = (prefix: string) => (prefix.endsWith('-') ? prefix : `${prefix}_`);

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
  const plaintext = `${lead(prefix)}${body}${checksum(body)}`;
  return {
    plaintext,
    hash: hashApiKey(plaintext),
    masked: `${lead(prefix)}****${plaintext.slice(-4)}`,
    start: `${lead(prefix)}${body.slice(0, 4)}`,
  };
}

const HYPHEN = 45;
const UNDERSCORE = 95;
const isPrefixChar = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === HYPHEN;

/**
 * True if the string has the shape of a Keyward API key (a KEY_PREFIX_RE
 * prefix and its separator, then a base62 body and checksum of fixed
 * lengths) and its checksum matches. One pass over the characters, no string
 * made: it runs on every VerifyKey and touches no cache or database.
 */
export function isWellFormedApiKey(s: string): boolean {
  const n = s.length;
  // The body and checksum have fixed lengths, so the prefix and separator are what comes before them.
  const bodyStart = n - SECRET_LENGTH;
  const sep = bodyStart - 1;
  if (sep < 1 || sep > MAX_PREFIX_LENGTH) return false;
  const sepChar = s.charCodeAt(sep);
  // `_` follows a prefix that does not end in a hyphen; a hyphen ends a prefix of at most 16 characters itself.
  if (sepChar === UNDERSCORE) {
    if (s.charCodeAt(sep - 1) === HYPHEN) return false;
  } else if (sepChar !== HYPHEN || sep === MAX_PREFIX_LENGTH) return false;
  const first = s.charCodeAt(0);
  if (first < 97 || first > 122) return false;
  for (let i = 1; i < sep; i++) if (!isPrefixChar(s.charCodeAt(i))) return false;
  const bodyEnd = bodyStart + BODY_LENGTH;
  for (let i = bodyStart; i < bodyEnd; i++) if (base62Digit(s.charCodeAt(i)) < 0) return false;
  return base62DecodeNumber(s, bodyEnd, n) === crc32Ascii(s, bodyStart, bodyEnd);
}

/** Keyward's own key shape, checksum aside: a prefix, its separator, 49 base62 characters. */
const KEYWARD_SHAPE_RE = /^[a-z][a-z0-9-]{0,15}[_-][0-9A-Za-z]{49}$/;
/** A key brought in with ImportKeys in a format of its own: 8 to 512 printable ASCII characters, no spaces. */
export const IMPORTED_KEY_RE = /^[\x21-\x7e]{8,512}$/;

/** Whether a string has Keyward's key shape (its checksum unchecked): such a key must be well-formed. */
export function hasApiKeyShape(s: string): boolean {
  return KEYWARD_SHAPE_RE.test(s);
}

/**
 * Whether VerifyKey looks a key up at all: a well-formed Keyward key, or a key
 * in another format (an imported one). A Keyward-shaped key whose checksum
 * fails is a typo, refused from its checksum alone.
 */
export function isVerifiableKey(s: string): boolean {
  if (isWellFormedApiKey(s)) return true;
  return IMPORTED_KEY_RE.test(s) && !hasApiKeyShape(s);
}
