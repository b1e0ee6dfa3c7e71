// isPermission against its definition, as plain functions: no server, no database.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPermission } from '../../src/domain/key-state.js';
import { SCOPE_NAME_RE } from '../../src/domain/scopes.js';

// The definition: a scope name, ':', an action.
const DEFINITION = new RegExp(`^(${SCOPE_NAME_RE.source.slice(1, -1)}):(read|create|update|delete)$`);

describe('isPermission', () => {
  it('accepts scope:action and nothing else', () => {
    for (const ok of ['a:read', 'balance_transfers:create', 'a.b-c_9:update', `a${'b'.repeat(63)}:delete`]) expect(isPermission(ok), ok).toBe(true);
    for (const bad of ['', ':read', 'a:', 'a:Read', 'A:read', '9a:read', 'a:read ', ' a:read', 'a:read\n', 'a:readx', 'a:rea', 'a::read', 'a:read:read', `a${'b'.repeat(64)}:read`, 'é:read']) {
      expect(isPermission(bad), JSON.stringify(bad)).toBe(false);
    }
  });

  it('answers as the regular expression of the definition does, for near-permissions and random strings', () => {
    const scope = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,70}$/);
    const action = fc.constantFrom('read', 'create', 'update', 'delete', 'reads', 'rea', 'Read', '');
    const near = fc
      .tuple(scope, action, fc.nat(80), fc.string({ unit: 'binary', maxLength: 2 }), fc.nat(2))
      .map(([sc, ac, at, insert, drop]) => {
        const p = `${sc}:${ac}`;
        return p.slice(0, at) + insert + p.slice(at + drop);
      });
    fc.assert(
      fc.property(fc.oneof(near, fc.string({ maxLength: 80 })), (s) => {
        expect(isPermission(s)).toBe(DEFINITION.test(s));
      }),
      { numRuns: 10_000 },
    );
  });
});
