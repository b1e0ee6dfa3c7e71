import type { VerifyInput } from '../verify/verifier.js';

// Tags of VerifyKeyRequest's fields as they appear on the wire (field number
// << 3 | wire type): 1–3 length-delimited, each a single byte; `cost` (20) a
// varint, whose tag takes two bytes.
const KEY = (1 << 3) | 2;
const REQUIRED_PERMISSIONS = (2 << 3) | 2;
const WORKSPACE_ID = (3 << 3) | 2;
const COST_TAG_0 = ((20 << 3) & 0x7f) | 0x80;
const COST_TAG_1 = (20 << 3) >> 7;

/**
 * Decodes a binary VerifyKeyRequest in the shape every client sends (its own
 * fields only, ASCII text, a cost below 2^42) without protobuf-es's reflective
 * reader, which is a noticeable share of a cached VerifyKey. Returns
 * undefined for anything else (an unknown field, another wire type, a
 * non-ASCII byte, a truncated or oversized length, a negative or huge cost):
 * the caller then parses with protobuf-es, so a request this function answers
 * for decodes exactly as protobuf-es would decode it
 * (test/unit/verify-request.test.ts compares the two).
 */
export function decodeVerifyKeyRequest(b: Buffer): VerifyInput | undefined {
  let key = '';
  let workspaceId = '';
  let cost: number | undefined;
  const requiredPermissions: string[] = [];
  const n = b.length;
  let i = 0;
  while (i < n) {
    const tag = b[i++]!;
    if (tag === COST_TAG_0) {
      if (i + 1 >= n || b[i++] !== COST_TAG_1) return undefined;
      // At most six 7-bit groups: exact in a double, far beyond any valid cost.
      let v = 0;
      let scale = 1;
      let byte: number;
      do {
        if (i >= n || scale > 2 ** 35) return undefined;
        byte = b[i++]!;
        v += (byte & 0x7f) * scale;
        scale *= 128;
      } while (byte & 0x80);
      cost = v;
      continue;
    }
    if (tag !== KEY && tag !== REQUIRED_PERMISSIONS && tag !== WORKSPACE_ID) return undefined;
    // The length, a varint; four bytes (2^28) is far more than the read limit.
    let len = 0;
    let shift = 0;
    let byte: number;
    do {
      if (i >= n || shift > 21) return undefined;
      byte = b[i++]!;
      len |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    const end = i + len;
    if (end > n) return undefined;
    for (let j = i; j < end; j++) if (b[j]! > 0x7f) return undefined;
    const text = len === 0 ? '' : b.toString('latin1', i, end);
    if (tag === KEY) key = text;
    else if (tag === WORKSPACE_ID) workspaceId = text;
    else requiredPermissions.push(text);
    i = end;
  }
  return { key, requiredPermissions, workspaceId, cost };
}
