import { describe, expect, it } from 'vitest';
import { checkDestination, resolveWithDns, type ResolveHost } from '../../src/webhooks/address-guard.js';

const refused = async (url: string, resolve: ResolveHost = resolveWithDns) => (await checkDestination(new URL(url), resolve, false)).refused;

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
    expect(await refused(url)).toMatch(/^refused: .* resolves to a private or non-public address/);
  });

  it.each(['https://93.184.216.34/hook', 'http://[2606:4700::1111]/hook', 'http://8.8.8.8/hook'])('allows %s', async (url) => {
    expect(await refused(url)).toBeUndefined();
  });

  it('resolves a name once and refuses it if any of its addresses is not public', async () => {
    const asked: string[] = [];
    const resolver =
      (...addresses: string[]): ResolveHost =>
      async (host) => {
        asked.push(host);
        return addresses;
      };
    expect(await refused('https://hooks.example.test/x', resolver('127.0.0.1'))).toMatch(/^refused: hooks\.example\.test resolves to a private/);
    expect(await refused('https://hooks.example.test/x', resolver('93.184.216.34', '10.0.0.7'))).toMatch(/^refused: /);
    expect(await refused('https://hooks.example.test/x', resolver())).toMatch(/^refused: hooks\.example\.test did not resolve/);
    expect(asked).toEqual(['hooks.example.test', 'hooks.example.test', 'hooks.example.test']);
    const ok = await checkDestination(new URL('https://hooks.example.test/x'), resolver('93.184.216.34', '2606:4700::1111'), false);
    expect(ok).toEqual({ addresses: ['93.184.216.34', '2606:4700::1111'] });
    // Allowed private networks: still resolved once, and the addresses are what the sender pins to.
    expect(await checkDestination(new URL('http://hooks.example.test/x'), resolver('127.0.0.1'), true)).toEqual({ addresses: ['127.0.0.1'] });
  });
});
