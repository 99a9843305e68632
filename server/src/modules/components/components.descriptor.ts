/**
 * What a component is, and the contract between a component's code and the execution engine.
 *
 * Glossary
 * - Component: a descriptor (`name`, `version`, `description`, `credentials` schema, `triggers`
 *   and `actions`) plus code. Built-ins ship with Plexus; tenants register their own.
 * - Function: one trigger or action of a component; a flow node names it as
 *   `componentId` + `function` and configures it with `fields`.
 * - Prepared step: a function bound to one node's fields, validated and compiled once when the
 *   flow starts, then run for every message that reaches the node.
 * - Step run: one run of a prepared step on one message; it emits zero or more messages, and may
 *   save a snapshot, ask to be retried later (rebound) or answer a sync webhook (reply).
 */
import { z } from 'zod';
import type { FlowMessage, WebhookReply } from '../../contracts/flows.js';
import type { Logger } from '../../platform/logger.js';

/** A JSON schema, kept as data: descriptors publish it, they are not validated against a meta-schema. */
export const JsonSchema = z.record(z.string(), z.unknown());
export type JsonSchema = z.infer<typeof JsonSchema>;

export const FunctionDescriptor = z.object({
  title: z.string().max(200).optional(),
  description: z.string().max(4000).optional(),
  /** JSON schema of the node's `fields`. */
  fields: JsonSchema,
  /** JSON schema of the message body the function expects, when it has one. */
  inputSchema: JsonSchema.optional(),
  /** JSON schema of the bodies it emits, when it has one. */
  outputSchema: JsonSchema.optional(),
  /** OIH `dynamicMetadata`: the schemas come from the component's getMetaModel(cfg) (POST /api/v1/components/:id/dynamic/getMetaModel). */
  dynamicMetadata: z.boolean().optional(),
});
export type FunctionDescriptor = z.infer<typeof FunctionDescriptor>;

export const ComponentName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'must be 1-100 characters of a-z 0-9 . _ - starting with a letter or digit');

export const ComponentDescriptor = z.object({
  name: ComponentName,
  version: z.string().min(1).max(50),
  title: z.string().max(200).optional(),
  description: z.string().max(4000),
  /** JSON schema of the credential object a node's `credentialsId` must resolve to. */
  credentials: JsonSchema.optional(),
  triggers: z.record(z.string(), FunctionDescriptor),
  actions: z.record(z.string(), FunctionDescriptor),
});
export type ComponentDescriptor = z.infer<typeof ComponentDescriptor>;

/** Where a component's code comes from. */
export type ComponentSource = { kind: 'builtin' } | { kind: 'directory'; path: string } | { kind: 'package'; name: string; path: string };

/** Everything a step run knows about the message in front of it. */
export interface StepContext {
  tenant: string;
  flowId: string;
  nodeId: string;
  executionId: string;
  /** Stable across the retries of this step run (`executionId:nodeId:path`); pass it on to remote APIs. */
  idempotencyKey: string;
  /** 1 on the first try of this step run. */
  attempt: number;
  message: FlowMessage;
  /** The fields of the node's credential (from `credentialsId`), when it has one. */
  credentials: Record<string, unknown> | undefined;
  /** Its type: `basic`, `apiKey`, `oauth2` or `mixed`. */
  credentialsType?: string | undefined;
  /** The node's `credentialsId`, when it has one (OIH components' `updateKeys` write to it). */
  credentialsId?: string | undefined;
  /** The node's saved state from earlier runs, when the step reads one (`usesSnapshot`). */
  snapshot: unknown;
  logger: Logger;
  /**
   * Aborted when the step's time limit (nodeSettings.timeoutMs) is up, with the StepError as its
   * reason: stop the work. The engine starts no retry until the run has ended (or a short grace
   * has passed), so a run that honours it never runs beside its retry.
   */
  signal?: AbortSignal | undefined;
}

export interface EmittedMessage {
  message: FlowMessage;
  /** Deliver to the next steps no sooner than this (the `delay` component). */
  delayMs?: number;
}

export interface StepResult {
  messages: EmittedMessage[];
  /** Present when the step saved state for its next runs. */
  snapshot?: { value: unknown };
  /** The step asks to be run again later on the same message, without counting as a failure. */
  rebound?: { reason: string };
  /** The answer to a sync webhook call waiting for this execution. */
  reply?: WebhookReply;
}

