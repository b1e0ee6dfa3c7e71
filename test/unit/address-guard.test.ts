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
    // Forms a hand-written block list missed (issue 18): IPv4-compatible, mapped
    // written in hex, NAT64, 6to4, Teredo, multicast, benchmarking, broadcast.
    'http://[::7f00:1]/hook',
    'http://[::ffff:7f00:1]/hook',
    'http://[::ffff:0:7f00:1]/hook',
    'http://[64:ff9b::7f00:1]/hook',
    'http://[64:ff9b::a9fe:a9fe]/hook',
    'http://[2002:7f00:1::]/hook',
    'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook',
    'http://[ff02::1]/hook',
    'http://224.0.0.1/hook',
    'http://198.18.0.1/hook',
    'http://198.19.255.254/hook',
    'http://255.255.255.255/hook',
    'http://[2001:db8::1]/hook',
  ])('refuses %s', async (url) => {
    expect(await refusedDestination(url)).toMatch(/^refused: .* resolves to a private or non-public address/);
  });

  it.each(['https://93.184.216.34/hook', 'http://[2606:4700::1111]/hook', 'http://8.8.8.8/hook'])('allows %s', async (url) => {
    expect(await refusedDestination(url)).toBeUndefined();
  });
});
