import { describe, expect, it } from 'vitest';
import type { Flow } from '../contracts/flows.js';
import { diffOf, isSameFlow } from './flow-apply.js';
import type { FlowDocument } from './flow-files.js';

/** The flow as the hub answers for `file`: defaults filled in, secret masked, keys reordered. */
function stored(over: Partial<Flow> = {}): Flow {
  return {
    id: '6e8b314b-8830-4638-8be9-22b9cbd68697',
    tenant: 'default',
    name: 'orders',
    description: 'shape orders',
    graph: {
      nodes: [{ function: 'jsonata', id: 'shape', fields: { expression: '$' }, componentId: 'transform' }],
      edges: [],
    },
    status: 'inactive',
    owners: [{ id: 'u1', type: 'user' }],
    flowSettings: { webhooks: { auth: 'hmac', secretId: '0b6f5a2e-0000-4000-8000-000000000001', secret: '********', respond: 'async', timeoutMs: 30_000 } },
    version: 3,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

const file = {
  name: 'orders',
  description: 'shape orders',
  graph: { nodes: [{ id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } }] },
  flowSettings: { webhooks: { auth: 'hmac', secret: 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=' } },
};

describe('comparing a flow file with the hub', () => {
  it('sees a file applied before as unchanged: defaults, masked secret, key order, owners not named', () => {
    expect(isSameFlow(file, stored())).toBe(true);
  });

  it('reads a signing secret back from the hub as the mask and its secretId, as `flows get -o yaml` gives it', () => {
    const readBack = { ...file, flowSettings: { webhooks: { auth: 'hmac', secret: '********', secretId: '0b6f5a2e-0000-4000-8000-000000000001' } } };
    expect(isSameFlow(readBack, stored())).toBe(true);
    expect(isSameFlow({ ...readBack, flowSettings: { webhooks: { auth: 'hmac', secretId: 'another-secret-id' } } }, stored())).toBe(false);
  });

  it('sees every field a file states', () => {
    expect(isSameFlow({ ...file, description: 'other' }, stored())).toBe(false);
    expect(isSameFlow({ ...file, cron: '0 3 * * *' }, stored())).toBe(false);
    expect(isSameFlow({ ...file, flowSettings: { webhooks: { auth: 'hmac', secret: 'x'.repeat(20), respond: 'sync' } } }, stored())).toBe(false);
    expect(isSameFlow({ ...file, graph: { nodes: [{ id: 'shape', componentId: 'transform', function: 'jsonata' }] } }, stored())).toBe(false);
    expect(isSameFlow({ ...file, owners: [{ id: 'u2', type: 'user' }] }, stored())).toBe(false);
    expect(isSameFlow({ ...file, owners: [{ id: 'u1', type: 'user' }] }, stored())).toBe(true);
  });

  it('sees an optional field the file no longer has as a change (apply removes it)', () => {
    const { description: _, ...withoutDescription } = file;
    expect(isSameFlow(withoutDescription, stored())).toBe(false);
    expect(isSameFlow(withoutDescription, stored({ description: undefined }))).toBe(true);
  });

  it('diffs the hub against the file as YAML, one line per changed field', () => {
    const doc: FlowDocument = { source: 'flows/orders.yaml', name: 'orders', body: { ...file, description: 'new words' }, locate: () => 'flows/orders.yaml' };
    const entry = diffOf({ kind: 'update', doc, current: stored() });
    expect(entry.change).toBe('update');
    expect(entry.diff).toContain('--- hub/orders\n+++ flows/orders.yaml');
    expect(entry.diff!.split('\n').filter((l) => /^[-+][^-+]/.test(l))).toEqual(['-description: shape orders', '+description: new words']);
  });
});