export interface PreparedStep {
  /** Load the node's snapshot before each run. */
  readonly usesSnapshot: boolean;
  /**
   * No effect outside its output (no I/O, no snapshot, no reply), so running it again is
   * harmless: the engine may run it inline in the job that reached it instead of queueing it.
   */
  readonly pure?: boolean;
  run(ctx: StepContext): Promise<StepResult>;
}

/** What preparing a step may use from the hub. */
export interface PrepareEnv {
  logger: Logger;
  /** The node's `nodeSettings.timeoutMs`, when set. */
  timeoutMs?: number | undefined;
  /** The flow the node belongs to (OIH components read its variables with getFlowVariables()). */
  flow?: { id: string; version: number; variables?: Record<string, unknown> | undefined } | undefined;
}

/** One trigger or action, ready to be bound to a node. */
export interface ComponentFunction {
  readonly kind: 'trigger' | 'action';
  readonly descriptor: FunctionDescriptor;
  /** Validates `fields` and compiles what can be compiled; throws StepError(kind 'user') naming the bad field. */
  prepare(fields: Record<string, unknown>, env: PrepareEnv): Promise<PreparedStep>;
  /**
   * What the operator's configuration refuses in a node's `fields` (`fields.x: why`), or undefined.
   * Asked when a flow is saved, so the author hears it at once; `prepare` refuses the same at start
   * (the configuration may have changed since the flow was saved).
   */
  checkPolicy?(fields: Record<string, unknown>): string | undefined;
  /**
   * Asked when a flow is saved: whether what the fields name in the tenant exists (an http-request
   * node's `api.credentialsRuntime`, a Director runtime); the problem, or undefined.
   */
  checkReferences?(tenant: string, fields: Record<string, unknown>): Promise<string | undefined>;
}

export interface Component {
  readonly descriptor: ComponentDescriptor;
  readonly source: ComponentSource;
  /** Why the operator switched this component off; flows using it are refused. */
  readonly disabled?: string;
  fn(name: string): ComponentFunction | undefined;
}

/**
 * A failed step run. `user`: the input or the configuration is wrong, retrying cannot help
 * (4xx, invalid input, an error in user code); `transient`: the outside world failed for now
 * (network, 5xx, 429), retry with backoff, or after `retryAfterMs` when the remote said so.
 */
export class StepError extends Error {
  override readonly name = 'StepError';
  constructor(
    message: string,
    readonly kind: 'user' | 'transient',
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Node.js / undici error codes of a network that failed for now. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/**
 * Classifies anything a step threw. Components written for other hubs throw plain errors, often
 * with an HTTP `status`/`statusCode` or a network `code`; an error we cannot classify is retried,
 * because giving up on a message that a retry would have delivered is the worse mistake.
 */
export function classifyStepError(err: unknown): StepError {
  if (err instanceof StepError) return err;
  const e = err as { message?: unknown; code?: unknown; status?: unknown; statusCode?: unknown; kind?: unknown; cause?: { code?: unknown } } | null;
  const message = err instanceof Error ? err.message : typeof e?.message === 'string' ? e.message : String(err);
  if (e && (e.kind === 'user' || e.kind === 'bug')) return new StepError(message, 'user');
  if (e && e.kind === 'transient') return new StepError(message, 'transient');
  const status = typeof e?.status === 'number' ? e.status : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  if (status !== undefined) return new StepError(message, isTransientStatus(status) ? 'transient' : 'user');
  const code = typeof e?.code === 'string' ? e.code : typeof e?.cause?.code === 'string' ? e.cause.code : undefined;
  if (code && TRANSIENT_CODES.has(code)) return new StepError(message, 'transient');
  return new StepError(message || 'step failed', 'transient');
}

export function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** A message derived from `from` with a new id and body; headers, metadata and attachments travel on. */
export function deriveMessage(from: FlowMessage, body: unknown, id: string): FlowMessage {
  const out: FlowMessage = { id, attachments: from.attachments, body, headers: from.headers, metadata: from.metadata };
  if (from.query) out.query = from.query;
  if (from.passthrough) out.passthrough = from.passthrough;
  return out;
}
