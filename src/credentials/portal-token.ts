import { createHash, randomBytes } from 'node:crypto';
import { base62Encode } from './base62.js';

// Portal token format: `kwp_{secret}`, 43 base62 characters of 32 random
// bytes. Kept at rest only as SHA-256 (a 256-bit random secret needs no slow
// hash), looked up by that hash.
const PREFIX = 'kwp_';
const SECRET_LENGTH = 43;
const TOKEN_RE = /^kwp_[0-9A-Za-z]{43}$/;

export interface IssuedPortalToken {
  plaintext: string;
  hash: string;
}

/** Whether a bearer token is meant as a portal token (it may still be malformed). */
export const looksLikePortalToken = (token: string): boolean => token.startsWith(PREFIX);

export const isPortalToken = (token: string): boolean => TOKEN_RE.test(token);

export function hashPortalToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function issuePortalToken(): IssuedPortalToken {
  const plaintext = PREFIX + base62Encode(randomBytes(32), SECRET_LENGTH);
  return { plaintext, hash: hashPortalToken(plaintext) };
}
