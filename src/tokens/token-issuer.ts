import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { bearerTokenOf } from '../auth/bearer.js';
import { hashApiKey, isVerifiableKey } from '../credentials/api-key.js';
import { permissionDenied, resourceExhausted, unauthenticated } from '../domain/errors.js';
import { Principal } from '../domain/principal.js';
import { checkVerifyInput, type KeyVerifier, type VerifiedKey, type VerifyCode, type VerifyInput } from '../verify/verifier.js';
import type { ExchangeThrottle } from './exchange-throttle.js';
import { SIGNING_ALGORITHM, type SigningKeys } from './signing-keys.js';

export interface TokenOptions {
  /** Lifetime of a token, unless the key expires sooner. */
  ttlMs: number;
  /** The `iss` claim. */
  issuer: string;
  /** The `aud` claim; none when empty. */
  audience: string;
}

export interface ExchangeResult {
  code: VerifyCode;
  /** The key, when it was found (code is not not_found). */
  key?: VerifiedKey;
  /** Set only when code is valid. */
  token?: { jwt: string; expireTime: Date; signingKeyId: string };
}

/** A token signed for a customer's own key (ExchangeOwnKey). */
export interface OwnExchangeResult {
  key: VerifiedKey;
  permissions: string[];
  token: { jwt: string; expireTime: Date; signingKeyId: string };
}

/**
 * Who verifies a key that exchanges itself: the key is the credential, so the
 * internal caller may verify keys of every workspace (and only that).
 */
const SELF_EXCHANGE = new Principal('api_key_self_exchange', ['api_keys:verify'], []);

/** Why a key that exchanges itself is refused, by verify code: the caller's own credential failed. */
const OWN_KEY_REFUSALS: Partial<Record<VerifyCode, string>> = {
  not_found: 'the API key is not valid (NOT_FOUND)',
  disabled: 'the API key is disabled (DISABLED)',
  expired: 'the API key has expired (EXPIRED)',
  revoked: 'the API key was revoked (REVOKED)',
};

/**
 * Exchanges an API key for a short-lived JWT: the key is verified exactly as
 * VerifyKey verifies it (same cache, same caller checks, same codes), and
 * only a valid one gets a token.
 */
export class TokenIssuer {
  constructor(
    private readonly verifier: KeyVerifier,
    private readonly signingKeys: SigningKeys,
    private readonly opts: TokenOptions,
    private readonly throttle?: ExchangeThrottle,
  ) {}

  /**
   * ExchangeOwnKey: the API key in `authorization` exchanges itself. Verified
   * exactly as VerifyKey verifies it; a key that does not pass is an error
   * (it is the caller's own credential). `source` is the remote address, for
   * throttling failed exchanges.
   */
  async exchangeOwn(
    authorization: string | null | undefined,
    source: string,
    req: { requiredPermissions: string[]; workspaceId: string },
  ): Promise<OwnExchangeResult> {
    if (!authorization) throw unauthenticated('missing API key: send "authorization: Bearer <api key>"');
    const key = bearerTokenOf(authorization);
    if (key === undefined) throw unauthenticated('the authorization header must be "Bearer <api key>"');
    const input: VerifyInput = { key, requiredPermissions: req.requiredPermissions, workspaceId: req.workspaceId };
    checkVerifyInput(input);
    const hash = hashApiKey(key);
    // Only a well-formed key costs a lookup, so only such keys are throttled
    // (a malformed one is refused from its checksum alone).
    const costsLookup = isVerifiableKey(key);
    if (costsLookup) this.throttle?.checkAddress(source, hash);
    const r = await this.verifier.verify(SELF_EXCHANGE, input);
    const refusal = OWN_KEY_REFUSALS[r.code];
    if (refusal !== undefined || !r.key) {
      if (costsLookup) this.throttle?.failed(source);
      // An SDK key sent here by mistake: say what belongs where.
      const hint = key.startsWith('kws_') ? ': this is an SDK key; ExchangeOwnKey takes the API key itself (with an SDK key, call ExchangeKey)' : '';
      throw unauthenticated((refusal ?? OWN_KEY_REFUSALS.not_found!) + hint);
    }
    switch (r.code) {
      case 'valid':
        break;
      case 'insufficient_permissions':
        throw permissionDenied('the API key lacks a requested permission (INSUFFICIENT_PERMISSIONS)');
      case 'rate_limited':
        throw resourceExhausted('the API key is over its rate limit (RATE_LIMITED)');
      case 'usage_exceeded':
        throw resourceExhausted('the API key has used up its allowed requests (USAGE_EXCEEDED)');
      default:
        throw permissionDenied(`the API key did not verify (${r.code})`);
    }
    this.throttle?.takeForKey(r.key.id, hash);
    const permissions = permissionsFor(input, r.key);
    return { key: r.key, permissions, token: await this.sign(r.key, permissions, Date.now()) };
  }

  async exchange(p: Principal, input: VerifyInput): Promise<ExchangeResult> {
    const r = await this.verifier.verify(p, input);
    if (r.code !== 'valid' || !r.key) return { code: r.code, key: r.key };
    const permissions = permissionsFor(input, r.key);
    return { code: 'valid', key: r.key, token: await this.sign(r.key, permissions, Date.now()) };
  }

  private async sign(key: VerifiedKey, permissions: string[], now: number) {
    const signing = await this.signingKeys.current();
    const iat = Math.floor(now / 1000);
    let exp = Math.floor((now + this.opts.ttlMs) / 1000);
    // Never outlive the key.
    if (key.expireTime) exp = Math.max(iat, Math.min(exp, Math.floor(key.expireTime.getTime() / 1000)));
    const jwt = new SignJWT({ workspace_id: key.workspaceId, customer_id: key.customerId, permissions })
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: 'JWT', kid: signing.id })
      .setIssuer(this.opts.issuer)
      .setSubject(key.id)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID());
    if (this.opts.audience) jwt.setAudience(this.opts.audience);
    return { jwt: await jwt.sign(signing.privateKey), expireTime: new Date(exp * 1000), signingKeyId: signing.id };
  }
}

/** A token asked for with required permissions carries only those; else every permission of the key. */
function permissionsFor(input: VerifyInput, key: VerifiedKey): string[] {
  return input.requiredPermissions.length > 0 ? [...new Set(input.requiredPermissions)].sort() : key.permissions;
}
