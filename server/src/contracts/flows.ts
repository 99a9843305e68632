/**
 * Shared shapes of the flow plane, used by the flows, webhooks, scheduler and orchestrator
 * modules, the CLI and the web UI. A schema and its inferred type are declared together.
 *
 * Glossary
 * - Flow: a graph of component steps (nodes) joined by edges; started/stopped as a whole.
 * - Node/Step: one component function (`componentId` + `function`) with its `fields`.
 * - Start node: the one node without incoming edges; triggers (webhook, scheduler) send it the
 *   first message of every execution.
 * - Message: `{id, attachments, body, headers, metadata}` (seed 002), plus `query` from webhooks.
 * - Execution: one run of a flow, started by one trigger message.
 * - StepJob: what travels on a step's queue: the message plus where it is in which execution.
 */
import { z } from 'zod';

/** Node ids become part of queue names, so they are restricted to queue-name characters. */
export const NodeId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ -');

export const FlowNode = z.strictObject({
  id: NodeId,
  componentId: z.string().min(1).max(200),
  function: z.string().min(1).max(200),
  name: z.string().max(200).optional(),
  description: z.string().max(2000).optional(),
  credentialsId: z.string().max(200).optional(),
  fields: z.record(z.string(), z.unknown()).optional(),
  nodeSettings: z.record(z.string(), z.unknown()).optional(),
});
export type FlowNode = z.infer<typeof FlowNode>;

export const FlowEdge = z.strictObject({
  id: z.string().max(200).optional(),
  source: z.string().min(1).max(64),
  target: z.string().min(1).max(64),
  config: z
    .strictObject({
      /** JSONata over the message body; the edge is taken when truthy. */
      condition: z.string().max(10_000).optional(),
      /** JSONata over the message body; its result is the body the target receives. */
      mapper: z.string().max(10_000).optional(),
    })
    .optional(),
});
export type FlowEdge = z.infer<typeof FlowEdge>;

export const FlowGraph = z.strictObject({
  nodes: z.array(FlowNode).max(500),
  edges: z.array(FlowEdge).max(2000).default([]),
});
export type FlowGraph = z.infer<typeof FlowGraph>;

/**
 * `flowSettings.webhooks`: how `/hook/:flowId` authenticates callers and answers them.
 * - auth `none`: anyone who knows the URL; `hmac`: Standard Webhooks signature
 *   (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`) with the signing
 *   secret; `bearer`: a token holding `webhooks.execute` in the flow's tenant.
 * - respond `async`: 202 at once; `sync`: wait up to `timeoutMs` for the `webhook-reply` step.
 * The signing secret lives in the secrets module, encrypted; the flow keeps its id (`secretId`).
 * `secret` is how a client hands a new one in: the flows module stores it as a secret the flow
 * owns and keeps only the reference, so no flow, version, event or webhook record holds it.
 */
export const WebhookSettings = z.strictObject({
  auth: z.enum(['none', 'hmac', 'bearer']).default('none'),
  /** Write-only HMAC key: `whsec_<base64>` (Standard Webhooks) or any string of 16+ characters. Read back as `********`. */
  secret: z.string().min(16).max(1000).optional(),
  /** An `apiKey` secret of the tenant whose key signs; set by the server when `secret` is given. */
  secretId: z.string().min(1).max(200).optional(),
  respond: z.enum(['async', 'sync']).default('async'),
  timeoutMs: z.number().int().min(100).max(300_000).default(30_000),
});
export type WebhookSettings = z.infer<typeof WebhookSettings>;

/** Other modules may add their own keys beside `webhooks`. */
export const FlowSettings = z.looseObject({ webhooks: WebhookSettings.optional() });
export type FlowSettings = z.infer<typeof FlowSettings>;

/** What the API shows instead of a stored secret; sent back unchanged, it keeps the secret. */
export const SECRET_MASK = '********';

