import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96') as [ipaddr.IPv6, number];

/**
 * Whether a webhook may reach `address` when the operator has not allowed
 * private networks: only global unicast, as ipaddr.js classifies it. Refused
 * are loopback, private and unique-local, link-local (cloud metadata
 * services live there), carrier-grade NAT, benchmarking (198.18.0.0/15),
 * multicast, reserved and unspecified addresses, and every IPv6 form that
 * embeds or tunnels to IPv4 (IPv4-mapped, IPv4-compatible ::7f00:1, NAT64
 * 64:ff9b::/96, 6to4 2002::/16, Teredo 2001::/32), whose IPv4 end this
 * process cannot see. An IPv4-mapped address is judged as the IPv4 address.
 */
function isGlobalUnicast(address: string): boolean {
  let a: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(address);
  if (a.kind() === 'ipv6') {
    const v6 = a as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) a = v6.toIPv4Address();
    // ipaddr.js calls the deprecated IPv4-compatible ::/96 unicast.
    else if (v6.match(IPV4_COMPATIBLE)) return false;
  }
  return a.range() === 'unicast';
}

/** The addresses a host name resolves to, in the resolver's order. */
export type ResolveHost = (hostname: string) => Promise<string[]>;

/** The system resolver (getaddrinfo, as the OS would connect). */
export const resolveWithDns: ResolveHost = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** Where a webhook may be called: the addresses to connect to, or why not. */
export type Destination = { addresses: string[]; refused?: undefined } | { refused: string };

/**
 * Resolves the host of a webhook URL once, before each delivery (a name can
 * change what it resolves to), and checks every address it resolves to
 * unless private networks are allowed: if one is not global unicast, the URL
 * must not be called. The caller connects only to the addresses returned
 * (src/webhooks/sender.ts pins the connection to them), so a name that
 * resolves differently at connection time (DNS rebinding) cannot reach
 * another address. An IP literal is its own only address.
 */
export async function checkDestination(url: URL, resolve: ResolveHost, allowPrivateNetworks: boolean): Promise<Destination> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : await resolve(host);
  if (addresses.length === 0 || addresses.some((a) => isIP(a) === 0)) return { refused: `refused: ${host} did not resolve to an IP address` };
  if (allowPrivateNetworks || addresses.every(isGlobalUnicast)) return { addresses };
  return { refused: `refused: ${host} resolves to a private or non-public address (set KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow)` };
}
