import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

// Addresses a webhook must not reach unless the operator allows private
// networks: loopback, private (RFC 1918, unique local), link-local (cloud
// metadata services live there), carrier-grade NAT, unspecified.
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

// An IPv4-mapped IPv6 address (::ffff:127.0.0.1, ::ffff:7f00:1) matches the
// IPv4 rules: BlockList.check(address, 'ipv6') maps it itself.
function isPrivate(address: string): boolean {
  return PRIVATE.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/**
 * Why a webhook URL must not be called now, or undefined if it may: its host
 * resolves to a private, loopback or link-local address. Checked before each
 * delivery (a name can change what it resolves to). A name that resolves
 * differently between this check and the connection (DNS rebinding) is not
 * caught; an operator who needs that closed puts an egress proxy in front.
 */
export async function refusedDestination(url: string): Promise<string | undefined> {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  const blocked = addresses.find(isPrivate);
  return blocked === undefined ? undefined : `refused: ${host} resolves to a private address (set KEYWARD_WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow)`;
}
