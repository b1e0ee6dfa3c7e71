import { describe, expect, it } from 'vitest';
import { refusedDestination } from '../../src/webhooks/address-guard.js';

describe('webhook destinations', () => {
  it.each([
    'http://127.0.0.1:8080/hook',
    'http://10.1.2.3/hook',
    'http://172.16.0.1/hook',
    'http://192.168.1.1/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://100.64.0.1/hook',
    'http://0.0.0.0/hook',
    'http://[::1]/hook',
    'http://[fe80::1]/hook',
    'http://[fd00::1]/hook',
    'http://[::ffff:127.0.0.1]/hook',
    'http://localhost:3000/hook',
  ])('refuses %s', async (url) => {
    expect(await refusedDestination(url)).toMatch(/^refused: .* resolves to a private address/);
  });

  it.each(['https://93.184.216.34/hook', 'http://[2606:4700::1111]/hook', 'http://8.8.8.8/hook'])('allows %s', async (url) => {
    expect(await refusedDestination(url)).toBeUndefined();
  });
});
