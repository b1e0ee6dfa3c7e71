// What every middleware does, free of any framework: read the API key (or a
// token exchanged for one) from the request's headers, verify it, and decide
// the answer. The statuses, headers and JSON bodies are forward auth's (GET
// /v1/authorize, src/http/forward-auth.ts in the Keyward repo), so an API
// protected by the middleware answers its clients exactly as one behind a
// gateway does. An API key is checked by VerifyKey; a token (a JWT from
// TokenService) offline, against Keyward's published signing keys
// (./token-check.ts).
import { createHash } from 'node:crypto';
import { Keyward, type KeywardOptions, type RateLimitStatus, type VerifyResult } from '../client.js';
import { KeywardError } from '../errors.js';
import type { Permission } from '../grants.js';
import { JwksUnavailableError, looksLikeJwt, TokenVerifier, type TokenClaims, type TokenCheckOptions } from './token-check.js';

export { looksLikeJwt, type TokenCheckOptions } from './token-check.js';

/** Header names, as forward auth sends them. */
export const HEADER = {
  apiKey: 'x-api-key',
  code: 'x-keyward-code',
  keyId: 'x-keyward-key-id',
  customerId: 'x-keyward-customer-id',
  workspaceId: 'x-keyward-workspace-id',
  remainingUses: 'x-keyward-remaining-uses',
  rateLimitLimit: 'ratelimit-limit',
  rateLimitRemaining: 'ratelimit-remaining',
  rateLimitReset: 'ratelimit-reset',
  retryAfter: 'retry-after',
  wwwAuthenticate: 'www-authenticate',
} as const;

const REALM = 'keyward';
const GATEWAY_REALM = 'keyward-gateway';

/**
 * Who called: the verified key, as the middleware puts it on the request.
 * For a token (JWT) the fields come from its claims: `keyId`, `workspaceId`,
 * `customerId` and `permissions` (those the token carries, which may be
 * fewer than the key's); `name` is '', `metadata` {}, `expireTime`,
 * `remainingUses` undefined and `rateLimits` [] (a token carries none of
 * them), and `token` is set.
 */
export interface KeywardIdentity {
  keyId: string;
  workspaceId: string;
  customerId: string;
  name: string;
  permissions: string[];
  metadata: Record<string, string>;
  /** When the key expires (undefined for a key without expiry, and for a token). */
  expireTime: Date | undefined;
  rateLimits: RateLimitStatus[];
  remainingUses: number | undefined;
  /** Set only when the caller sent a token instead of the API key: its `exp`, `iat` and `jti`. */
  token?: { expireTime: Date; issueTime: Date | undefined; id: string | undefined };
}

/** The middleware's answer: go on (with headers for the response), or refuse with this status, headers and body. */
export type Decision =
  | { ok: true; identity: KeywardIdentity; headers: Record<string, string> }
  | { ok: false; status: number; headers: Record<string, string>; body: { code: string; message: string } };

export interface GuardOptions {
  /** Permissions the route needs, `scope:action`. */
  permissions?: readonly Permission[];
  /** Only keys of this workspace pass. */
  workspaceId?: string;
  /** What the request costs a key with limits (default 1; a token uses no limits). */
  cost?: number;
}

export interface VerifierOptions extends KeywardOptions {
  /**
   * Remembers VALID verdicts of keys without rate limits or remaining uses for
   * this long (ms). Off (0) by default: a revoked or disabled key is then
   * refused on its next request. With a cache it may pass for up to this long.
   */
  cacheTtlMs?: number;
  /**
   * Tokens (JWTs from TokenService.ExchangeKey / ExchangeOwnKey) sent as
   * `Authorization: Bearer <jwt>` are accepted and checked offline against
   * Keyward's signing keys (`<baseUrl>/.well-known/jwks.json`); these options
   * say which issuer and audience to require and how long to keep the keys.
   * `false`: a token is refused as an unknown API key is (401 not_found).
   */
  tokens?: TokenCheckOptions | false;
}

