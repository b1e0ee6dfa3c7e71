// JWTs for an API key: `tokenSource` exchanges the key with
// TokenService.ExchangeKey and keeps a fresh token; `verifyToken` checks a
// token offline against Keyward's JWKS (EdDSA).
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { Keyward, type KeywardOptions } from './client.js';
import { KeywardError } from './errors.js';
import type { Permission } from './grants.js';

export interface TokenSourceOptions extends Partial<KeywardOptions> {
  /** The API key to exchange. */
  key: string;
  /** A client to exchange through, instead of one made of `baseUrl`/`sdkKey`. */
  client?: Keyward;
  /** Refresh this long before the token expires (default 30 s). */
  refreshBufferSeconds?: number;
  /** Put only these permissions in the token (each must be the key's). */
  permissions?: readonly Permission[];
  workspaceId?: string;
}

export interface TokenSource {
  /** A token valid for at least `refreshBufferSeconds` more; concurrent calls share one exchange. */
  getToken(): Promise<string>;
  /** When the current token expires (undefined before the first exchange). */
  readonly expireTime: Date | undefined;
  /** Forgets the token: the next getToken() exchanges again. */
  invalidate(): void;
}

/**
 * Exchanges `key` for a JWT and refreshes it `refreshBufferSeconds` before it
 * expires. With an `sdkKey` (or a `client`), through ExchangeKey (the SDK key
 * needs `api_keys:verify`); without, the key exchanges itself
 * (ExchangeOwnKey): what a customer holding only its API key does.
 */
export function tokenSource(options: TokenSourceOptions): TokenSource {
  const own = options.client === undefined && !options.sdkKey;
  const client =
    options.client ??
    (() => {
      if (!options.baseUrl) throw new TypeError('tokenSource needs baseUrl or client');
      return new Keyward({ ...options, baseUrl: options.baseUrl, sdkKey: options.sdkKey || options.key });
    })();
  const bufferMs = (options.refreshBufferSeconds ?? 30) * 1000;
  let current: { token: string; expireTime: Date } | undefined;
  let inflight: Promise<string> | undefined;

  const exchange = async () => {
    const opts = { permissions: options.permissions, workspaceId: options.workspaceId };
    const r = own ? await client.tokens.exchangeOwn(opts) : await client.tokens.exchange(options.key, opts);
    current = { token: r.token, expireTime: r.expireTime };
    return r.token;
  };

  return {
    getToken() {
      if (current !== undefined && Date.now() < current.expireTime.getTime() - bufferMs) return Promise.resolve(current.token);
      inflight ??= exchange().finally(() => {
        inflight = undefined;
      });
      return inflight;
    },
    get expireTime() {
      return current?.expireTime;
    },
    invalidate() {
      current = undefined;
    },
  };
}

/** The claims of a Keyward token. */
export interface KeywardTokenPayload extends JWTPayload {
  /** The API key's id. */
  sub: string;
  workspace_id: string;
  customer_id: string;
  permissions: string[];
}

export interface VerifyTokenOptions {
  /** `https://keys.example.com/.well-known/jwks.json`, or give `baseUrl`. */
  jwksUrl?: string | URL;
  baseUrl?: string;
  /** The `iss` to require (Keyward's KEYWARD_TOKEN_ISSUER, `keyward` by default). */
  issuer?: string;
  /** The `aud` to require (KEYWARD_TOKEN_AUDIENCE), when the server sets one. */
  audience?: string;
  /** Permissions the token must carry. */
  permissions?: readonly Permission[];
}

/** One remote key set per URL: fetched once, refetched when an unknown `kid` shows up. */
const keySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

function keySetOf(opts: VerifyTokenOptions): ReturnType<typeof createRemoteJWKSet> {
  const url = opts.jwksUrl?.toString() ?? (opts.baseUrl ? new URL('/.well-known/jwks.json', opts.baseUrl).toString() : undefined);
  if (url === undefined) throw new TypeError('verifyToken needs jwksUrl or baseUrl');
  let set = keySets.get(url);
  if (set === undefined) keySets.set(url, (set = createRemoteJWKSet(new URL(url))));
  return set;
}

/**
 * Checks a token offline: signature (EdDSA, against the JWKS), expiry,
 * issuer, audience and permissions. Throws KeywardError `token_expired`,
 * `invalid_token` or `insufficient_permissions`.
 */
export async function verifyToken(token: string, opts: VerifyTokenOptions): Promise<KeywardTokenPayload> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keySetOf(opts), { algorithms: ['EdDSA'], issuer: opts.issuer, audience: opts.audience }));
  } catch (e) {
    if (e instanceof errors.JWTExpired) throw new KeywardError('token_expired', 'the token has expired', { cause: e });
    if (e instanceof errors.JOSEError) throw new KeywardError('invalid_token', `the token is not valid: ${e.message}`, { cause: e });
    throw KeywardError.from(e);
  }
  const p = payload as KeywardTokenPayload;
  const has = new Set(Array.isArray(p.permissions) ? p.permissions : []);
  const missing = (opts.permissions ?? []).filter((x) => !has.has(x));
  if (missing.length > 0) throw new KeywardError('insufficient_permissions', `the token lacks ${missing.join(', ')}`);
  return p;
}
