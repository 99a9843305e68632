/**
 * The operator's outbound network policy: whether steps may ask for non-public addresses at all
 * (`PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK`, a ceiling no flow can raise) and which non-public hosts
 * every step may reach anyway (`PLEXUS_STEPS_ALLOWED_HOSTS`).
 */
import net from 'node:net';
import { isNonPublicAddress, nonPublicRangeOf } from './ranges.js';

export interface OutboundPolicy {
  /**
   * true: a step that asks (`allowPrivateNetwork`, or nothing, which means the operator's setting)
   * reaches any address; false: no step may, and asking is refused when the flow is saved.
   */
  allowPrivateNetwork: boolean;
  /** Normalised entries of PLEXUS_STEPS_ALLOWED_HOSTS: host names, `*.suffix` names, IPs, CIDRs. */
  allowedHosts: readonly string[];
}

/**
 * Parses PLEXUS_STEPS_ALLOWED_HOSTS: comma-separated host names (`billing.internal`), wildcard
 * names (`*.svc.cluster.local`: any name below it, not the name itself), IP addresses and CIDRs
 * (`10.0.0.5`, `10.20.0.0/16`, `fd00::/8`, `[fd00::1]`). Names are compared the way URLs spell
 * them (lower case, punycode, no trailing dot). Returns the normalised entries, or the first bad one.
 */
export function parseAllowedHosts(raw: string): { entries: string[] } | { problem: string } {
  const entries: string[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const entry = normaliseEntry(item);
    if (entry === undefined) return { problem: `${JSON.stringify(item)} is not a host name, IP address or CIDR` };
    entries.push(entry);
  }
  return { entries };
}

function normaliseEntry(item: string): string | undefined {
  const bare = stripBrackets(item);
  if (net.isIP(bare)) return bare.toLowerCase();
  const [addressPart, prefix, ...rest] = item.split('/');
  if (prefix !== undefined) {
    const address = stripBrackets(addressPart ?? '');
    const family = net.isIP(address);
    if (!family || rest.length > 0 || !/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return undefined;
    return `${address.toLowerCase()}/${Number(prefix)}`;
  }
  const wildcard = item.startsWith('*.');
  const name = hostnameOf(wildcard ? item.slice(2) : item);
  if (name === undefined) return undefined;
  if (net.isIP(name)) return wildcard ? undefined : name;
  return wildcard ? `*.${name}` : name;
}

/** A host as the URL parser spells it, without brackets and trailing dot; undefined if it is not one. */
function hostnameOf(host: string): string | undefined {
  if (!host || /[/?#@\s:]/.test(host.replace(/^\[.*\]$/, 'x'))) return undefined;
  try {
    const parsed = new URL(`http://${host}/`).hostname;
    return parsed ? normaliseHost(parsed) : undefined;
  } catch {
    return undefined;
  }
}

/** `[::1]` → `::1`, `Example.COM.` → `example.com` (URL hostnames are already lower case). */
export function normaliseHost(hostname: string): string {
  return stripBrackets(hostname).replace(/\.$/, '');
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** The allow-list, compiled: which names and addresses may be reached though non-public. */
export class AllowList {
  private readonly names = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly addresses = new net.BlockList();
  private hasAddresses = false;

  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const [address, prefix] = e.split('/');
      const family = net.isIP(address ?? '');
      if (family && address) {
        const type = family === 4 ? 'ipv4' : 'ipv6';
        if (prefix === undefined) this.addresses.addAddress(address, type);
        else this.addresses.addSubnet(address, Number(prefix), type);
        this.hasAddresses = true;
      } else if (e.startsWith('*.')) {
        this.suffixes.push(e.slice(1));
      } else {
        this.names.add(e);
      }
    }
  }

  /** True when the operator named this host (exactly, or below a `*.` entry). */
  allowsName(hostname: string): boolean {
    if (this.names.size === 0 && this.suffixes.length === 0) return false;
    const host = normaliseHost(hostname.toLowerCase());
    return this.names.has(host) || this.suffixes.some((s) => host.endsWith(s));
  }

  allowsAddress(address: string): boolean {
    if (!this.hasAddresses) return false;
    const family = net.isIP(address);
    return family !== 0 && this.addresses.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/**
 * Why the guard refuses to connect to `address` reached as `hostname`, or undefined when it may:
 * public addresses always may; non-public ones when the operator allowed the name or the address.
 */
export function refusalOf(allow: AllowList, hostname: string, address: string): string | undefined {
  if (!isNonPublicAddress(address)) return undefined;
  if (allow.allowsName(hostname) || allow.allowsAddress(address)) return undefined;
  return nonPublicRangeOf(address);
}
