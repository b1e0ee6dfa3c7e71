// The embedded database's statements go with their values written into the
// text (src/db/database.ts): each value must come back from a real
// PostgreSQL (PGlite, in process) exactly as it was given.
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inlineValues } from '../../src/db/database.js';

let db: PGlite;
beforeAll(async () => {
  db = await PGlite.create();
});
afterAll(async () => {
  await db.close();
});

const tricky = ["it's", 'back\\slash', 'quote " and \\" both', '$1 and $2', "'; drop table x; --", 'ünï©ødé', '{braces}', 'a,b', 'NULL', ''];

describe('inlineValues', () => {
  it('writes strings, arrays, numbers, booleans, times, JSON and null as literals that read back unchanged', async () => {
    const when = new Date('2026-12-07T05:44:55.840Z');
    const doc = { name: "o'brien", list: ['x', '"y"'], n: 1.5, nested: { back: '\\' } };
    const text = inlineValues(
      'select $1::text[] as arr, $2::bigint as big, $3::boolean as flag, $4::timestamptz as at, $5::jsonb as doc, $6::text as nothing, $7::numeric as neg',
      [tricky, 9007199254740991, false, when, doc, null, -42.25],
    );
    const { rows } = await db.query<Record<string, unknown>>(text);
    expect(rows[0]).toEqual({ arr: tricky, big: 9007199254740991, flag: false, at: when, doc, nothing: null, neg: '-42.25' });
  });

  it('keeps every string apart from the statement around it', async () => {
    for (const s of tricky) {
      const { rows } = await db.query<{ s: string }>(inlineValues('select $1::text as s', [s]));
      expect(rows[0]!.s).toBe(s);
    }
  });

  it('reads each placeholder by its number, also past $9', async () => {
    const values = Array.from({ length: 12 }, (_, i) => `v${i + 1}`);
    const text = inlineValues(`select ${values.map((_, i) => `$${i + 1}::text as c${i + 1}`).join(', ')}`, values);
    const { rows } = await db.query<Record<string, string>>(text);
    expect(Object.values(rows[0]!)).toEqual(values);
  });
});