/** The HTTP status of a verify code; a code this build does not know is refused (403). */
export function statusOf(code: string): number {
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

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The API key (or token) of a request: `X-API-Key` (wins when both are sent), else `Authorization: Bearer`. */
export function apiKeyOf(header: (name: string) => string | undefined): string | undefined {
  const x = header(HEADER.apiKey)?.trim();
  if (x) return x;
  const auth = header('authorization');
  return auth ? BEARER.exec(auth)?.[1] : undefined;
}

/** A header of Node's IncomingHttpHeaders (the first value if repeated), or undefined when absent or empty. */
export function nodeHeader(h: Record<string, string | string[] | undefined>): (name: string) => string | undefined {
  return (name) => {
    const v = h[name];
    const s = Array.isArray(v) ? v[0] : v;
    return s === undefined || s === '' ? undefined : s;
  };
}

/** The limit the RateLimit-* fields describe: of the refusing limits the one that resets last, else the one with the fewest left. */
export function constrainingLimit(limits: readonly RateLimitStatus[]): RateLimitStatus | undefined {
  let best: RateLimitStatus | undefined;
  for (const l of limits) if (best === undefined || constrainsMore(l, best)) best = l;
  return best;
}

function constrainsMore(a: RateLimitStatus, b: RateLimitStatus): boolean {
  const ar = a.resetTime.getTime();
  const br = b.resetTime.getTime();
  if (a.exceeded !== b.exceeded) return a.exceeded;
  if (a.exceeded) return ar > br || (ar === br && a.remaining < b.remaining);
  return a.remaining < b.remaining || (a.remaining === b.remaining && ar > br);
}

const headerSafe = (s: string) => (/^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s));

function refuse(status: number, code: string, message: string, headers: Record<string, string> = {}): Decision {
  return { ok: false, status, headers: { [HEADER.code]: code, ...headers }, body: { code, message } };
}

/** The RateLimit-* and remaining-uses fields of a verdict (none for a key without limits). */
function limitHeaders(r: VerifyResult, now: number): Record<string, string> {
  const h: Record<string, string> = {};
  const l = constrainingLimit(r.rateLimits);
  if (l !== undefined) {
    const reset = String(Math.max(0, Math.ceil((l.resetTime.getTime() - now) / 1000)));
    h[HEADER.rateLimitLimit] = String(l.limit);
    h[HEADER.rateLimitRemaining] = String(l.remaining);
    h[HEADER.rateLimitReset] = reset;
    if (r.code === 'rate_limited') h[HEADER.retryAfter] = reset;
  }
  if (r.remainingUses !== undefined) h[HEADER.remainingUses] = String(r.remainingUses);
  return h;
}

/** The decision for a verdict, as forward auth answers it. */
export function decisionOf(r: VerifyResult, now = Date.now()): Decision {
  const status = statusOf(r.code);
  const message = DESCRIPTIONS[r.code] ?? `the API key did not verify (${r.code})`;
  if (status === 200) {
    const { keyId, workspaceId, customerId, name, permissions, metadata, expireTime, rateLimits, remainingUses } = r;
    const identity = { keyId, workspaceId, customerId, name, permissions, metadata, expireTime, rateLimits, remainingUses };
    return { ok: true, identity, headers: limitHeaders(r, now) };
  }
  if (status === 401) {
    const challenge = `Bearer realm="${REALM}", error="invalid_token", error_description="${message}"`;
    return refuse(401, r.code, message, { [HEADER.wwwAuthenticate]: challenge });
  }
  // 403 and 429 say whose key it was, for logs.
  return refuse(status, r.code, message, {
    [HEADER.keyId]: r.keyId,
    [HEADER.customerId]: headerSafe(r.customerId),
    [HEADER.workspaceId]: r.workspaceId,
    ...limitHeaders(r, now),
  });
}

/** The decision when verifying failed: never a pass; an unreachable Keyward is 503 (fail closed). */
export function failureDecision(e: unknown): Decision {
  const err = KeywardError.from(e);
  switch (err.code) {
    case 'unauthenticated':
      return refuse(401, 'gateway_unauthenticated', `the gateway's SDK key: ${err.message}`, {
        [HEADER.wwwAuthenticate]: `KeywardSDK realm="${GATEWAY_REALM}", error="invalid_token"`,
      });
    case 'permission_denied':
      return refuse(403, 'gateway_permission_denied', `the gateway's SDK key: ${err.message}`);
    case 'invalid_argument':
      return refuse(400, 'invalid_argument', err.message);
    case 'resource_exhausted':
      return refuse(429, 'gateway_throttled', `the gateway's SDK key: ${err.message}`, { [HEADER.retryAfter]: '1' });
    default:
      return UNAVAILABLE;
  }
}

const UNAVAILABLE: Decision = refuse(503, 'unavailable', 'Keyward is unavailable; try again');

const INVALID_TOKEN_WORKSPACE = 'the token is not valid for this workspace';
const TOKEN_LACKS_PERMISSION = 'the token lacks a permission this request needs';

