import { describe, expect, it } from 'vitest';
import { canGrant, canManage, effectivePermissions, ungrantable } from './iam.grants.js';

const admin = { permissions: ['all'] };
const tenantAdmin = { permissions: ['tenant.all'] };
const userManager = { permissions: ['tenant.users.write', 'flows.read'] };

describe('grants', () => {
  it('lets only a platform admin grant all, iam.* or metrics.read', () => {
    expect(canGrant(admin, 'all')).toBe(true);
    expect(canGrant(admin, 'iam.token.introspect')).toBe(true);
    expect(canGrant(admin, 'metrics.read')).toBe(true);
    expect(canGrant(tenantAdmin, 'metrics.read')).toBe(false);
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
