// Connect clients for every Keyward service, one transport carrying the
// signed-in SDK key, and the formatting of server errors for people.
import { Code, ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import type { DescService } from '@bufbuild/protobuf';
import { AuditService } from '../../gen/keyward/v1/audit_service_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { ScopeService } from '../../gen/keyward/v1/scope_service_pb.js';
import { SdkKeyService } from '../../gen/keyward/v1/sdk_key_service_pb.js';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import { WebhookService } from '../../gen/keyward/v1/webhook_service_pb.js';
import { WorkspaceService } from '../../gen/keyward/v1/workspace_service_pb.js';

/** sessionStorage only: gone when the tab closes, never in a URL, cookie or log. */
const STORAGE_KEY = 'keyward.console.sdkKey';

export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // Storage disabled: the key lives in memory for this page only.
  }
}

export interface Api {
  workspaces: Client<typeof WorkspaceService>;
  scopes: Client<typeof ScopeService>;
  keys: Client<typeof KeyService>;
  usage: Client<typeof UsageService>;
  audit: Client<typeof AuditService>;
  webhooks: Client<typeof WebhookService>;
  sdkKeys: Client<typeof SdkKeyService>;
}

/** Clients that send `token` as `authorization: Bearer`; `onUnauthenticated` runs when the server refuses it. */
export function createApi(token: string, onUnauthenticated?: () => void, baseUrl = window.location.origin): Api {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    try {
      return await next(req);
    } catch (e) {
      if (ConnectError.from(e).code === Code.Unauthenticated) onUnauthenticated?.();
      throw e;
    }
  };
  const transport = createConnectTransport({ baseUrl, useBinaryFormat: false, interceptors: [auth] });
  const make = <S extends DescService>(s: S) => createClient(s, transport);
  return {
    workspaces: make(WorkspaceService),
    scopes: make(ScopeService),
    keys: make(KeyService),
    usage: make(UsageService),
    audit: make(AuditService),
    webhooks: make(WebhookService),
    sdkKeys: make(SdkKeyService),
  };
}

const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: 'CANCELED',
  [Code.Unknown]: 'UNKNOWN',
  [Code.InvalidArgument]: 'INVALID_ARGUMENT',
  [Code.DeadlineExceeded]: 'DEADLINE_EXCEEDED',
  [Code.NotFound]: 'NOT_FOUND',
  [Code.AlreadyExists]: 'ALREADY_EXISTS',
  [Code.PermissionDenied]: 'PERMISSION_DENIED',
  [Code.ResourceExhausted]: 'RESOURCE_EXHAUSTED',
  [Code.FailedPrecondition]: 'FAILED_PRECONDITION',
  [Code.Aborted]: 'ABORTED',
  [Code.OutOfRange]: 'OUT_OF_RANGE',
  [Code.Unimplemented]: 'UNIMPLEMENTED',
  [Code.Internal]: 'INTERNAL',
  [Code.Unavailable]: 'UNAVAILABLE',
  [Code.DataLoss]: 'DATA_LOSS',
  [Code.Unauthenticated]: 'UNAUTHENTICATED',
};

export interface ErrorInfo {
  /** The gRPC/Connect code name, e.g. `PERMISSION_DENIED`. */
  code: string;
  message: string;
}

/** A server error as the console shows it: code name and the server's message. */
export function describeError(e: unknown): ErrorInfo {
  const err = ConnectError.from(e);
  const code = CODE_NAMES[err.code] ?? String(err.code);
  let message = err.rawMessage || 'no message';
  if (err.code === Code.Unavailable && /fetch|network/i.test(message)) message = 'the Keyward server could not be reached';
  return { code, message };
}

export function isCode(e: unknown, code: Code): boolean {
  return ConnectError.from(e).code === code;
}

export { Code };
