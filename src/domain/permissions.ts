// Permissions: a scope declares its actions; a key is granted actions on
// scopes, or whole scopes. Their string form, shared by management, VerifyKey,
// tokens and forward auth:
//   `scope:action`  one action the scope declares (`inference:write`)
//   `scope`         the whole scope (`admin`): every action it declares, now
//                   or later, and the bare requirement `scope`
// A grant stores its actions by name, the whole scope as WHOLE_SCOPE.

/** What a scope declares when created without actions (Oneloop's four). */
export const STANDARD_ACTIONS = ['read', 'create', 'update', 'delete'] as const;
/** A grant's action list meaning the whole scope. */
export const WHOLE_SCOPE = '*';
export const MAX_SCOPE_ACTIONS = 32;
export const ACTION_PATTERN = '[a-z][a-z0-9_-]{0,31}';
const MAX_ACTION_LENGTH = 32;
const MAX_SCOPE_LENGTH = 64;

export interface GrantSpec {
  scope: string;
  /** Action names, or [WHOLE_SCOPE]. */
  actions: readonly string[];
}

const isLower = (c: number) => c >= 97 && c <= 122;
const isDigit = (c: number) => c >= 48 && c <= 57;
const isScopeChar = (c: number) => isLower(c) || isDigit(c) || c === 95 || c === 46 || c === 45;
const isActionChar = (c: number) => isLower(c) || isDigit(c) || c === 95 || c === 45;

/** `[a-z][a-z0-9_-]{0,31}`. */
export function isActionName(s: string, from = 0): boolean {
  const n = s.length - from;
  if (n < 1 || n > MAX_ACTION_LENGTH || !isLower(s.charCodeAt(from))) return false;
  for (let i = from + 1; i < s.length; i++) if (!isActionChar(s.charCodeAt(i))) return false;
  return true;
}

/**
 * True if `s` is a permission string: a scope name ([a-z][a-z0-9_.-]{0,63},
 * as SCOPE_NAME_RE), optionally followed by `:action`. Checked by character
 * code, without a regular expression or a substring: VerifyKey checks every
 * required permission of every call.
 */
export function isPermission(s: string): boolean {
  let colon = s.indexOf(':');
  if (colon < 0) colon = s.length;
  if (colon < 1 || colon > MAX_SCOPE_LENGTH || !isLower(s.charCodeAt(0))) return false;
  for (let i = 1; i < colon; i++) if (!isScopeChar(s.charCodeAt(i))) return false;
  return colon === s.length || isActionName(s, colon + 1);
}

/** `scope:action` → {scope, action}; a bare scope → {scope, action: WHOLE_SCOPE}. Assumes isPermission. */
export function parsePermission(s: string): { scope: string; action: string } {
  const colon = s.indexOf(':');
  return colon < 0 ? { scope: s, action: WHOLE_SCOPE } : { scope: s.slice(0, colon), action: s.slice(colon + 1) };
}

/** A grant's permission strings. */
export function permissionStrings(grants: readonly GrantSpec[]): string[] {
  return grants.flatMap((g) => g.actions.map((a) => (a === WHOLE_SCOPE ? g.scope : `${g.scope}:${a}`))).sort();
}

/**
 * Whether `granted` (permission strings) satisfies `required`: the same
 * string, or for `scope:action`, the whole scope.
 */
export function grants(granted: ReadonlySet<string>, required: string): boolean {
  if (granted.has(required)) return true;
  const colon = required.indexOf(':');
  return colon > 0 && granted.has(required.slice(0, colon));
}

export function grantsAll(granted: ReadonlySet<string>, required: readonly string[]): boolean {
  for (let i = 0; i < required.length; i++) if (!grants(granted, required[i]!)) return false;
  return true;
}
