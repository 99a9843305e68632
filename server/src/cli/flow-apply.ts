/**
 * `flows apply` and `flows diff`: flow files are the desired state, keyed by name. Each document
 * is compared with the hub's flow of that name on what a file can say (name, description, cron,
 * timezone, graph, flowSettings, and owners when the file names them); the hub's defaults are
 * applied to the file's side first, so a file that was applied once compares unchanged.
 * `--prune` makes the files the whole truth: flows of the tenant no file names are deleted.
 */
import { createTwoFilesPatch } from 'diff';
import YAML from 'yaml';
import { FlowSettings, SECRET_MASK, type Flow, type FlowStatus } from '../contracts/flows.js';
import { fetchAll, type FlowBody, type PlexusClient } from './client.js';
import { ApiError, CliError, EXIT, type ExitCode } from './errors.js';
import { locateProblems, type FlowDocument } from './flow-files.js';

export type PlanItem =
  | { kind: 'create'; doc: FlowDocument }
  | { kind: 'update'; doc: FlowDocument; current: Flow }
  | { kind: 'unchanged'; doc: FlowDocument; current: Flow }
  | { kind: 'delete'; current: Flow }
  | { kind: 'ambiguous'; doc: FlowDocument; matches: Flow[] };

export type ApplyAction = 'created' | 'updated' | 'unchanged' | 'deleted' | 'failed';

export interface ApplyResult {
  source: string;
  name: string;
  action: ApplyAction;
  id?: string;
  /** Why it failed, or what else happened (restarted). */
  detail?: string;
  problems?: string[];
  exitCode?: ExitCode;
}

/** Compares the documents with the tenant's flows. */
export async function planApply(client: PlexusClient, docs: readonly FlowDocument[], opts: { prune: boolean }): Promise<PlanItem[]> {
  const flows = await fetchAll((p) => client.listFlows({ ...p, sort: 'name' }));
  const byName = new Map<string, Flow[]>();
  for (const f of flows) byName.set(f.name, [...(byName.get(f.name) ?? []), f]);
  const plan: PlanItem[] = docs.map((doc) => {
    const matches = byName.get(doc.name) ?? [];
    if (matches.length > 1) return { kind: 'ambiguous', doc, matches };
    const current = matches[0];
    if (!current) return { kind: 'create', doc };
    return isSameFlow(doc.body, current) ? { kind: 'unchanged', doc, current } : { kind: 'update', doc, current };
  });
  if (opts.prune) {
    const named = new Set(docs.map((d) => d.name));
    for (const f of flows) if (!named.has(f.name)) plan.push({ kind: 'delete', current: f });
  }
  return plan;
}

export interface ApplyOptions {
  /** Stop an active flow, change it, start it again (instead of refusing to touch it). */
  restart: boolean;
  /** Bound on waiting for a flow to stop. */
  timeoutMs: number;
}

/** Carries out one plan item; a refused item becomes a `failed` result, other errors propagate. */
export async function applyItem(client: PlexusClient, item: PlanItem, opts: ApplyOptions): Promise<ApplyResult> {
  switch (item.kind) {
    case 'unchanged':
      return { source: item.doc.source, name: item.doc.name, action: 'unchanged', id: item.current.id };
    case 'ambiguous':
      return {
        source: item.doc.source,
        name: item.doc.name,
        action: 'failed',
        detail: `${item.matches.length} flows on the hub are named ${JSON.stringify(item.doc.name)} (${item.matches.map((m) => m.id).join(', ')}); rename or delete all but one`,
        exitCode: EXIT.conflict,
      };
    case 'create':
      return refusedAsResult(item.doc, async () => {
        const created = await client.createFlow(item.doc.body);
        return { source: item.doc.source, name: item.doc.name, action: 'created', id: created.id };
      });
    case 'update':
      return refusedAsResult(item.doc, async () => {
        const { current, doc } = item;
        const wasRunning = current.status !== 'inactive';
        if (wasRunning && !opts.restart) {
          return {
            source: doc.source,
            name: doc.name,
            action: 'failed',
            id: current.id,
            detail: `the flow is ${current.status} and only an inactive flow can change; stop it first, or apply with --restart`,
            exitCode: EXIT.conflict,
          };
        }
        if (wasRunning) await stopAndWait(client, current.id, opts.timeoutMs);
        const updated = await client.updateFlow(current.id, patchBody(doc.body));
        if (wasRunning) await client.startFlow(current.id);
        return { source: doc.source, name: doc.name, action: 'updated', id: updated.id, ...(wasRunning ? { detail: 'restarted' } : {}) };
      });
    case 'delete': {
      const { current } = item;
      try {
        if (current.status !== 'inactive') await stopAndWait(client, current.id, opts.timeoutMs);
        await client.deleteFlow(current.id);
        return { source: '-', name: current.name, action: 'deleted', id: current.id };
      } catch (err) {
        if (!(err instanceof ApiError) || err.isUnauthenticated) throw err;
        return { source: '-', name: current.name, action: 'failed', id: current.id, detail: err.message, exitCode: err.exitCode };
      }
    }
  }
}

