import { AsyncLocalStorage } from 'node:async_hooks';

// The request id of the RPC being served, for audit records. Set once per
// call by the error interceptor (which owns the id), read by audit(); the
// domain functions keep their signatures. Code run outside an RPC (the CLI,
// background workers) sees none.
const requestIds = new AsyncLocalStorage<string>();

export function withRequestId<T>(requestId: string, fn: () => T): T {
  return requestIds.run(requestId, fn);
}

export function currentRequestId(): string | null {
  return requestIds.getStore() ?? null;
}
