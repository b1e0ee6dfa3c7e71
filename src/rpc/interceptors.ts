import { randomUUID } from 'node:crypto';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import type { SdkKeyAuthenticator } from '../auth/sdk-key-auth.js';
import { isConnectionError } from '../db/errors.js';
import { DomainError, type ErrorKind } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { principalKey } from './context.js';

const CODES: Record<ErrorKind, Code> = {
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  invalid_argument: Code.InvalidArgument,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  unavailable: Code.Unavailable,
};

/**
 * Turns whatever a handler threw into the error the client sees: domain errors
 * keep their message, a lost database becomes UNAVAILABLE, anything else is
 * logged and becomes INTERNAL with a generic message (no cause, no stack).
 */
export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = req.header.get('x-request-id')?.slice(0, 128) || randomUUID();
    try {
      const res = await next(req);
      res.header.set('x-request-id', requestId);
      return res;
    } catch (e) {
      const rpc = `${req.service.typeName}/${req.method.name}`;
      const meta = { 'x-request-id': requestId };
      if (e instanceof DomainError) throw new ConnectError(e.message, CODES[e.kind], meta);
      if (e instanceof ConnectError) throw e;
      if (isConnectionError(e)) {
        log.warn('database unavailable', { rpc, requestId, error: (e as Error).message });
        throw new ConnectError('the database is unavailable; try again', Code.Unavailable, meta);
      }
      log.error('request failed', { rpc, requestId, error: (e as Error)?.message ?? String(e) });
      throw new ConnectError('internal error', Code.Internal, meta);
    }
  };
}

/** Authenticates the SDK key of every request and hands the principal to the handler. */
export function authInterceptor(auth: SdkKeyAuthenticator): Interceptor {
  return (next) => async (req) => {
    req.contextValues.set(principalKey, await auth.authenticate(req.header.get('authorization')));
    return next(req);
  };
}
