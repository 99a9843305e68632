/**
 * A flow made ready to run: each node bound to its component function (fields validated and
 * compiled once), each edge's condition and mapper compiled, and the rules that route a step's
 * output messages to the next steps' queues.
 */
import { z } from 'zod';
import { stepQueueName, type Flow, type FlowNode } from '../../contracts/flows.js';
import type { Logger } from '../../platform/logger.js';
import type { RemoteRuntime, RemoteTarget } from './orchestrator.runtime.js';
import { StepError, compileExpression, isTruthy, type CompiledExpression, type ComponentsService, type PreparedStep } from '../components/index.js';

/** Per-node failure handling and throughput (`node.nodeSettings`); unknown keys are kept for other modules. */
export const NodeSettings = z.looseObject({
  /**
   * Retries of a transient failure after the first try. Unset: PLEXUS_BUS_MAX_ATTEMPTS − 1, so
   * that setting is the number of times a component is called (5 by default).
   */
  retries: z.number().int().min(0).max(100).optional(),
  /** First retry delay; doubles per retry up to maxRetryDelayMs. A remote Retry-After wins. */
  retryDelayMs: z.number().int().min(0).max(3_600_000).default(1_000),
  maxRetryDelayMs: z.number().int().min(0).max(86_400_000).default(300_000),
  /** Rebounds (retry later, not a failure) before the run fails; OIH's limit. */
  maxRebounds: z.number().int().min(0).max(1_000).default(20),
  /** First rebound delay; doubles per rebound up to one hour (OIH: 15 s · 2^(n-1)). */
  reboundDelayMs: z.number().int().min(0).max(3_600_000).default(15_000),
  /** A run taking longer fails (transient). */
  timeoutMs: z.number().int().min(1).max(3_600_000).default(60_000),
  /** Messages of this step handled at once in each orchestrator process. */
  concurrency: z.number().int().min(1).max(1_000).default(64),
  /** Where the step runs: `local` (in the hub) or `workers` (the router's gRPC workers); default: the flow's `flowSettings.runtime`, else local. */
  runtime: z.enum(['local', 'workers']).optional(),
  /** For `runtime: workers`: the component version the step needs (`2` = major 2, `2.1`, `2.1.3`). */
  version: z.string().regex(/^\d+(\.\d+){0,2}$/, 'must be a version such as 2, 2.1 or 2.1.3').optional(),
});
export type NodeSettings = z.infer<typeof NodeSettings>;

export interface PreparedEdge {
  index: number;
  target: string;
  targetQueue: string;
  /** The target has several incoming edges, so child paths name the edge. */
  sharedTarget: boolean;
  condition: CompiledExpression | undefined;
  mapper: CompiledExpression | undefined;
}

export interface PreparedNode {
  node: FlowNode;
  queue: string;
  step: PreparedStep;
  settings: NodeSettings;
  edges: PreparedEdge[];
  /** Set when the step runs on the remote runtime: never inline, never handed off. */
  remote?: RemoteTarget | undefined;
}

export interface PreparedFlow {
  flow: Flow;
  startNodeId: string;
  nodes: Map<string, PreparedNode>;
}

/** Why a flow cannot run, for `flow.failed`. */
export class FlowPreparationError extends Error {
  override readonly name = 'FlowPreparationError';
}

function describeSettingsIssues(nodeId: string, error: z.ZodError): string {
  return `node ${nodeId}: ${error.issues.map((i) => `${['nodeSettings', ...i.path.map(String)].join('.')}: ${i.message}`).join('; ')}`;
}

