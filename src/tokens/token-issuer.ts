import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Principal } from '../domain/principal.js';
import type { KeyVerifier, VerifiedKey, VerifyCode, VerifyInput } from '../verify/verifier.js';
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
  ) {}

  async exchange(p: Principal, input: VerifyInput): Promise<ExchangeResult> {
    const r = await this.verifier.verify(p, input);
    if (r.code !== 'valid' || !r.key) return { code: r.code, key: r.key };
    // A token asked for with required permissions carries only those.
    const permissions = input.requiredPermissions.length > 0 ? [...new Set(input.requiredPermissions)].sort() : r.key.permissions;
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
