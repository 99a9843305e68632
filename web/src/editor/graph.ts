/**
 * The flow editor's graph logic, without React: a flow's graph ↔ the canvas (nodes with
 * positions, edges), adding steps, connecting them, removing them, and placing the API's
 * validation problems on the node they concern.
 *
 * The canvas shows the trigger (webhook or schedule) as a node of its own, joined to the start
 * step. It is not part of the stored graph: triggers deliver to the one step without incoming
 * edges (contracts/flows.ts `startNodeOf`), so an edge from the trigger only says which step
 * that should be, and saving checks that it is.
 */
import type { Edge, Node } from '@xyflow/react';
import { NodeId, type FlowEdge, type FlowGraph, type FlowNode } from '@contracts/flows';

export const TRIGGER_ID = 'trigger';

export type TriggerKind = 'webhook' | 'schedule';

export interface StepData extends Record<string, unknown> {
  step: FlowNode;
  /** Validation problems the API (or the editor) found on this step. */
  problems: string[];
}

export interface TriggerData extends Record<string, unknown> {
  kind: TriggerKind;
  problems: string[];
}

export type StepNode = Node<StepData, 'step'>;
export type TriggerNode = Node<TriggerData, 'trigger'>;
export type CanvasNode = StepNode | TriggerNode;
export type CanvasEdge = Edge<{ condition?: string; mapper?: string }>;

export interface Canvas {
  nodes: CanvasNode[];
  edges: CanvasEdge[];
}

export type Positions = Record<string, { x: number; y: number }>;

const COLUMN_PX = 260;
const ROW_PX = 120;

export function isStep(n: CanvasNode): n is StepNode {
  return n.type === 'step';
}

/** Where a step sits when the flow kept no position for it: a column per distance from the trigger. */
function layout(graph: FlowGraph, kept: Positions): Positions {
  const incoming = new Map<string, number>();
  for (const e of graph.edges) incoming.set(e.target, (incoming.get(e.target) ?? 0) + 1);
  const depth = new Map<string, number>();
  const queue = graph.nodes.filter((n) => !incoming.has(n.id)).map((n) => n.id);
  for (const id of queue) depth.set(id, 1);
  while (queue.length > 0) {
    const id = queue.shift()!;
    for (const e of graph.edges) {
      if (e.source !== id || depth.has(e.target)) continue;
      depth.set(e.target, depth.get(id)! + 1);
      queue.push(e.target);
    }
  }
  const rows = new Map<number, number>();
  const out: Positions = {};
  for (const n of graph.nodes) {
    const col = depth.get(n.id) ?? 1;
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    out[n.id] = kept[n.id] ?? { x: col * COLUMN_PX, y: row * ROW_PX };
  }
  out[TRIGGER_ID] = kept[TRIGGER_ID] ?? { x: 0, y: 0 };
  return out;
}

export function edgeId(source: string, target: string): string {
  return `${source}->${target}`;
}

/** The canvas of a stored graph; the trigger joined to its start step. */
export function toCanvas(graph: FlowGraph, trigger: TriggerKind, kept: Positions = {}): Canvas {
  const at = layout(graph, kept);
  const targets = new Set(graph.edges.map((e) => e.target));
  const start = graph.nodes.find((n) => !targets.has(n.id));
  const nodes: CanvasNode[] = [
    { id: TRIGGER_ID, type: 'trigger', position: at[TRIGGER_ID]!, data: { kind: trigger, problems: [] }, deletable: false },
    ...graph.nodes.map((step): StepNode => ({ id: step.id, type: 'step', position: at[step.id]!, data: { step, problems: [] } })),
  ];
  const edges: CanvasEdge[] = graph.edges.map((e) => ({
    id: e.id ?? edgeId(e.source, e.target),
    source: e.source,
    target: e.target,
    ...(e.config ? { data: { ...e.config } } : {}),
  }));
  if (start) edges.unshift({ id: edgeId(TRIGGER_ID, start.id), source: TRIGGER_ID, target: start.id, deletable: true });
  return { nodes, edges };
}

/** The graph to store: every step, every edge between steps with its condition and mapper. */
export function toGraph(canvas: Canvas): FlowGraph {
  const nodes = canvas.nodes.filter(isStep).map((n) => n.data.step);
  const edges: FlowEdge[] = canvas.edges
    .filter((e) => e.source !== TRIGGER_ID)
    .map((e) => {
      const config: NonNullable<FlowEdge['config']> = {};
      if (e.data?.condition?.trim()) config.condition = e.data.condition.trim();
      if (e.data?.mapper?.trim()) config.mapper = e.data.mapper.trim();
      return { id: e.id, source: e.source, target: e.target, ...(Object.keys(config).length > 0 ? { config } : {}) };
    });
  return { nodes, edges };
}

