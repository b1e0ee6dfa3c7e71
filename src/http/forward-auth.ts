// Forward authentication for API gateways: nginx `auth_request`, Traefik
// ForwardAuth, Caddy `forward_auth`, Envoy's HTTP ext_authz. The gateway sends
// Keyward the headers of the request it is about to proxy, Keyward answers
// 2xx to let it through (with the caller's identity in headers) or 401 / 403 /
// 429 to refuse it. The verdict is VerifyKey's, through the same KeyVerifier
// (same cache, same codes); only the mapping to HTTP lives here.
//
// Request (any method; the body is ignored, and any path below
// /v1/authorize is accepted, as Envoy appends the original path):
//   X-Keyward-SDK-Key: kws_...                the gateway's SDK key (scope api_keys:verify)
//   Authorization: Bearer <api key>           the caller's API key ...
//   X-API-Key: <api key>                      ... or here (this one wins when both are sent)
//   Authorization: Bearer <jwt>               or a token from TokenService (ExchangeKey,
//                                             ExchangeOwnKey), checked offline (TokenChecker):
//                                             401 invalid_token if bad or expired, 401 revoked /
//                                             disabled / not_found if its key changed since;
//                                             X-Keyward-Cost does not apply (tokens use no limits)
//   X-Keyward-Permissions: scope:action,...   permissions the route needs (optional)
//   X-Keyward-Require-Workspace-Id: <id>      only keys of this workspace pass (optional)
//   X-Keyward-Cost: <n>                       what the request costs a key with limits,
//                                             0..10^9 (optional, default 1; VerifyKeyRequest.cost)
// Answers (each also carries X-Keyward-Code, the reason in snake_case):
//   200  valid: X-Keyward-Key-Id, X-Keyward-Customer-Id, X-Keyward-Workspace-Id
//   401  no API key, or not_found / disabled / expired / revoked, with
//        WWW-Authenticate: Bearer realm="keyward"[, error="invalid_token", error_description="..."]
//   401  a token (JWT) that is bad, tampered with, expired or not ours: invalid_token
//   403  insufficient_permissions
//   429  rate_limited, usage_exceeded
//   200 and 429 of a key with rate limits also carry RateLimit-Limit,
//   RateLimit-Remaining and RateLimit-Reset (seconds) of its most constraining
//   limit, in the separate fields of draft-ietf-httpapi-ratelimit-headers-06;
//   rate_limited adds Retry-After (seconds). A key with remaining uses carries
//   X-Keyward-Remaining-Uses. A key without limits gets none of them.
//   401  the gateway's own SDK key is missing or invalid, with
//        WWW-Authenticate: KeywardSDK realm="keyward-gateway" (never a 2xx)
//   403  the gateway's SDK key lacks api_keys:verify or the workspace (X-Keyward-Code: gateway_permission_denied)
//   400  a malformed X-Keyward-Permissions, X-Keyward-Require-Workspace-Id or X-Keyward-Cost
//   503  the database is unreachable (fail closed)
import type { IncomingHttpHeaders } from 'node:http';
import { bearerTokenOf } from '../auth/bearer.js';
import { DomainError } from '../domain/errors.js';
import type { SdkKeyAuthenticator } from '../auth/sdk-key-auth.js';
import type { Logger } from '../log.js';
import { checkVerifyInput } from '../verify/verifier.js';
import type { VerifyCall } from '../verify/verify-call.js';
import type { VerifyMetrics } from '../metrics/verify-metrics.js';
import { looksLikeJwt, type TokenCheck, type TokenChecker } from '../tokens/token-checker.js';
import { httpFailureOf } from './failure.js';
import type { VerifyResult } from '../verify/verifier.js';
import type { LimitOutcome } from '../verify/contract.js';
import type { RateLimitOutcome } from '../verify/rate-limits.js';
import { withCallerTrace } from '../tracing.js';

export const AUTHORIZE_PATH = '/v1/authorize';

