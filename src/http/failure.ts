import { Code } from '@connectrpc/connect';
import type { Logger } from '../log.js';
import { serverFailureOf } from '../rpc/interceptors.js';

/** serverFailureOf for the plain HTTP endpoints: 503 for a lost database, else 500. */
export function httpFailureOf(e: unknown, log: Logger, where: Record<string, unknown>): { status: number; code: string; message: string } {
  const f = serverFailureOf(e, log, where);
  return f.code === Code.Unavailable ? { status: 503, code: 'unavailable', message: f.message } : { status: 500, code: 'internal', message: f.message };
}
