// One error class for everything the SDK throws: a failed RPC, a key the
// token source could not exchange, a token that does not verify.
import { Code, ConnectError } from '@connectrpc/connect';
import { BadRequestSchema } from '../../../gen/google/rpc/error_details_pb.js';

/** `InvalidArgument` → `invalid_argument`. */
function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** The field an INVALID_ARGUMENT names: in its google.rpc.BadRequest detail (servers before it: the message's start). */
const FIELD = /^([a-z_][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z_][a-z0-9_]*(?:\[\d+\])?)*): /;

function fieldOf(err: ConnectError): string | undefined {
  if (err.code !== Code.InvalidArgument) return undefined;
  const violation = err.findDetails(BadRequestSchema)[0]?.fieldViolations[0];
  return violation?.field || FIELD.exec(err.rawMessage)?.[1];
}

/**
 * Whether a call failed as UNAVAILABLE: the server said so, or the network
 * failed under it (the connection refused, or reset before an answer came).
 * connect-node reports a reset as ABORTED; for a client it is the same
 * "Keyward could not be reached" (a cancelled call is not: it has no such cause).
 */
export function isUnavailable(e: unknown): boolean {
  if (!(e instanceof ConnectError)) return false;
  if (e.code === Code.Unavailable) return true;
  for (let c: unknown = e.cause, n = 0; c instanceof Error && n < 8; c = c.cause, n++) {
    const { syscall, code } = c as { syscall?: unknown; code?: unknown };
    if (syscall === 'connect' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNREFUSED') return true;
  }
  return false;
}

export class KeywardError extends Error {
  /**
   * What went wrong, in snake_case: a gRPC / Connect code (`invalid_argument`,
   * `not_found`, `unavailable`, ...), a verify code when a key did not pass
   * (`revoked`, `not_found`, ...), or `invalid_token` / `token_expired` from
   * `verifyToken`.
   */
  readonly code: string;
  /** The request field the error is about (`key.name`), when the server named one. */
  readonly field: string | undefined;
  /** The server's `x-request-id` for this call, to quote in a support request. */
  readonly requestId: string | undefined;

  constructor(code: string, message: string, opts: { field?: string; requestId?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KeywardError';
    this.code = code;
    this.field = opts.field;
    this.requestId = opts.requestId;
  }

  /** Any error a call threw, as a KeywardError (one already is stays as it is). */
  static from(e: unknown): KeywardError {
    if (e instanceof KeywardError) return e;
    const err = ConnectError.from(e);
    const message = err.rawMessage;
    const field = fieldOf(err);
    const requestId = err.metadata.get('x-request-id') ?? undefined;
    const code = isUnavailable(err) ? 'unavailable' : snake(Code[err.code] ?? 'unknown');
    return new KeywardError(code, message, { field, requestId, cause: e });
  }
}
