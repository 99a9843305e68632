/**
 * Validation of a flow definition. Unlike the rest of the API, it collects EVERY problem in one
 * pass (shape, graph structure, components, cron) so a user fixes a flow in one round trip.
 * Each problem names where it is (`graph.nodes[2].componentId`) and what is wrong.
 */
import { z } from 'zod';
import { cronProblem } from '../../contracts/cron.js';
import { EventTrigger, FlowGraph, FlowSettings, type ComponentCatalog } from '../../contracts/flows.js';

export const FlowOwner = z.strictObject({ id: z.string().min(1).max(200), type: z.string().min(1).max(50) });

/** The fields a client may send; everything else is refused. */
export const FlowInput = z.strictObject({
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  cron: z.string().max(200).optional(),
  timezone: z.string().max(100).optional(),
  trigger: EventTrigger.optional(),
  graph: FlowGraph,
  flowSettings: FlowSettings.optional(),
  owners: z.array(FlowOwner).max(50).optional(),
});
export type FlowInput = z.infer<typeof FlowInput>;

/** PATCH: every field optional; `null` removes the optional ones. */
export const FlowPatch = z.strictObject({
  name: z.string().trim().min(1).max(200).optional(),
  description: z.string().max(2000).nullable().optional(),
  cron: z.string().max(200).nullable().optional(),
  timezone: z.string().max(100).nullable().optional(),
  trigger: EventTrigger.nullable().optional(),
  graph: FlowGraph.optional(),
  flowSettings: FlowSettings.nullable().optional(),
  owners: z.array(FlowOwner).max(50).optional(),
});
export type FlowPatch = z.infer<typeof FlowPatch>;

/** Set by the server only; a client that sends them is told so. */
const SERVER_OWNED = ['id', 'tenant', 'status', 'statusReason', 'version', 'createdAt', 'updatedAt', 'links'] as const;

/** The component a sync webhook flow must contain to have something to answer with. */
export const WEBHOOK_REPLY_COMPONENT = 'webhook-reply';
/**
 * The other built-ins, which never answer. A tenant's own (OIH) component may: its
 * `emit('httpReply')` answers the call, so a flow with one is accepted as it is.
 */
const BUILTINS_WITHOUT_REPLY = new Set(['http-request', 'transform', 'filter', 'code', 'split', 'delay', 'log']);

/** The editable part of a flow, complete and valid. */
export interface FlowDefinition {
  name: string;
  description: string | null;
  cron: string | null;
  timezone: string | null;
  trigger: EventTrigger | null;
  graph: FlowGraph;
  flowSettings: FlowSettings;
  owners: Array<{ id: string; type: string }>;
}

/** Whether the tenant has the application and event definition an event trigger names; the problem if not. */
export type EventTriggerCheck = (tenant: string, trigger: EventTrigger) => Promise<string | undefined>;

export type ValidationResult = { ok: true; value: FlowDefinition } | { ok: false; problems: string[] };

/**
 * Validates a create body (`base` undefined) or a patch of `base`, listing every problem: the
 * shape, then the graph's structure, the components and the cron expression of the result,
 * each checked on whatever part is readable.
 */
