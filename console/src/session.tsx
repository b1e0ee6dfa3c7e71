// The signed-in SDK key: its clients, and what its scopes allow.
import { createContext, useContext } from 'react';
import type { Api } from './api.js';
import type { SdkKey } from '../../gen/keyward/v1/sdk_key_service_pb.js';

export type SdkScope =
  | 'workspace:read'
  | 'workspace:write'
  | 'workspace_scopes:read'
  | 'workspace_scopes:write'
  | 'api_keys:read'
  | 'api_keys:write'
  | 'api_keys:verify'
  | 'audit:read'
  | 'sdk_keys:write';

export const SDK_SCOPES: { scope: SdkScope; label: string }[] = [
  { scope: 'workspace:read', label: 'Read workspaces and webhooks' },
  { scope: 'workspace:write', label: 'Create, change and delete workspaces and webhooks' },
  { scope: 'workspace_scopes:read', label: 'Read scopes' },
  { scope: 'workspace_scopes:write', label: 'Create, change and delete scopes' },
  { scope: 'api_keys:read', label: 'Read API keys and usage' },
  { scope: 'api_keys:write', label: 'Create, change, rotate, revoke and delete API keys' },
  { scope: 'api_keys:verify', label: 'Verify API keys (gateways)' },
  { scope: 'audit:read', label: 'Read the audit log' },
  { scope: 'sdk_keys:write', label: 'Create, list and revoke SDK keys' },
];

export interface Session {
  api: Api;
  /** The calling SDK key, or null when the server could not say (assumed to hold every scope). */
  me: SdkKey | null;
  can(scope: SdkScope): boolean;
  /** Whether the key may reach this workspace (unrestricted keys reach all). */
  canWorkspace(id: string): boolean;
  signOut(): void;
}

export function sessionFor(api: Api, me: SdkKey | null, signOut: () => void): Session {
  const scopes = new Set(me?.scopes ?? ['*']);
  const workspaces = new Set(me?.workspaceIds ?? []);
  return {
    api,
    me,
    can: (s) => scopes.has('*') || scopes.has(s),
    canWorkspace: (id) => workspaces.size === 0 || workspaces.has(id),
    signOut,
  };
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in console');
  return s;
}