const HEADER = {
  sdkKey: 'x-keyward-sdk-key',
  apiKey: 'x-api-key',
  permissions: 'x-keyward-permissions',
  requireWorkspace: 'x-keyward-require-workspace-id',
  cost: 'x-keyward-cost',
  code: 'x-keyward-code',
  keyId: 'x-keyward-key-id',
  customerId: 'x-keyward-customer-id',
  workspaceId: 'x-keyward-workspace-id',
  remainingUses: 'x-keyward-remaining-uses',
  // draft-ietf-httpapi-ratelimit-headers-06 (the separate fields gateways and
  // libraries commonly send), and RFC 9110's Retry-After.
  rateLimitLimit: 'ratelimit-limit',
  rateLimitRemaining: 'ratelimit-remaining',
  rateLimitReset: 'ratelimit-reset',
  retryAfter: 'retry-after',
} as const;

const REALM = 'keyward';
const GATEWAY_REALM = 'keyward-gateway';

interface ForwardAuthAnswer {
  status: number;
  headers: Record<string, string>;
  body: { code: string; message: string };
}

/**
 * The HTTP status of a verify code. Every code a verifier can give, including
 * ones added after this build, gets a status here; a code it does not know is
 * refused (403), never let through.
 */
export function forwardAuthStatus(code: string): number {
  switch (code) {
    case 'valid':
      return 200;
    case 'not_found':
    case 'disabled':
    case 'expired':
    case 'revoked':
      return 401;
    case 'insufficient_permissions':
      return 403;
    // Too many requests, or the key's usage quota is spent: both mean "not
    // now, and not because of who you are", as APIs answer quota exhaustion.
    case 'rate_limited':
    case 'usage_exceeded':
      return 429;
    default:
      return 403;
  }
}

const DESCRIPTIONS: Record<string, string> = {
  valid: 'the API key is valid',
  not_found: 'the API key is not valid',
  disabled: 'the API key is disabled',
  expired: 'the API key has expired',
  revoked: 'the API key was revoked',
  insufficient_permissions: 'the API key lacks a permission this request needs',
  rate_limited: 'the API key is over its rate limit',
  usage_exceeded: 'the API key has used up its allowed requests',
};

function answer(status: number, code: string, message: string, headers: Record<string, string> = {}): ForwardAuthAnswer {
  return { status, headers: { [HEADER.code]: code, ...headers }, body: { code, message } };
}

/** A header value as sent (the first one if repeated), or undefined. */
function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? undefined : s;
}

/** The caller's API key: X-API-Key, else `Authorization: Bearer`. */
function apiKeyOf(h: IncomingHttpHeaders): string | undefined {
  return header(h, HEADER.apiKey)?.trim() || bearerTokenOf(header(h, 'authorization'));
}

