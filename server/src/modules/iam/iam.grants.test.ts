import { describe, expect, it } from 'vitest';
import { canGrant, canManage, effectivePermissions, ungrantable } from './iam.grants.js';
import { blockedUntil } from './iam.service.js';

const admin = { permissions: ['all'] };
const tenantAdmin = { permissions: ['tenant.all'] };
const userManager = { permissions: ['tenant.users.write', 'flows.read'] };

describe('grants', () => {
  it('lets only a platform admin grant all or iam.*', () => {
    expect(canGrant(admin, 'all')).toBe(true);
    expect(canGrant(admin, 'iam.token.introspect')).toBe(true);
    expect(canGrant(tenantAdmin, 'all')).toBe(false);
    expect(canGrant(tenantAdmin, 'iam.tenants.write')).toBe(false);
    expect(canGrant(tenantAdmin, 'iam.token.introspect')).toBe(false);
  });

  it('lets a tenant admin grant every non-restricted permission, tenant.all included', () => {
    for (const p of ['flows.write', 'secrets.readRaw', 'audit.read', 'tenant.all', 'tenant.users.write', 'runtime:write']) {
      expect(canGrant(tenantAdmin, p), p).toBe(true);
    }
  });

  it('lets anyone else grant only what it holds', () => {
    expect(ungrantable(userManager, ['flows.read', 'tenant.users.write'])).toEqual([]);
    expect(ungrantable(userManager, ['flows.read', 'flows.write', 'tenant.all', 'flows.write'])).toEqual(['flows.write', 'tenant.all']);
  });

  it('keeps a tenant admin from managing the platform admin', () => {
    expect(canManage(tenantAdmin, ['all'])).toBe(false);
    expect(canManage(tenantAdmin, ['flows.read', 'tenant.all'])).toBe(true);
    expect(canManage(userManager, ['flows.read'])).toBe(true);
    expect(canManage(userManager, ['tenant.all'])).toBe(false);
  });

  it('narrows a token to the permissions its account still holds', () => {
    expect(effectivePermissions(['flows.read', 'flows.write'], null)).toEqual(['flows.read', 'flows.write']);
    expect(effectivePermissions(['all'], ['flows.read'])).toEqual(['flows.read']);
    expect(effectivePermissions(['tenant.all'], ['secrets.read', 'iam.token.introspect'])).toEqual(['secrets.read']);
    expect(effectivePermissions(['flows.read'], ['flows.read', 'flows.write'])).toEqual(['flows.read']);
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
