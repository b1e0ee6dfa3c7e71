// A key's (or a portal session's) grants as asked for, in either form —
// structured grants or permission strings — merged, checked against the
// scopes the workspace declares, and resolved to scope rows.
import { LockMode, type EntityManager } from '@mikro-orm/core';
import { Scope } from '../db/entities.js';
import { invalidArgument } from './errors.js';
import { isActionName, isPermission, parsePermission, WHOLE_SCOPE, type GrantSpec } from './permissions.js';

/** Grants as asked for: structured (`grants`) and as strings (`permissions`, ApiKey.scopes). */
export interface GrantsInput {
  grants: GrantSpec[];
  permissions: string[];
}

/** One scope's wanted actions, with the request field that first named it (for errors). */
export interface Wanted {
  actions: Set<string>;
  field: string;
}

const quoted = (s: string) => JSON.stringify(s.slice(0, 64));

/**
 * Both forms merged by scope name, each entry checked for shape. `field` is
 * the grants' field (`key.grants`); `permissionsField` the strings' field.
 */
export function wantedOf(input: GrantsInput, field: string, permissionsField: string): Map<string, Wanted> {
  const wanted = new Map<string, Wanted>();
  const add = (scope: string, action: string, at: string) => {
    const w = wanted.get(scope) ?? { actions: new Set<string>(), field: at };
    w.actions.add(action);
    wanted.set(scope, w);
  };
  input.grants.forEach((g, i) => {
    const at = `${field}[${i}]`;
    if (g.scope === '') throw invalidArgument(`${at}.scope`, 'is required');
    if (g.actions.length === 0) throw invalidArgument(`${at}.actions`, 'must name at least one action (or set all_actions for the whole scope)');
    for (const a of g.actions) {
      if (a !== WHOLE_SCOPE && !isActionName(a)) throw invalidArgument(`${at}.actions`, `unknown action ${quoted(a)}`);
      add(g.scope, a, `${at}.scope`);
    }
  });
  input.permissions.forEach((s, i) => {
    const at = `${permissionsField}[${i}]`;
    if (!isPermission(s)) throw invalidArgument(at, `${quoted(s)} is not scope:action or a scope name (e.g. inference:write, admin)`);
    const { scope, action } = parsePermission(s);
    add(scope, action, at);
  });
  return wanted;
}

/** A scope as grants are resolved against it. */
export type ScopeRow = Pick<Scope, 'id' | 'name' | 'actions'>;

/** Grants resolved to scope rows. */
export type ResolvedGrant = { scope: ScopeRow; actions: string[] };

/**
 * Resolves grants by scope name to rows, rejecting unknown scopes and actions
 * the scope does not declare. A whole-scope grant absorbs the scope's single
 * actions. The scopes stay share-locked until the transaction ends, so a
 * concurrent DeleteScope either waits (and its cascade removes the new
 * grants) or has committed (and the scope is unknown here).
 */
export async function resolveGrants(em: EntityManager, workspaceId: string, input: GrantsInput, field = 'key.grants', permissionsField = 'key.scopes') {
  const wanted = wantedOf(input, field, permissionsField);
  if (wanted.size === 0) return [];
  const scopes = await em.find(Scope, { workspaceId, name: { $in: [...wanted.keys()] } }, { lockMode: LockMode.PESSIMISTIC_READ });
  return resolveWanted(scopes, [wanted])[0]!;
}

/** The scope names `wanted` (several keys' wantedOf) name. */
export const scopeNamesOf = (wanted: Map<string, Wanted>[]) => [...new Set(wanted.flatMap((w) => [...w.keys()]))];

/** Each key's wanted grants (wantedOf) resolved against `scopes`, the workspace's scopes of those names (see resolveGrants). */
export function resolveWanted(scopes: ScopeRow[], wanted: Map<string, Wanted>[]): ResolvedGrant[][] {
  const byName = new Map(scopes.map((s) => [s.name, s]));
  return wanted.map((w) =>
    [...w].map(([name, { actions, field }]) => {
      const scope = byName.get(name);
      if (!scope) throw invalidArgument(field, `the workspace has no scope named ${quoted(name)}`);
      if (actions.has(WHOLE_SCOPE)) return { scope, actions: [WHOLE_SCOPE] };
      const undeclared = [...actions].find((a) => !scope.actions.includes(a));
      if (undeclared !== undefined) {
        throw invalidArgument(field, `the scope ${quoted(name)} declares no action ${quoted(undeclared)} (it declares ${scope.actions.join(', ')})`);
      }
      return { scope, actions: scope.actions.filter((a) => actions.has(a)) };
    }),
  );
}