/** Who owns a flow's webhook signing secret in the secrets module (deleted with the flow). */
export function signingSecretOwner(flowId: string): string {
  return `flow:${flowId}`;
}

/**
 * The flow without a webhook signing secret in clear, for copies that never needed it (flows
 * stored before signing secrets moved to the secrets module carried it in their events).
 */
export function withoutClearWebhookSecret(flow: Flow): Flow {
  const hooks = flow.flowSettings?.webhooks;
  if (typeof hooks !== 'object' || hooks === null || !('secret' in hooks)) return flow;
  const { secret: _dropped, ...rest } = hooks as Record<string, unknown>;
  return { ...flow, flowSettings: { ...flow.flowSettings, webhooks: rest } };
}

/** A flow started by an application's event (issue 12): `application` by id or name, `event` its event definition's name. */
export const EventTrigger = z.strictObject({
  type: z.literal('event'),
  application: z.string().min(1).max(200),
  event: z.string().min(1).max(200),
});
export type EventTrigger = z.infer<typeof EventTrigger>;

export const FlowStatus = z.enum(['inactive', 'starting', 'active', 'stopping']);
export type FlowStatus = z.infer<typeof FlowStatus>;

/** The whole flow as the API returns it and as `flow.starting` carries it. */
export const Flow = z.object({
  id: z.string(),
  tenant: z.string(),
  name: z.string(),
  description: z.string().optional(),
  cron: z.string().optional(),
  timezone: z.string().optional(),
  /** Without it: webhook (no cron) or schedule (cron). */
  trigger: EventTrigger.optional(),
  graph: FlowGraph,
  status: FlowStatus,
  /** Why the last start failed (from `flow.failed`), until the next start. */
  statusReason: z.string().optional(),
  owners: z.array(z.object({ id: z.string(), type: z.string() })),
  flowSettings: z.record(z.string(), z.unknown()).optional(),
  version: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  /** Set by the API on its answers: the URL that triggers the flow (flows without `cron`). */
  links: z.object({ webhook: z.string().optional() }).optional(),
});
export type Flow = z.infer<typeof Flow>;

export const FlowMessage = z.object({
  id: z.string(),
  attachments: z.record(z.string(), z.unknown()).default({}),
  body: z.unknown(),
  headers: z.record(z.string(), z.unknown()).default({}),
  metadata: z.record(z.string(), z.unknown()).default({}),
  query: z.record(z.string(), z.unknown()).optional(),
  /** OIH components: what earlier OIH steps emitted, by step id (sailor's `passthrough`); kept along the flow. */
  passthrough: z.record(z.string(), z.unknown()).optional(),
});
export type FlowMessage = z.infer<typeof FlowMessage>;

export type TriggerKind = 'webhook' | 'schedule' | 'retry' | 'manual' | 'event';

/** A job on a step queue. Triggers create the first one with a fresh executionId. */
export interface StepJob {
  executionId: string;
  flowId: string;
  tenant: string;
  nodeId: string;
  message: FlowMessage;
  trigger: TriggerKind;
  /** Position of this message among its siblings; part of the step run's idempotency key. */
  sequence: number;
  /** Set by triggers only: the flow version the execution runs. */
  flowVersion?: number;
  /** Sync webhooks: a reply is awaited for this execution. */
  awaitsReply?: boolean;
  /**
   * Set by the orchestrator on the jobs it routes (triggers leave it out): where this message is
   * in the execution, e.g. "0.2" = third message emitted by the start node's run. Together with
   * executionId and nodeId it is the step run's idempotency key.
   */
  path?: string;
  /** Set by the orchestrator: how often this step run has rebounded so far. */
  rebounds?: number;
  /** Set by the orchestrator: failed tries of this step run so far (a retry is a new job). */
  retries?: number;
  /** Set by a manual retry: attempts this step run had before it, so its attempt counts on. */
  attemptsBefore?: number;
  /** Set by the orchestrator: bumped by every retry or rebound; older copies are stale. */
  generation?: number;
  /**
   * Set by the orchestrator when the step already failed for good while another job ran it
   * inline: this job only carries the error to the step's dead letters.
   */
  deadLetter?: string;
  /**
   * Set on a job stored for an in-process hand-off (StepHandoff). The hand-off delivers it
   * without this mark; a copy a consumer claims from the queue instead is one whose hand-off did
   * not complete (crash, lease expiry, retry), so the engine treats it as a redelivery.
   */
  handoff?: boolean;
}

