/**
 * The addresses no tenant may reach unless the operator names them: every block of IANA's IPv4 and
 * IPv6 Special-Purpose Address Registries, multicast, and (IPv6) everything outside 2000::/3, the
 * only space IANA allocates for global unicast. Blocks the registries call globally reachable
 * (AS112, AMT, the PCP / TURN anycast addresses) are refused too: they are infrastructure, never
 * an API a flow has business calling, and one list that matches the registries is easier to
 * audit than one with exceptions.
 *
 * Registries: https://www.iana.org/assignments/iana-ipv4-special-registry and
 * https://www.iana.org/assignments/iana-ipv6-special-registry (checked 2025).
 */
import net from 'node:net';

export interface SpecialRange {
  address: string;
  prefix: number;
  /** What the block is, as the error names it. */
  name: string;
}

export const SPECIAL_IPV4: readonly SpecialRange[] = [
  { address: '0.0.0.0', prefix: 8, name: '"this network" (RFC 791)' },
  { address: '10.0.0.0', prefix: 8, name: 'private-use (RFC 1918)' },
  { address: '100.64.0.0', prefix: 10, name: 'shared address space / CGNAT (RFC 6598)' },
  { address: '127.0.0.0', prefix: 8, name: 'loopback (RFC 1122)' },
  { address: '169.254.0.0', prefix: 16, name: 'link-local, incl. cloud metadata (RFC 3927)' },
  { address: '172.16.0.0', prefix: 12, name: 'private-use (RFC 1918)' },
  { address: '192.0.0.0', prefix: 24, name: 'IETF protocol assignments (RFC 6890)' },
  { address: '192.0.2.0', prefix: 24, name: 'documentation TEST-NET-1 (RFC 5737)' },
  { address: '192.31.196.0', prefix: 24, name: 'AS112-v4 (RFC 7535)' },
  { address: '192.52.193.0', prefix: 24, name: 'AMT (RFC 7450)' },
  { address: '192.88.99.0', prefix: 24, name: 'deprecated 6to4 relay anycast (RFC 7526)' },
  { address: '192.168.0.0', prefix: 16, name: 'private-use (RFC 1918)' },
  { address: '192.175.48.0', prefix: 24, name: 'direct delegation AS112 (RFC 7534)' },
  { address: '198.18.0.0', prefix: 15, name: 'benchmarking (RFC 2544)' },
  { address: '198.51.100.0', prefix: 24, name: 'documentation TEST-NET-2 (RFC 5737)' },
  { address: '203.0.113.0', prefix: 24, name: 'documentation TEST-NET-3 (RFC 5737)' },
  { address: '224.0.0.0', prefix: 4, name: 'multicast (RFC 5771)' },
  { address: '240.0.0.0', prefix: 4, name: 'reserved, incl. limited broadcast (RFC 1112, RFC 919)' },
];

export const SPECIAL_IPV6: readonly SpecialRange[] = [
  { address: '::', prefix: 128, name: 'unspecified (RFC 4291)' },
  { address: '::1', prefix: 128, name: 'loopback (RFC 4291)' },
  { address: '::ffff:0:0', prefix: 96, name: 'IPv4-mapped (RFC 4291)' },
  { address: '64:ff9b::', prefix: 96, name: 'IPv4/IPv6 translation (RFC 6052)' },
  { address: '64:ff9b:1::', prefix: 48, name: 'local-use IPv4/IPv6 translation (RFC 8215)' },
  { address: '100::', prefix: 64, name: 'discard-only (RFC 6666)' },
  { address: '100:0:0:1::', prefix: 64, name: 'dummy prefix (RFC 9780)' },
  { address: '2001::', prefix: 23, name: 'IETF protocol assignments, incl. Teredo (RFC 2928, RFC 4380)' },
  { address: '2001:db8::', prefix: 32, name: 'documentation (RFC 3849)' },
  { address: '2002::', prefix: 16, name: '6to4 (RFC 3056)' },
  { address: '2620:4f:8000::', prefix: 48, name: 'direct delegation AS112 (RFC 7534)' },
  { address: '3fff::', prefix: 20, name: 'documentation (RFC 9637)' },
  { address: '5f00::', prefix: 16, name: 'segment routing SIDs (RFC 9602)' },
  { address: 'fc00::', prefix: 7, name: 'unique-local (RFC 4193)' },
  { address: 'fe80::', prefix: 10, name: 'link-local (RFC 4291)' },
  { address: 'ff00::', prefix: 8, name: 'multicast (RFC 4291)' },
];

// Kept apart by family: a BlockList matches IPv4 addresses against IPv4-mapped IPv6 rules, so one
// list holding ::ffff:0:0/96 would match every IPv4 address.
const special4 = blockListOf(SPECIAL_IPV4, 'ipv4');
const special6 = blockListOf(SPECIAL_IPV6, 'ipv6');
const globalUnicast6 = blockListOf([{ address: '2000::', prefix: 3, name: 'global unicast' }], 'ipv6');
/** One list per block, to name the block an address is refused for (the refusal path only). */
const named4 = SPECIAL_IPV4.map((r) => ({ name: r.name, list: blockListOf([r], 'ipv4') }));
const named6 = SPECIAL_IPV6.map((r) => ({ name: r.name, list: blockListOf([r], 'ipv6') }));

function blockListOf(ranges: readonly SpecialRange[], family: 'ipv4' | 'ipv6'): net.BlockList {
  const list = new net.BlockList();
  for (const r of ranges) list.addSubnet(r.address, r.prefix, family);
  return list;
}

/**
 * True for every address outside the public internet as defined above; also for anything that is
 * not a plain IP address (a zone index such as `fe80::1%eth0`, a name). The hot-path check.
 */
export function isNonPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return special4.check(address, 'ipv4');
  if (family !== 6 || address.includes('%')) return true;
  return special6.check(address, 'ipv6') || !globalUnicast6.check(address, 'ipv6');
}

/** Why `address` (an IP literal, without brackets) is not public — the block it lies in — or undefined when it is. */
export function nonPublicRangeOf(address: string): string | undefined {
  if (!isNonPublicAddress(address)) return undefined;
  const family = net.isIP(address);
  if (family === 4) return named4.find((r) => r.list.check(address, 'ipv4'))?.name ?? 'special-purpose';
  if (family !== 6 || address.includes('%')) return 'not a plain IP address';
  return named6.find((r) => r.list.check(address, 'ipv6'))?.name ?? 'outside global unicast 2000::/3 (RFC 4291)';
}