/** Positions to keep with the flow (`flowSettings.cockpit.positions`), rounded. */
export function positionsOf(canvas: Canvas): Positions {
  return Object.fromEntries(canvas.nodes.map((n) => [n.id, { x: Math.round(n.position.x), y: Math.round(n.position.y) }]));
}

/** A node id from the component's name that no step uses yet, valid as a NodeId. */
export function freshStepId(canvas: Canvas, componentId: string): string {
  const base = componentId.replace(/[^A-Za-z0-9_-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 50) || 'step';
  const used = new Set(canvas.nodes.map((n) => n.id));
  for (let i = 1; ; i++) {
    const id = `${base}-${i}`;
    if (!used.has(id) && NodeId.safeParse(id).success) return id;
  }
}

/** Adds a step for `componentId` / `fn` at `position` (right of the rightmost node by default). */
export function addStep(canvas: Canvas, componentId: string, fn: string, fields: Record<string, unknown> = {}, position?: { x: number; y: number }): { canvas: Canvas; id: string } {
  const id = freshStepId(canvas, componentId);
  const right = Math.max(0, ...canvas.nodes.map((n) => n.position.x));
  const node: StepNode = {
    id,
    type: 'step',
    position: position ?? { x: right + COLUMN_PX, y: 0 },
    data: { step: { id, componentId, function: fn, fields }, problems: [] },
  };
  return { canvas: { ...canvas, nodes: [...canvas.nodes, node] }, id };
}

/** Would an edge source → target close a cycle? (Is source reachable from target?) */
function reaches(edges: CanvasEdge[], from: string, to: string): boolean {
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (id === to) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const e of edges) if (e.source === id) stack.push(e.target);
  }
  return false;
}

export type ConnectResult = { ok: true; canvas: Canvas } | { ok: false; reason: string };

/**
 * Joins two nodes, refusing what the API would refuse anyway, with the reason: into the
 * trigger, onto itself, twice, a cycle, or a second edge from the trigger (it replaces it).
 */
export function connect(canvas: Canvas, source: string, target: string): ConnectResult {
  if (target === TRIGGER_ID) return { ok: false, reason: 'Nothing can lead into the trigger: it starts the flow.' };
  if (source === target) return { ok: false, reason: 'A step cannot lead to itself.' };
  if (!canvas.nodes.some((n) => n.id === source) || !canvas.nodes.some((n) => n.id === target)) return { ok: false, reason: 'Both ends must be steps on the canvas.' };
  if (canvas.edges.some((e) => e.source === source && e.target === target)) return { ok: false, reason: `${source} already leads to ${target}.` };
  if (reaches(canvas.edges, target, source)) return { ok: false, reason: `That edge would make a cycle: ${target} already leads to ${source}.` };
  // The trigger delivers to one step: connecting it elsewhere moves it.
  const edges = source === TRIGGER_ID ? canvas.edges.filter((e) => e.source !== TRIGGER_ID) : canvas.edges;
  return { ok: true, canvas: { ...canvas, edges: [...edges, { id: edgeId(source, target), source, target }] } };
}

/** Removes steps (never the trigger) and every edge touching them. */
export function removeNodes(canvas: Canvas, ids: readonly string[]): Canvas {
  const gone = new Set(ids.filter((id) => id !== TRIGGER_ID));
  return {
    nodes: canvas.nodes.filter((n) => !gone.has(n.id)),
    edges: canvas.edges.filter((e) => !gone.has(e.source) && !gone.has(e.target)),
  };
}

export function removeEdges(canvas: Canvas, ids: readonly string[]): Canvas {
  const gone = new Set(ids);
  return { ...canvas, edges: canvas.edges.filter((e) => !gone.has(e.id)) };
}

/** Replaces one step's definition (fields, name, credential). */
export function updateStep(canvas: Canvas, id: string, change: Partial<FlowNode>): Canvas {
  return {
    ...canvas,
    nodes: canvas.nodes.map((n) => (n.id === id && isStep(n) ? { ...n, data: { ...n.data, step: { ...n.data.step, ...change, id } } } : n)),
  };
}

