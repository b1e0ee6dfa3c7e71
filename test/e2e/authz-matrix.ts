import type { SdkScope } from '../../src/domain/principal.js';

/**
 * How an RPC meets a workspace restriction of the SDK key:
 * - `create-workspace`: restricted keys may not call it at all (PERMISSION_DENIED);
 * - `list-workspaces`: answers, but only with the key's own workspaces;
 * - `by-id`: addresses a resource by id; another workspace's is NOT_FOUND, as
 *   if it did not exist;
 * - `names-workspace`: the request itself names the workspace; another one is
 *   PERMISSION_DENIED (nothing about it is revealed);
 * - `list-sdk-keys`: answers, a restricted key seeing only SDK keys restricted
 *   to some of its own workspaces;
 * - `self`: about the calling SDK key itself: any valid SDK key may call it;
 * - `portal-only`: only a customer portal token may call it; every SDK key is
 *   PERMISSION_DENIED (portal tokens: test/e2e/portal-auth.test.ts);
 * - `own-api-key`: takes no SDK key: the customer's API key in the
 *   authorization header is the credential, so every SDK key (valid or not,
 *   any scope or workspace) is UNAUTHENTICATED, as any string that is no
 *   valid API key (the key itself: security.test.ts and
 *   test/e2e/customer-tokens.test.ts).
 */
export type Access = 'create-workspace' | 'list-workspaces' | 'list-sdk-keys' | 'by-id' | 'names-workspace' | 'self' | 'portal-only' | 'own-api-key';

/** What a call answers: a gRPC code, or `OK` (`OK_OWN`: succeeds, showing only the key's own workspaces). */
export type Expected = 'UNAUTHENTICATED' | 'PERMISSION_DENIED' | 'NOT_FOUND' | 'OK' | 'OK_OWN';

/** The credentials every RPC is called with (security.test.ts). */
export interface ExpectedByCredential {
  /** No header, another scheme, a malformed SDK key, an unknown one, a revoked one, a known id with a wrong secret. */
  unauthenticated: Expected;
  /** A valid SDK key with every scope but the RPC's. */
  missingScope: Expected;
  /** A valid SDK key with the scope, restricted to another workspace than the resource's or the request's. */
  otherWorkspace: Expected;
  /** A valid SDK key with only the RPC's scope. */
  rightKey: Expected;
  /** A valid SDK key with every scope, restricted to the workspace the request addresses. */
  restrictedToThisWorkspace: Expected;
}

/**
 * The matrix's expected codes: each row below (RPC → scope, access) takes the
 * column of its access kind, so every RPC × credential has one expected answer.
 */
export const EXPECTED: Record<Access, ExpectedByCredential> = {
  'create-workspace': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'PERMISSION_DENIED',
    otherWorkspace: 'PERMISSION_DENIED',
    rightKey: 'OK',
    restrictedToThisWorkspace: 'PERMISSION_DENIED',
  },
  'list-workspaces': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'PERMISSION_DENIED',
    otherWorkspace: 'OK_OWN',
    rightKey: 'OK',
    restrictedToThisWorkspace: 'OK',
  },
  'by-id': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'PERMISSION_DENIED',
    otherWorkspace: 'NOT_FOUND',
    rightKey: 'OK',
    restrictedToThisWorkspace: 'OK',
  },
  'names-workspace': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'PERMISSION_DENIED',
    otherWorkspace: 'PERMISSION_DENIED',
    rightKey: 'OK',
    restrictedToThisWorkspace: 'OK',
  },
  'list-sdk-keys': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'PERMISSION_DENIED',
    otherWorkspace: 'OK_OWN',
    rightKey: 'OK',
    restrictedToThisWorkspace: 'OK',
  },
  self: { unauthenticated: 'UNAUTHENTICATED', missingScope: 'OK', otherWorkspace: 'OK', rightKey: 'OK', restrictedToThisWorkspace: 'OK' },
  'portal-only': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'PERMISSION_DENIED',
    otherWorkspace: 'PERMISSION_DENIED',
    rightKey: 'PERMISSION_DENIED',
    restrictedToThisWorkspace: 'PERMISSION_DENIED',
  },
  'own-api-key': {
    unauthenticated: 'UNAUTHENTICATED',
    missingScope: 'UNAUTHENTICATED',
    otherWorkspace: 'UNAUTHENTICATED',
    rightKey: 'UNAUTHENTICATED',
    restrictedToThisWorkspace: 'UNAUTHENTICATED',
  },
};

export interface AuthzRow {
  /** The SDK scope the RPC requires (src/domain/* requireScope); none for `self`, `portal-only` and `own-api-key`. */
  scope?: SdkScope;
  access: Access;
}

/**
 * Every RPC of every service, as `Service/Method`. security.test.ts enumerates
 * the generated service descriptors and fails for an RPC without a row here
 * (and for a row naming no RPC), so a new RPC cannot ship without an
 * authorization decision.
 */
