import type { VerifyInput } from '../verify/verifier.js';

// Tags of VerifyKeyRequest's fields as they appear on the wire (field number
// << 3 | wire type 2, length-delimited), each a single byte.
const KEY = (1 << 3) | 2;
const REQUIRED_PERMISSIONS = (2 << 3) | 2;
const WORKSPACE_ID = (3 << 3) | 2;

/**
 * Decodes a binary VerifyKeyRequest in the shape every client sends (fields
 * 1–3 only, ASCII text) without protobuf-es's reflective reader, which is a
 * noticeable share of a cached VerifyKey. Returns undefined for anything else
 * (another field, another wire type, a non-ASCII byte, a truncated or
 * oversized length): the caller then parses with protobuf-es, so a request
 * this function answers for decodes exactly as protobuf-es would decode it
 * (test/unit/verify-request.test.ts compares the two).
 */
export function decodeVerifyKeyRequest(b: Buffer): VerifyInput | undefined {
  let key = '';
  let workspaceId = '';
  const requiredPermissions: string[] = [];
  const n = b.length;
  let i = 0;
  while (i < n) {
    const tag = b[i++]!;
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
  return { key, requiredPermissions, workspaceId };
}
