import { DomainError } from '../domain/errors.js';

// A client's deadline (grpc-timeout, connect-timeout-ms) for VerifyKey: the
// answer is DEADLINE_EXCEEDED once it has passed, instead of a late verdict
// the client no longer waits for. Used by VerifyCall (verify-call.ts), so the
// stock RPC handler and the HTTP/2 fast path answer alike.

/** With connect-es's own message for an expired deadline. */
export const deadlineExceeded = () => new DomainError('deadline_exceeded', 'the operation timed out');

/**
 * When a deadline of `timeoutMs` from now ends, as an integer epoch millisecond,
 * rounded exactly like connect-es's handler context does (`new Date(now + t)`),
 * so that remaining times agree between the two paths.
 */
export function deadlineAt(timeoutMs: number, now = Date.now()): number {
  return Math.trunc(now + timeoutMs);
}

/**
 * The deadline honoured for a client's `timeoutMs`: at most `capMs`
 * (KEYWARD_MAX_REQUEST_TIMEOUT_MS). A longer one is served, not refused:
 * gRPC clients routinely send long deadlines.
 */
export function cappedTimeoutMs(timeoutMs: number | undefined, capMs: number): number | undefined {
  return timeoutMs === undefined ? undefined : Math.min(timeoutMs, capMs);
}

/**
 * `work`'s outcome, or DEADLINE_EXCEEDED if it is not settled within
 * `remainingMs`. Callers check `remainingMs <= 0` before starting the work.
 */
export function beforeDeadline<T>(work: T | Promise<T>, remainingMs: number | undefined): Promise<T> {
  if (remainingMs === undefined || !(work instanceof Promise)) return Promise.resolve(work);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(deadlineExceeded()), remainingMs);
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