export const AUTHZ_MATRIX = {
  'WorkspaceService/CreateWorkspace': { scope: 'workspace:write', access: 'create-workspace' },
  'WorkspaceService/GetWorkspace': { scope: 'workspace:read', access: 'by-id' },
  'WorkspaceService/ListWorkspaces': { scope: 'workspace:read', access: 'list-workspaces' },
  'WorkspaceService/UpdateWorkspace': { scope: 'workspace:write', access: 'by-id' },
  'WorkspaceService/DeleteWorkspace': { scope: 'workspace:write', access: 'by-id' },

  'ScopeService/CreateScope': { scope: 'workspace_scopes:write', access: 'names-workspace' },
  'ScopeService/GetScope': { scope: 'workspace_scopes:read', access: 'by-id' },
  'ScopeService/ListScopes': { scope: 'workspace_scopes:read', access: 'names-workspace' },
  'ScopeService/UpdateScope': { scope: 'workspace_scopes:write', access: 'by-id' },
  'ScopeService/DeleteScope': { scope: 'workspace_scopes:write', access: 'by-id' },

  'KeyService/CreateKey': { scope: 'api_keys:write', access: 'names-workspace' },
  'KeyService/ImportKeys': { scope: 'api_keys:write', access: 'names-workspace' },
  'KeyService/GetKey': { scope: 'api_keys:read', access: 'by-id' },
  'KeyService/ListKeys': { scope: 'api_keys:read', access: 'names-workspace' },
  'KeyService/UpdateKey': { scope: 'api_keys:write', access: 'by-id' },
  'KeyService/RotateKey': { scope: 'api_keys:write', access: 'by-id' },
  'KeyService/RevokeKey': { scope: 'api_keys:write', access: 'by-id' },
  'KeyService/DeleteKey': { scope: 'api_keys:write', access: 'by-id' },
  // The matrix request sets workspace_id; without it another workspace's key
  // verifies as NOT_FOUND (tested separately).
  'KeyService/VerifyKey': { scope: 'api_keys:verify', access: 'names-workspace' },

  // Usage is read like keys are.
  'UsageService/GetKeyUsage': { scope: 'api_keys:read', access: 'by-id' },
  'UsageService/GetWorkspaceUsage': { scope: 'api_keys:read', access: 'names-workspace' },

  // The matrix request names workspace_id; without it a restricted key sees
  // only its workspaces' events (tested in audit.test.ts).
  'AuditService/ListAuditEvents': { scope: 'audit:read', access: 'names-workspace' },

  // A webhook is workspace configuration.
  'WebhookService/SetWebhook': { scope: 'workspace:write', access: 'names-workspace' },
  'WebhookService/GetWebhook': { scope: 'workspace:read', access: 'names-workspace' },
  'WebhookService/DeleteWebhook': { scope: 'workspace:write', access: 'names-workspace' },
  'WebhookService/ListWebhookDeliveries': { scope: 'workspace:read', access: 'names-workspace' },
  'WebhookService/RedeliverWebhookEvent': { scope: 'workspace:write', access: 'names-workspace' },
  // Posts to the receiver, as a redelivery does.
  'WebhookService/SendTestEvent': { scope: 'workspace:write', access: 'names-workspace' },
  // Verifies like VerifyKey (same request shape), then signs a token.
  'TokenService/ExchangeKey': { scope: 'api_keys:verify', access: 'names-workspace' },
  // The customer's API key exchanges itself: no SDK key, only that key.
  'TokenService/ExchangeOwnKey': { access: 'own-api-key' },

  // SDK keys hand out no more than their own scopes and workspaces.
  'SdkKeyService/GetCurrentSdkKey': { access: 'self' },
  'SdkKeyService/CreateSdkKey': { scope: 'sdk_keys:write', access: 'names-workspace' },
  'SdkKeyService/ListSdkKeys': { scope: 'sdk_keys:write', access: 'list-sdk-keys' },
  'SdkKeyService/RevokeSdkKey': { scope: 'sdk_keys:write', access: 'by-id' },

  // A portal session is minted by whoever may write the workspace's keys.
  'PortalService/CreatePortalSession': { scope: 'api_keys:write', access: 'names-workspace' },
  'PortalService/GetPortalSession': { access: 'portal-only' },
} satisfies Record<string, AuthzRow>;

export type RpcName = keyof typeof AUTHZ_MATRIX;

/**
 * gRPC's standard services, generated from the vendored protos in proto/grpc/
 * and served WITHOUT an SDK key (src/app.ts STANDARD_SERVICES): health
 * checking and server reflection reveal no data. security.test.ts fails for a
 * generated service that is neither Keyward's (and in the matrix) nor listed
 * here.
 */
export const OPEN_SERVICES = ['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];