export async function validateFlowBody(
  tenant: string,
  body: unknown,
  base: FlowDefinition | undefined,
  catalog: ComponentCatalog,
  signingSecretProblem?: SigningSecretCheck,
  eventTriggerProblem?: EventTriggerCheck,
): Promise<ValidationResult> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, problems: ['body: must be a JSON object'] };
  }
  const problems: string[] = [];
  const rest: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const key of SERVER_OWNED) {
    if (key in rest) {
      problems.push(key === 'status' ? 'status: is set by the server; use POST /api/v1/flows/:id/start or /stop' : `${key}: is set by the server`);
      delete rest[key];
    }
  }
  const parsed = base ? FlowPatch.safeParse(rest) : FlowInput.safeParse(rest);
  if (!parsed.success) problems.push(...parsed.error.issues.flatMap(describeIssue));

  // The merged, possibly invalid, result: its structure is checked even when its shape is not.
  const pick = <K extends string>(key: K, fallback: unknown): unknown => (key in rest ? rest[key] : fallback);
  const rawGraph = pick('graph', base?.graph);
  const rawCron = pick('cron', base?.cron ?? null);
  const rawTimezone = pick('timezone', base?.timezone ?? null);
  problems.push(...graphStructureProblems(rawGraph));
  const rawSettings = pick('flowSettings', base?.flowSettings);
  const flowRuntime = typeof rawSettings === 'object' && rawSettings !== null ? (rawSettings as { runtime?: unknown }).runtime : undefined;
  problems.push(...(await componentProblems(tenant, rawGraph, catalog, flowRuntime === 'workers')));
  if (typeof rawCron === 'string') {
    const why = cronProblem(rawCron, typeof rawTimezone === 'string' ? rawTimezone : undefined);
    if (why) problems.push(`cron: ${JSON.stringify(rawCron)} ${why}`);
  } else if (rawCron === null && typeof rawTimezone === 'string') {
    problems.push('timezone: only used with cron; set cron or remove timezone');
  }
  const rawTrigger = pick('trigger', base?.trigger ?? null);
  if (rawTrigger !== null && rawTrigger !== undefined && typeof rawCron === 'string') problems.push('trigger: a flow started by events has no cron; remove one of them');
  if (!parsed.success || problems.length > 0) return { ok: false, problems: dedupe(problems) };

  const def = mergeDefinition(parsed.data, base);
  problems.push(...settingsProblems(def));
  const hooks = def.flowSettings.webhooks;
  if (def.trigger) {
    const why = eventTriggerProblem ? await eventTriggerProblem(tenant, def.trigger) : 'event triggers need the Director, which this process does not run';
    if (why) problems.push(`trigger: ${why}`);
  }
  if (hooks?.secretId && !hooks.secret && signingSecretProblem) {
    const why = await signingSecretProblem(tenant, hooks.secretId);
    if (why) problems.push(`flowSettings.webhooks.secretId: ${why}`);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: def };
}

function mergeDefinition(input: FlowInput | FlowPatch, base: FlowDefinition | undefined): FlowDefinition {
  const orNull = <T>(v: T | null | undefined, fallback: T | null): T | null => (v === undefined ? fallback : v);
  return {
    name: input.name ?? base?.name ?? '',
    description: orNull(input.description, base?.description ?? null),
    cron: orNull(input.cron, base?.cron ?? null),
    timezone: orNull(input.timezone, base?.timezone ?? null),
    trigger: orNull(input.trigger, base?.trigger ?? null),
    graph: input.graph ?? base!.graph,
    flowSettings: orNull(input.flowSettings, base?.flowSettings ?? null) ?? {},
    owners: input.owners ?? base?.owners ?? [],
  };
}

/**
 * Unknown components or functions, asked of the registry for every readable node, and what in
 * the nodes' fields and the edges' expressions the registry refuses to run.
 */
