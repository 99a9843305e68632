import { describe, expect, it } from 'vitest';
import { blockedUntil, loginKeysOf, loginSourceOf } from './iam.ratelimit.js';

describe('login sources', () => {
  it('groups an IPv6 address by its /64, so stepping through the /64 counts as one source', () => {
    expect(loginSourceOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(loginSourceOf('2001:0db8:0001:0002:ffff::1')).toBe('2001:db8:1:2::/64');
    expect(loginSourceOf('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
  });

  it('keeps IPv4 addresses whole, also when a dual-stack socket shows them IPv4-mapped', () => {
    expect(loginSourceOf('203.0.113.7')).toBe('203.0.113.7');
    expect(loginSourceOf('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(loginSourceOf('203.0.113.8')).toBe('203.0.113.8');
  });

  it('keys failures by tenant and username (any case) and by source', () => {
    const a = loginKeysOf('acme', 'Alice', '2001:db8::1');
    const b = loginKeysOf('acme', 'alice', '2001:db8::ffff');
    expect(b).toEqual(a);
    const otherTenant = loginKeysOf('beta', 'alice', '2001:db8::1');
    expect(otherTenant.account).not.toBe(a.account);
    expect(otherTenant.source).toBe(a.source);
    expect(new Set(Object.values(a)).size).toBe(4);
    // Hashes only: nothing typed into the username field is stored as it is.
    expect(JSON.stringify(a)).not.toMatch(/alice|acme|2001/i);
  });
});

describe('login rate limit window', () => {
  const window = 60_000;
  const now = 1_000_000;
  const at = (agoMs: number): Date => new Date(now - agoMs);

  it('is open below the limit', () => {
    expect(blockedUntil([at(1), at(2)], 3, window, now)).toBe(0);
  });

  it('blocks until the oldest counted failure leaves the window', () => {
    // newest first; with a limit of 3 the third-newest decides
    expect(blockedUntil([at(1_000), at(2_000), at(50_000)], 3, window, now)).toBe(now - 50_000 + window);
  });

  it('counts logins still in flight against the limit', () => {
    expect(blockedUntil([at(1_000)], 0, window, now)).toBeGreaterThan(now);
  });
});
