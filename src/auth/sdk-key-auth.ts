import type { MikroORM } from '@mikro-orm/postgresql';
import { SdkKey } from '../db/entities.js';
import { checkSdkKeySecret, parseSdkKey, sdkKeyFingerprint } from '../credentials/sdk-key.js';
import { unauthenticated } from '../domain/errors.js';
import { Principal } from '../domain/principal.js';

/** A verified SDK key as remembered; see SdkKeyAuthenticator. */
export interface Remembered {
  readonly principal: Principal;
  readonly sdkKeyId: string;
  readonly checkedAt: number;
  /** Set once this entry is replaced or dropped (revoked, rechecked); it then answers nothing. */
  superseded: boolean;
}

export interface SdkKeyAuthOptions {
  /** How long a verified key is trusted before its row is read again (not re-hashed). */
  recheckMs: number;
  /** Bound on remembered keys. */
  maxEntries: number;
}

/**
 * Authenticates SDK keys. bcrypt runs once per key per process: a verified
 * key is remembered by the SHA-256 of its token (never the token itself), and
 * afterwards only its row is re-read, at most every `recheckMs`, to notice
 * revocation by another process. Concurrent first uses of one token share a
 * single bcrypt check.
 */
export class SdkKeyAuthenticator {
  private readonly remembered = new Map<string, Remembered>();
  private readonly pending = new Map<string, Promise<Remembered>>();

  constructor(
    private readonly orm: MikroORM,
    private readonly opts: SdkKeyAuthOptions = { recheckMs: 1000, maxEntries: 10_000 },
    /**
     * Told of every refusal, with the SDK key id if it names one that exists,
     * else `missing`, `malformed` or `unknown` (never the token).
     */
    private readonly onFailure: (subject: string) => void = () => {},
  ) {}

  private token(authorization: string | null | undefined): string {
    try {
      return bearerToken(authorization);
    } catch (e) {
      this.onFailure(authorization ? 'malformed' : 'missing');
      throw e;
    }
  }

  /**
   * The entry of a remembered key checked within `recheckMs`, or undefined
   * when authenticate() has more to do. Throws what authenticate() throws for
   * a missing or malformed header. Synchronous, so the VerifyKey fast path
   * pays no promise for the common case.
   */
  rememberedEntry(authorization: string | null | undefined): Remembered | undefined {
    const hit = this.remembered.get(sdkKeyFingerprint(this.token(authorization)));
    return hit && this.isFresh(hit) ? hit : undefined;
  }

  /**
   * The principal of an entry rememberedEntry() returned earlier, if it still
   * stands (not superseded, checked within `recheckMs`): lets a caller that
   * keeps the entry next to the exact header it came from (the VerifyKey fast
   * path, per HTTP/2 connection) skip parsing and hashing that header again.
   */
  principalOf(entry: Remembered): Principal | undefined {
    return !entry.superseded && this.isFresh(entry) ? entry.principal : undefined;
  }

  private isFresh(hit: Remembered): boolean {
    return Date.now() - hit.checkedAt < this.opts.recheckMs;
  }

  async authenticate(authorization: string | null | undefined): Promise<Principal> {
    const token = this.token(authorization);
    const fp = sdkKeyFingerprint(token);
    const hit = this.remembered.get(fp);
    if (hit && this.isFresh(hit)) return hit.principal;
    let inflight = this.pending.get(fp);
    if (!inflight) {
      inflight = (hit ? this.recheck(fp, hit) : this.verify(fp, token)).finally(() => this.pending.delete(fp));
      this.pending.set(fp, inflight);
    }
    return (await inflight).principal;
  }

  /** Forgets a key at once, e.g. after it was revoked in this process. */
  forget(sdkKeyId: string): void {
    for (const [fp, r] of this.remembered) if (r.sdkKeyId === sdkKeyId) this.drop(fp, r);
  }

  private async recheck(fp: string, hit: Remembered): Promise<Remembered> {
    const row = await this.orm.em.fork().findOne(SdkKey, { id: hit.sdkKeyId });
    if (!row || row.revokeTime) {
      this.drop(fp, hit);
      this.onFailure(row ? row.id : 'unknown');
      throw invalidKey();
    }
    return this.remember(fp, row);
  }

  private async verify(fp: string, token: string): Promise<Remembered> {
    const parsed = parseSdkKey(token);
    if (!parsed) {
      this.onFailure('malformed');
      throw unauthenticated('the SDK key is malformed');
    }
    const row = await this.orm.em.fork().findOne(SdkKey, { id: parsed.id });
    if (!row) {
      this.onFailure('unknown');
      throw invalidKey();
    }
    if (row.revokeTime || !(await checkSdkKeySecret(parsed.secret, row.secretHash))) {
      this.onFailure(row.id);
      throw invalidKey();
    }
    return this.remember(fp, row);
  }

  private remember(fp: string, row: SdkKey): Remembered {
    const entry: Remembered = {
      principal: new Principal(row.id, row.scopes, row.workspaceIds),
      sdkKeyId: row.id,
      checkedAt: Date.now(),
      superseded: false,
    };
    const previous = this.remembered.get(fp);
    if (previous) this.drop(fp, previous);
    if (this.remembered.size >= this.opts.maxEntries) {
      const [oldestFp, oldest] = this.remembered.entries().next().value!;
      this.drop(oldestFp, oldest);
    }
    this.remembered.set(fp, entry);
    return entry;
  }

  private drop(fp: string, entry: Remembered): void {
    entry.superseded = true;
    this.remembered.delete(fp);
  }
}

function invalidKey() {
  return unauthenticated('the SDK key is invalid or revoked');
}

function bearerToken(authorization: string | null | undefined): string {
  if (!authorization) throw unauthenticated('missing SDK key: send "authorization: Bearer <sdk key>"');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw unauthenticated('the authorization header must be "Bearer <sdk key>"');
  return m[1]!;
}