async function refusedAsResult(doc: FlowDocument, run: () => Promise<ApplyResult>): Promise<ApplyResult> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof ApiError) || err.isUnauthenticated) throw err;
    const problems = err.problems.length > 0 ? locateProblems(doc, err.problems) : [`${doc.source}: ${err.message}`];
    return { source: doc.source, name: doc.name, action: 'failed', detail: err.problems.length > 0 ? `${err.problems.length} problem(s)` : err.message, problems, exitCode: err.exitCode };
  }
}

/**
 * A PATCH that makes the flow what the file says: fields the file leaves out are removed
 * (`null`), except owners, which stay as they are unless the file names them.
 */
function patchBody(body: FlowBody): FlowBody {
  return { ...body, description: body.description ?? null, cron: body.cron ?? null, timezone: body.timezone ?? null, flowSettings: body.flowSettings ?? null };
}

export async function stopAndWait(client: PlexusClient, id: string, timeoutMs: number): Promise<void> {
  await client.stopFlow(id);
  await waitForFlowStatus(client, id, 'inactive', timeoutMs);
}

/**
 * Waits until the flow reaches `target`. The API has no change stream for flows, so this polls
 * with a growing interval (0.2 s to 2 s) within `timeoutMs`; a start that fails ends the wait
 * with the hub's reason.
 */
export async function waitForFlowStatus(client: PlexusClient, id: string, target: FlowStatus, timeoutMs: number): Promise<Flow> {
  const deadline = Date.now() + timeoutMs;
  let delayMs = 200;
  for (;;) {
    const flow = await client.getFlow(id);
    if (flow.status === target) return flow;
    if (target === 'active' && flow.statusReason && (flow.status === 'stopping' || flow.status === 'inactive')) {
      throw new CliError(`flow ${flow.name} failed to start: ${flow.statusReason}`);
    }
    if (Date.now() + delayMs > deadline) throw new CliError(`flow ${flow.name} is still ${flow.status} after ${Math.round(timeoutMs / 1000)} s (waiting for ${target})`);
    await new Promise((r) => setTimeout(r, delayMs));
    delayMs = Math.min(2_000, Math.round(delayMs * 1.5));
  }
}

// ---------------------------------------------------------------- comparison

/** The part of a flow a file can state, with the hub's defaults and masks applied. */
export function comparableFlow(src: Record<string, unknown>, withOwners: boolean): Record<string, unknown> {
  const graph = src.graph;
  const g = typeof graph === 'object' && graph !== null && !Array.isArray(graph) ? (graph as Record<string, unknown>) : undefined;
  const view: Record<string, unknown> = {
    name: typeof src.name === 'string' ? src.name.trim() : src.name,
    description: src.description ?? undefined,
    cron: src.cron ?? undefined,
    timezone: src.timezone ?? undefined,
    flowSettings: comparableSettings(src.flowSettings),
    graph: g ? { ...g, edges: g.edges ?? [] } : graph,
  };
  if (withOwners) view.owners = src.owners;
  return canonical(view) as Record<string, unknown>;
}

/**
 * The hub fills in webhook defaults and shows a stored secret as a mask; the file's side gets
 * the same treatment. A secret is write-only, so a change of the secret alone is not seen.
 */
