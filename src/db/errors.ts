import { DriverException, UniqueConstraintViolationException } from '@mikro-orm/core';

/** The unique constraint a failed write violated, if that is what failed. */
export function violatedUnique(e: unknown): string | undefined {
  if (e instanceof UniqueConstraintViolationException) return (e as { constraint?: string }).constraint ?? '';
  if ((e as { code?: unknown })?.code === '23505') return (e as { constraint?: string }).constraint ?? '';
  return undefined;
}

/**
 * True when the database could not be reached or dropped the connection,
 * as opposed to rejecting a statement. Callers answer UNAVAILABLE then.
 * SQLSTATE class 08 is connection exceptions, but 08P01 (protocol_violation)
 * is what a statement the server could not parse (a NUL in a value, say)
 * gets: the request's doing, not an outage.
 */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown; sqlState?: unknown } | undefined;
  if (!err || typeof err !== 'object') return false;
  const code = typeof err.code === 'string' ? err.code : '';
  if (code === '08P01') return false;
  if (/^E[A-Z]+$/.test(code) || code.startsWith('08') || code === '57P01' || code === '57P03') return true;
  const msg = typeof err.message === 'string' ? err.message : '';
  if (
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout|ECONNREFUSED|ECONNRESET/i.test(
      msg,
    )
  ) {
    return true;
  }
  return e instanceof DriverException && code === '' && /connect/i.test(msg);
}
