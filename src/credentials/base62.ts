const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BASE = 62n;

/** Encodes bytes as a big-endian base62 number, left-padded with '0' to `width`. */
export function base62Encode(bytes: Uint8Array, width: number): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return base62EncodeBigInt(n, width);
}

export function base62EncodeBigInt(value: bigint, width: number): string {
  let n = value;
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % BASE)] + out;
    n /= BASE;
  }
  if (out.length > width) throw new RangeError('value does not fit the width');
  return out.padStart(width, '0');
}

/** base62EncodeBigInt for an unsigned 32-bit integer, in plain number arithmetic (no BigInt per call). */
export function base62EncodeUint32(value: number, width: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError('not an unsigned 32-bit integer');
  let n = value;
  let out = '';
  while (n > 0) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  if (out.length > width) throw new RangeError('value does not fit the width');
  return out.padStart(width, '0');
}

/** Digit value of each ASCII character code, -1 for characters outside the alphabet. */
const DIGIT = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i;

/** The value of base62 digit `charCode`, or -1 if it is not one. */
export function base62Digit(charCode: number): number {
  return charCode < 128 ? DIGIT[charCode]! : -1;
}

/**
 * The number the characters of `s` from `start` to `end` encode, or -1 if
 * one is not a base62 digit. Exact for up to 8 digits (62^8 < 2^53).
 */
export function base62DecodeNumber(s: string, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = base62Digit(s.charCodeAt(i));
    if (d < 0) return -1;
    n = n * 62 + d;
  }
  return n;
}
