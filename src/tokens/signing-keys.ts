import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type { MikroORM, SqlEntityManager } from '@mikro-orm/postgresql';
import type { SecretBox } from '../credentials/secret-box.js';
import { jsonColumn } from '../db/json.js';
import { audit } from '../domain/audit.js';
import type { ChangeBus } from '../domain/changes.js';
import { newId } from '../ids.js';
import type { Principal } from '../domain/principal.js';

/** The JWS algorithm of every signing key: EdDSA over Ed25519. */
export const SIGNING_ALGORITHM = 'EdDSA';

/** The key that signs now; its private half stays in this process and the database. */
export interface ActiveSigningKey {
  id: string;
  privateKey: KeyObject;
}

/** A public key as published in the JWKS (RFC 7517). */
export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  kid: string;
  alg: string;
  use: 'sig';
}

export interface SigningKeysOptions {
  /** Longest lifetime of a token: a retired key's public half stays published at least this long. */
  tokenTtlMs: number;
  /** How long a process keeps signing with the key it loaded before reading the active one again. */
  reloadMs?: number;
  /** Seals private keys at rest. */
  secrets: SecretBox;
}

/**
 * A retired key is published this much longer than the token lifetime: other
 * replicas may sign with it for up to `reloadMs` after a rotation they do not
 * hear of (the embedded database carries no notifications across processes),
 * plus clock skew between replicas and verifiers.
 */
const PUBLISH_MARGIN_MS = 60_000;

/** Inserts one row of newKeyRow's values, as the active key or (next = true) the next one. */
const INSERT_KEY_SQL = `insert into signing_keys (id, algorithm, public_jwk, private_pkcs8, create_time, next) values (?, ?, ?::jsonb, ?, now(), ?)`;

interface ActiveRow {
  id: string;
  private_pkcs8: string;
}

interface PublicRow {
  id: string;
  public_jwk: Record<string, string> | string;
}

/**
 * The Ed25519 keys that sign exchanged tokens, kept in `signing_keys`. The
 * first use (at start) creates the active key and the next one; both are
 * published in the JWKS. `rotate` retires the active key, makes the next one
 * active (verifiers that fetched the JWKS before already know it) and makes
 * a new next. At most one key is active and one next (partial unique
 * indexes), so replicas racing to create them agree. Private keys are read
 * only to sign: they are never logged, returned or published.
 */
export class SigningKeys {
  private active: { key: ActiveSigningKey; loadedAt: number } | undefined;
  private loading: Promise<ActiveSigningKey> | undefined;
  private nextEnsured = false;
  private readonly reloadMs: number;

  constructor(
    private readonly orm: MikroORM,
    private readonly changes: ChangeBus,
    private readonly opts: SigningKeysOptions,
  ) {
    this.reloadMs = opts.reloadMs ?? 10_000;
  }

  /** The key to sign with, created on first use. */
  async current(): Promise<ActiveSigningKey> {
    const a = this.active;
    if (a && Date.now() - a.loadedAt < this.reloadMs) return a.key;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  /** Forgets the loaded key, e.g. after a rotation announced by another process. */
  forget(): void {
    this.active = undefined;
  }

  private async load(): Promise<ActiveSigningKey> {
    const em = this.orm.em.fork();
    let row = await this.findActive(em);
    if (!row) {
      // Another replica may insert first; then this insert does nothing and
      // both use that one.
      await em.execute(`${INSERT_KEY_SQL} on conflict do nothing`, [...newKeyRow(this.opts.secrets), false]);
      row = await this.findActive(em);
      if (!row) throw new Error('no active signing key after creating one');
    }
    // Published ahead of the next rotation. Once there is one, every rotation
    // leaves a new one, so each process makes sure of it once (a database
    // from before 0007 has none yet), not on every reload.
    if (!this.nextEnsured) {
      if ((await em.execute('select 1 from signing_keys where next')).length === 0) {
        await em.execute(`${INSERT_KEY_SQL} on conflict do nothing`, [...newKeyRow(this.opts.secrets), true]);
      }
      this.nextEnsured = true;
    }
    const key = { id: row.id, privateKey: createPrivateKey(this.opts.secrets.open(row.private_pkcs8)) };
    this.active = { key, loadedAt: Date.now() };
    return key;
  }

  private async findActive(em: SqlEntityManager): Promise<ActiveRow | undefined> {
    const rows = await em.execute<ActiveRow[]>('select id, private_pkcs8 from signing_keys where retire_time is null and not next');
    return rows[0];
  }

  /**
   * Retires the active key (if any) and makes a new one active. Tokens the
   * retired key signed keep verifying: its public half stays in the JWKS
   * until they have expired. Returns the new key's id and the retired ones'.
   */
  async rotate(p: Principal): Promise<{ id: string; retired: string[] }> {
    const result = await this.changes.transaction(this.orm.em, async (em, report) => {
      const sql = em as SqlEntityManager;
      const retired = await sql.execute<{ id: string }[]>('update signing_keys set retire_time = now() where retire_time is null and not next returning id');
      // The published next key becomes active; without one (never started since 0007), a new key.
      const promoted = await sql.execute<{ id: string }[]>('update signing_keys set next = false where next returning id');
      let id = promoted[0]?.id;
      if (id === undefined) {
        // No `on conflict`: a rotation that raced another fails rather than
        // reporting a key it did not make.
        const values = newKeyRow(this.opts.secrets);
        await sql.execute(INSERT_KEY_SQL, [...values, false]);
        id = values[0];
      }
      await sql.execute(INSERT_KEY_SQL, [...newKeyRow(this.opts.secrets), true]);
      audit(em, p, 'signing_key.rotate', { type: 'signing_key', id });
      for (const r of retired) audit(em, p, 'signing_key.retire', { type: 'signing_key', id: r.id });
      report({ signingKey: id });
      await em.flush();
      return { id, retired: retired.map((r) => r.id) };
    });
    this.forget();
    return result;
  }

  /**
   * Public keys whose tokens may still be live or soon will be: the next key,
   * the active key and every key retired less than a token lifetime (plus a
   * margin) ago. Newest first.
   */
  async publicKeys(): Promise<PublicJwk[]> {
    const keepMs = this.opts.tokenTtlMs + this.reloadMs + PUBLISH_MARGIN_MS;
    const rows = await this.orm.em.fork().execute<PublicRow[]>(
      `select id, public_jwk from signing_keys
        where retire_time is null or retire_time > now() - (? * interval '1 millisecond')
        order by create_time desc, id desc`,
      [keepMs],
    );
    return rows.map((r) => {
      const jwk = jsonColumn(r.public_jwk);
      return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: r.id, alg: SIGNING_ALGORITHM, use: 'sig' };
    });
  }
}

/** Values for one new key row: id, algorithm, public JWK (JSON), private key (PKCS#8 PEM). */
function newKeyRow(secrets: SecretBox): [string, string, string, string] {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  return [newId(), SIGNING_ALGORITHM, JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }), secrets.seal(pem)];
}
