import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import type { DescMethod } from '@bufbuild/protobuf';
import { BadRequestSchema } from '../../gen/google/rpc/error_details_pb.js';
import { KeyService } from '../../gen/keyward/v1/key_service_pb.js';
import { PortalService } from '../../gen/keyward/v1/portal_service_pb.js';
import { TokenService } from '../../gen/keyward/v1/token_service_pb.js';
import { UsageService } from '../../gen/keyward/v1/usage_service_pb.js';
import { bearerTokenOf } from '../auth/bearer.js';
import { PORTAL_TOKEN_REFUSED, type PortalAuthenticator } from '../auth/portal-auth.js';
import type { SdkKeyAuthenticator } from '../auth/sdk-key-auth.js';
import { looksLikePortalToken } from '../credentials/portal-token.js';
import { isConnectionError } from '../db/errors.js';
import { DomainError, permissionDenied, type ErrorKind } from '../domain/errors.js';
import { errorFields, type Logger } from '../log.js';
import { inServerSpan, withCallerTrace } from '../tracing.js';
import { peerKey, principalKey, requestIdKey } from './context.js';

const CODES: Record<ErrorKind, Code> = {
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  invalid_argument: Code.InvalidArgument,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  deadline_exceeded: Code.DeadlineExceeded,
};

export const REQUEST_ID_HEADER = 'x-request-id';

/** The caller's request id (at most 128 characters), or a new one. */
export function requestIdOf(header: string | null | undefined): string {
  return header?.slice(0, 128) || randomUUID();
}

/** What the client is told when a call fails. */
export interface RpcFailure {
  code: Code;
  message: string;
}

/**
 * Turns whatever a call threw into the error the client sees, with the
 * request id: domain errors keep their message (an invalid argument also
 * names its field in a google.rpc.BadRequest detail, for clients to read
 * instead of parsing the message), Connect errors their code and message, a
 * lost database becomes UNAVAILABLE, anything else is logged and becomes
 * INTERNAL with a generic message (no cause, no stack). The one mapping both
 * the Connect interceptor and the VerifyKey fast path use.
 */
export function rpcErrorOf(e: unknown, log: Logger, rpc: string, requestId: string): ConnectError {
  const metadata = { [REQUEST_ID_HEADER]: requestId };
  if (e instanceof DomainError) {
    const details =
      e.field === undefined ? [] : [{ desc: BadRequestSchema, value: { fieldViolations: [{ field: e.field, description: e.problem ?? e.message }] } }];
    return new ConnectError(e.message, CODES[e.kind], metadata, details);
  }
  if (e instanceof ConnectError) return new ConnectError(e.rawMessage, e.code, metadata);
  const { code, message } = serverFailureOf(e, log, { rpc, requestId });
  return new ConnectError(message, code, metadata);
}

/**
 * A failure that is not the caller's doing: a lost database is UNAVAILABLE
 * (logged as a warning), anything else INTERNAL with a generic message
 * (logged as an error; the client sees no cause and no stack). Also what the
 * plain HTTP endpoints answer with (503 and 500). `where` goes into the log.
 */
export function serverFailureOf(e: unknown, log: Logger, where: Record<string, unknown>): RpcFailure {
  if (isConnectionError(e)) {
    log.warn('database unavailable', { ...where, ...errorFields(e) });
    return { code: Code.Unavailable, message: 'the database is unavailable; try again' };
  }
  log.error('request failed', { ...where, ...errorFields(e, { stack: true }) });
  return { code: Code.Internal, message: 'internal error' };
}

/**
 * Every answer carries a request id a client can quote (the caller's own
 * `x-request-id`, else a new one), with one exception: a successful VerifyKey
 * gets a generated id only if the caller sent one. Nothing on the server names
 * such a call (it is neither logged nor audited), and a unique header value
 * on every answer is HPACK work a gateway would pay on every request it
 * proxies (~4% of a cached verification).
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const sent = req.header.get(REQUEST_ID_HEADER);
    const requestId = requestIdOf(sent);
    req.contextValues.set(requestIdKey, requestId);
    try {
      const res = await next(req);
      if (sent !== null || req.method !== KeyService.method.verifyKey) res.header.set(REQUEST_ID_HEADER, requestId);
      return res;
    } catch (e) {
      throw rpcErrorOf(e, log, `${req.service.typeName}/${req.method.name}`, requestId);
    }
  };
}

/**
 * Counts every RPC answered and how long it took, by service, method and
 * code (`ok` or the error's). Outermost: the time includes authentication.
 */
