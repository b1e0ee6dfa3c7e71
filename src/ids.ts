import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let seq = 0;

// Random bytes drawn 4 KiB at a time: one call to the system's generator
// serves 256 ids (ImportKeys makes two thousand at once).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function random16(): Buffer {
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const b = Buffer.from(pool.subarray(poolAt, poolAt + 16));
  poolAt += 16;
  return b;
}

/**
 * A UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and serve as
 * stable paging cursors. Within one millisecond the 12-bit rand_a field is a
 * counter (RFC 9562 §6.2, method 1), so ids of one process stay in creation order.
 */
export function newId(now = Date.now()): string {
  const b = random16();
  if (now > lastMs) {
    lastMs = now;
    seq = b.readUInt16BE(6) & 0x7ff;
  } else if (++seq > 0xfff) {
    lastMs++;
    seq = 0;
  }
  b.writeUIntBE(lastMs, 0, 6);
  b[6] = 0x70 | (seq >> 8);
  b[7] = seq & 0xff;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isId(s: string): boolean {
  return UUID_RE.test(s);
}
