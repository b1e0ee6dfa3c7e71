import type { MikroORM } from '@mikro-orm/postgresql';
import { createLocalJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';
import { keyState, type KeyState } from '../domain/key-state.js';
import { grants } from '../domain/permissions.js';
import { KEY_STATE_COLUMNS } from '../verify/verifier.js';
import { SIGNING_ALGORITHM, type SigningKeys } from './signing-keys.js';
import type { TokenDenylist } from './token-denylist.js';
import type { TokenOptions } from './token-issuer.js';

/** Three dot-separated base64url parts: a JWS in compact serialization (API keys have no dots). */
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether a bearer credential is a JWT rather than an API key. */
export function looksLikeJwt(s: string): boolean {
  return JWT_RE.test(s);
}

/** Why a token passes or not; `key_state` codes are the key's own (it changed after the token was minted). */
type TokenCode = 'valid' | 'invalid_token' | 'not_found' | 'disabled' | 'expired' | 'revoked' | 'insufficient_permissions';

/** What a token says, once its signature and claims checked out. */
interface TokenIdentity {
  keyId: string;
  workspaceId: string;
  customerId: string;
  permissions: readonly string[];
}

export interface TokenCheck {
  code: TokenCode;
  /** Set for every code but invalid_token. */
  identity?: TokenIdentity;
  /** Why, for the client (no secrets). */
  message: string;
}

interface KeyRow {
  workspace_id: string;
  enabled: boolean;
  expire_ms: number | null;
  revoke_ms: number | null;
  permissions: string[];
}

/** The key's state now (and its grants now), or null when it is gone. */
interface KeyNow {
  workspaceId: string;
  enabled: boolean;
  expireTime: Date | null;
  revokeTime: Date | null;
  permissions: ReadonlySet<string>;
}

// One lookup by primary key: the key's state and its grants now, read as
// VerifyKey's lookup reads them.
const KEY_SQL = `
  select k.workspace_id, k.enabled,${KEY_STATE_COLUMNS}
    from api_keys k
    join workspaces w on w.id = k.workspace_id
   where k.id = ?`;

const KEY_GONE_MESSAGES = {
  not_found: 'the API key of the token no longer exists',
  disabled: 'the API key of the token is disabled',
  expired: 'the API key of the token is expired',
  revoked: 'the API key of the token is revoked',
} as const;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface TokenCheckerOptions {
  /** How long a key's state read from the database is trusted (changes in this process evict it at once). */
  stateTtlMs: number;
  /** How long the public keys read from the database are used before reading them again. */
  jwksTtlMs?: number;
  /** Bound on keys whose state is remembered. */
  maxEntries?: number;
  /** Keys whose tokens are refused without a read (revoked, deleted, disabled); fed by evictKeys/evictWorkspace. */
  denylist?: TokenDenylist;
}

type Jwks = ReturnType<typeof createLocalJWKSet>;

/**
 * Checks tokens from TokenService (ExchangeKey, ExchangeOwnKey) for forward
 * auth, offline: the signature against the signing keys' public halves (a
 * local JWKS, re-read every few seconds and when a token names a key it does
 * not know), `iss`, `aud` if configured, `exp`, the claims' shapes. Then the
 * key's state by its id (`sub`): a token whose key was revoked, disabled,
 * deleted or whose grants were narrowed after it was minted is refused. That
 * state is one primary-key lookup per key, remembered for `stateTtlMs`
 * and evicted at once by changes made in this process or announced by
 * others (and not remembered at all while those cannot be heard). Before
 * that lookup, the denylist (TokenDenylist) refuses, without a read, the
 * tokens of keys revoked, deleted or disabled within a token's lifetime.
 */
export class TokenChecker {
  private jwks: { set: Jwks; at: number } | undefined;
  private jwksLoading: Promise<Jwks> | undefined;
  private readonly states = new Map<string, { key: KeyNow | null; at: number }>();
  private readonly pending = new Map<string, Promise<KeyNow | null>>();
  private readonly jwksTtlMs: number;
  private readonly maxEntries: number;
  /** False while other replicas' changes cannot be heard (the change listener is down): no state is remembered then. */
  private listening = true;
  /** `denied`: tokens refused from the denylist, without a state lookup. */
  readonly stats = { stateLookups: 0, jwksLoads: 0, denied: 0 };

  constructor(
    private readonly orm: MikroORM,
    private readonly signingKeys: Pick<SigningKeys, 'publicKeys'>,
    private readonly token: TokenOptions,
    private readonly opts: TokenCheckerOptions,
  ) {
    this.jwksTtlMs = opts.jwksTtlMs ?? 5000;
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  /** Forgets the states of these keys (changed in this process or another); the denylist reads them again. */
  evictKeys(ids: readonly string[]): void {
    for (const id of ids) this.states.delete(id);
    void this.opts.denylist?.keysChanged(ids);
  }

  /** Forgets the states of a workspace's keys (deleted, or a scope renamed or deleted). */
  evictWorkspace(workspaceId: string): void {
    for (const [id, s] of this.states) if (s.key === null || s.key.workspaceId === workspaceId) this.states.delete(id);
    void this.opts.denylist?.workspaceChanged(workspaceId);
  }

  /**
   * The change listener lost its connection (false) or listens again (true).
   * Changes announced meanwhile were not heard: remembered states are
   * forgotten and none is kept until it listens again, and then the denylist
   * reloads what ended tokens within their lifetime.
   */
  setListening(on: boolean): Promise<void> {
    this.listening = on;
    this.states.clear();
    return on ? this.loadDenylist() : Promise.resolve();
  }

  /** Loads into the denylist what ended tokens within their lifetime (at start; setListening does it on reconnect). */
  async loadDenylist(): Promise<void> {
    await this.opts.denylist?.reload();
  }

  /** Forgets the public keys (a signing key rotated). */
  forgetJwks(): void {
    this.jwks = undefined;
  }

  /**
   * Checks `jwt` for a request that needs `requiredPermissions` (all of them)
   * and, if `workspaceId` is not empty, that workspace's keys only.
   * `canSee` is the gateway's workspace restriction. Throws only when the
   * database is unreachable.
   */
  async check(jwt: string, requiredPermissions: readonly string[], workspaceId: string, canSee: (workspaceId: string) => boolean): Promise<TokenCheck> {
    const claims = await this.verifySignature(jwt);
    if (typeof claims === 'string') return { code: 'invalid_token', message: claims };
    const identity = identityOf(claims);
    if (identity === undefined) return { code: 'invalid_token', message: 'the token is not a Keyward token' };
    if (!canSee(identity.workspaceId) || (workspaceId !== '' && identity.workspaceId !== workspaceId)) {
      return { code: 'not_found', message: 'the token is not valid for this workspace' };
    }
    const denied = this.opts.denylist?.refusal(identity.keyId, typeof claims.iat === 'number' ? claims.iat : undefined);
    if (denied !== undefined) {
      this.stats.denied++;
      // As for a key read as gone: a deleted key's token names no identity.
      return denied === 'not_found' ? { code: denied, message: KEY_GONE_MESSAGES[denied] } : { code: denied, identity, message: KEY_GONE_MESSAGES[denied] };
    }
    const now = Date.now();
    const key = await this.keyNow(identity.keyId, now);
    if (key === null) return { code: 'not_found', message: KEY_GONE_MESSAGES.not_found };
    const state: KeyState = keyState(key, now);
    if (state !== 'active') return { code: state, identity, message: KEY_GONE_MESSAGES[state] };
    const claimed = new Set(identity.permissions);
    for (const p of requiredPermissions) {
      // Both what the token was minted for and what the key holds now.
      if (!grants(claimed, p) || !grants(key.permissions, p)) {
        return { code: 'insufficient_permissions', identity, message: 'the token lacks a permission this request needs' };
      }
    }
    return { code: 'valid', identity, message: 'the token is valid' };
  }

  /** The verified claims, or why not. */
  private async verifySignature(jwt: string): Promise<JWTPayload | string> {
    const options = {
      algorithms: [SIGNING_ALGORITHM],
      issuer: this.token.issuer,
      ...(this.token.audience !== '' && { audience: this.token.audience }),
      typ: 'JWT',
    };
    let jwks = await this.currentJwks(false);
    for (let attempt = 0; ; attempt++) {
      try {
        return (await jwtVerify(jwt, jwks, options)).payload;
      } catch (e) {
        // A key made after the JWKS was read: read it again, once.
        if (e instanceof errors.JWKSNoMatchingKey && attempt === 0) {
          jwks = await this.currentJwks(true);
          continue;
        }
        if (e instanceof errors.JWTExpired) return 'the token has expired';
        if (e instanceof errors.JWTClaimValidationFailed) return `the token's ${e.claim} claim is not accepted here`;
        return 'the token is not valid';
      }
    }
  }

  private async currentJwks(reload: boolean): Promise<Jwks> {
    const j = this.jwks;
    // A reload is asked for by an unknown kid; at most one a second.
    if (j && Date.now() - j.at < (reload ? 1000 : this.jwksTtlMs)) return j.set;
    this.jwksLoading ??= this.signingKeys
      .publicKeys()
      .then((keys) => {
        this.stats.jwksLoads++;
        const set = createLocalJWKSet({ keys: keys.map((k) => ({ ...k })) });
        this.jwks = { set, at: Date.now() };
        return set;
      })
      .finally(() => (this.jwksLoading = undefined));
    return this.jwksLoading;
  }

  private async keyNow(id: string, now: number): Promise<KeyNow | null> {
    const hit = this.states.get(id);
    if (hit && now - hit.at < this.opts.stateTtlMs) return hit.key;
    let p = this.pending.get(id);
    if (!p) {
      p = this.lookup(id).finally(() => this.pending.delete(id));
      this.pending.set(id, p);
    }
    const key = await p;
    this.states.delete(id);
    if (!this.listening) return key;
    if (this.states.size >= this.maxEntries) this.states.delete(this.states.keys().next().value!);
    this.states.set(id, { key, at: now });
    return key;
  }

  private async lookup(id: string): Promise<KeyNow | null> {
    this.stats.stateLookups++;
    const rows = await this.orm.em.fork().execute<KeyRow[]>(KEY_SQL, [id]);
    const r = rows[0];
    if (!r) return null;
    return {
      workspaceId: r.workspace_id,
      enabled: r.enabled,
      expireTime: r.expire_ms === null ? null : new Date(r.expire_ms),
      revokeTime: r.revoke_ms === null ? null : new Date(r.revoke_ms),
      permissions: new Set(r.permissions),
    };
  }
}

/** The token's identity claims, if they have the shapes TokenIssuer gives them. */
function identityOf(c: JWTPayload): TokenIdentity | undefined {
  const { sub, workspace_id, customer_id, permissions } = c as JWTPayload & Record<string, unknown>;
  if (typeof sub !== 'string' || !UUID_RE.test(sub)) return undefined;
  if (typeof workspace_id !== 'string' || typeof customer_id !== 'string') return undefined;
  if (!Array.isArray(permissions) || !permissions.every((p) => typeof p === 'string')) return undefined;
  // A token without exp would live forever: TokenIssuer always sets it.
  if (typeof c.exp !== 'number') return undefined;
  return { keyId: sub, workspaceId: workspace_id, customerId: customer_id, permissions: permissions as string[] };
}