function comparableSettings(raw: unknown): unknown {
  // The secret is compared as present or not; taken out first, as the mask is no valid secret.
  const hooks = (raw as { webhooks?: unknown } | undefined)?.webhooks;
  const hasSecret = typeof hooks === 'object' && hooks !== null && (hooks as { secret?: unknown }).secret !== undefined;
  const withoutSecret = hasSecret ? { ...(raw as object), webhooks: { ...(hooks as object), secret: undefined } } : raw;
  const parsed = FlowSettings.safeParse(withoutSecret ?? {});
  if (!parsed.success) return raw;
  const settings = parsed.data;
  return hasSecret ? { ...settings, webhooks: { ...settings.webhooks, secret: SECRET_MASK } } : settings;
}

export function isSameFlow(body: FlowBody, current: Flow): boolean {
  const withOwners = body.owners !== undefined;
  return JSON.stringify(comparableFlow(body, withOwners)) === JSON.stringify(comparableFlow(hubSide(current, body), withOwners));
}

/**
 * The hub's flow as the file could have said it: a signing secret handed in clear is kept by
 * the hub as a secret of its own, referred to by a `secretId` the file never states.
 */
function hubSide(current: Flow, body: FlowBody): Flow {
  const fileHooks = (body.flowSettings as { webhooks?: { secret?: unknown; secretId?: unknown } } | undefined)?.webhooks;
  const hubHooks = current.flowSettings?.webhooks;
  if (!fileHooks || fileHooks.secret === undefined || fileHooks.secretId !== undefined) return current;
  if (typeof hubHooks !== 'object' || hubHooks === null || !('secretId' in hubHooks)) return current;
  const { secretId: _generated, ...rest } = hubHooks as Record<string, unknown>;
  return { ...current, flowSettings: { ...current.flowSettings, webhooks: rest } };
}

/** Keys in the order people read a flow; the rest alphabetically. */
const KEY_ORDER = ['name', 'id', 'source', 'target', 'componentId', 'function', 'description', 'cron', 'timezone', 'credentialsId', 'condition', 'mapper', 'config', 'fields', 'nodeSettings', 'flowSettings', 'owners', 'graph', 'nodes', 'edges'];

/** Same content, same text: keys ordered, `undefined` dropped (the database reorders JSON keys). */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v !== 'object' || v === null) return v;
  const rank = (k: string): number => {
    const i = KEY_ORDER.indexOf(k);
    return i === -1 ? KEY_ORDER.length : i;
  };
  const keys = Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined);
  keys.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return Object.fromEntries(keys.map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
}

// ---------------------------------------------------------------- diff

export interface DiffEntry {
  name: string;
  source: string;
  change: 'create' | 'update' | 'unchanged' | 'delete' | 'ambiguous';
  id?: string;
  /** Unified diff of the hub's flow (`hub/<name>`) against the file. */
  diff?: string;
}

export function diffOf(item: PlanItem): DiffEntry {
  const yaml = (v: Record<string, unknown> | undefined): string => (v ? YAML.stringify(v) : '');
  switch (item.kind) {
    case 'create':
      return { name: item.doc.name, source: item.doc.source, change: 'create', diff: patch(item.doc.name, item.doc.source, '', yaml(comparableFlow(item.doc.body, true))) };
    case 'update': {
      const withOwners = item.doc.body.owners !== undefined;
      const before = yaml(comparableFlow(hubSide(item.current, item.doc.body), withOwners));
      const after = yaml(comparableFlow(item.doc.body, withOwners));
      return { name: item.doc.name, source: item.doc.source, change: 'update', id: item.current.id, diff: patch(item.doc.name, item.doc.source, before, after) };
    }
    case 'unchanged':
      return { name: item.doc.name, source: item.doc.source, change: 'unchanged', id: item.current.id };
    case 'delete':
      return { name: item.current.name, source: '-', change: 'delete', id: item.current.id, diff: patch(item.current.name, '/dev/null', yaml(comparableFlow(item.current, true)), '') };
    case 'ambiguous':
      return { name: item.doc.name, source: item.doc.source, change: 'ambiguous' };
  }
}

function patch(name: string, source: string, before: string, after: string): string {
  return createTwoFilesPatch(before ? `hub/${name}` : '/dev/null', source, before, after, undefined, undefined, { context: 3 })
    .split('\n')
    .filter((l) => !/^={5,}$/.test(l) && !l.startsWith('Index: '))
    .join('\n');
}