/** The decision for a token's verdict, as forward auth answers it (bar the key's state, which is not looked up). */
export function tokenDecisionOf(claims: TokenClaims | string, opts: GuardOptions = {}): Decision {
  if (typeof claims === 'string') {
    return refuse(401, 'invalid_token', claims, { [HEADER.wwwAuthenticate]: `Bearer realm="${REALM}", error="invalid_token", error_description="${claims}"` });
  }
  const { keyId, workspaceId, customerId, permissions } = claims;
  if (opts.workspaceId !== undefined && opts.workspaceId !== '' && workspaceId !== opts.workspaceId) {
    return refuse(401, 'not_found', INVALID_TOKEN_WORKSPACE, {
      [HEADER.wwwAuthenticate]: `Bearer realm="${REALM}", error="invalid_token", error_description="${INVALID_TOKEN_WORKSPACE}"`,
    });
  }
  const has = new Set(permissions);
  if (!(opts.permissions ?? []).every((p) => has.has(p))) {
    return refuse(403, 'insufficient_permissions', TOKEN_LACKS_PERMISSION, {
      [HEADER.keyId]: keyId,
      [HEADER.customerId]: headerSafe(customerId),
      [HEADER.workspaceId]: workspaceId,
    });
  }
  const identity: KeywardIdentity = {
    keyId,
    workspaceId,
    customerId,
    name: '',
    permissions,
    metadata: {},
    expireTime: undefined,
    rateLimits: [],
    remainingUses: undefined,
    token: { expireTime: claims.expireTime, issueTime: claims.issueTime, id: claims.id },
  };
  return { ok: true, identity, headers: {} };
}

export const MISSING_KEY: Decision = refuse(401, 'missing_key', 'send the API key in "authorization: Bearer <key>" or "x-api-key"', {
  [HEADER.wwwAuthenticate]: `Bearer realm="${REALM}"`,
});

/**
 * Verifies API keys and tokens for the middlewares: one Keyward client (one
 * connection), an optional verdict cache, and Keyward's public keys for tokens.
 */
export class KeyVerifier {
  readonly client: Keyward;
  /** Checks tokens offline; undefined when tokens are turned off. */
  readonly tokens: TokenVerifier | undefined;
  private readonly cacheTtlMs: number;
  private readonly cache = new Map<string, { result: VerifyResult; until: number }>();

  constructor(options: VerifierOptions | { client: Keyward; cacheTtlMs?: number; tokens?: TokenCheckOptions | false }) {
    this.client = 'client' in options ? options.client : new Keyward(options);
    this.cacheTtlMs = options.cacheTtlMs ?? 0;
    const timeoutMs = ('client' in options ? undefined : options.timeoutMs) ?? 10_000;
    this.tokens = options.tokens === false ? undefined : new TokenVerifier(this.client.baseUrl, options.tokens ?? {}, timeoutMs);
  }

  /** VerifyKey, through the cache when one is on. */
  async verify(key: string, opts: GuardOptions = {}): Promise<VerifyResult> {
    if (this.cacheTtlMs <= 0) return this.client.keys.verify(key, opts);
    // By digest: the plaintext key is never kept.
    const id = createHash('sha256')
      .update(JSON.stringify([key, opts.workspaceId ?? '', [...(opts.permissions ?? [])].sort()]))
      .digest('base64url');
    const now = Date.now();
    const hit = this.cache.get(id);
    if (hit !== undefined && hit.until > now) return hit.result;
    const result = await this.client.keys.verify(key, opts);
    // Only VALID verdicts of keys without limits: limits must be counted on every request.
    if (result.valid && result.rateLimits.length === 0 && result.remainingUses === undefined) {
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(id, { result, until: now + this.cacheTtlMs });
    } else {
      this.cache.delete(id);
    }
    return result;
  }

  /** The decision for a request whose headers `header` reads. Never throws. */
  async decide(header: (name: string) => string | undefined, opts: GuardOptions = {}): Promise<Decision> {
    const key = apiKeyOf(header);
    if (key === undefined) return MISSING_KEY;
    try {
      if (this.tokens !== undefined && looksLikeJwt(key)) {
        const v = await this.tokens.verify(key);
        return tokenDecisionOf(v.ok ? v.claims : v.message, opts);
      }
      return decisionOf(await this.verify(key, opts));
    } catch (e) {
      if (e instanceof JwksUnavailableError) return UNAVAILABLE;
      return failureDecision(e);
    }
  }
}

/** Arguments of a guard: permissions as strings, or the whole GuardOptions. */
export type GuardArgs = Permission[] | [GuardOptions];

export function guardOptions(args: GuardArgs): GuardOptions {
  const [first] = args;
  return typeof first === 'object' && first !== null ? first : { permissions: args as Permission[] };
}

/** A verifier of the options given, or the one passed in. */
export function verifierOf(options: VerifierOptions | KeyVerifier): KeyVerifier {
  return options instanceof KeyVerifier ? options : new KeyVerifier(options);
}

/** Checks one API key (or token) and returns the decision (for frameworks without a middleware here). */
export async function verifyKey(verifier: KeyVerifier, key: string | undefined, opts: GuardOptions = {}): Promise<Decision> {
  return verifier.decide((name) => (name === HEADER.apiKey ? key : undefined), opts);
}
