// The credential formats and the paging cursor, tested as plain functions:
// no server, no database.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashApiKey, isWellFormedApiKey, issueApiKey, KEY_PREFIX_RE } from '../../src/credentials/api-key.js';
import { base62DecodeNumber, base62Digit, base62Encode, base62EncodeBigInt, base62EncodeUint32 } from '../../src/credentials/base62.js';
import { crc32Ascii } from '../../src/credentials/crc32.js';
import { checkSdkKeySecret, formatSdkKey, hashSdkKeySecret, newSdkKeySecret, parseSdkKey, sdkKeyFingerprint } from '../../src/credentials/sdk-key.js';
import { DomainError } from '../../src/domain/errors.js';
import { newId } from '../../src/ids.js';
import { closePage, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, openCursor } from '../../src/domain/paging.js';

const anyKey = () => true;

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY = 43;
const CHECKSUM = 6;

/** Independent base62 decoder, to check the encoder against. */
function base62Decode(s: string): bigint {
  let n = 0n;
  for (const c of s) n = n * 62n + BigInt(ALPHABET.indexOf(c));
  return n;
}

/** Splits a key into prefix, body and checksum, checking the overall shape. */
function parts(key: string): { prefix: string; body: string; checksum: string } {
  const m = /^([a-z][a-z0-9-]{0,15})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/.exec(key);
  if (!m) throw new Error(`not a key: ${key}`);
  return { prefix: m[1]!, body: m[2]!, checksum: m[3]! };
}

describe('issueApiKey', () => {
  const prefixes = ['kw', 'a', 'acme', 'sk1', 'abcdefghijklmnop', 'k-w'];

  it.each(prefixes)('issues {prefix}_{43 base62 body}{6 base62 checksum} for prefix %s', (prefix) => {
    for (let i = 0; i < 50; i++) {
      const k = issueApiKey(prefix);
      expect(k.plaintext).toMatch(new RegExp(`^${prefix}_[0-9A-Za-z]{${BODY + CHECKSUM}}$`));
      const { body, checksum } = parts(k.plaintext);
      expect(k.plaintext.length).toBe(prefix.length + 1 + BODY + CHECKSUM);
      // The checksum is base62(CRC32(body)), 6 chars, left-padded.
      expect(base62Decode(checksum)).toBe(BigInt(crc32Ascii(body)));
      // The body encodes 32 random bytes: it never exceeds 2^256.
      expect(base62Decode(body) < 1n << 256n).toBe(true);
      expect(isWellFormedApiKey(k.plaintext)).toBe(true);
    }
  });

  it('derives hash, masked and start from the plaintext only', () => {
    const k = issueApiKey('acme');
    const { body } = parts(k.plaintext);
    expect(k.hash).toBe(createHash('sha256').update(k.plaintext).digest('hex'));
    expect(k.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(k.masked).toBe(`acme_****${k.plaintext.slice(-4)}`);
    expect(k.start).toBe(`acme_${body.slice(0, 4)}`);
    // Neither display form gives away more than 4 characters of the secret part.
    expect(k.masked.replace('acme_****', '').length).toBe(4);
    expect(k.start.replace('acme_', '').length).toBe(4);
  });

  it('never repeats a key (5,000 issued)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(issueApiKey('kw').plaintext);
    expect(seen.size).toBe(5000);
  });
});

describe('prefixes ending in a hyphen (Openlayer-style sk-ol- keys)', () => {
  it('issue {prefix}{body}{checksum} with the prefix as their own separator, masked and started alike', () => {
    const k = issueApiKey('sk-ol-');
    expect(k.plaintext).toMatch(/^sk-ol-[0-9A-Za-z]{49}$/);
    expect(k.masked).toBe(`sk-ol-****${k.plaintext.slice(-4)}`);
    expect(k.start).toBe(k.plaintext.slice(0, 'sk-ol-'.length + 4));
    expect(isWellFormedApiKey(k.plaintext)).toBe(true);
    expect(isWellFormedApiKey(k.plaintext.slice(0, -1) + (k.plaintext.endsWith('A') ? 'B' : 'A'))).toBe(false);
  });
});