/** Every step of every flow has its own durable queue. */
export function stepQueueName(flowId: string, nodeId: string): string {
  return `step.${flowId}.${nodeId}`;
}

/**
 * The name a queue goes by in metrics. A step queue's name holds a tenant's flow id (enough to
 * call an `auth: none` webhook), so all step queues are one series, `step`; other queues
 * (event subscriptions per module, platform work) carry no tenant data and keep their names.
 */
export function queueMetricLabel(queue: string): string {
  if (queue.startsWith('step.')) return 'step';
  // One queue per tenant and command target (modules/router): summed like the step queues.
  return queue.startsWith('router.commands.') ? 'router.commands' : queue;
}

/** The node without incoming edges (validation guarantees exactly one). */
export function startNodeOf(graph: FlowGraph): FlowNode {
  const targets = new Set(graph.edges.map((e) => e.target));
  const start = graph.nodes.find((n) => !targets.has(n.id));
  if (!start) throw new Error('flow graph has no start node');
  return start;
}

/** Flow lifecycle events (seed 002). Payloads: starting/stopping carry the whole flow. */
export const FLOW_EVENTS = {
  starting: 'flow.starting',
  started: 'flow.started',
  stopping: 'flow.stopping',
  stopped: 'flow.stopped',
  failed: 'flow.failed',
} as const;

export interface FlowStartedPayload {
  id: string;
}
export interface FlowFailedPayload {
  id: string;
  reason: string;
}

/** What flows asks of the component registry when validating a graph. */
export interface ComponentCatalog {
  /** Undefined when the function exists; otherwise why not ("unknown component x"). */
  checkFunction(tenant: string, componentId: string, fn: string): Promise<string | undefined>;
  /**
   * What in a node's fields Plexus refuses to run, found without running it (a regular
   * expression RE2 cannot run, a setting the operator's configuration forbids such as
   * `allowPrivateNetwork: true`), naming the field: `fields.expression: …`. Other problems of the
   * fields are reported when the flow starts. Optional: a catalog without it finds nothing.
   */
  checkFields?(tenant: string, componentId: string, fn: string, fields: Record<string, unknown>): Promise<string | undefined>;
  /** The same for a JSONata expression outside a node (an edge's condition or mapper). */
  checkExpression?(source: string): string | undefined;
}

/** The answer of a flow's `webhook-reply` step to a sync webhook call. */
export interface WebhookReply {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** What the webhooks module asks of the execution engine for `respond: "sync"`. */
export interface ReplyWaiter {
  /** Resolves with the reply, or undefined when none came within `timeoutMs`. */
  waitForReply(executionId: string, timeoutMs: number): Promise<WebhookReply | undefined>;
}

/**
 * What a trigger (webhooks) asks of the execution engine to skip the claim of a job it enqueues:
 * a slot on the step consuming `queue` in this process. The trigger enqueues the job invisible
 * for `leaseMs`, then delivers it here once the enqueue committed (or cancels). If this process
 * dies, the lease runs out and any process claims the job as usual.
 */
export interface StepHandoff {
  /** Undefined when the step is not placed in this process, or its buffer is full. */
  reserve(queue: string): StepHandoffTicket | undefined;
}

export interface StepHandoffTicket {
  readonly leaseMs: number;
  deliver(jobId: string, job: StepJob): void;
  cancel(): void;
}
