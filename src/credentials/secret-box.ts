import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const V1 = 'sealed:v1:';
const V2 = 'sealed:v2:';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID_RE = /^[A-Za-z0-9_-]{8}$/;

/** A short, public name of a key: the first 6 bytes of SHA-256 over a label and the key, as base64url (8 characters). */
function keyIdOf(key: Buffer): string {
  return createHash('sha256').update('keyward secrets key id\0').update(key).digest().subarray(0, 6).toString('base64url');
}

/**
 * Seals the secrets Keyward must be able to use again (the private halves of
 * JWT signing keys, webhook signing secrets) before they are stored: AES-256-GCM
 * under the operator's KEYWARD_SECRETS_KEY, as
 * `sealed:v2:<key id>:<base64url iv|tag|ciphertext>` (the key id, also
 * authenticated, names the key so opening needs no trial decryption).
 *
 * Rotation: keys in KEYWARD_SECRETS_KEY_PREVIOUS open what they sealed but seal
 * nothing; `keyward secrets reseal` moves every stored value to the current key.
 * Values of the first format, `sealed:v1:<...>` without a key id, are opened by
 * trying the current key and then each previous one.
 *
 * Without a key secrets are stored as they are, and stored values that are not
 * sealed are read as they are, so setting a key later needs no migration
 * (values written before stay readable; new ones are sealed).
 */
export class SecretBox {
  private readonly current: { id: string; key: Buffer } | undefined;
  /** Every key that may open a value, current first, by key id. */
  private readonly keys = new Map<string, Buffer>();

  constructor(key: Buffer | undefined, previous: readonly Buffer[] = []) {
    for (const k of [...(key ? [key] : []), ...previous]) {
      if (k.length !== 32) throw new Error('a secrets key must be 32 bytes');
      this.keys.set(keyIdOf(k), k);
    }
    this.current = key ? { id: keyIdOf(key), key } : undefined;
  }

  get sealing(): boolean {
    return this.current !== undefined;
  }

  /** Whether a stored value is sealed under the current key in the current format (`keyward secrets reseal` leaves those). */
  isCurrent(stored: string): boolean {
    return this.current !== undefined && stored.startsWith(`${V2}${this.current.id}:`);
  }

  seal(plain: string): string {
    if (this.current === undefined) return plain;
    const { id, key } = this.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(id));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${V2}${id}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  /**
   * The secret a stored value holds; throws if it is sealed and cannot be
   * opened (no key, a key not configured, tampered). The message never holds
   * the value or a key, only the key id.
   */
  open(stored: string): string {
    if (stored.startsWith(V2)) {
      const rest = stored.slice(V2.length);
      const colon = rest.indexOf(':');
      const id = rest.slice(0, colon);
      if (!KEY_ID_RE.test(id)) throw new Error('a stored secret is sealed, but malformed (no key id)');
      if (this.keys.size === 0) throw new Error('a stored secret is sealed, but KEYWARD_SECRETS_KEY is not set');
      const key = this.keys.get(id);
      if (key === undefined) {
        throw new Error(`a stored secret is sealed with key id ${id}, which is neither KEYWARD_SECRETS_KEY nor in KEYWARD_SECRETS_KEY_PREVIOUS`);
      }
      const plain = decrypt(key, rest.slice(colon + 1), id);
      if (plain === undefined) throw new Error(`a stored secret sealed with key id ${id} cannot be opened: it was altered`);
      return plain;
    }
    if (stored.startsWith(V1)) {
      if (this.keys.size === 0) throw new Error('a stored secret is sealed, but KEYWARD_SECRETS_KEY is not set');
      for (const key of this.keys.values()) {
        const plain = decrypt(key, stored.slice(V1.length), undefined);
        if (plain !== undefined) return plain;
      }
      throw new Error('a stored secret cannot be opened with KEYWARD_SECRETS_KEY or KEYWARD_SECRETS_KEY_PREVIOUS (another key, or altered)');
    }
    return stored;
  }
}

/** The plaintext of `iv|tag|ciphertext` (base64url), or undefined if this key does not open it. */
function decrypt(key: Buffer, body: string, aad: string | undefined): string | undefined {
  const raw = Buffer.from(body, 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  if (aad !== undefined) decipher.setAAD(Buffer.from(aad));
  try {
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** KEYWARD_SECRETS_KEY: 32 bytes, base64 or base64url (`openssl rand -base64 32`); unset means none. */
export function secretsKeyOf(value: string | undefined, name = 'KEYWARD_SECRETS_KEY'): Buffer | undefined {
  if (value === undefined || value === '') return undefined;
  const key = Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64');
  if (key.length !== 32) throw new Error(`${name} must be 32 bytes in base64 (e.g. \`openssl rand -base64 32\`)`);
  return key;
}

/**
 * KEYWARD_SECRETS_KEY_PREVIOUS: older keys, comma-separated, each like
 * KEYWARD_SECRETS_KEY; they only open. Needs a current key: previous keys
 * alone would leave new secrets unsealed.
 */
export function previousSecretsKeysOf(value: string | undefined, current: Buffer | undefined): Buffer[] {
  const name = 'KEYWARD_SECRETS_KEY_PREVIOUS';
  const parts = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length > 0 && current === undefined) throw new Error(`${name} is set, but KEYWARD_SECRETS_KEY is not: set the key that seals now`);
  return parts.map((p, i) => secretsKeyOf(p, parts.length > 1 ? `${name} (key ${i + 1} of ${parts.length})` : name)!);
}
