import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { VerifyKeyRequestSchema } from '../../gen/keyward/v1/key_service_pb.js';
import { verifyInputFromProto } from '../../src/rpc/convert.js';
import { decodeVerifyKeyRequest } from '../../src/rpc/verify-request.js';

// A small deterministic PRNG, so a failure can be replayed.
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const protobufEs = (b: Uint8Array) => verifyInputFromProto(fromBinary(VerifyKeyRequestSchema, b));

/** The decoder either declines or agrees with protobuf-es (which must then accept the bytes). */
function expectAgrees(bytes: Uint8Array): boolean {
  const ours = decodeVerifyKeyRequest(Buffer.from(bytes));
  if (ours === undefined) return false;
  expect(ours).toEqual(protobufEs(bytes));
  return true;
}

describe('decodeVerifyKeyRequest', () => {
  const rnd = prng(20261122);
  const text = (max: number, alphabet: string) => Array.from({ length: Math.floor(rnd() * max) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
  const ascii = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:-';

  it('decodes what clients send exactly as protobuf-es does', () => {
    for (let n = 0; n < 3000; n++) {
      const msg = create(VerifyKeyRequestSchema, {
        key: text(300, ascii),
        requiredPermissions: Array.from({ length: Math.floor(rnd() * 4) }, () => text(40, ascii)),
        workspaceId: rnd() < 0.5 ? '' : text(40, ascii),
        cost: rnd() < 0.5 ? undefined : BigInt(Math.floor(rnd() * 2 ** Math.floor(rnd() * 42))),
      });
      expect(expectAgrees(toBinary(VerifyKeyRequestSchema, msg))).toBe(true);
    }
  });

  it('takes the last of repeated singular fields and keeps every permission, in any order', () => {
    const parts = [
      toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: 'first', requiredPermissions: ['a:read'] })),
      toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { workspaceId: 'w', requiredPermissions: ['b:read'] })),
      toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: 'second' })),
    ];
    const bytes = Buffer.concat(parts);
    expect(expectAgrees(bytes)).toBe(true);
    expect(decodeVerifyKeyRequest(bytes)).toEqual({ key: 'second', requiredPermissions: ['a:read', 'b:read'], workspaceId: 'w' });
  });

  it('leaves non-ASCII text, unknown fields and other wire types to protobuf-es', () => {
    const utf8 = toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: 'clé' }));
    expect(decodeVerifyKeyRequest(Buffer.from(utf8))).toBeUndefined();
    const unknownField = Buffer.concat([utf8, Buffer.from([0x20, 0x01])]);
    expect(decodeVerifyKeyRequest(unknownField)).toBeUndefined();
    expect(decodeVerifyKeyRequest(Buffer.from([0x08, 0x01]))).toBeUndefined(); // field 1 as a varint
    for (const cost of [-1n, 2n ** 42n, 2n ** 62n]) {
      const bytes = toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: 'k', cost }));
      expect(decodeVerifyKeyRequest(Buffer.from(bytes))).toBeUndefined();
    }
  });

  it('declines or agrees on random and truncated bytes, and never throws', () => {
    let agreed = 0;
    for (let n = 0; n < 5000; n++) {
      let bytes: Uint8Array;
      if (n % 2 === 0) {
        bytes = Uint8Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256));
      } else {
        const full = toBinary(VerifyKeyRequestSchema, create(VerifyKeyRequestSchema, { key: text(80, ascii), workspaceId: text(10, ascii), cost: 300n }));
        bytes = full.subarray(0, Math.floor(rnd() * (full.length + 1)));
      }
      if (expectAgrees(bytes)) agreed++;
    }
    // Truncations at a field boundary are valid messages; the decoder takes those.
    expect(agreed).toBeGreaterThan(0);
  });
});