describe('isWellFormedApiKey', () => {
  it('accepts thousands of freshly issued keys', () => {
    const keys = Array.from({ length: 5000 }, (_, i) => issueApiKey(['kw', 'acme', 'x9', 'a'.repeat(16)][i % 4]!).plaintext);
    for (const k of keys) expect(isWellFormedApiKey(k)).toBe(true);
  });

  it('answers as the definition does (prefix pattern, base62 parts, checksum of the body) for keys and near-keys', () => {
    // The definition, written with regular expressions and strings.
    const reference = (s: string): boolean => {
      const m = /^(.*)([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/s.exec(s);
      if (!m) return false;
      // The prefix ends in its own hyphen (sk-ol-), or is followed by `_` and does not end in one (kw_).
      const lead = m[1]!;
      const prefix = lead.endsWith('-') ? lead : lead.endsWith('_') && !lead.endsWith('-_') ? lead.slice(0, -1) : undefined;
      return prefix !== undefined && KEY_PREFIX_RE.test(prefix) && base62EncodeUint32(crc32Ascii(m[2]!), 6) === m[3];
    };
    const key = fc.constantFrom('kw', 'acme', 'a'.repeat(16), 'x9', 'sk-ol-', 'sk-ol', 'a-', `${'b'.repeat(15)}-`).map((p) => issueApiKey(p).plaintext);
    const nearKey = fc
      .tuple(key, fc.nat(70), fc.string({ unit: 'binary', maxLength: 3 }), fc.nat(3))
      .map(([k, at, insert, drop]) => k.slice(0, at) + insert + k.slice(at + drop));
    fc.assert(
      fc.property(fc.oneof(key, nearKey, fc.string({ maxLength: 80 })), (s) => {
        expect(isWellFormedApiKey(s)).toBe(reference(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects every single-character substitution in the body and the checksum', () => {
    for (let n = 0; n < 3; n++) {
      const key = issueApiKey('kw').plaintext;
      const start = 'kw_'.length;
      let tried = 0;
      for (let pos = start; pos < key.length; pos++) {
        for (const c of ALPHABET) {
          if (c === key[pos]) continue;
          const typo = key.slice(0, pos) + c + key.slice(pos + 1);
          if (isWellFormedApiKey(typo)) throw new Error(`accepted typo at ${pos}: ${typo}`);
          tried++;
        }
      }
      expect(tried).toBe((BODY + CHECKSUM) * 61);
    }
  });

  it('rejects a substituted separator and non-lowercase prefix characters', () => {
    const key = issueApiKey('kw').plaintext;
    for (const c of ['A', 'Z', '0', 'x', '.']) expect(isWellFormedApiKey(`kw${c}${key.slice(3)}`)).toBe(false);
    // A hyphen there is the separator of a prefix `kw-` (keys `kw-...`): the same body is well formed.
    expect(isWellFormedApiKey(`kw-${key.slice(3)}`)).toBe(true);
    for (const c of ['K', '_', '-', ' ']) expect(isWellFormedApiKey(`${c}w${key.slice(2)}`)).toBe(false);
    // A leading digit is not a valid prefix.
    expect(isWellFormedApiKey(`1w${key.slice(2)}`)).toBe(false);
  });

  it('rejects wrong lengths', () => {
    const key = issueApiKey('kw').plaintext;
    const { prefix, body, checksum } = parts(key);
    expect(isWellFormedApiKey(key.slice(0, -1))).toBe(false);
    expect(isWellFormedApiKey(`${key}a`)).toBe(false);
    expect(isWellFormedApiKey(`${prefix}_${body.slice(1)}${checksum}`)).toBe(false);
    expect(isWellFormedApiKey(`${prefix}_${body}0${checksum}`)).toBe(false);
    expect(isWellFormedApiKey(`${prefix}_${body}${checksum.slice(1)}`)).toBe(false);
    expect(isWellFormedApiKey(`${prefix}_${body}`)).toBe(false);
    expect(isWellFormedApiKey(key + key)).toBe(false);
    expect(isWellFormedApiKey('x'.repeat(10_000))).toBe(false);
  });

  it('rejects a bad prefix even with a valid body and checksum', () => {
    const { body, checksum } = parts(issueApiKey('kw').plaintext);
    const rest = body + checksum;
    for (const prefix of ['', 'KW', 'Kw', '9kw', '-kw', 'kw-', 'k.w', 'abcdefghijklmnopq', 'kw kw', 'kw_kw', 'ké']) {
      expect(isWellFormedApiKey(`${prefix}_${rest}`), prefix).toBe(false);
    }
    // Hyphens inside a prefix, and one ending it in place of `_` (at most 16 characters with it).
    expect(isWellFormedApiKey(`k-w_${rest}`)).toBe(true);
    expect(isWellFormedApiKey(`sk-ol-${rest}`)).toBe(true);
    expect(isWellFormedApiKey(`${'a'.repeat(15)}-${rest}`)).toBe(true);
    expect(isWellFormedApiKey(`${'a'.repeat(16)}-${rest}`)).toBe(false);
    // The same body is accepted under any valid prefix (the checksum covers the body).
    expect(isWellFormedApiKey(`abcdefghijklmnop_${rest}`)).toBe(true);
  });

  it('rejects a missing underscore, non-base62 characters and the empty string', () => {
    const key = issueApiKey('kw').plaintext;
    const { body, checksum } = parts(key);
    expect(isWellFormedApiKey(key.replace('_', ''))).toBe(false);
    expect(isWellFormedApiKey(key.replace('_', '.'))).toBe(false);
    expect(isWellFormedApiKey(`_${body}${checksum}`)).toBe(false);
    expect(isWellFormedApiKey(body + checksum)).toBe(false);
    for (const c of ['-', '_', '+', '/', '=', ' ', '\n', 'é', '\u0000']) {
      expect(isWellFormedApiKey(`kw_${c}${body.slice(1)}${checksum}`), JSON.stringify(c)).toBe(false);
      expect(isWellFormedApiKey(`kw_${body}${checksum.slice(0, -1)}${c}`), JSON.stringify(c)).toBe(false);
    }
    expect(isWellFormedApiKey(` ${key}`)).toBe(false);
    expect(isWellFormedApiKey(`${key}\n`)).toBe(false);
    expect(isWellFormedApiKey('')).toBe(false);
    expect(isWellFormedApiKey('_')).toBe(false);
    expect(isWellFormedApiKey('kw_')).toBe(false);
  });

  it('rejects a well-shaped key whose checksum is for another body', () => {
    const a = parts(issueApiKey('kw').plaintext);
    const b = parts(issueApiKey('kw').plaintext);
    expect(isWellFormedApiKey(`kw_${a.body}${b.checksum}`)).toBe(false);
    expect(isWellFormedApiKey(`kw_${'0'.repeat(BODY)}${'0'.repeat(CHECKSUM)}`)).toBe(false);
  });
});

describe('hashApiKey', () => {
  it('is the SHA-256 hex digest of the full string', () => {
    expect(hashApiKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(hashApiKey('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const k = issueApiKey('kw');
    expect(hashApiKey(k.plaintext)).toBe(k.hash);
    // The prefix is part of what is hashed.
    expect(hashApiKey(`acme${k.plaintext.slice(2)}`)).not.toBe(k.hash);
  });
});

describe('crc32Ascii', () => {
  it.each([
    ['', 0x00000000],
    ['a', 0xe8b7be43],
    ['abc', 0x352441c2],
    ['123456789', 0xcbf43926],
    ['The quick brown fox jumps over the lazy dog', 0x414fa339],
  ])('CRC32(%j) = %i', (input, expected) => {
    expect(crc32Ascii(input)).toBe(expected);
  });

  it('returns an unsigned 32-bit value and agrees with zlib on random ASCII', async () => {
    const zlib = (await import('node:zlib')) as { crc32?: (data: string | Uint8Array) => number };
    for (let i = 0; i < 500; i++) {
      const s = Array.from({ length: i % 97 }, () => String.fromCharCode(32 + Math.floor(Math.random() * 95))).join('');
      const c = crc32Ascii(s);
      expect(Number.isInteger(c) && c >= 0 && c <= 0xffffffff).toBe(true);
      if (zlib.crc32) expect(c).toBe(zlib.crc32(Buffer.from(s, 'latin1')));
    }
  });
});

describe('base62', () => {
  it('encodes big-endian and left-pads to the width', () => {
    expect(base62Encode(new Uint8Array([]), 4)).toBe('0000');
    expect(base62Encode(new Uint8Array([0]), 3)).toBe('000');
    expect(base62Encode(new Uint8Array([1]), 3)).toBe('001');
    expect(base62Encode(new Uint8Array([61]), 3)).toBe('00z');
    expect(base62Encode(new Uint8Array([62]), 3)).toBe('010');
    expect(base62Encode(new Uint8Array([255]), 2)).toBe('47');
    expect(base62Encode(new Uint8Array([1, 0]), 3)).toBe('048'); // 256 = 4*62 + 8
    expect(base62Encode(new Uint8Array([0, 0, 1]), 1)).toBe('1');
    expect(base62EncodeBigInt(0n, 6)).toBe('000000');
    expect(base62EncodeBigInt(62n ** 6n - 1n, 6)).toBe('zzzzzz');
    expect(base62EncodeBigInt(0xffffffffn, 6)).toHaveLength(6);
  });

  it('throws when the value does not fit the width', () => {
    expect(() => base62EncodeBigInt(62n ** 6n, 6)).toThrow(RangeError);
    expect(() => base62Encode(new Uint8Array([62]), 1)).toThrow(RangeError);
  });

  it('fits 32 bytes in 43 characters and round-trips', () => {
    expect(base62Encode(new Uint8Array(32).fill(0xff), 43)).toHaveLength(43);
    for (let i = 0; i < 200; i++) {
      const bytes = new Uint8Array(32).map(() => Math.floor(Math.random() * 256));
      const s = base62Encode(bytes, 43);
      expect(s).toHaveLength(43);
      expect(s).toMatch(/^[0-9A-Za-z]{43}$/);
      expect(base62Decode(s)).toBe(BigInt(`0x${Buffer.from(bytes).toString('hex')}`));
    }
  });

  it('base62EncodeUint32 (the checksum encoder) agrees with base62EncodeBigInt', () => {
    const values = [0, 1, 61, 62, 62 ** 2, 62 ** 5 - 1, 62 ** 5, 0x7fffffff, 0xcbf43926, 0xffffffff];
    for (let i = 0; i < 1000; i++) values.push(Math.floor(Math.random() * 2 ** 32));
    for (const v of values) expect(base62EncodeUint32(v, 6), String(v)).toBe(base62EncodeBigInt(BigInt(v), 6));
    expect(() => base62EncodeUint32(62, 1)).toThrow(RangeError);
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) expect(() => base62EncodeUint32(bad, 6)).toThrow(RangeError);
  });

  it('base62Digit gives the value of exactly the characters [0-9A-Za-z]', () => {
    for (let code = 0; code < 0x3000; code++) {
      const at = ALPHABET.indexOf(String.fromCharCode(code));
      expect(base62Digit(code), `char code ${code}`).toBe(at);
    }
  });

  it('base62DecodeNumber reads back what base62EncodeUint32 writes, and -1 for a non-digit', () => {
    for (const v of [0, 1, 61, 62, 0xcbf43926, 0xffffffff]) expect(base62DecodeNumber(`_${base62EncodeUint32(v, 6)}_`, 1, 7)).toBe(v);
    expect(base62DecodeNumber('zzzzzz', 0, 6)).toBe(62 ** 6 - 1);
    expect(base62DecodeNumber('ab-', 0, 3)).toBe(-1);
  });
});

describe('SDK key tokens', () => {
  it('formats kws_{id}_{secret} and parses it back', () => {
    for (let i = 0; i < 100; i++) {
      const id = newId();
      const secret = newSdkKeySecret();
      expect(secret).toMatch(/^[0-9A-Za-z]{43}$/);
      const token = formatSdkKey(id, secret);
      expect(token).toBe(`kws_${id}_${secret}`);
      expect(token).toMatch(/^kws_[0-9a-f-]{36}_[0-9A-Za-z]{43}$/);
      expect(parseSdkKey(token)).toEqual({ id, secret });
    }
  });

  it('rejects malformed tokens', () => {
    const id = newId();
    const secret = newSdkKeySecret();
    const good = formatSdkKey(id, secret);
    const bad = [
      '',
      'kws_',
      `kws_${id}`,
      `kws_${id}_`,
      `${id}_${secret}`,
      `kw_${id}_${secret}`,
      `KWS_${id}_${secret}`,
      `kws-${id}_${secret}`,
      `kws_${id}-${secret}`,
      `kws_${id.toUpperCase()}_${secret}`,
      `kws_${id.slice(1)}_${secret}`,
      `kws_${id}0_${secret}`,
      `kws_${id}_${secret.slice(1)}`,
      `kws_${id}_${secret}a`,
      `kws_${id}_${secret.slice(1)}-`,
      `kws_${id}_${secret.slice(1)}_`,
      ` ${good}`,
      `${good} `,
      `${good}\n`,
      `Bearer ${good}`,
      good + good,
      // The right length and characters, but the id is not a UUID: it must
      // not reach the database (a uuid column would reject it with an error).
      `kws_${'-'.repeat(36)}_${secret}`,
      `kws_${'0'.repeat(36)}_${secret}`,
      `kws_${id.replaceAll('-', 'a')}_${secret}`,
      `kws_${id.slice(0, 8)}${id.slice(9)}-_${secret}`,
    ];
    for (const t of bad) expect(parseSdkKey(t), JSON.stringify(t)).toBeUndefined();
  });

  it('fingerprints a token with SHA-256 without keeping it', () => {
    const token = formatSdkKey(newId(), newSdkKeySecret());
    const fp = sdkKeyFingerprint(token);
    expect(fp).toBe(createHash('sha256').update(token).digest('hex'));
    expect(fp).not.toContain(token.slice(4, 12));
    expect(sdkKeyFingerprint(`${token}x`)).not.toBe(fp);
  });

  it('stores the secret with bcrypt and checks it', async () => {
    const secret = newSdkKeySecret();
    const hash = await hashSdkKeySecret(secret);
    expect(hash).toMatch(/^\$2[aby]\$10\$/);
    expect(hash).not.toContain(secret);
    expect(await checkSdkKeySecret(secret, hash)).toBe(true);
    const wrong = (secret[0] === 'a' ? 'b' : 'a') + secret.slice(1);
    expect(await checkSdkKeySecret(wrong, hash)).toBe(false);
  });
});

describe('paging', () => {
  function domainError(fn: () => unknown): DomainError {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(DomainError);
      return e as DomainError;
    }
    throw new Error('did not throw');
  }

  it('rejects a negative or fractional page size naming page_size', () => {
    for (const pageSize of [-1, -1000, 1.5, Number.NaN]) {
      const e = domainError(() => openCursor({ pageSize, pageToken: '' }, {}, anyKey));
      expect(e.kind).toBe('invalid_argument');
      expect(e.message).toMatch(/^page_size: /);
    }
  });

  it('defaults 0 to 50, clamps to 1000 and fetches one extra row', () => {
    expect(DEFAULT_PAGE_SIZE).toBe(50);
    expect(MAX_PAGE_SIZE).toBe(1000);
    expect(openCursor({ pageSize: 0, pageToken: '' }, {}, anyKey)).toEqual({ limit: 51 });
    expect(openCursor({ pageSize: 1, pageToken: '' }, {}, anyKey)).toEqual({ limit: 2 });
    expect(openCursor({ pageSize: 10, pageToken: '' }, {}, anyKey)).toEqual({ limit: 11 });
    expect(openCursor({ pageSize: 1000, pageToken: '' }, {}, anyKey)).toEqual({ limit: 1001 });
    expect(openCursor({ pageSize: 1001, pageToken: '' }, {}, anyKey)).toEqual({ limit: 1001 });
    expect(openCursor({ pageSize: 2 ** 31 - 1, pageToken: '' }, {}, anyKey)).toEqual({ limit: 1001 });
  });

  it('pages through rows with tokens that round-trip', () => {
    const all = Array.from({ length: 25 }, (_, i) => ({ id: `id-${String(i).padStart(3, '0')}` }));
    const filters = { workspaceId: 'w1', state: 2 };
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const cursor = openCursor({ pageSize: 10, pageToken }, filters, anyKey);
      // What a query would return: rows after the cursor, up to the limit.
      const rows = all.filter((r) => cursor.after === undefined || r.id > cursor.after).slice(0, cursor.limit);
      const page = closePage(rows, cursor, filters, (r) => r.id);
      expect(page.items.length).toBeLessThanOrEqual(10);
      seen.push(...page.items.map((r) => r.id));
      pageToken = page.nextPageToken;
      if (pageToken) expect(pageToken).toMatch(/^[A-Za-z0-9_-]+$/);
      pages++;
    } while (pageToken && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(all.map((r) => r.id));
  });

  it('issues no token when the page is not full, and one when rows remain', () => {
    const cursor = openCursor({ pageSize: 3, pageToken: '' }, {}, anyKey);
    expect(closePage([1, 2, 3], cursor, {}, String)).toEqual({ items: [1, 2, 3], nextPageToken: '' });
    expect(closePage([], cursor, {}, String)).toEqual({ items: [], nextPageToken: '' });
    const full = closePage([1, 2, 3, 4], cursor, {}, String);
    expect(full.items).toEqual([1, 2, 3]);
    expect(openCursor({ pageSize: 3, pageToken: full.nextPageToken }, {}, anyKey).after).toBe('3');
  });

  it('rejects forged tokens and tokens issued for other filters, naming page_token', () => {
    const cursor = openCursor({ pageSize: 2, pageToken: '' }, { workspaceId: 'w1' }, anyKey);
    const { nextPageToken } = closePage(['a', 'b', 'c'], cursor, { workspaceId: 'w1' }, (s) => s);
    expect(nextPageToken).not.toBe('');
    expect(openCursor({ pageSize: 2, pageToken: nextPageToken }, { workspaceId: 'w1' }, anyKey).after).toBe('b');
    // A token whose cursor has the wrong shape for the listing is refused before any query.
    expect(domainError(() => openCursor({ pageSize: 2, pageToken: nextPageToken }, { workspaceId: 'w1' }, (k) => k.length > 5)).message).toMatch(
      /^page_token:/,
    );

    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const decoded = JSON.parse(Buffer.from(nextPageToken, 'base64url').toString('utf8')) as { a: string; f: string };
    const forged = [
      'garbage',
      'not a token!',
      '%%%',
      b64(null),
      b64(42),
      b64('b'),
      b64([]),
      b64({}),
      b64({ a: 'b' }),
      b64({ a: 'b', f: 'AAAAAAAAAAAA' }),
      b64({ a: 5, f: decoded.f }),
      b64({ a: 'b', f: decoded.f.slice(1) }),
      nextPageToken.slice(0, -2),
    ];
    for (const pageToken of forged) {
      const e = domainError(() => openCursor({ pageSize: 2, pageToken }, { workspaceId: 'w1' }, anyKey));
      expect(e.kind, pageToken).toBe('invalid_argument');
      expect(e.message, pageToken).toMatch(/^page_token: /);
    }
    // The real token, replayed against another query.
    for (const other of [{ workspaceId: 'w2' }, {}, { workspaceId: 'w1', state: 1 }, null]) {
      const e = domainError(() => openCursor({ pageSize: 2, pageToken: nextPageToken }, other, anyKey));
      expect(e.kind).toBe('invalid_argument');
      expect(e.message).toMatch(/^page_token: /);
    }
  });
});
