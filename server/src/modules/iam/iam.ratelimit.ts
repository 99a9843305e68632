/**
 * What the login rate limit counts failures under. Three keys per attempt:
 * - `account_source`: one account (tenant + username) from one source — the small limit that
 *   stops guessing a password;
 * - `source`: one source, whatever the account — stops one host from trying many accounts;
 * - `account`: one account from every source — a high limit against guessing from many hosts,
 *   which sources the account logged in from recently are exempt from, so nobody can lock a
 *   user out of where they work by failing logins in their name.
 * A source is an IPv4 address or an IPv6 /64: one host usually holds a whole /64, and stepping
 * to the next address in it must not reset the count. Keys are stored as hashes only: a
 * username field sometimes holds a mistyped password.
 */
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';

export type LoginScope = 'account' | 'source' | 'account_source';

/** The source a login comes from: `203.0.113.7`, or `2001:db8:1:2::/64` for any address in that /64. */
export function loginSourceOf(ip: string): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // IPv4-mapped IPv6 (`::ffff:203.0.113.7`, a dual-stack socket's view) becomes IPv4.
    addr = ipaddr.process(ip);
  } catch {
    // Not an IP address (a test's or an odd socket's value): counted as it is.
    return ip;
  }
  if (addr.kind() === 'ipv4') return addr.toString();
  const network = new ipaddr.IPv6([...(addr as ipaddr.IPv6).parts.slice(0, 4), 0, 0, 0, 0]);
  return `${network.toRFC5952String()}/64`;
}

/** The account a login names: usernames are case-insensitive within their tenant. */
function accountOf(tenant: string, username: string): string {
  return `${tenant}/${username.toLowerCase()}`;
}

function hashKey(scope: LoginScope | 'known_source', value: string): string {
  return createHash('sha256').update(`${scope}:${value}`).digest('hex');
}

export interface LoginKeys {
  account: string;
  source: string;
  accountSource: string;
  /** Marks `accountSource` as a source the account logged in from. */
  knownSource: string;
}

export function loginKeysOf(tenant: string, username: string, ip: string): LoginKeys {
  const account = accountOf(tenant, username);
  const source = loginSourceOf(ip);
  return {
    account: hashKey('account', account),
    source: hashKey('source', source),
    accountSource: hashKey('account_source', `${account}@${source}`),
    knownSource: hashKey('known_source', `${account}@${source}`),
  };
}

/**
 * When a key with these failures (newest first, at most `max`) may try again: never blocked
 * below `max` failures; else when the oldest of the newest `max` leaves the window.
 */
export function blockedUntil(failures: readonly Date[], max: number, windowMs: number, now: number): number {
  if (max <= 0) return now + 1000;
  if (failures.length < max) return 0;
  const oldestCounted = failures[max - 1]!;
  return oldestCounted.getTime() + windowMs;
}
