// The one VerifyKey boundary. Every transport that verifies an API key — the
// stock RPC handler (src/rpc/key-service.ts), the HTTP/2 fast path
// (src/rpc/verify-fast-path.ts) and forward auth (src/http/forward-auth.ts) —
// goes through it for the same steps, in the same order:
//   1. who is asking: the caller's principal (already known, or its SDK key
//      checked here);
//   2. by when: the client's deadline, DEADLINE_EXCEEDED once it has passed;
//   3. the verdict (KeyVerifier.verify, which checks the request, the
//      caller's scope and workspace, the key and its limits, and settles it:
//      last-used time and usage analytics).
// Transports only parse their request and write the answer.
import type { Principal } from '../domain/principal.js';
import type { VerifyInput, VerifyResult } from './contract.js';
import { beforeDeadline, deadlineExceeded } from './deadline.js';

/** What a VerifyCall uses. */
export interface VerifyCallDeps {
  /** Checks an `authorization` header's SDK key; `address` is the peer's, for throttling failures. */
  authenticate(authorization: string | null, address: string): Promise<Principal>;
  verifier: { verify(p: Principal, input: VerifyInput): VerifyResult | Promise<VerifyResult> };
}

export class VerifyCall {
  constructor(private readonly deps: VerifyCallDeps) {}

  /**
   * The verdict for a caller already authenticated, before `deadline` (epoch
   * milliseconds; undefined: none). Given without waiting when everything is
   * in memory (no promise: the fast path answers a cache hit synchronously),
   * else a promise that rejects with DEADLINE_EXCEEDED once the deadline
   * passes. Throws synchronously for a passed deadline, a bad request or a
   * caller that may not verify.
   */
  verify(principal: Principal, input: VerifyInput, deadline: number | undefined): VerifyResult | Promise<VerifyResult> {
    let remainingMs: number | undefined;
    if (deadline !== undefined) {
      remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw deadlineExceeded();
    }
    const verdict = this.deps.verifier.verify(principal, input);
    return verdict instanceof Promise ? beforeDeadline(verdict, remainingMs) : verdict;
  }

  /** verify() for a caller known only by its `authorization` header, checked first. */
  async authenticateAndVerify(authorization: string | null, address: string, input: VerifyInput, deadline: number | undefined): Promise<VerifyResult> {
    const principal = await this.deps.authenticate(authorization, address);
    return this.verify(principal, input, deadline);
  }
}
