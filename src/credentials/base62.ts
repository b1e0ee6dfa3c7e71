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

const BASE62_RE = /^[0-9A-Za-z]*$/;

export function isBase62(s: string): boolean {
  return BASE62_RE.test(s);
}