export function rpcMetricsInterceptor(metrics: { rpcAnswered(service: string, method: string, code: string, seconds: number): void }): Interceptor {
  return (next) => async (req) => {
    const start = performance.now();
    let code = 'ok';
    try {
      return await next(req);
    } catch (e) {
      code = codeToString(ConnectError.from(e).code);
      throw e;
    } finally {
      metrics.rpcAnswered(req.service.typeName, req.method.name, code, (performance.now() - start) / 1000);
    }
  };
}

/** The RPC system of a request, as OpenTelemetry names it, by its content type. */
function rpcSystemOf(contentType: string | null): string {
  return contentType?.startsWith('application/grpc') ? 'grpc' : 'connect_rpc';
}

/**
 * Traces every RPC as a SERVER span under the caller's `traceparent`, but
 * VerifyKey: it runs in the caller's trace context and is traced only where
 * it reaches the database (src/verify/verifier.ts). Outermost, so a span
 * covers authentication and carries the request id and the code the client got.
 */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (req.method === KeyService.method.verifyKey) return withCallerTrace(req.header, () => next(req));
    const attributes = { 'rpc.system': rpcSystemOf(req.header.get('content-type')), 'rpc.service': req.service.typeName, 'rpc.method': req.method.name };
    return inServerSpan(
      req.header,
      `${req.service.typeName}/${req.method.name}`,
      attributes,
      () => next(req),
      (e) => {
        const err = ConnectError.from(e);
        return { code: codeToString(err.code), number: err.code, message: err.rawMessage };
      },
    );
  };
}

/** The RPCs a customer portal token may call; the domain narrows them to the session's customer. */
export const PORTAL_METHODS: ReadonlySet<DescMethod> = new Set<DescMethod>([
  KeyService.method.listKeys,
  KeyService.method.getKey,
  KeyService.method.createKey,
  KeyService.method.updateKey,
  KeyService.method.rotateKey,
  KeyService.method.revokeKey,
  KeyService.method.deleteKey,
  UsageService.method.getKeyUsage,
  PortalService.method.getPortalSession,
]);

/**
 * The RPCs that authenticate their caller themselves, with a credential that
 * is no SDK key: TokenService/ExchangeOwnKey takes the customer's API key in
 * the authorization header and verifies it as VerifyKey does (throttled per
 * key and per address, src/tokens/exchange-throttle.ts). Only these methods,
 * not their services, pass without an SDK key.
 */
const SELF_AUTHENTICATING_METHODS: ReadonlySet<DescMethod> = new Set<DescMethod>([TokenService.method.exchangeOwnKey]);

/**
 * Authenticates the credential of every request, an SDK key or a customer
 * portal token (`kwp_…`, only for PORTAL_METHODS), and hands the principal,
 * acting in this request (its id goes into audit records), to the handler.
 * Only the services named in `open` (gRPC health checking and server
 * reflection: they reveal nothing a client generated from proto/ does not
 * know) take calls without one, and the SELF_AUTHENTICATING_METHODS, which
 * check their own credential.
 */
export function authInterceptor(auth: SdkKeyAuthenticator, portal: PortalAuthenticator, open: ReadonlySet<string> = new Set()): Interceptor {
  return (next) => async (req) => {
    if (open.has(req.service.typeName)) return next(req);
    const authorization = req.header.get('authorization');
    const token = bearerTokenOf(authorization);
    const portalToken = token !== undefined && looksLikePortalToken(token);
    // A portal token reaches the portal's RPCs only, self-authenticating ones included.
    if (portalToken && !PORTAL_METHODS.has(req.method)) throw permissionDenied(PORTAL_TOKEN_REFUSED);
    if (SELF_AUTHENTICATING_METHODS.has(req.method)) return next(req);
    const principal = portalToken ? await portal.authenticate(token) : await auth.authenticate(authorization, req.contextValues.get(peerKey));
    req.contextValues.set(principalKey, principal.inRequest(req.contextValues.get(requestIdKey)));
    return next(req);
  };
}