async function componentProblems(tenant: string, graph: unknown, catalog: ComponentCatalog, flowOnWorkers: boolean): Promise<string[]> {
  const g = typeof graph === 'object' && graph !== null ? (graph as { nodes?: unknown; edges?: unknown }) : {};
  const nodes = Array.isArray(g.nodes) ? g.nodes : [];
  const checks = await Promise.all(
    nodes.slice(0, 500).map(async (n: unknown, i) => {
      if (typeof n !== 'object' || n === null) return undefined;
      const { id, componentId, function: fn, fields, nodeSettings } = n as { id?: unknown; componentId?: unknown; function?: unknown; fields?: unknown; nodeSettings?: unknown };
      if (typeof componentId !== 'string' || typeof fn !== 'string' || !componentId || !fn) return undefined;
      // A step on the `workers` runtime names a component its workers announce, not one of the
      // hub's registry: the router checks it against the attached workers when it runs.
      const nodeRuntime = typeof nodeSettings === 'object' && nodeSettings !== null ? (nodeSettings as { runtime?: unknown }).runtime : undefined;
      if (nodeRuntime === 'workers' || (flowOnWorkers && nodeRuntime !== 'local')) return undefined;
      const where = `graph.nodes[${i}]${typeof id === 'string' ? ` (${JSON.stringify(id)})` : ''}`;
      const why = await catalog.checkFunction(tenant, componentId, fn);
      if (why) return `${where}: ${why}`;
      const isFields = typeof fields === 'object' && fields !== null && !Array.isArray(fields);
      // A node without fields is checked too: its component may require some.
      const refused = isFields || fields === undefined ? await catalog.checkFields?.(tenant, componentId, fn, (fields ?? {}) as Record<string, unknown>) : undefined;
      return refused ? `${where}: ${refused}` : undefined;
    }),
  );
  const problems = checks.filter((c): c is string => c !== undefined);
  if (catalog.checkExpression && Array.isArray(g.edges)) {
    g.edges.slice(0, 2000).forEach((e: unknown, i) => {
      const config = typeof e === 'object' && e !== null ? (e as { config?: unknown }).config : undefined;
      if (typeof config !== 'object' || config === null) return;
      for (const key of ['condition', 'mapper'] as const) {
        const source = (config as Record<string, unknown>)[key];
        const refused = typeof source === 'string' ? catalog.checkExpression!(source) : undefined;
        if (refused) problems.push(`graph.edges[${i}].config.${key}: ${refused}`);
      }
    });
  }
  return problems;
}

/** Why secret `id` of `tenant` cannot sign webhooks, or undefined when it can (the secrets module's). */
export type SigningSecretCheck = (tenant: string, id: string) => Promise<string | undefined>;

/**
 * Setting names that hold credentials. flowSettings come back from every read as they were
 * stored, and land in versions and events: credentials belong in the secrets module, referred
 * to by id (`secretId`, a node's `credentialsId`), so such a name is refused rather than kept.
 */
const CREDENTIAL_NAME = /(secret|password|passwd|passphrase|token|apikey|privatekey|accesskey|signingkey|secretkey|credentials?|authorization|cookie)$/;

export function isCredentialName(name: string): boolean {
  return CREDENTIAL_NAME.test(name.toLowerCase().replace(/[^a-z]/g, ''));
}

/** Paths (`flowSettings.x.password`) of credential-looking settings outside `webhooks`, at any depth. */
export function credentialSettingPaths(settings: Record<string, unknown>): string[] {
  const found: string[] = [];
  const walk = (v: unknown, path: string, depth: number): void => {
    if (depth > 20 || typeof v !== 'object' || v === null) return;
    for (const [k, x] of Object.entries(v)) {
      const here = Array.isArray(v) ? `${path}[${k}]` : `${path}.${k}`;
      if (!Array.isArray(v) && isCredentialName(k) && x !== null && x !== '') found.push(here);
      else walk(x, here, depth + 1);
    }
  };
  for (const [k, v] of Object.entries(settings)) if (k !== 'webhooks') walk({ [k]: v }, 'flowSettings', 0);
  return found;
}

