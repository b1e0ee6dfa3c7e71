// The scanner behind the suite's secret-hygiene check (test/support/global-setup.ts).
import { describe, expect, it } from 'vitest';
import { issueApiKey } from '../../src/credentials/api-key.js';
import { formatSdkKey, newSdkKeySecret } from '../../src/credentials/sdk-key.js';
import { findLeaks } from '../support/global-setup.js';

describe('findLeaks', () => {
  const api = issueApiKey('kw');
  const sdk = formatSdkKey('01234567-89ab-7def-8123-456789abcdef', newSdkKeySecret());
  const secrets = [api.plaintext, sdk];
  const scan = (text: string) => findLeaks(secrets, [{ where: 'log', text }]);

  it('finds a whole key, its body without the prefix, and any 16 consecutive characters of it', () => {
    expect(scan(`{"msg":"bad key ${api.plaintext}"}`)).toHaveLength(1);
    expect(scan(`token=${sdk}`)).toHaveLength(1);
    expect(scan(`body ${api.plaintext.slice(3)}`)).toHaveLength(1);
    expect(scan(`x${sdk.slice(-20, -4)}y`)).toHaveLength(1);
    expect(scan(`"${api.plaintext.slice(20, 36)}"`)).toHaveLength(1);
  });

  it('does not flag what may be shown: the masked key, the start, the SHA-256, ids', () => {
    expect(scan(`${api.masked} ${api.start} ${api.hash} 01234567-89ab-7def-8123-456789abcdef`)).toEqual([]);
    expect(scan(api.plaintext.slice(10, 25))).toEqual([]); // 15 characters
  });
});
