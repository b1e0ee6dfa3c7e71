// Helpers shared by the bench runner and its load generator.
import { readFileSync } from 'node:fs';

/**
 * The gRPC length-prefixed message (also gRPC-Web's and Connect streaming's
 * envelope): flag byte (0 unless given; 1 marks a compressed message),
 * 4-byte big-endian length, message.
 */
export function grpcFrame(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Many request bodies in one file, each preceded by its 4-byte big-endian length. */
export function packBodies(bodies: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const b of bodies) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    parts.push(len, Buffer.from(b));
  }
  return Buffer.concat(parts);
}

export function readBodies(file: string): Buffer[] {
  const buf = readFileSync(file);
  const out: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    const len = buf.readUInt32BE(off);
    out.push(buf.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}

/** The q-quantile of ascending values (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}
