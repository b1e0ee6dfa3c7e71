// Retries with exponential backoff and full jitter: only for UNAVAILABLE
// (the server or the network is down, nothing was done) and only for calls
// that can safely run twice (reads, VerifyKey, ExchangeKey). A create, update,
// rotate, revoke or delete is never retried: it may have happened.
import type { Interceptor } from '@connectrpc/connect';
import type { DescMethod } from '@bufbuild/protobuf';
import { isUnavailable } from './errors.js';

const IDEMPOTENT_EXTRA = new Set(['keyward.v1.KeyService.VerifyKey', 'keyward.v1.TokenService.ExchangeKey', 'keyward.v1.TokenService.ExchangeOwnKey']);

/** Whether a call may be sent again: Get*, List*, VerifyKey, ExchangeKey. */
export function isIdempotent(method: DescMethod): boolean {
  return /^(Get|List)/.test(method.name) || IDEMPOTENT_EXTRA.has(`${method.parent.typeName}.${method.name}`);
}

export interface RetryOptions {
  /** Retries after the first attempt (default 2). */
  retries: number;
  /** First backoff in ms (default 100); doubles each attempt, with full jitter, at most `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(done, ms);
    function done() {
      signal.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal.addEventListener('abort', abort, { once: true });
  });

export function retryInterceptor(opts: RetryOptions): Interceptor {
  const base = opts.baseDelayMs ?? 100;
  const max = opts.maxDelayMs ?? 2_000;
  return (next) => async (req) => {
    if (req.stream || !isIdempotent(req.method)) return next(req);
    for (let attempt = 0; ; attempt++) {
      try {
        return await next(req);
      } catch (e) {
        if (!isUnavailable(e) || attempt >= opts.retries || req.signal.aborted) throw e;
        // Full jitter: anywhere in [0, base * 2^attempt), capped.
        await sleep(Math.random() * Math.min(max, base * 2 ** attempt), req.signal);
      }
    }
  };
}
