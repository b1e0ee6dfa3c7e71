import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { SdkKeyAuthenticator } from '../auth/sdk-key-auth.js';
import { isConnectionError } from '../db/errors.js';
import { DomainError, type ErrorKind } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { peerKey, principalKey } from './context.js';

const CODES: Record<ErrorKind, Code> = {
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  invalid_argument: Code.InvalidArgument,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
  resource_exhausted: Code.ResourceExhausted,
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
 * Turns whatever a call threw into the code and message the client sees:
 * domain errors keep their message, Connect errors their code and message, a
 * lost database becomes UNAVAILABLE, anything else is logged and becomes
 * INTERNAL with a generic message (no cause, no stack). The one mapping both
 * the Connect interceptor and the VerifyKey fast path use.
 */
export function rpcFailureOf(e: unknown, log: Logger, rpc: string, requestId: string): RpcFailure {
  if (e instanceof DomainError) return { code: CODES[e.kind], message: e.message };
  if (e instanceof ConnectError) return { code: e.code, message: e.rawMessage };
  if (isConnectionError(e)) {
    log.warn('database unavailable', { rpc, requestId, error: (e as Error).message });
    return { code: Code.Unavailable, message: 'the database is unavailable; try again' };
  }
  log.error('request failed', { rpc, requestId, error: (e as Error)?.message ?? String(e) });
  return { code: Code.Internal, message: 'internal error' };
}

/** Every failure carries the request id, so a client can quote it. */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = requestIdOf(req.header.get(REQUEST_ID_HEADER));
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, requestId);
      return res;
    } catch (e) {
      const { code, message } = rpcFailureOf(e, log, `${req.service.typeName}/${req.method.name}`, requestId);
      throw new ConnectError(message, code, { [REQUEST_ID_HEADER]: requestId });
    }
  };
}

/** Authenticates the SDK key of every request and hands the principal to the handler. */
export function authInterceptor(auth: SdkKeyAuthenticator): Interceptor {
  return (next) => async (req) => {
    req.contextValues.set(principalKey, await auth.authenticate(req.header.get('authorization'), req.contextValues.get(peerKey)));
    return next(req);
  };
}
