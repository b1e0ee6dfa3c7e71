import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { previousSecretsKeysOf, SecretBox, secretsKeyOf } from '../../src/credentials/secret-box.js';

/** A value in the first format, `sealed:v1:<iv|tag|ciphertext>` without a key id, as Keyward wrote it before rotation. */
function sealV1(key: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return `sealed:v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
}

describe('SecretBox', () => {
  const key = randomBytes(32);
  const SECRET = 'whsec_s3cret_value_not_to_leak';

  it('seals with a key (a fresh IV each time, under the key id) and opens what it sealed', () => {
    const box = new SecretBox(key);
    const a = box.seal(SECRET);
    const b = box.seal(SECRET);
    expect(a).toMatch(/^sealed:v2:[A-Za-z0-9_-]{8}:[A-Za-z0-9_-]+$/);
    expect(a.slice(0, 19)).toBe(b.slice(0, 19)); // same key id
    expect(a).not.toBe(b);
    expect(a).not.toContain('s3cret');
    expect(box.open(a)).toBe(SECRET);
    expect(box.isCurrent(a)).toBe(true);
  });

  it('without a key stores as is; values stored before a key was set stay readable', () => {
    expect(new SecretBox(undefined).seal('plain')).toBe('plain');
    expect(new SecretBox(key).open('plain')).toBe('plain');
    expect(new SecretBox(key).isCurrent('plain')).toBe(false);
  });

  it('refuses a sealed value without the key, with another key, or altered — without echoing it', () => {
    const sealed = new SecretBox(key).seal(SECRET);
    const messages: string[] = [];
    const refuse = (f: () => unknown, re: RegExp) => {
      expect(f).toThrow(re);
      try {
        f();
      } catch (e) {
        messages.push((e as Error).message);
      }
    };
    refuse(() => new SecretBox(undefined).open(sealed), /KEYWARD_SECRETS_KEY is not set/);
    refuse(
      () => new SecretBox(randomBytes(32)).open(sealed),
      /sealed with key id [A-Za-z0-9_-]{8}, which is neither KEYWARD_SECRETS_KEY nor in KEYWARD_SECRETS_KEY_PREVIOUS/,
    );
    const altered = sealed.slice(0, -2) + (sealed.at(-2) === 'A' ? 'B' : 'A') + sealed.slice(-1);
    refuse(() => new SecretBox(key).open(altered), /cannot be opened: it was altered/);
    // The key id is authenticated too: a value moved under another key's id does not open.
    const other = randomBytes(32);
    const otherId = new SecretBox(other).seal('x').slice(10, 18);
    refuse(() => new SecretBox(key, [other]).open(`sealed:v2:${otherId}${sealed.slice(18)}`), /cannot be opened: it was altered/);
    refuse(() => new SecretBox(key).open('sealed:v2:nokeyid'), /malformed/);
    for (const m of messages) {
      expect(m).not.toContain(SECRET);
      expect(m).not.toContain(sealed.slice(19, 40));
      expect(m).not.toContain(key.toString('base64'));
    }
  });

  it('rotation: a previous key opens what it sealed, the current key seals, and isCurrent tells them apart', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const underOld = new SecretBox(oldKey).seal(SECRET);
    const rotated = new SecretBox(newKey, [oldKey]);
    expect(rotated.open(underOld)).toBe(SECRET);
    expect(rotated.isCurrent(underOld)).toBe(false);
    const resealed = rotated.seal(rotated.open(underOld));
    expect(rotated.isCurrent(resealed)).toBe(true);
    expect(resealed.slice(10, 18)).not.toBe(underOld.slice(10, 18));
    // Once the old key is dropped, only what was resealed opens.
    expect(new SecretBox(newKey).open(resealed)).toBe(SECRET);
    expect(() => new SecretBox(newKey).open(underOld)).toThrow(/neither KEYWARD_SECRETS_KEY nor in KEYWARD_SECRETS_KEY_PREVIOUS/);
  });

  it('values of the first format (v1, no key id) open with the current or any previous key', () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    expect(new SecretBox(oldKey).open(sealV1(oldKey, SECRET))).toBe(SECRET);
    expect(new SecretBox(newKey, [randomBytes(32), oldKey]).open(sealV1(oldKey, SECRET))).toBe(SECRET);
    expect(new SecretBox(newKey, [oldKey]).isCurrent(sealV1(newKey, SECRET))).toBe(false);
    expect(() => new SecretBox(newKey).open(sealV1(oldKey, SECRET))).toThrow(
      /^a stored secret cannot be opened with KEYWARD_SECRETS_KEY or KEYWARD_SECRETS_KEY_PREVIOUS \(another key, or altered\)$/,
    );
  });

  it('reads KEYWARD_SECRETS_KEY as 32 bytes of base64 or base64url, naming the variable otherwise', () => {
    expect(secretsKeyOf(undefined)).toBeUndefined();
    expect(secretsKeyOf(key.toString('base64'))?.equals(key)).toBe(true);
    expect(secretsKeyOf(key.toString('base64url'))?.equals(key)).toBe(true);
    expect(() => secretsKeyOf('c2hvcnQ=')).toThrow(/^KEYWARD_SECRETS_KEY must be 32 bytes/);
  });

  it('reads KEYWARD_SECRETS_KEY_PREVIOUS as a comma-separated list, naming the bad entry but never its value', () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    expect(previousSecretsKeysOf(undefined, key)).toEqual([]);
    expect(previousSecretsKeysOf('', undefined)).toEqual([]);
    const both = previousSecretsKeysOf(` ${a.toString('base64')} , ${b.toString('base64url')} `, key);
    expect(both.map((k) => k.toString('hex'))).toEqual([a.toString('hex'), b.toString('hex')]);
    expect(() => previousSecretsKeysOf(`${a.toString('base64')},c2hvcnQ=`, key)).toThrow(
      /^KEYWARD_SECRETS_KEY_PREVIOUS \(key 2 of 2\) must be 32 bytes in base64/,
    );
    try {
      previousSecretsKeysOf(`${a.toString('base64')},c2hvcnQ=`, key);
    } catch (e) {
      expect((e as Error).message).not.toContain(a.toString('base64'));
      expect((e as Error).message).not.toContain('c2hvcnQ');
    }
    expect(() => previousSecretsKeysOf(a.toString('base64'), undefined)).toThrow(/^KEYWARD_SECRETS_KEY_PREVIOUS is set, but KEYWARD_SECRETS_KEY is not/);
  });
});