/** `a:read, b:write` → ['a:read', 'b:write']; empty entries are dropped. */
function requiredPermissionsOf(h: IncomingHttpHeaders): string[] {
  const raw = h[HEADER.permissions];
  const joined = Array.isArray(raw) ? raw.join(',') : (raw ?? '');
  return joined
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * X-Keyward-Cost as a number: undefined when absent, NaN when not a plain
 * decimal integer (which the verifier's cost check then rejects).
 */
function costOf(h: IncomingHttpHeaders): number | undefined {
  const raw = header(h, HEADER.cost);
  if (raw === undefined) return undefined;
  const t = raw.trim();
  return /^[0-9]{1,16}$/.test(t) ? Number(t) : NaN;
}

/**
 * The limit the RateLimit-* fields describe. Of the limits that refused the
 * request, the one that resets last (a retry needs them all to have room, so
 * its reset is the Retry-After); else the one with the fewest remaining, on a
 * tie the one that resets last.
 */
export function constrainingLimit(limits: readonly RateLimitOutcome[]): RateLimitOutcome | undefined {
  let best: RateLimitOutcome | undefined;
  for (let i = 0; i < limits.length; i++) {
    const l = limits[i]!;
    if (best === undefined || constrainsMore(l, best)) best = l;
  }
  return best;
}

function constrainsMore(a: RateLimitOutcome, b: RateLimitOutcome): boolean {
  if (a.exceeded !== b.exceeded) return a.exceeded;
  if (a.exceeded) return a.resetMs > b.resetMs || (a.resetMs === b.resetMs && a.remaining < b.remaining);
  return a.remaining < b.remaining || (a.remaining === b.remaining && a.resetMs > b.resetMs);
}

/** Whole seconds from `now` until `ms`, rounded up (a client waiting that long finds the window over). */
const secondsUntil = (ms: number, now: number) => Math.max(0, Math.ceil((ms - now) / 1000));

/** Adds the rate-limit and remaining-uses fields of a key with limits to `headers`. */
function addLimitHeaders(headers: Record<string, string>, o: LimitOutcome, code: string, now: number): void {
  const l = constrainingLimit(o.rateLimits);
  if (l !== undefined) {
    const reset = String(secondsUntil(l.resetMs, now));
    headers[HEADER.rateLimitLimit] = String(l.limit);
    headers[HEADER.rateLimitRemaining] = String(l.remaining);
    headers[HEADER.rateLimitReset] = reset;
    if (code === 'rate_limited') headers[HEADER.retryAfter] = reset;
  }
  if (o.remainingUses !== undefined) headers[HEADER.remainingUses] = String(o.remainingUses);
}

/** Header values must be visible ASCII; anything else (a customer id is any string) is percent-encoded. */
function headerSafe(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s);
}

function invalidTokenChallenge(description: string): string {
  return `Bearer realm="${REALM}", error="invalid_token", error_description="${description}"`;
}

/**
 * Answers of verdicts without limits, kept as long as the verdict: the
 * verifier gives one shared object per cached key and code (and one
 * NOT_FOUND), so a gateway's repeated checks of a key are answered with the
 * answer made the first time. An answer is never changed once made.
 */
const answers = new WeakMap<VerifyResult, ForwardAuthAnswer>();

function resultAnswer(r: VerifyResult): ForwardAuthAnswer {
  // A key with limits: the outcome differs from call to call.
  if (r.limits !== undefined) return makeResultAnswer(r);
  let a = answers.get(r);
  if (a === undefined) answers.set(r, (a = makeResultAnswer(r)));
  return a;
}

function makeResultAnswer(r: VerifyResult): ForwardAuthAnswer {
  const status = forwardAuthStatus(r.code);
  const message = DESCRIPTIONS[r.code] ?? `the API key did not verify (${r.code})`;
  const identity: Record<string, string> = r.key
    ? {
        [HEADER.keyId]: r.key.id,
        [HEADER.customerId]: headerSafe(r.key.customerId),
        [HEADER.workspaceId]: r.key.workspaceId,
      }
    : {};
  // Only a key with limits has an outcome to report: a key without gets no extra work.
  if (r.limits !== undefined && status !== 401) addLimitHeaders(identity, r.limits, r.code, Date.now());
  if (status === 200) return answer(200, r.code, message, identity);
  if (status === 401) return answer(401, r.code, message, { 'www-authenticate': invalidTokenChallenge(message) });
  // 403 and 429 say whose key it was, for the gateway's logs; the upstream never sees them.
  return answer(status, r.code, message, identity);
}

/** What forward auth uses: the gateway's SDK key check, the VerifyKey boundary, the log. */
export interface ForwardAuthDeps {
  auth: Pick<SdkKeyAuthenticator, 'authenticateToken' | 'throttledRetryAfterSeconds'>;
  verifyCall: Pick<VerifyCall, 'verify'>;
  /** Counts each answer (keyward_verify_total, path forward_auth); absent without metrics. */
  verifyMetrics?: Pick<VerifyMetrics, 'record'> | undefined;
  /** Checks exchanged JWTs; without it a JWT is checked as an API key (and is not found). */
  tokenChecker?: Pick<TokenChecker, 'check'>;
  log: Logger;
}

/** The answer for a token (TokenChecker's verdict), with the same headers as for an API key. */
function tokenAnswer(t: TokenCheck): ForwardAuthAnswer {
  const identity: Record<string, string> = t.identity
    ? {
        [HEADER.keyId]: t.identity.keyId,
        [HEADER.customerId]: headerSafe(t.identity.customerId),
        [HEADER.workspaceId]: t.identity.workspaceId,
      }
    : {};
  const status = t.code === 'invalid_token' ? 401 : forwardAuthStatus(t.code);
  if (status === 200) return answer(200, t.code, t.message, identity);
  if (status === 401) return answer(401, t.code, t.message, { 'www-authenticate': invalidTokenChallenge(t.message) });
  return answer(status, t.code, t.message, identity);
}

/**
 * Decides one forward-auth request. `source` is the gateway's remote address,
 * for throttling failed SDK-key checks. Never throws: every answer, failures
 * included, carries X-Keyward-Code.
 */
export async function forwardAuth(app: ForwardAuthDeps, h: IncomingHttpHeaders, source: string): Promise<ForwardAuthAnswer> {
  const metrics = app.verifyMetrics;
  if (!metrics) return decide(app, h, source);
  const start = performance.now();
  const a = await decide(app, h, source);
  metrics.record('forward_auth', 'http', a.body.code, (performance.now() - start) / 1000);
  return a;
}

async function decide(app: ForwardAuthDeps, h: IncomingHttpHeaders, source: string): Promise<ForwardAuthAnswer> {
  try {
    const sdkKey = header(h, HEADER.sdkKey)?.trim();
    if (!sdkKey) {
      return answer(401, 'gateway_unauthenticated', `the gateway sent no SDK key: set ${HEADER.sdkKey}`, {
        'www-authenticate': `KeywardSDK realm="${GATEWAY_REALM}"`,
      });
    }
    const principal = await app.auth.authenticateToken(sdkKey, source);
    const key = apiKeyOf(h);
    if (!key) {
      principal.requireScope('api_keys:verify');
      return answer(401, 'missing_key', 'send the API key in "authorization: Bearer <key>" or "x-api-key"', {
        'www-authenticate': `Bearer realm="${REALM}"`,
      });
    }
    const input = { key, requiredPermissions: requiredPermissionsOf(h), workspaceId: header(h, HEADER.requireWorkspace)?.trim() ?? '', cost: costOf(h) };
    if (app.tokenChecker && looksLikeJwt(key)) {
      // The same checks of the gateway and its headers as for an API key.
      principal.requireScope('api_keys:verify');
      checkVerifyInput(input);
      if (input.workspaceId !== '') principal.requireWorkspace(input.workspaceId);
      return tokenAnswer(await app.tokenChecker.check(key, input.requiredPermissions, input.workspaceId, (w) => principal.canSee(w)));
    }
    // A gateway sends no deadline: its own timeout to this request is the limit.
    return resultAnswer(await withCallerTrace(h, () => app.verifyCall.verify(principal, input, undefined)));
  } catch (e) {
    return failureAnswer(app, e);
  }
}

/** VerifyKey's request fields, as forward auth receives them. */
const FIELD_HEADERS: Record<string, string> = {
  required_permissions: HEADER.permissions,
  workspace_id: HEADER.requireWorkspace,
  cost: HEADER.cost,
};

/** The message of an invalid argument, naming the header, not the RPC field: it is the gateway's configuration that is wrong. */
function invalidHeaderMessage(e: DomainError): string {
  const header = e.field === undefined ? undefined : FIELD_HEADERS[e.field.replace(/\[\d+\]$/, '')];
  return header === undefined || e.problem === undefined ? e.message : `${header}: ${e.problem}`;
}

function failureAnswer(app: ForwardAuthDeps, e: unknown): ForwardAuthAnswer {
  if (!(e instanceof DomainError)) {
    const f = httpFailureOf(e, app.log, { path: AUTHORIZE_PATH });
    return answer(f.status, f.code, f.message);
  }
  switch (e.kind) {
    case 'unauthenticated':
      return answer(401, 'gateway_unauthenticated', `the gateway's SDK key: ${e.message}`, {
        'www-authenticate': `KeywardSDK realm="${GATEWAY_REALM}", error="invalid_token"`,
      });
    case 'permission_denied':
      return answer(403, 'gateway_permission_denied', `the gateway's SDK key: ${e.message}`);
    case 'invalid_argument':
      return answer(400, 'invalid_argument', invalidHeaderMessage(e));
    case 'resource_exhausted':
      // Too many failed SDK-key checks from this gateway's address, or of its SDK key id (SECURITY.md).
      return answer(429, 'gateway_throttled', `the gateway's SDK key: ${e.message}`, {
        'retry-after': String(app.auth.throttledRetryAfterSeconds),
      });
    default:
      return answer(403, e.kind, e.message);
  }
}
