// Permission strings against their definition, as plain functions: no server, no database.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grants, grantsAll, isPermission, parsePermission, permissionStrings } from '../../src/domain/permissions.js';
import { SCOPE_NAME_RE } from '../../src/domain/scopes.js';

// The definition: a scope name, optionally ':' and an action name.
const DEFINITION = new RegExp(`^(${SCOPE_NAME_RE.source.slice(1, -1)})(:[a-z][a-z0-9_-]{0,31})?$`);

describe('isPermission', () => {
  it('accepts scope:action and a bare scope, nothing else', () => {
    const ok = [
      'a:read',
      'balance_transfers:create',
      'a.b-c_9:update',
      `a${'b'.repeat(63)}:delete`,
      'inference:write',
      'admin',
      'a:b_c-9',
      `a:${'b'.repeat(32)}`,
    ];
    for (const s of ok) expect(isPermission(s), s).toBe(true);
    const bad = [
      '',
      ':read',
      'a:',
      'a:Read',
      'A:read',
      '9a:read',
      'a:read ',
      ' a:read',
      'a:read\n',
      'a::read',
      'a:read:read',
      `a${'b'.repeat(64)}:read`,
      'é:read',
      'a:9x',
      'a:b.c',
      `a:${'b'.repeat(33)}`,
      'a:*',
    ];
    for (const s of bad) expect(isPermission(s), JSON.stringify(s)).toBe(false);
  });

  it('answers as the regular expression of the definition does, for near-permissions and random strings', () => {
    const scope = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,70}$/);
    const action = fc.constantFrom('read', 'write', 'x_y-z9', 'Read', '', '9a', 'a'.repeat(33));
    const near = fc.tuple(scope, action, fc.nat(110), fc.string({ unit: 'binary', maxLength: 2 }), fc.nat(2)).map(([sc, ac, at, insert, drop]) => {
      const p = `${sc}:${ac}`;
      return p.slice(0, at) + insert + p.slice(at + drop);
    });
    fc.assert(
      fc.property(fc.oneof(near, scope, fc.string({ maxLength: 80 })), (s) => {
        expect(isPermission(s)).toBe(DEFINITION.test(s));
      }),
      { numRuns: 10_000 },
    );
  });
});

describe('grants', () => {
  it('a whole scope satisfies each of its actions and itself; an action satisfies only itself', () => {
    const granted = new Set(
      permissionStrings([
        { scope: 'admin', actions: ['*'] },
        { scope: 'inference', actions: ['read', 'write'] },
      ]),
    );
    expect([...granted]).toEqual(['admin', 'inference:read', 'inference:write']);
    for (const ok of ['admin', 'admin:anything', 'inference:read', 'inference:write']) expect(grants(granted, ok), ok).toBe(true);
    for (const no of ['inference', 'inference:delete', 'adm', 'admin2:read', 'other:read']) expect(grants(granted, no), no).toBe(false);
    expect(grantsAll(granted, ['admin', 'inference:write'])).toBe(true);
    expect(grantsAll(granted, ['admin', 'inference'])).toBe(false);
    expect(grantsAll(granted, [])).toBe(true);
  });

  it('parsePermission splits at the colon; a bare scope is the whole scope', () => {
    expect(parsePermission('inference:write')).toEqual({ scope: 'inference', action: 'write' });
    expect(parsePermission('admin')).toEqual({ scope: 'admin', action: '*' });
  });
});
