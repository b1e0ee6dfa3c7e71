import { permissionDenied } from './errors.js';

/** Scopes an SDK key can hold. `*` grants all of them. */
export const SDK_SCOPES = [
  'workspace:read',
  'workspace:write',
  'workspace_scopes:read',
  'workspace_scopes:write',
  'api_keys:read',
  'api_keys:write',
  'api_keys:verify',
  // Reading the audit trail (AuditService): who changed what, and refused credentials.
  'audit:read',
  // Managing SDK keys themselves (SdkKeyService): only ever within the caller's own scopes and workspaces.
  'sdk_keys:write',
] as const;
export type SdkScope = (typeof SDK_SCOPES)[number];
export const ALL_SCOPES = '*';

export function isSdkScope(s: string): s is SdkScope | typeof ALL_SCOPES {
  return s === ALL_SCOPES || (SDK_SCOPES as readonly string[]).includes(s);
}

/**
 * What a customer portal session narrows its caller to, beyond its one
 * workspace: keys of one customer, granted at most `allowedGrants`.
 */
export interface PortalLimits {
  sessionId: string;
  customerId: string;
  /** Scope name → the actions a key made through the portal may be granted on it. */
  allowedGrants: ReadonlyMap<string, ReadonlySet<string>>;
  expireTime: Date;
}

/** Who is calling: an authenticated SDK key, a customer portal session, or the operator's CLI. */
export class Principal {
  private readonly scopeSet: ReadonlySet<string>;
  private readonly workspaceSet: ReadonlySet<string> | undefined;

  constructor(
    /** SDK key id, or `cli` for the operator. */
    readonly actor: string,
    /** Scopes held (a set is kept as is: inRequest() shares them). */
    scopes: readonly string[] | ReadonlySet<string>,
    /** Workspaces the key is restricted to; none means all. */
    workspaceIds: readonly string[] | ReadonlySet<string>,
    /** The request (its x-request-id) this principal acts in, for audit records; null outside an RPC. */
    readonly requestId: string | null = null,
    /** Set for a customer portal session: only that customer's keys. */
    readonly portal?: PortalLimits,
  ) {
    this.scopeSet = scopes instanceof Set ? scopes : new Set(scopes);
    const workspaces = workspaceIds instanceof Set ? workspaceIds : new Set(workspaceIds);
    this.workspaceSet = workspaces.size > 0 ? workspaces : undefined;
  }

  /** The same rights, acting in one request. */
  inRequest(requestId: string | null): Principal {
    return new Principal(this.actor, this.scopeSet, this.workspaceSet ?? [], requestId, this.portal);
  }

  get restricted(): boolean {
    return this.workspaceSet !== undefined;
  }

  hasScope(scope: SdkScope): boolean {
    return this.scopeSet.has(ALL_SCOPES) || this.scopeSet.has(scope);
  }

  requireScope(scope: SdkScope): void {
    if (!this.hasScope(scope)) throw permissionDenied(`the SDK key lacks the ${scope} scope`);
  }

  /** Whether resources of this workspace are visible; invisible ones are NOT_FOUND. */
  canSee(workspaceId: string): boolean {
    return this.workspaceSet === undefined || this.workspaceSet.has(workspaceId);
  }

  /** Whether a key is visible: its workspace, and for a portal session its customer; invisible ones are NOT_FOUND. */
  canSeeKey(key: { workspaceId: string; customerId: string }): boolean {
    return this.canSee(key.workspaceId) && (this.portal === undefined || this.portal.customerId === key.customerId);
  }

  /** Scopes this principal holds, as given (`*` included). */
  get scopes(): ReadonlySet<string> {
    return this.scopeSet;
  }

  /** For requests that name a workspace themselves: no existence is revealed. */
  requireWorkspace(workspaceId: string): void {
    if (!this.canSee(workspaceId)) throw permissionDenied('the SDK key may not access this workspace');
  }

  visibleWorkspaces(): readonly string[] | undefined {
    return this.workspaceSet ? [...this.workspaceSet] : undefined;
  }
}

export const CLI_PRINCIPAL = new Principal('cli', [ALL_SCOPES], []);
