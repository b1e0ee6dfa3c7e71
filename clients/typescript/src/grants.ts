// Permissions as strings (`balance_transfers:read`) and as the proto's
// Grant{scope, actions}.
import { Action, type Grant } from '../../../gen/keyward/v1/key_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { GrantSchema } from '../../../gen/keyward/v1/key_pb.js';

export type ActionName = 'read' | 'create' | 'update' | 'delete';
/** `scope:action`, e.g. `balance_transfers:read`. */
export type Permission = `${string}:${ActionName}` | (string & {});
/** A grant as `scope:action`, or as `{ scope, actions: ['read', ...] }`. */
export type GrantInput = Permission | { scope: string; actions: ActionName[] };

const ACTIONS: Record<ActionName, Action> = {
  read: Action.READ,
  create: Action.CREATE,
  update: Action.UPDATE,
  delete: Action.DELETE,
};
const NAMES = new Map<Action, ActionName>(Object.entries(ACTIONS).map(([n, a]) => [a, n as ActionName]));

/**
 * `['a:read', 'a:create', 'b:read']` → `[{scope: 'a', actions: [READ, CREATE]}, {scope: 'b', actions: [READ]}]`.
 * An unknown action is passed on as UNSPECIFIED for the server to refuse with the field named.
 */
export function toGrants(grants: readonly GrantInput[]): MessageInitShape<typeof GrantSchema>[] {
  const byScope = new Map<string, Action[]>();
  const add = (scope: string, action: string) => {
    const a = ACTIONS[action as ActionName] ?? Action.UNSPECIFIED;
    const list = byScope.get(scope) ?? [];
    if (!list.includes(a)) list.push(a);
    byScope.set(scope, list);
  };
  for (const g of grants) {
    if (typeof g === 'string') {
      const i = g.lastIndexOf(':');
      if (i < 0) add(g, '');
      else add(g.slice(0, i), g.slice(i + 1));
    } else {
      if (g.actions.length === 0) byScope.set(g.scope, byScope.get(g.scope) ?? []);
      for (const a of g.actions) add(g.scope, a);
    }
  }
  return [...byScope].map(([scope, actions]) => ({ scope, actions }));
}

/** Grants as `scope:action` strings, sorted. */
export function grantStrings(grants: readonly Grant[]): string[] {
  return grants.flatMap((g) => g.actions.map((a) => `${g.scope}:${NAMES.get(a) ?? 'unspecified'}`)).sort();
}
