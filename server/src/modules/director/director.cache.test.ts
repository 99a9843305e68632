import { describe, expect, it } from 'vitest';
import type { Principal } from '../../platform/http/index.js';
import { QueryCache } from './director.cache.js';
import type { Caller } from './director.ports.js';

const principal: Principal = { accountId: 'acc-1', username: 'ann', tenantId: 'acme', homeTenantId: 'acme', permissions: ['application:read'], roles: [], kind: 'user', tokenId: 't' };
const caller: Caller = { principal, ip: '127.0.0.1', object: undefined };
const LIST = '{ applications { data { id } } }';

describe('Director query cache', () => {
  it('keys only queries that read Director rows and nothing else', () => {
    const cache = new QueryCache(1024 * 1024);
    expect(cache.keyOf(caller, LIST, undefined, undefined)).toBeDefined();
    expect(cache.keyOf(caller, '{ __schema { types { name } } }', undefined, undefined)).toBeDefined();
    for (const q of [
      'mutation { registerApplication(in: {name: "x"}) { id } }',
      '{ tenants { id } }',
      '{ applications { data { apiDefinitions { data { auth(runtimeID: "r") { status } } } } } }',
      '{ applications { data { apiDefinitions { data { ...A } } } } } fragment A on APIDefinition { defaultAuth { additionalHeaders } }',
      '{ viewer { id } }',
      'query A { applications { totalCount } } mutation B { unregisterApplication(id: "x") { id } }',
      '{ applications { ',
    ]) {
      expect(cache.keyOf(caller, q, undefined, undefined), q).toBeUndefined();
    }
    const two = 'query A { applications { totalCount } } mutation B { unregisterApplication(id: "x") { id } }';
    expect(cache.keyOf(caller, two, undefined, 'A')).toBeDefined();
    expect(cache.keyOf(caller, two, undefined, 'B')).toBeUndefined();
  });

  it('keys each caller, tenant, permission set and variables apart', () => {
    const cache = new QueryCache(1024 * 1024);
    const key = (c: Caller, variables?: unknown) => cache.keyOf(c, LIST, variables, undefined);
    const base = key(caller);
    expect(key({ ...caller, principal: { ...principal, accountId: 'acc-2' } })).not.toBe(base);
    expect(key({ ...caller, principal: { ...principal, tenantId: 'beta' } })).not.toBe(base);
    expect(key({ ...caller, principal: { ...principal, permissions: [] } })).not.toBe(base);
    expect(key({ ...caller, object: { type: 'application', id: 'a' } })).not.toBe(base);
    expect(key(caller, { first: 1 })).not.toBe(base);
    expect(key(caller)).toBe(base);
  });

  it('serves an answer only at the version it was stored at, and keeps within its size', () => {
    const cache = new QueryCache(16 * 100);
    cache.set('k', 3, Buffer.from('answer'));
    expect(cache.get('k', 4)).toBeUndefined();
    // A stale entry is dropped when met.
    expect(cache.get('k', 3)).toBeUndefined();
    cache.set('k', 4, Buffer.from('answer'));
    expect(cache.get('k', 4)?.toString()).toBe('answer');
    // Entries over 1/16 of the size are not kept; the least recently used go first.
    cache.set('big', 4, Buffer.alloc(101));
    expect(cache.get('big', 4)).toBeUndefined();
    for (let i = 0; i < 20; i++) cache.set(`e${i}`, 4, Buffer.alloc(100));
    expect(cache.get('e0', 4)).toBeUndefined();
    expect(cache.get('e19', 4)).toBeDefined();
  });
});
