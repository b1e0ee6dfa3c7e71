// The caller's network address, as every transport (gRPC, Connect, REST,
// forward auth, the VerifyKey fast path) hands it to the throttles of failed
// credential checks: the socket's peer, or, when that peer is a configured
// trusted proxy (KEYWARD_TRUSTED_PROXIES), the address it forwarded.
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** The caller's address of a request, from its socket's peer and its X-Forwarded-For header(s). */
export type ClientAddress = (peer: string | undefined, forwardedFor: string | readonly string[] | undefined) => string;

/** Whether `s` is an IP address or a CIDR network (a KEYWARD_TRUSTED_PROXIES entry). */
export function isAddressOrNetwork(s: string): boolean {
  return isAddress(s) || isCidr(s);
}

/** Dotted-quad IPv4 or IPv6 only (ipaddr.js also takes `10.0.0` and `0x0a000001`). */
function isAddress(s: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(s) || ipaddr.IPv6.isValid(s);
}

function isCidr(s: string): boolean {
  const slash = s.lastIndexOf('/');
  if (slash < 0 || !isAddress(s.slice(0, slash))) return false;
  try {
    ipaddr.parseCIDR(s);
    return true;
  } catch {
    return false;
  }
}

/** An address as one form: IPv4-mapped IPv6 (`::ffff:10.0.0.1`, as dual-stack sockets report) as IPv4. */
function parsed(s: string): Address | undefined {
  return isAddress(s) ? ipaddr.process(s) : undefined;
}

/** An X-Forwarded-For entry's address: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`. */
function entryAddress(entry: string): Address | undefined {
  const e = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(e);
  if (bracketed) return parsed(bracketed[1]!);
  const v4WithPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(e);
  return parsed(v4WithPort ? v4WithPort[1]! : e);
}

/**
 * The networks whose X-Forwarded-For is believed. Empty (the default): the
 * header is never read, so a client cannot name itself a fresh address.
 */
export class TrustedProxies {
  private readonly networks: [Address, number][];

  /** `entries`: addresses and CIDR networks, already checked with isAddressOrNetwork (config.ts). */
  constructor(entries: readonly string[]) {
    this.networks = entries.map((e) => {
      if (isCidr(e)) {
        const [a, bits] = ipaddr.parseCIDR(e);
        // Peers are compared as IPv4 when they are IPv4-mapped, so such networks are too.
        const mapped = a.kind() === 'ipv6' && bits >= 96 && (a as ipaddr.IPv6).isIPv4MappedAddress();
        return mapped ? [(a as ipaddr.IPv6).toIPv4Address(), bits - 96] : [a, bits];
      }
      const a = ipaddr.process(e);
      return [a, a.kind() === 'ipv4' ? 32 : 128];
    });
  }

  private trusts(a: Address): boolean {
    return this.networks.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits));
  }

  /**
   * The caller's address: the socket's peer, unless that peer is trusted;
   * then, walking X-Forwarded-For from the right (each proxy appends the
   * address it was connected from), the first address that is not trusted.
   * Entries left of it were written by the client and are never believed. If
   * every entry is trusted the left-most is the caller; if the walk meets
   * something that is no address, the last trusted hop is (the request is
   * then throttled with that proxy's other clients, never under a name the
   * client chose).
   */
  readonly clientAddress: ClientAddress = (peer, forwardedFor) => {
    const direct = peer ?? '';
    if (this.networks.length === 0 || forwardedFor === undefined) return direct;
    const peerAddress = parsed(direct);
    if (!peerAddress || !this.trusts(peerAddress)) return direct;
    const entries = (typeof forwardedFor === 'string' ? [forwardedFor] : forwardedFor).flatMap((h) => h.split(','));
    let hop = peerAddress;
    for (let i = entries.length - 1; i >= 0; i--) {
      const a = entryAddress(entries[i]!);
      if (!a) break;
      hop = a;
      if (!this.trusts(a)) break;
    }
    return hop.toString();
  };
}
