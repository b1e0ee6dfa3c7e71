// Domain errors: what went wrong in the caller's terms, free of any transport.
// rpcErrorOf (src/rpc/interceptors.ts) maps each kind to its gRPC / Connect
// code; forward auth (src/http/forward-auth.ts) to an HTTP status.
export type ErrorKind =
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'invalid_argument'
  | 'already_exists'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'deadline_exceeded';

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** The request field an invalid_argument is about (its message starts with it). */
    readonly field?: string,
    /** What is wrong with `field`: the message without the field's name. */
    readonly problem?: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export const invalidArgument = (field: string, problem: string) => new DomainError('invalid_argument', `${field}: ${problem}`, field, problem);
export const notFound = (what: string, id: string) => new DomainError('not_found', `${what} ${JSON.stringify(id)} not found`);
export const alreadyExists = (message: string) => new DomainError('already_exists', message);
export const failedPrecondition = (message: string) => new DomainError('failed_precondition', message);
export const permissionDenied = (message: string) => new DomainError('permission_denied', message);
export const unauthenticated = (message: string) => new DomainError('unauthenticated', message);
export const resourceExhausted = (message: string) => new DomainError('resource_exhausted', message);