/** Binds every node to its component and compiles the edges; throws FlowPreparationError with every reason. */
export async function prepareFlow(flow: Flow, components: ComponentsService, logger: Logger, workers?: RemoteRuntime): Promise<PreparedFlow> {
  const problems: string[] = [];
  const nodes = new Map<string, PreparedNode>();
  const incoming = new Map<string, number>();
  for (const e of flow.graph.edges) incoming.set(e.target, (incoming.get(e.target) ?? 0) + 1);
  const ids = new Set(flow.graph.nodes.map((n) => n.id));
  for (const e of flow.graph.edges) {
    if (!ids.has(e.source)) problems.push(`edge ${e.id ?? `${e.source}->${e.target}`}: unknown source node ${e.source}`);
    if (!ids.has(e.target)) problems.push(`edge ${e.id ?? `${e.source}->${e.target}`}: unknown target node ${e.target}`);
  }
  const starts = flow.graph.nodes.filter((n) => !incoming.has(n.id));
  if (starts.length !== 1) problems.push(`the flow needs exactly one start node (a node without incoming edges), it has ${starts.length}`);

  for (const node of flow.graph.nodes) {
    const settings = NodeSettings.safeParse(node.nodeSettings ?? {});
    if (!settings.success) {
      problems.push(describeSettingsIssues(node.id, settings.error));
      continue;
    }
    const flowRuntime = (flow.flowSettings as { runtime?: unknown } | undefined)?.runtime;
    const runtime = settings.data.runtime ?? flowRuntime ?? 'local';
    if (runtime !== 'local' && runtime !== 'workers') {
      problems.push(`flowSettings.runtime: must be local or workers, got ${JSON.stringify(runtime)}`);
      continue;
    }
    if (runtime === 'workers') {
      if (!workers) {
        problems.push(`node ${node.id}: runtime workers needs the router role in the orchestrator's process (plexus start --roles …,router)`);
        continue;
      }
      const remote: RemoteTarget = { tenant: flow.tenant, component: node.componentId, function: node.function, version: settings.data.version };
      const step = workers.prepareStep(remote, node.fields ?? {}, settings.data.timeoutMs);
      nodes.set(node.id, { node, queue: stepQueueName(flow.id, node.id), step, settings: settings.data, edges: [], remote });
      continue;
    }
    try {
      const fn = await components.getFunction(flow.tenant, node.componentId, node.function);
      const variables = flow.flowSettings?.variables;
      const step = await fn.prepare(node.fields ?? {}, {
        logger,
        timeoutMs: settings.data.timeoutMs,
        flow: { id: flow.id, version: flow.version, variables: variables && typeof variables === 'object' && !Array.isArray(variables) ? (variables as Record<string, unknown>) : undefined },
      });
      nodes.set(node.id, { node, queue: stepQueueName(flow.id, node.id), step, settings: settings.data, edges: [] });
    } catch (err) {
      problems.push(`node ${node.id} (${node.componentId}/${node.function}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  flow.graph.edges.forEach((e, index) => {
    const source = nodes.get(e.source);
    try {
      const edge: PreparedEdge = {
        index,
        target: e.target,
        targetQueue: stepQueueName(flow.id, e.target),
        sharedTarget: (incoming.get(e.target) ?? 0) > 1,
        condition: e.config?.condition ? compileExpression(e.config.condition, `edge ${e.id ?? index} condition`) : undefined,
        mapper: e.config?.mapper ? compileExpression(e.config.mapper, `edge ${e.id ?? index} mapper`) : undefined,
      };
      source?.edges.push(edge);
    } catch (err) {
      problems.push(err instanceof StepError ? err.message : String(err));
    }
  });
  if (problems.length > 0) throw new FlowPreparationError(problems.join('; '));
  return { flow, startNodeId: starts[0]!.id, nodes };
}

/**
 * The path of a child message: the parent's path plus the output index, and the edge when the
 * target has several incoming edges (two parents may share a path). Unique per node and execution.
 */
export function childPath(parentPath: string, edge: PreparedEdge, outputIndex: number): string {
  return edge.sharedTarget ? `${parentPath}.e${edge.index}.${outputIndex}` : `${parentPath}.${outputIndex}`;
}

export interface RoutedMessage {
  edge: PreparedEdge;
  body: unknown;
}

/** Which edges a message takes (condition) and the body it carries on each (mapper). */
export async function routeMessage(node: PreparedNode, body: unknown, headers: Record<string, unknown>, metadata: Record<string, unknown>): Promise<RoutedMessage[]> {
  const out: RoutedMessage[] = [];
  for (const edge of node.edges) {
    const bindings = { headers, metadata };
    if (edge.condition && !isTruthy(await edge.condition.evaluate(body, bindings))) continue;
    const mapped = edge.mapper ? await edge.mapper.evaluate(body, bindings) : body;
    out.push({ edge, body: mapped === undefined ? null : mapped });
  }
  return out;
}

/** Exponential from `base`, capped, with ±10 % jitter so a failed burst does not retry in lockstep. */
export function backoffMs(base: number, n: number, cap: number): number {
  const raw = Math.min(cap, base * 2 ** Math.max(0, n - 1));
  return Math.round(raw * (0.9 + Math.random() * 0.2));
}
