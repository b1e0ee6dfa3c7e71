import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const PREFIX = 'sealed:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Seals the secrets Keyward must be able to use again (the private halves of
 * JWT signing keys, webhook signing secrets) before they are stored: AES-256-GCM
 * under the operator's KEYWARD_SECRETS_KEY, as `sealed:v1:<base64url iv|tag|ciphertext>`.
 * Without a key they are stored as they are, and stored values that are not
 * sealed are read as they are, so setting a key later needs no migration
 * (values written before stay readable; new ones are sealed).
 */
export class SecretBox {
  constructor(private readonly key: Buffer | undefined) {
    if (key !== undefined && key.length !== 32) throw new Error('a secrets key must be 32 bytes');
  }

  get sealing(): boolean {
    return this.key !== undefined;
  }

  seal(plain: string): string {
    if (this.key === undefined) return plain;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The secret a stored value holds; throws if it is sealed and cannot be opened (no key, another key, tampered). */
  open(stored: string): string {
    if (!stored.startsWith(PREFIX)) return stored;
    if (this.key === undefined) throw new Error('a stored secret is sealed, but KEYWARD_SECRETS_KEY is not set');
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('a stored secret cannot be opened with KEYWARD_SECRETS_KEY (another key, or altered)');
    }
  }
}

/** KEYWARD_SECRETS_KEY: 32 bytes, base64 or base64url (`openssl rand -base64 32`); unset means none. */
export function secretsKeyOf(value: string | undefined): Buffer | undefined {
  if (value === undefined || value === '') return undefined;
  const key = Buffer.from(value, value.includes('-') || value.includes('_') ? 'base64url' : 'base64');
  if (key.length !== 32) throw new Error('KEYWARD_SECRETS_KEY must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)');
  return key;
}
