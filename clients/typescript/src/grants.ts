// Permissions as strings (`balance_transfers:read`, `inference:write`, or a
// whole scope, `admin`) and as the proto's Grant{scope, actions,
// custom_actions, all_actions}.
import { Action, type Grant } from '../../../gen/keyward/v1/key_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { GrantSchema } from '../../../gen/keyward/v1/key_pb.js';

/** The standard actions; a scope may declare others (`write`). */
export type ActionName = 'read' | 'create' | 'update' | 'delete';
/** `scope:action` (`balance_transfers:read`), or a bare scope for the whole scope (`admin`). */
export type Permission = `${string}:${ActionName}` | (string & {});
/** A grant as a permission string, or as `{ scope, actions: ['read', 'write', ...] }`, or `{ scope, all: true }` for the whole scope. */
export type GrantInput = Permission | { scope: string; actions?: string[]; all?: boolean };

const ACTIONS: Record<string, Action> = {
  read: Action.READ,
  create: Action.CREATE,
  update: Action.UPDATE,
  delete: Action.DELETE,
};
const NAMES = new Map<Action, string>(Object.entries(ACTIONS).map(([n, a]) => [a, n]));

type GrantInit = { scope: string; actions: Action[]; customActions: string[]; allActions: boolean };

/**
 * `['a:read', 'a:write', 'b']` → `[{scope: 'a', actions: [READ], customActions: ['write']}, {scope: 'b', allActions: true}]`.
 * Whatever is not a standard action travels by name, for the server to check
 * against the actions the scope declares (and refuse with the field named).
 */
export function toGrants(grants: readonly GrantInput[]): MessageInitShape<typeof GrantSchema>[] {
  const byScope = new Map<string, GrantInit>();
  const grantOf = (scope: string) => {
    let g = byScope.get(scope);
    if (g === undefined) byScope.set(scope, (g = { scope, actions: [], customActions: [], allActions: false }));
    return g;
  };
  const add = (scope: string, action: string) => {
    const g = grantOf(scope);
    const standard = ACTIONS[action];
    if (standard !== undefined) {
      if (!g.actions.includes(standard)) g.actions.push(standard);
    } else if (!g.customActions.includes(action)) {
      g.customActions.push(action);
    }
  };
  for (const g of grants) {
    if (typeof g === 'string') {
      const i = g.indexOf(':');
      if (i < 0) grantOf(g).allActions = true;
      else add(g.slice(0, i), g.slice(i + 1));
    } else {
      const grant = grantOf(g.scope);
      if (g.all) grant.allActions = true;
      for (const a of g.actions ?? []) add(g.scope, a);
    }
  }
  return [...byScope.values()];
}

/** Grants as permission strings, sorted: `scope:action`, or `scope` for a whole-scope grant. */
export function grantStrings(grants: readonly Grant[]): string[] {
  return grants
    .flatMap((g) =>
      g.allActions ? [g.scope] : [...g.actions.map((a) => `${g.scope}:${NAMES.get(a) ?? 'unspecified'}`), ...g.customActions.map((a) => `${g.scope}:${a}`)],
    )
    .sort();
}
