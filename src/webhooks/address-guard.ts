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

/**
 * Why a webhook URL must not be called now, or undefined if it may: its host
 * resolves to an address that is not global unicast. Checked before each
 * delivery (a name can change what it resolves to). A name that resolves
 * differently between this check and the connection (DNS rebinding) is not
 * caught; an operator who needs that closed puts an egress proxy in front.
 */
export async function refusedDestination(url: string): Promise<string | undefined> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  const blocked = addresses.find((a) => !isGlobalUnicast(a));
  return blocked === undefined
    ? undefined
    : `refused: ${host} resolves to a private or non-public address (set KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow)`;
}
