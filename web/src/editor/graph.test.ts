import { describe, expect, it } from 'vitest';
import type { FlowGraph } from '@contracts/flows';
import {
  addStep,
  connect,
  localProblems,
  placeProblems,
  placeStartFailure,
  positionsOf,
  removeEdges,
  removeNodes,
  toCanvas,
  toGraph,
  TRIGGER_ID,
  updateEdge,
  updateStep,
  withProblems,
  type Canvas,
} from './graph';

const pipeline: FlowGraph = {
  nodes: [
    { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
    { id: 'send', componentId: 'http-request', function: 'request', fields: { url: 'http://x' } },
  ],
  edges: [{ source: 'shape', target: 'send', config: { condition: 'total > 1' } }],
};

function mustConnect(c: Canvas, s: string, t: string): Canvas {
  const r = connect(c, s, t);
  if (!r.ok) throw new Error(r.reason);
  return r.canvas;
}

describe('flow graph ↔ canvas', () => {
  it('shows the trigger joined to the start step, and stores only the steps and their edges', () => {
    const canvas = toCanvas(pipeline, 'webhook');
    expect(canvas.nodes.map((n) => [n.id, n.type])).toEqual([
      [TRIGGER_ID, 'trigger'],
      ['shape', 'step'],
      ['send', 'step'],
    ]);
    expect(canvas.edges.map((e) => `${e.source}->${e.target}`)).toEqual(['trigger->shape', 'shape->send']);
    expect(toGraph(canvas)).toEqual({
      nodes: pipeline.nodes,
      edges: [{ id: 'shape->send', source: 'shape', target: 'send', config: { condition: 'total > 1' } }],
    });
  });

  it('lays steps out by their distance from the trigger, unless the flow kept their positions', () => {
    const laid = toCanvas(pipeline, 'webhook');
    const x = (c: Canvas, id: string): number => c.nodes.find((n) => n.id === id)!.position.x;
    expect(x(laid, TRIGGER_ID)).toBeLessThan(x(laid, 'shape'));
    expect(x(laid, 'shape')).toBeLessThan(x(laid, 'send'));
    const kept = toCanvas(pipeline, 'webhook', { send: { x: 5, y: 7 } });
    expect(kept.nodes.find((n) => n.id === 'send')!.position).toEqual({ x: 5, y: 7 });
    expect(positionsOf(kept).send).toEqual({ x: 5, y: 7 });
  });

  it('adds steps with fresh, valid ids from the component name', () => {
    let c = toCanvas({ nodes: [], edges: [] }, 'webhook');
    const a = addStep(c, 'http-request', 'request');
    c = a.canvas;
    const b = addStep(c, 'http-request', 'request');
    const odd = addStep(b.canvas, '@acme/Fancy Thing!', 'run');
    expect([a.id, b.id, odd.id]).toEqual(['http-request-1', 'http-request-2', 'acme-Fancy-Thing-1']);
    expect(toGraph(odd.canvas).nodes.map((n) => n.componentId)).toEqual(['http-request', 'http-request', '@acme/Fancy Thing!']);
  });

  it('connects steps and refuses what the hub would refuse, saying why', () => {
    let c = toCanvas({ nodes: [], edges: [] }, 'webhook');
    c = addStep(c, 'transform', 'jsonata').canvas;
    c = addStep(c, 'log', 'write').canvas;
    c = mustConnect(c, TRIGGER_ID, 'transform-1');
    c = mustConnect(c, 'transform-1', 'log-1');
    const refused = (s: string, t: string): string => {
      const r = connect(c, s, t);
      return r.ok ? 'accepted' : r.reason;
    };
    expect(refused('log-1', 'transform-1')).toMatch(/cycle/);
    expect(refused('log-1', 'log-1')).toMatch(/itself/);
    expect(refused('transform-1', 'log-1')).toMatch(/already/);
    expect(refused('log-1', TRIGGER_ID)).toMatch(/trigger/);
    expect(refused('transform-1', 'nowhere')).toMatch(/Both ends/);
    // The trigger delivers to one step: connecting it again moves its edge.
    const moved = mustConnect(c, TRIGGER_ID, 'log-1');
    expect(moved.edges.filter((e) => e.source === TRIGGER_ID).map((e) => e.target)).toEqual(['log-1']);
  });

  it('removes steps with their edges, never the trigger; removes edges alone', () => {
    const c = toCanvas(pipeline, 'webhook');
    const without = removeNodes(c, ['shape', TRIGGER_ID]);
    expect(without.nodes.map((n) => n.id)).toEqual([TRIGGER_ID, 'send']);
    expect(without.edges).toEqual([]);
    expect(removeEdges(c, ['shape->send']).edges.map((e) => e.id)).toEqual(['trigger->shape']);
  });

  it('updates a step and an edge without touching the rest', () => {
    let c = toCanvas(pipeline, 'webhook');
    c = updateStep(c, 'send', { fields: { url: 'http://y', method: 'POST' }, name: 'Send it' });
    c = updateEdge(c, 'shape->send', { mapper: ' {"a": 1} ', condition: '' });
    const g = toGraph(c);
    expect(g.nodes[1]).toEqual({ id: 'send', componentId: 'http-request', function: 'request', fields: { url: 'http://y', method: 'POST' }, name: 'Send it' });
    expect(g.nodes[0]).toEqual(pipeline.nodes[0]);
    expect(g.edges[0]!.config).toEqual({ mapper: '{"a": 1}' });
  });

  it('says what to fix before saving: no step, an unconnected trigger or step', () => {
    const empty = toCanvas({ nodes: [], edges: [] }, 'webhook');
    expect(localProblems(empty)).toEqual(['Add a step: a flow needs at least one.']);
    const lone = addStep(empty, 'log', 'write').canvas;
    expect(localProblems(lone)).toEqual(['Connect the trigger to the first step.']);
    const joined = mustConnect(lone, TRIGGER_ID, 'log-1');
    expect(localProblems(joined)).toEqual([]);
    const stray = addStep(joined, 'log', 'write').canvas;
    expect(localProblems(stray)).toEqual(['log-2: nothing leads to this step; connect it or remove it.']);
    expect(localProblems(toCanvas(pipeline, 'webhook'))).toEqual([]);
  });
});

describe('placing problems on steps', () => {
  it('puts the API’s validation problems on the step they name, by index, edge or quoted id', () => {
    const placed = placeProblems(
      [
        'graph.nodes[1].componentId: is required',
        'graph.nodes[0] ("shape"): unknown function nope of component transform',
        'graph.edges[0].target: "ghost" is not a node of this flow',
        'graph: the edges form a cycle "shape" → "send" → "shape"',
        'name: is required',
        'graph.nodes[9].id: duplicate',
      ],
      pipeline,
    );
    expect(Object.fromEntries(placed.byNode)).toEqual({
      send: ['componentId: is required', 'graph.edges[0].target: "ghost" is not a node of this flow', 'graph: the edges form a cycle "shape" → "send" → "shape"'],
      shape: ['unknown function nope of component transform', 'graph: the edges form a cycle "shape" → "send" → "shape"'],
    });
    expect(placed.general).toEqual(['name: is required', 'graph.nodes[9].id: duplicate']);
    const shown = withProblems(toCanvas(pipeline, 'webhook'), placed);
    expect(shown.nodes.map((n) => n.data.problems.length)).toEqual([0, 2, 3]);
    expect(withProblems(shown, { byNode: new Map(), general: [] }).nodes.every((n) => n.data.problems.length === 0)).toBe(true);
  });

  it('puts the reasons of a failed start on their steps', () => {
    const placed = placeStartFailure(
      'node send (http-request/request): fields.url: Invalid input; x; y; edge shape->send: condition does not compile; the flow needs exactly one start node',
      pipeline,
    );
    expect(Object.fromEntries(placed.byNode)).toEqual({ send: ['fields.url: Invalid input; x; y', 'edge shape->send: condition does not compile'] });
    expect(placed.general).toEqual(['the flow needs exactly one start node']);
  });
});