function settingsProblems(def: FlowDefinition): string[] {
  const problems: string[] = [];
  const hooks = def.flowSettings.webhooks;
  if (hooks?.auth === 'hmac' && !hooks.secret && !hooks.secretId) {
    problems.push('flowSettings.webhooks.secret: is required when auth is "hmac" (or secretId, naming an apiKey secret)');
  }
  for (const path of credentialSettingPaths(def.flowSettings)) {
    problems.push(`${path}: looks like a credential; store it in the secrets module (POST /api/v1/secrets) and refer to it by id`);
  }
  if (hooks?.respond === 'sync' && !def.graph.nodes.some((n) => n.componentId === WEBHOOK_REPLY_COMPONENT || !BUILTINS_WITHOUT_REPLY.has(n.componentId))) {
    problems.push(`flowSettings.webhooks.respond: "sync" needs a ${WEBHOOK_REPLY_COMPONENT} step in the graph to answer with`);
  }
  return problems;
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown field`);
  }
  const where = formatPath(issue.path) || 'body';
  const message = /received undefined$/.test(issue.message) ? 'is required' : issue.message;
  return [`${where}: ${message}`];
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

interface RawNode {
  index: number;
  id: string;
}
interface RawEdge {
  index: number;
  source: unknown;
  target: unknown;
}

/**
 * The rules a schema cannot express, checked on whatever part of the graph is readable:
 * nodes present, edges joining several nodes, unique ids, edges between existing nodes, no
 * cycle, exactly one start node.
 */
export function graphStructureProblems(graph: unknown): string[] {
  if (typeof graph !== 'object' || graph === null || Array.isArray(graph)) return [];
  const g = graph as { nodes?: unknown; edges?: unknown };
  if (!Array.isArray(g.nodes)) return [];
  const problems: string[] = [];
  const rawEdges: unknown[] = Array.isArray(g.edges) ? g.edges : [];
  if (g.nodes.length === 0) return ['graph.nodes: a flow needs at least one node'];
  if (g.nodes.length > 1 && rawEdges.length === 0) {
    problems.push(`graph.edges: the flow has ${g.nodes.length} nodes but no edges; join them with edges`);
  }

  const nodes: RawNode[] = [];
  const ids = new Set<string>();
  g.nodes.forEach((n, index) => {
    const id = typeof n === 'object' && n !== null ? (n as { id?: unknown }).id : undefined;
    if (typeof id !== 'string' || id === '') return; // the schema reports the missing id
    if (ids.has(id)) problems.push(`graph.nodes[${index}].id: duplicate node id ${JSON.stringify(id)}`);
    else nodes.push({ index, id });
    ids.add(id);
  });

  const edges: RawEdge[] = rawEdges.map((e, index) => {
    const o = typeof e === 'object' && e !== null ? (e as { source?: unknown; target?: unknown }) : {};
    return { index, source: o.source, target: o.target };
  });
  const valid: Array<{ source: string; target: string }> = [];
  for (const e of edges) {
    let ok = true;
    for (const end of ['source', 'target'] as const) {
      const v = e[end];
      if (typeof v !== 'string') {
        ok = false; // the schema reports it
      } else if (!ids.has(v)) {
        ok = false;
        problems.push(`graph.edges[${e.index}].${end}: ${JSON.stringify(v)} is not a node of this flow`);
      }
    }
    if (ok) valid.push({ source: e.source as string, target: e.target as string });
  }

  const cycle = findCycle(nodes.map((n) => n.id), valid);
  if (cycle) problems.push(`graph: the edges form a cycle ${cycle.map((id) => JSON.stringify(id)).join(' → ')}`);

  const targets = new Set(valid.map((e) => e.target));
  const starts = nodes.filter((n) => !targets.has(n.id)).map((n) => n.id);
  const hasEdges = rawEdges.length > 0;
  if (starts.length > 1 && hasEdges) {
    problems.push(`graph: exactly one node may have no incoming edges (the start node, where triggers deliver); found ${starts.map((s) => JSON.stringify(s)).join(', ')}`);
  } else if (starts.length === 0 && nodes.length > 0 && !cycle) {
    problems.push('graph: no start node (a node without incoming edges)');
  }
  return problems;
}

/** One cycle as a closed path (`a → b → a`), or undefined. Iterative DFS: graphs reach 500 nodes. */
function findCycle(ids: string[], edges: Array<{ source: string; target: string }>): string[] | undefined {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    const list = next.get(e.source) ?? [];
    list.push(e.target);
    next.set(e.source, list);
  }
  const state = new Map<string, 1 | 2>(); // 1 on the current path, 2 done
  for (const root of ids) {
    if (state.has(root)) continue;
    const path: string[] = [];
    const stack: Array<{ id: string; i: number }> = [{ id: root, i: 0 }];
    state.set(root, 1);
    path.push(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const children = next.get(top.id) ?? [];
      if (top.i < children.length) {
        const child = children[top.i++]!;
        const s = state.get(child);
        if (s === 1) return [...path.slice(path.indexOf(child)), child];
        if (s === undefined) {
          state.set(child, 1);
          path.push(child);
          stack.push({ id: child, i: 0 });
        }
      } else {
        state.set(top.id, 2);
        path.pop();
        stack.pop();
      }
    }
  }
  return undefined;
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}
