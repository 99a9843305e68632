import { describe, expect, it } from 'vitest';
import { sampleFlow, testCatalog } from '../../../test/helpers/flows.js';
import { graphStructureProblems, validateFlowBody, type FlowDefinition } from './flows.validation.js';

const validate = (body: unknown, base?: FlowDefinition) => validateFlowBody('default', body, base, testCatalog);

async function problemsOf(body: unknown, base?: FlowDefinition): Promise<string[]> {
  const r = await validate(body, base);
  if (r.ok) throw new Error('expected the flow to be refused');
  return r.problems;
}

describe('flow validation', () => {
  it('accepts a valid flow and fills the defaults', async () => {
    const r = await validate(sampleFlow({ cron: '*/5 * * * *', timezone: 'Europe/Berlin' }));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.cron).toBe('*/5 * * * *');
      expect(r.value.description).toBe('receives orders');
      expect(r.value.flowSettings).toEqual({});
    }
  });

  it('lists every problem of a broken flow in one answer', async () => {
    const problems = await problemsOf({
      name: 'broken',
      status: 'active',
      cron: '61 * * * *',
      graph: {
        nodes: [
          { id: 'a', componentId: 'log', function: 'write' },
          { id: 'a', componentId: 'nope', function: 'x' },
          { componentId: 'log', function: 'write' },
          { id: 'c', componentId: 'log' },
          { id: 'd', componentId: 'transform', function: 'missing' },
        ],
        edges: [
          { source: 'a', target: 'ghost' },
          { source: 'd', target: 'c' },
          { source: 'c', target: 'd' },
        ],
      },
    });
    const text = problems.join('\n');
    expect(text).toMatch(/^status: is set by the server/m);
    expect(text).toMatch(/graph\.nodes\[1\]\.id: duplicate node id "a"/);
    expect(text).toMatch(/graph\.nodes\[2\]\.id: is required/);
    expect(text).toMatch(/graph\.nodes\[3\]\.function: is required/);
    expect(text).toMatch(/graph\.nodes\[1\] \("a"\): unknown component nope/);
    expect(text).toMatch(/graph\.nodes\[4\] \("d"\): component transform has no function missing/);
    expect(text).toMatch(/graph\.edges\[0\]\.target: "ghost" is not a node of this flow/);
    expect(text).toMatch(/graph: the edges form a cycle "(c|d)" → "(d|c)" → "(c|d)"/);
    expect(text).toMatch(/cron: "61 \* \* \* \*" .*minute/i);
    expect(problems.length).toBeGreaterThanOrEqual(9);
  });

  it('refuses a body without graph, without nodes, or with several nodes and no edges', async () => {
    expect(await problemsOf({ name: 'x' })).toContain('graph: is required');
    expect(await problemsOf({ name: 'x', graph: { nodes: [], edges: [] } })).toContain('graph.nodes: a flow needs at least one node');
    const several = await problemsOf({
      name: 'x',
      graph: { nodes: [{ id: 'a', componentId: 'log', function: 'write' }, { id: 'b', componentId: 'log', function: 'write' }] },
    });
    expect(several).toEqual(['graph.edges: the flow has 2 nodes but no edges; join them with edges']);
  });

  it('requires exactly one start node', () => {
    const graph = {
      nodes: ['a', 'b', 'c'].map((id) => ({ id, componentId: 'log', function: 'write' })),
      edges: [{ source: 'a', target: 'c' }],
    };
    expect(graphStructureProblems(graph)).toEqual([
      'graph: exactly one node may have no incoming edges (the start node, where triggers deliver); found "a", "b"',
    ]);
    expect(graphStructureProblems({ ...graph, edges: [...graph.edges, { source: 'a', target: 'b' }] })).toEqual([]);
  });

  it('checks cron field counts and timezones', async () => {
    expect(await problemsOf(sampleFlow({ cron: '* * *' }))).toEqual([expect.stringMatching(/^cron: "\* \* \*" must have 5 fields .* or 6 .*got 3$/)]);
    expect(await problemsOf(sampleFlow({ cron: '0 0 * * * * 2030' }))).toEqual([expect.stringMatching(/got 7$/)]);
    expect(await problemsOf(sampleFlow({ cron: '0 9 * * 1-5', timezone: 'Mars/Olympus' }))).toEqual(['cron: "0 9 * * 1-5" unknown timezone "Mars/Olympus"']);
    expect((await validate(sampleFlow({ cron: '*/10 * * * * *' }))).ok).toBe(true);
  });

  it('refuses unknown fields and server-owned ones, naming each', async () => {
    const problems = await problemsOf(sampleFlow({ color: 'red', version: 3, id: 'mine' }));
    expect(problems).toEqual(expect.arrayContaining(['color: unknown field', 'version: is set by the server', 'id: is set by the server']));
  });

  it('needs a secret for HMAC and a webhook-reply step for sync answers', async () => {
    const problems = await problemsOf(sampleFlow({ flowSettings: { webhooks: { auth: 'hmac', respond: 'sync' } } }));
    expect(problems).toEqual([
      'flowSettings.webhooks.secret: is required when auth is "hmac" (or secretId, naming an apiKey secret)',
      'flowSettings.webhooks.respond: "sync" needs a webhook-reply step in the graph to answer with',
    ]);
  });

  it('validates a patch merged with the current definition', async () => {
    const base = await validate(sampleFlow());
    if (!base.ok) throw new Error('sample flow must be valid');
    const renamed = await validate({ name: 'renamed', cron: '0 * * * *' }, base.value);
    expect(renamed.ok && renamed.value).toMatchObject({ name: 'renamed', cron: '0 * * * *', graph: base.value.graph });
    const removed = await validate({ description: null }, base.value);
    expect(removed.ok && removed.value.description).toBeNull();
    expect(await problemsOf({ timezone: 'UTC' }, base.value)).toEqual(['timezone: only used with cron; set cron or remove timezone']);
  });
});