export function updateEdge(canvas: Canvas, id: string, config: { condition?: string; mapper?: string }): Canvas {
  return { ...canvas, edges: canvas.edges.map((e) => (e.id === id ? { ...e, data: { ...e.data, ...config } } : e)) };
}

/** What the editor itself sees wrong before asking the API: where the trigger delivers. */
export function localProblems(canvas: Canvas): string[] {
  const steps = canvas.nodes.filter(isStep);
  if (steps.length === 0) return ['Add a step: a flow needs at least one.'];
  const fromTrigger = canvas.edges.find((e) => e.source === TRIGGER_ID);
  if (!fromTrigger) return ['Connect the trigger to the first step.'];
  const intoStart = canvas.edges.filter((e) => e.target === fromTrigger.target && e.source !== TRIGGER_ID);
  if (intoStart.length > 0) return [`The trigger's step ${fromTrigger.target} must not have other incoming edges.`];
  const targets = new Set(canvas.edges.map((e) => e.target));
  const unreached = steps.filter((n) => !targets.has(n.id)).map((n) => n.id);
  if (unreached.length > 0) return unreached.map((id) => `${id}: nothing leads to this step; connect it or remove it.`);
  return [];
}

export interface PlacedProblems {
  byNode: Map<string, string[]>;
  /** Problems that concern no single step (name, settings, cron…). */
  general: string[];
}

/**
 * Puts each problem the API listed (`graph.nodes[2].fields.url: …`, `graph.edges[0].target: …`,
 * `graph: … "a" → "b"`) on the step it concerns: by node index, by the target of an edge, or by
 * the quoted node ids it names.
 */
export function placeProblems(problems: readonly string[], graph: FlowGraph): PlacedProblems {
  const byNode = new Map<string, string[]>();
  const general: string[] = [];
  const add = (id: string, p: string): void => void byNode.set(id, [...(byNode.get(id) ?? []), p]);
  const ids = new Set(graph.nodes.map((n) => n.id));
  for (const p of problems) {
    const node = /^graph\.nodes\[(\d+)\]/.exec(p);
    if (node) {
      const n = graph.nodes[Number(node[1])];
      if (n) add(n.id, p.replace(/^graph\.nodes\[\d+\](?: \("[^"]*"\))?\.?/, '').replace(/^:\s*/, '') || p);
      else general.push(p);
      continue;
    }
    const edge = /^graph\.edges\[(\d+)\]/.exec(p);
    if (edge) {
      const e = graph.edges[Number(edge[1])];
      if (e && ids.has(e.target)) add(e.target, p);
      else general.push(p);
      continue;
    }
    const named = [...p.matchAll(/"([A-Za-z0-9_-]{1,64})"/g)].map((m) => m[1]!).filter((id) => ids.has(id));
    if (p.startsWith('graph') && named.length > 0) for (const id of new Set(named)) add(id, p);
    else general.push(p);
  }
  return { byNode, general };
}

/**
 * Places the reason of a failed start (the orchestrator names every problem, joined by "; ":
 * `node send (http-request/request): fields.url: …`, `edge a->b: …`) on the steps concerned.
 */
export function placeStartFailure(reason: string, graph: FlowGraph): PlacedProblems {
  const byNode = new Map<string, string[]>();
  const general: string[] = [];
  const ids = new Set(graph.nodes.map((n) => n.id));
  const add = (id: string, p: string): void => void byNode.set(id, [...(byNode.get(id) ?? []), p]);
  for (const part of reason.split(/; (?=node |edge |the flow )/)) {
    const node = /^node ([A-Za-z0-9_-]{1,64})(?: \([^)]*\))?: (.*)$/s.exec(part);
    if (node && ids.has(node[1]!)) {
      add(node[1]!, node[2]!);
      continue;
    }
    const edge = /^edge (\S+?)->(\S+?): /.exec(part);
    if (edge && ids.has(edge[2]!)) add(edge[2]!, part);
    else general.push(part);
  }
  return { byNode, general };
}

/** The canvas with each step's problems set (and cleared where there are none now). */
export function withProblems(canvas: Canvas, placed: PlacedProblems): Canvas {
  return {
    ...canvas,
    nodes: canvas.nodes.map((n) => {
      const problems = placed.byNode.get(n.id) ?? [];
      return isStep(n) ? { ...n, data: { ...n.data, problems } } : { ...n, data: { ...n.data, problems: [] } };
    }),
  };
}
