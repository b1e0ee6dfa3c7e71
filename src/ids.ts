import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let seq = 0;

// Random bytes drawn 4 KiB at a time: one call to the system's generator
// serves 256 ids (ImportKeys makes two thousand at once). Each id's 16 bytes
// are set in the pool itself and written out as text in one go: no Buffer
// and no partial strings per id (a thousand-key import makes two thousand).
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
const text = Buffer.alloc(36);
const HEX = Buffer.from('0123456789abcdef');
/** Where each byte's two hex digits go in the 36 characters: dashes after bytes 4, 6, 8 and 10. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
text.fill('-');

/**
 * A UUIDv7 (RFC 9562): time-ordered, so ids sort by creation and serve as
 * stable paging cursors. Within one millisecond the 12-bit rand_a field is a
 * counter (RFC 9562 §6.2, method 1), so ids of one process stay in creation order.
 */
export function newId(now = Date.now()): string {
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const o = poolAt;
  poolAt += 16;
  if (now > lastMs) {
    lastMs = now;
    seq = pool.readUInt16BE(o + 6) & 0x7ff;
  } else if (++seq > 0xfff) {
    lastMs++;
    seq = 0;
  }
  pool.writeUIntBE(lastMs, o, 6);
  pool[o + 6] = 0x70 | (seq >> 8);
  pool[o + 7] = seq & 0xff;
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80;
  for (let i = 0; i < 16; i++) {
    const b = pool[o + i]!;
    text[AT[i]!] = HEX[b >> 4]!;
    text[AT[i]! + 1] = HEX[b & 15]!;
  }
  return text.toString('latin1', 0, 36);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isId(s: string): boolean {
  return UUID_RE.test(s);
}
