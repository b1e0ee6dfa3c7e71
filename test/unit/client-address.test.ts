// The caller's address for throttling: X-Forwarded-For is believed only from
// a trusted proxy, and only its right-most untrusted entry.
import { describe, expect, it } from 'vitest';
import { isAddressOrNetwork, TrustedProxies } from '../../src/auth/client-address.js';
import { loadConfig } from '../../src/config.js';

describe('TrustedProxies.clientAddress', () => {
  const none = new TrustedProxies([]).clientAddress;
  const proxies = new TrustedProxies(['10.0.0.0/8', '192.168.1.10', 'fd00::/8']).clientAddress;

  it('without trusted proxies, is the socket peer whatever the header says', () => {
    expect(none('203.0.113.5', '198.51.100.1')).toBe('203.0.113.5');
    expect(none(undefined, '198.51.100.1')).toBe('');
  });

  it('from a peer that is not trusted, ignores the header', () => {
    expect(proxies('203.0.113.5', '198.51.100.1')).toBe('203.0.113.5');
  });

  it('from a trusted peer, is the right-most entry that is not a trusted proxy', () => {
    expect(proxies('10.1.2.3', '198.51.100.1')).toBe('198.51.100.1');
    // The client wrote the left part; the proxies appended the rest.
    expect(proxies('10.1.2.3', '1.1.1.1, 198.51.100.1, 10.9.9.9, 192.168.1.10')).toBe('198.51.100.1');
    // Several headers count as one list, in order.
    expect(proxies('192.168.1.10', ['1.1.1.1, 198.51.100.1', '10.0.0.7'])).toBe('198.51.100.1');
  });

  it('reads IPv6 (bracketed, with ports), ports on IPv4, and IPv4-mapped peers', () => {
    expect(proxies('fd00::1', '[2001:db8::5]:443')).toBe('2001:db8::5');
    expect(proxies('fd00::1', '2001:db8::6')).toBe('2001:db8::6');
    expect(proxies('::ffff:10.0.0.1', '198.51.100.2:5555')).toBe('198.51.100.2');
  });

  it('when every entry is trusted, is the left-most; when an entry is no address, the last trusted hop', () => {
    expect(proxies('10.0.0.1', '10.0.0.2, 10.0.0.3')).toBe('10.0.0.2');
    expect(proxies('10.0.0.1', 'unknown, 10.0.0.3')).toBe('10.0.0.3');
    expect(proxies('10.0.0.1', '')).toBe('10.0.0.1');
    expect(proxies('10.0.0.1', undefined)).toBe('10.0.0.1');
  });
});

describe('isAddressOrNetwork (KEYWARD_TRUSTED_PROXIES entries)', () => {
  it('takes addresses and CIDR networks, nothing else', () => {
    for (const ok of ['10.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', '::ffff:10.0.0.0/104']) expect(isAddressOrNetwork(ok), ok).toBe(true);
    for (const bad of ['', 'proxy.internal', '10.0.0.0/33', '10.0.0', '*']) expect(isAddressOrNetwork(bad), bad).toBe(false);
  });
});

describe('KEYWARD_TRUSTED_PROXIES', () => {
  it('is empty by default and refuses a bad entry with a message naming the variable', () => {
    expect(loadConfig({}).trustedProxies).toEqual([]);
    expect(loadConfig({ KEYWARD_TRUSTED_PROXIES: ' 10.0.0.0/8, ::1 ' }).trustedProxies).toEqual(['10.0.0.0/8', '::1']);
    expect(() => loadConfig({ KEYWARD_TRUSTED_PROXIES: '10.0.0.1, proxy.internal' })).toThrow(/^KEYWARD_TRUSTED_PROXIES must be .*"proxy\.internal"/);
  });

  it('an IPv4-mapped network matches IPv4 peers', () => {
    const mapped = new TrustedProxies(['::ffff:10.0.0.0/104']).clientAddress;
    expect(mapped('10.2.3.4', '198.51.100.9')).toBe('198.51.100.9');
  });
});
