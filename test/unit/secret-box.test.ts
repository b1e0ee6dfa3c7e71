import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecretBox, secretsKeyOf } from '../../src/credentials/secret-box.js';

describe('SecretBox', () => {
  const key = randomBytes(32);

  it('seals with a key (a fresh IV each time) and opens what it sealed', () => {
    const box = new SecretBox(key);
    const a = box.seal('whsec_secret');
    const b = box.seal('whsec_secret');
    expect(a).toMatch(/^sealed:v1:[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('secret');
    expect(box.open(a)).toBe('whsec_secret');
  });

  it('without a key stores as is; values stored before a key was set stay readable', () => {
    expect(new SecretBox(undefined).seal('plain')).toBe('plain');
    expect(new SecretBox(key).open('plain')).toBe('plain');
  });

  it('refuses a sealed value without the key, with another key, or altered — without echoing it', () => {
    const sealed = new SecretBox(key).seal('whsec_secret');
    expect(() => new SecretBox(undefined).open(sealed)).toThrow(/KEYWARD_SECRETS_KEY is not set/);
    expect(() => new SecretBox(randomBytes(32)).open(sealed)).toThrow(/cannot be opened/);
    const altered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'B' : 'A') + sealed.slice(-1);
    expect(() => new SecretBox(key).open(altered)).toThrow(/cannot be opened/);
  });

  it('reads KEYWARD_SECRETS_KEY as 32 bytes of base64 or base64url, naming the variable otherwise', () => {
    expect(secretsKeyOf(undefined)).toBeUndefined();
    expect(secretsKeyOf(key.toString('base64'))?.equals(key)).toBe(true);
    expect(secretsKeyOf(key.toString('base64url'))?.equals(key)).toBe(true);
    expect(() => secretsKeyOf('c2hvcnQ=')).toThrow(/^KEYWARD_SECRETS_KEY must be 32 bytes/);
  });
});
