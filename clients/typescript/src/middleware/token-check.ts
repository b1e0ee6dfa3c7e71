// Tokens (JWTs from TokenService.ExchangeKey / ExchangeOwnKey) for the
// middleware, checked offline as Keyward's own forward auth checks them
// (src/tokens/token-checker.ts in the Keyward repo): the EdDSA signature
// against the public keys Keyward publishes at /.well-known/jwks.json, `typ`,
// `iss`, `aud` when asked for, `exp`, and the shapes of the claims TokenIssuer
// signs (`sub` = the API key's id, `workspace_id`, `customer_id`,
// `permissions`). Unlike forward auth it does not look the key up: a token
// whose key was revoked passes until it expires.
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose';

/** The JWS algorithm of every Keyward signing key (Ed25519). */
const SIGNING_ALGORITHM = 'EdDSA';

/** A JWS in compact serialization whose header is a JSON object (`eyJ` is `{"`); API keys have no dots. */
const JWT_RE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether a bearer credential is a JWT (three base64url parts, starting with `eyJ`) rather than an API key. */
export function looksLikeJwt(s: string): boolean {
  return JWT_RE.test(s);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A reload for an unknown `kid` is made at most this often. */
const MIN_RELOAD_MS = 1000;

export interface TokenCheckOptions {
  /** Where Keyward publishes its signing keys; default `<baseUrl>/.well-known/jwks.json`. */
  jwksUrl?: string | URL;
  /** The `iss` a token must have: the server's KEYWARD_TOKEN_ISSUER (default `keyward`). */
  issuer?: string;
  /** The `aud` a token must have, when the server sets KEYWARD_TOKEN_AUDIENCE (default: not checked). */
  audience?: string;
  /**
   * How long the fetched key set is used before it is fetched again (default
   * 60 000 ms, the JWKS's `max-age`). A token naming a key the set lacks makes
   * it fetch again at once (at most once a second).
   */
  jwksTtlMs?: number;
  /** Seconds of clock skew tolerated on `exp`, `iat` (default 0, as forward auth). */
  clockToleranceSeconds?: number;
}

/** What a valid token says. */
export interface TokenClaims {
  keyId: string;
  workspaceId: string;
  customerId: string;
  permissions: string[];
  expireTime: Date;
  issueTime: Date | undefined;
  /** The token's `jti`. */
  id: string | undefined;
}

/** The verdict on a token: its claims, or why it is refused (`message` says why, for the client). */
export type TokenVerdict = { ok: true; claims: TokenClaims } | { ok: false; message: string };

/** The key set could not be fetched: the middleware fails closed (503). */
export class JwksUnavailableError extends Error {
  override readonly name = 'JwksUnavailableError';
}

type KeySet = ReturnType<typeof createLocalJWKSet>;

/** Keyward's public keys, fetched over HTTP and kept for `ttlMs`; fetched again early for an unknown `kid`. */
export class JwksCache {
  private set: KeySet | undefined;
  /** When the last fetch was started (whether it worked or not). */
  private attemptAt = -Infinity;
  private loading: Promise<KeySet> | undefined;
  readonly stats = { fetches: 0 };

  constructor(
    readonly url: URL,
    private readonly ttlMs: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * The key set; `reload` asks for a fresh one (a token named a key it lacks).
   * When a TTL refresh fails the set in hand is kept (a retired key stays
   * published until its tokens have expired, so an older set accepts nothing
   * a newer one would refuse); without one, or on a reload, it throws JwksUnavailableError.
   */
  async get(reload: boolean): Promise<KeySet> {
    const age = Date.now() - this.attemptAt;
    if (this.set !== undefined && age < (reload ? MIN_RELOAD_MS : this.ttlMs)) return this.set;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    try {
      return await this.loading;
    } catch (e) {
      if (!reload && this.set !== undefined) return this.set;
      throw e;
    }
  }

  private async load(): Promise<KeySet> {
    this.attemptAt = Date.now();
    this.stats.fetches++;
    try {
      const res = await fetch(this.url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(this.timeoutMs) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const jwks = (await res.json()) as JSONWebKeySet;
      const set = createLocalJWKSet(jwks);
      this.set = set;
      return set;
    } catch (e) {
      throw new JwksUnavailableError(`cannot fetch Keyward's signing keys from ${this.url.href}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Verifies tokens offline against a JwksCache. */
export class TokenVerifier {
  readonly jwks: JwksCache;
  private readonly verifyOptions: Parameters<typeof jwtVerify>[2];

  constructor(baseUrl: string, opts: TokenCheckOptions, timeoutMs: number) {
    const url = opts.jwksUrl !== undefined ? new URL(opts.jwksUrl) : new URL('/.well-known/jwks.json', baseUrl);
    this.jwks = new JwksCache(url, opts.jwksTtlMs ?? 60_000, timeoutMs);
    this.verifyOptions = {
      algorithms: [SIGNING_ALGORITHM],
      typ: 'JWT',
      issuer: opts.issuer ?? 'keyward',
      ...(opts.audience !== undefined && opts.audience !== '' && { audience: opts.audience }),
      ...(opts.clockToleranceSeconds !== undefined && { clockTolerance: opts.clockToleranceSeconds }),
    };
  }

  /** The token's claims, or why it is refused. Throws JwksUnavailableError only. */
  async verify(jwt: string): Promise<TokenVerdict> {
    let set = await this.jwks.get(false);
    for (let attempt = 0; ; attempt++) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(jwt, set, this.verifyOptions));
      } catch (e) {
        // A signing key made after the set was fetched: fetch it again, once.
        if (e instanceof errors.JWKSNoMatchingKey && attempt === 0) {
          set = await this.jwks.get(true);
          continue;
        }
        if (e instanceof errors.JWTExpired) return { ok: false, message: 'the token has expired' };
        if (e instanceof errors.JWTClaimValidationFailed) return { ok: false, message: `the token's ${e.claim} claim is not accepted here` };
        return { ok: false, message: 'the token is not valid' };
      }
      const claims = claimsOf(payload);
      return claims === undefined ? { ok: false, message: 'the token is not a Keyward token' } : { ok: true, claims };
    }
  }
}

/** The claims, if they have the shapes TokenIssuer gives them. */
function claimsOf(c: JWTPayload): TokenClaims | undefined {
  const { sub, workspace_id, customer_id, permissions } = c as JWTPayload & Record<string, unknown>;
  if (typeof sub !== 'string' || !UUID_RE.test(sub)) return undefined;
  if (typeof workspace_id !== 'string' || typeof customer_id !== 'string') return undefined;
  if (!Array.isArray(permissions) || !permissions.every((p) => typeof p === 'string')) return undefined;
  // A token without exp would live forever: TokenIssuer always sets it.
  if (typeof c.exp !== 'number') return undefined;
  return {
    keyId: sub,
    workspaceId: workspace_id,
    customerId: customer_id,
    permissions: [...(permissions as string[])],
    expireTime: new Date(c.exp * 1000),
    issueTime: typeof c.iat === 'number' ? new Date(c.iat * 1000) : undefined,
    id: typeof c.jti === 'string' ? c.jti : undefined,
  };
}
