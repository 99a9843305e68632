/**
 * Components in the format of the Open Integration Hub / elastic.io, run unmodified, as their
 * runner (sailor / ferryman) runs them — but never in the hub's process: every call runs in a
 * child process of the step's tenant (components.oih-pool.ts).
 *
 * A component is a directory with `component.json` (title, description, `credentials.fields`,
 * `triggers` and `actions` each naming its `main` file, `fields`, `metadata.in|out` — inline or a
 * path to a JSON schema file — or `dynamicMetadata`) and those files exporting
 * `process(msg, cfg, snapshot)`. As sailor does, `this` carries `emit(event, payload)`, a
 * bunyan-style `logger`, `getFlowVariables()` and the platform's ids, and we translate:
 * - `data`: a message to the next steps (their `msg.data` is our `body`; `msg.body` too, for
 *   older elastic.io code); the message keeps `passthrough`, the bodies of earlier steps by id;
 * - `error` (or a thrown error, or a rejected promise): the message fails — recorded and
 *   dead-lettered, not retried — unless the error carries an HTTP status 408, 429 or 5xx
 *   (`err.response.status`, `statusCode`, `status`): then it is transient, retried by the engine;
 * - `rebound`: run this message again later (nodeSettings.reboundDelayMs, doubling);
 * - `snapshot` / `updateSnapshot`: the node's saved state, replaced / merged;
 * - `updateKeys`: new OAuth2 tokens (or fields) for the node's credential, saved in the secrets module;
 * - `httpReply`: the answer to a sync webhook call;
 * - `end`: the run is over. A `process` that returns a promise is over when it settles (a
 *   resolved value is emitted as data first). As under sailor, emits that come after that still
 *   count: the step stays open while the component has work pending that could still emit
 *   (timers, requests in flight: the runner tells), up to the step's time limit; a component
 *   that ends with nothing pending ends its step at once.
 * `cfg` is the node's `fields` merged with its credential under the component's field names.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { FlowMessage, WebhookReply } from '../../contracts/flows.js';
import { AppError } from '../../platform/errors.js';
import { createLogger, type Logger } from '../../platform/logger.js';
import { nonPublicRangeOf } from '../../platform/outbound/index.js';
import {
  ComponentName,
  StepError,
  deriveMessage,
  isTransientStatus,
  type Component,
  type ComponentDescriptor,
  type ComponentFunction,
  type ComponentSource,
  type FunctionDescriptor,
  type JsonSchema,
  type StepContext,
  type StepResult,
} from './components.descriptor.js';
import { credentialProblem, toCfg } from './components.oih-cfg.js';
import { installOihComponent } from './components.oih-install.js';
import { emittedName } from './components.oih-typescript.js';
import { OihPool, type OihCall, type OihDone, type OihErrorInfo } from './components.oih-pool.js';

export { installOihComponent, type InstallReport } from './components.oih-install.js';
export { OihPool, type OihPoolOptions } from './components.oih-pool.js';

/** How long a `process` that neither returns a promise nor emits `end` may run. */
const DEFAULT_TIMEOUT_MS = 60_000;
/**
 * A run that is over but still has work pending (a timer, a request in flight) is held for its
 * late emits until this long before its time limit at most (a tenth of the limit when that is less).
 */
const HOLD_MARGIN_MS = 250;
/** Lifecycle and editor calls (verifyCredentials, select models, startup, shutdown). */
const LIFECYCLE_TIMEOUT_MS = 30_000;

const OihField: z.ZodType<OihField> = z.lazy(() =>
  z
    .object({
      label: z.string().optional(),
      required: z.boolean().optional(),
      viewClass: z.string().optional(),
      note: z.string().optional(),
      placeholder: z.string().optional(),
      type: z.string().optional(),
      // An object or array of choices, or the name of a select-model function of the component.
      model: z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
      fields: z.record(z.string(), OihField).optional(),
    })
    .loose(),
);
interface OihField {
  label?: string | undefined;
  required?: boolean | undefined;
  viewClass?: string | undefined;
  note?: string | undefined;
  placeholder?: string | undefined;
  type?: string | undefined;
  model?: string | Record<string, unknown> | unknown[] | undefined;
  fields?: Record<string, OihField> | undefined;
  [k: string]: unknown;
}

const SchemaOrPath = z.union([z.record(z.string(), z.unknown()), z.string().min(1)]);

const OihFunction = z
  .object({
    main: z.string().min(1),
    title: z.string().optional(),
    description: z.string().optional(),
    type: z.string().optional(),
    fields: z.record(z.string(), OihField).optional(),
    dynamicMetadata: z.union([z.boolean(), z.string()]).optional(),
    metadata: z.object({ in: SchemaOrPath.optional(), out: SchemaOrPath.optional() }).loose().optional(),
  })
  .loose();

const OihComponentJson = z
  .object({
    name: z.string().optional(),
    title: z.string().optional(),
    description: z.string().optional(),
    version: z.string().optional(),
    credentials: z.object({ fields: z.record(z.string(), OihField).optional(), verifier: z.string().optional() }).loose().optional(),
    triggers: z.record(z.string(), OihFunction).optional(),
    actions: z.record(z.string(), OihFunction).optional(),
  })
  .loose();
type OihComponentJson = z.infer<typeof OihComponentJson>;
type OihFunction = z.infer<typeof OihFunction>;

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array']);

/** View classes whose value has one JSON type; any other view class leaves the type open. */
const VIEW_TYPES: Record<string, string> = {
  textfieldview: 'string',
  textareaview: 'string',
  passwordfieldview: 'string',
  selectview: 'string',
  selectpropertyview: 'string',
  codefieldview: 'string',
  jsonataview: 'string',
  checkbox: 'boolean',
  checkboxview: 'boolean',
  multiselectview: 'array',
  numberfieldview: 'number',
  oauthfieldview: 'object',
  httpauthview: 'object',
  restapiview: 'object',
  jsonview: 'object',
  mapperview: 'object',
};

/**
 * The JSON type of a field: its own `type`, else what its view class edits; undefined when
 * neither says (a view class Plexus does not know may edit anything: no type is imposed).
 */
function typeOf(f: OihField): string | undefined {
  if (f.type && TYPES.has(f.type)) return f.type;
  if (f.fields) return 'object';
  return VIEW_TYPES[(f.viewClass ?? '').toLowerCase()];
}

/** OIH describes fields by view class; we publish them as a JSON schema with their real types. */
function fieldsToJsonSchema(fields: Record<string, OihField> | undefined): JsonSchema {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, f] of Object.entries(fields ?? {})) {
    const type = typeOf(f);
    const prop: Record<string, unknown> = f.fields ? fieldsToJsonSchema(f.fields) : type ? { type } : {};
    if (f.label) prop.title = f.label;
    if (f.note ?? f.placeholder) prop.description = f.note ?? f.placeholder;
    if (typeof f.model === 'string') prop['x-model'] = f.model;
    else if (f.model && !Array.isArray(f.model)) {
      if (type === 'array') prop.items = { type: 'string', enum: Object.keys(f.model) };
      else prop.enum = Object.keys(f.model);
    } else if (Array.isArray(f.model) && f.model.every((m) => typeof m === 'string')) {
      if (type === 'array') prop.items = { type: 'string', enum: f.model };
      else prop.enum = f.model;
    }
    if (f.viewClass) prop['x-viewClass'] = f.viewClass;
    properties[name] = prop;
    if (f.required) required.push(name);
  }
  return { type: 'object', properties, ...(required.length ? { required } : {}) };
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw AppError.invalid(`${what} not found`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw AppError.invalid(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function nameFrom(raw: string): string {
  return raw.replace(/^@[^/]+\//, '').toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 100);
}

function inside(dir: string, rel: string, what: string): string {
  const file = path.resolve(dir, rel);
  if (file !== dir && !file.startsWith(dir + path.sep)) throw AppError.invalid(`component.json: ${what} points outside the component directory`);
  return file;
}

/** The `main` of a function, which must stay inside the component directory. */
function resolveMain(dir: string, main: string, fnName: string, mustExist: boolean): string {
  // A TypeScript main runs from what registration transpiled beside it (components.oih-typescript.ts).
  const file = emittedName(inside(dir, main, `${fnName}.main`));
  const candidates = [file, `${file}.js`, `${file}.cjs`, `${file}.mjs`, path.join(file, 'index.js')];
  const found = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
  if (!found && mustExist) throw AppError.invalid(`component.json: ${fnName}.main ${main} not found`);
  return found ?? file;
}

/** `metadata.in|out`: inline, or a JSON schema file relative to the component. */
function schemaOf(dir: string, value: unknown, what: string): JsonSchema | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return value as JsonSchema;
  const parsed = readJson(inside(dir, value, what), `${what} (${value})`);
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw AppError.invalid(`${what} (${value}) is not a JSON schema object`);
  return parsed as JsonSchema;
}

export interface OihDefinition {
  descriptor: ComponentDescriptor;
  /** function name → absolute path of its main file */
  mains: Record<string, { kind: 'trigger' | 'action'; file: string }>;
  /** The component's folder. */
  dir?: string;
  /** The credential fields component.json declares (what `cfg` must hold). */
  credentialFields?: Record<string, { required: boolean; type: string }>;
  /** verifyCredentials: the file exporting it, when the component has one. */
  verifier?: string;
}

/**
 * Reads and checks a component directory; throws AppError VALIDATION_FAILED saying what is wrong.
 * `requireMains: false` accepts main files that do not exist yet (before the component's build).
 */
export function readOihComponent(dir: string, opts: { requireMains?: boolean } = {}): OihDefinition {
  const requireMains = opts.requireMains !== false;
  const raw = OihComponentJson.safeParse(readJson(path.join(dir, 'component.json'), 'component.json'));
  if (!raw.success) throw AppError.invalid(`component.json: ${raw.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const pkg = fs.existsSync(path.join(dir, 'package.json')) ? (readJson(path.join(dir, 'package.json'), 'package.json') as { name?: unknown; version?: unknown; description?: unknown }) : {};
  const json: OihComponentJson = raw.data;
  const name = nameFrom(json.name ?? (typeof pkg.name === 'string' ? pkg.name : path.basename(dir)));
  const parsedName = ComponentName.safeParse(name);
  if (!parsedName.success) throw AppError.invalid(`component name ${JSON.stringify(name)} ${parsedName.error.issues[0]?.message}`);
  const mains: OihDefinition['mains'] = {};
  const describe = (kind: 'trigger' | 'action', defs: Record<string, OihFunction> | undefined): Record<string, FunctionDescriptor> => {
    const out: Record<string, FunctionDescriptor> = {};
    for (const [fnName, def] of Object.entries(defs ?? {})) {
      if (mains[fnName]) throw AppError.invalid(`component.json: ${fnName} is both a trigger and an action`);
      mains[fnName] = { kind, file: resolveMain(dir, def.main, fnName, requireMains) };
      const inputSchema = schemaOf(dir, def.metadata?.in, `${kind}s.${fnName}.metadata.in`);
      const outputSchema = schemaOf(dir, def.metadata?.out, `${kind}s.${fnName}.metadata.out`);
      out[fnName] = {
        ...(def.title ? { title: def.title } : {}),
        ...(def.description ? { description: def.description } : {}),
        fields: fieldsToJsonSchema(def.fields),
        ...(inputSchema ? { inputSchema } : {}),
        ...(outputSchema ? { outputSchema } : {}),
        ...(def.dynamicMetadata !== undefined && def.dynamicMetadata !== false ? { dynamicMetadata: true } : {}),
      };
    }
    return out;
  };
  const triggers = describe('trigger', json.triggers);
  const actions = describe('action', json.actions);
  if (Object.keys(mains).length === 0) throw AppError.invalid('component.json declares no triggers and no actions');
  const credentialFields: NonNullable<OihDefinition['credentialFields']> = {};
  for (const [field, f] of Object.entries(json.credentials?.fields ?? {})) credentialFields[field] = { required: f.required === true, type: typeOf(f) ?? 'any' };
  // elastic.io's convention: verifyCredentials.js at the root, unless component.json names another file.
  const verifierPath = json.credentials?.verifier ? emittedName(inside(dir, json.credentials.verifier, 'credentials.verifier')) : path.join(dir, 'verifyCredentials');
  const verifier = [verifierPath, `${verifierPath}.js`, `${verifierPath}.cjs`, `${verifierPath}.mjs`].find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
  return {
    descriptor: {
      name,
      version: json.version ?? (typeof pkg.version === 'string' ? pkg.version : '0.0.0'),
      ...(json.title ? { title: json.title } : {}),
      description: json.description ?? (typeof pkg.description === 'string' ? pkg.description : ''),
      ...(json.credentials?.fields ? { credentials: fieldsToJsonSchema(json.credentials.fields) } : {}),
      triggers,
      actions,
    },
    mains,
    dir,
    credentialFields,
    ...(verifier ? { verifier } : {}),
  };
}

/**
 * Installs the component's own npm dependencies (and builds it) when it needs it; true when it
 * did. Kept for callers of the first version; `installOihComponent` reports what it did.
 */
export async function installOihDependencies(dir: string, logger: Logger): Promise<boolean> {
  const report = await installOihComponent(dir, logger);
  return report.installed || report.built;
}

// ------------------------------------------------------------------ running

/** What the hub gives OIH components beyond their process (all optional: a worker may run them bare). */
export interface OihRuntime {
  pool: OihPool;
  /** ELASTICIO_API_* and ELASTICIO_OBJECT_STORAGE_* for one step (URLs and tokens scoped to it). */
  services?(scope: OihScope): Record<string, string>;
  /** Saves the keys a component emitted with `updateKeys` into the node's credential. */
  updateKeys?(scope: OihScope, keys: Record<string, unknown>): Promise<void>;
  /** startup(cfg)'s data for the node in this flow run, calling `startup` once when there is none. */
  startupData?(scope: OihScope, node: { fields: Record<string, unknown> }, runStartup: () => Promise<unknown>): Promise<unknown>;
}

/** Who a call runs for. */
export interface OihScope {
  tenant: string;
  flowId: string;
  nodeId: string;
  executionId?: string | undefined;
  componentId: string;
  fn: string;
  /** The node's credential, when it has one. */
  credentialsId?: string | undefined;
  credentialsType?: string | undefined;
}

let defaultPool: OihPool | undefined;

/** For callers that give no runtime (a worker process): a pool of its own, public network only. */
function defaultRuntime(dir: string | undefined, logger: Logger): OihRuntime {
  defaultPool ??= new OihPool({
    size: 4,
    perTenant: 2,
    readRoots: () => (dir ? [dir] : []),
    checkAddress: (_tenant, _host, address) => nonPublicRangeOf(address),
    logger,
  });
  return { pool: defaultPool };
}

/** Stops the processes of the pool used by callers that gave no runtime (a worker shutting down). */
export async function closeDefaultOihPool(): Promise<void> {
  const pool = defaultPool;
  defaultPool = undefined;
  await pool?.close();
}


/** The error a component emitted or threw, as a step failure: transient only for 408, 429, 5xx. */
export function oihStepError(e: OihErrorInfo): StepError {
  const status = e.status;
  const text = status !== undefined && !e.message.includes(String(status)) ? `${e.message} (HTTP ${status})` : e.message;
  if (status !== undefined && isTransientStatus(status)) {
    const seconds = e.retryAfter !== undefined ? Number(e.retryAfter) : NaN;
    return new StepError(text, 'transient', Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined);
  }
  return new StepError(text, 'user');
}

/** Values of the credential (and tokens of the step) that must never reach a log line. */
function collectSecrets(value: unknown, out: Set<string>): void {
  if (typeof value === 'string') {
    if (value.length >= 4) out.add(value);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) collectSecrets(v, out);
  }
}

const SENSITIVE_KEY = /pass(word|phrase)?|secret|token|api[-_]?key|authorization|cookie|credential/i;

/** A copy with every secret value replaced, and fields named like secrets masked. */
export function redact(value: unknown, secrets: ReadonlySet<string>, depth = 0): unknown {
  if (typeof value === 'string') {
    let out = value;
    for (const s of secrets) if (out.includes(s)) out = out.split(s).join('[REDACTED]');
    return out;
  }
  if (!value || typeof value !== 'object' || depth > 20) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SENSITIVE_KEY.test(k) && v !== null && typeof v !== 'object' ? '[REDACTED]' : redact(v, secrets, depth + 1);
  return out;
}

interface OihMessage {
  id: string;
  data: unknown;
  attachments: Record<string, unknown>;
  metadata: Record<string, unknown>;
  headers: Record<string, unknown>;
  query?: Record<string, unknown>;
  passthrough: Record<string, unknown>;
  stepId: string;
}

function toOihMessage(m: FlowMessage, nodeId: string): OihMessage {
  const out: OihMessage = { id: m.id, data: m.body, attachments: m.attachments, metadata: m.metadata, headers: m.headers, passthrough: m.passthrough ?? {}, stepId: nodeId };
  if (m.query) out.query = m.query;
  return out;
}

/** What a component emitted as data, as our message: `data`, else `body`, else the object itself. */
function fromOihMessage(input: FlowMessage, emitted: unknown, nodeId: string): FlowMessage {
  const e = emitted as { data?: unknown; body?: unknown; attachments?: unknown; metadata?: unknown; headers?: unknown } | null;
  const isObject = e !== null && typeof e === 'object' && !Array.isArray(e);
  const body = isObject && 'data' in e ? e.data : isObject && 'body' in e ? e.body : emitted;
  const out = deriveMessage(input, body === undefined ? null : body, randomUUID());
  if (isObject && e.attachments && typeof e.attachments === 'object') out.attachments = e.attachments as Record<string, unknown>;
  if (isObject && e.metadata && typeof e.metadata === 'object') out.metadata = { ...input.metadata, ...(e.metadata as Record<string, unknown>) };
  // sailor's passthrough: what each step emitted, by step id, travels with the message.
  out.passthrough = { ...(input.passthrough ?? {}), [nodeId]: { body: out.body, ...(isObject && e.headers && typeof e.headers === 'object' ? { headers: e.headers } : {}) } };
  return out;
}

function toReply(payload: unknown): WebhookReply {
  const p = (payload ?? {}) as { statusCode?: unknown; status?: unknown; headers?: unknown; body?: unknown };
  const status = typeof p.statusCode === 'number' ? p.statusCode : typeof p.status === 'number' ? p.status : 200;
  const headers: Record<string, string> = {};
  if (p.headers && typeof p.headers === 'object') for (const [k, v] of Object.entries(p.headers)) headers[k.toLowerCase()] = String(v);
  return { status, headers, body: p.body ?? null };
}

/** The ELASTICIO_* variables of a step, as sailor sets them. */
function platformEnv(scope: OihScope, runtime: OihRuntime): Record<string, string> {
  return {
    ELASTICIO_FLOW_ID: scope.flowId,
    ELASTICIO_TASK_ID: scope.flowId,
    ELASTICIO_STEP_ID: scope.nodeId,
    ELASTICIO_EXEC_ID: scope.executionId ?? '',
    ELASTICIO_WORKSPACE_ID: scope.tenant,
    ELASTICIO_CONTRACT_ID: scope.tenant,
    ELASTICIO_USER_ID: scope.tenant,
    ELASTICIO_COMPONENT_ID: scope.componentId,
    ELASTICIO_FUNCTION: scope.fn,
    ...(runtime.services?.(scope) ?? {}),
  };
}

/** The hub-side logger a component's lines go to: its ids bound, secrets redacted. */
function componentLog(log: Logger, secrets: ReadonlySet<string>) {
  return (level: string, msg: string, fields: Record<string, unknown>): void => {
    const lvl = (['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(level) ? level : 'info') as 'info';
    log[lvl]({ component: redact(fields, secrets) }, redact(msg, secrets) as string);
  };
}

export interface OihFunctionContext {
  def: OihDefinition;
  runtime: OihRuntime;
  componentId: string;
  fnName: string;
}

/** Runs one lifecycle or editor function of a component file in the tenant's runner. */
export async function callOihFunction(
  runtime: OihRuntime,
  scope: OihScope,
  file: string,
  fn: OihCall['fn'],
  args: OihCall['args'],
  log: Logger,
  exportName?: string,
): Promise<OihDone> {
  const secrets = new Set<string>();
  collectSecrets(args.cfg, secrets);
  const env = platformEnv(scope, runtime);
  for (const [k, v] of Object.entries(env)) if (/KEY|TOKEN/.test(k)) secrets.add(v);
  const session = await runtime.pool.open(
    { tenant: scope.tenant, fn, file, root: rootOf(runtime, file), ...(exportName ? { exportName } : {}), args, env, self: { ids: idsOf(scope), flowVariables: {} }, timeoutMs: LIFECYCLE_TIMEOUT_MS },
    { onEmit: () => undefined, onLog: componentLog(log.child({ componentId: scope.componentId, call: fn }), secrets) },
  );
  try {
    return await session.done;
  } finally {
    session.release();
  }
}

/** The component folder a file belongs to: the nearest folder up with a component.json. */
function rootOf(_runtime: OihRuntime, file: string): string {
  let dir = path.dirname(file);
  while (dir !== path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'component.json'))) return dir;
    dir = path.dirname(dir);
  }
  return path.dirname(file);
}

function idsOf(scope: OihScope): Record<string, string> {
  return {
    flowId: scope.flowId,
    stepId: scope.nodeId,
    nodeId: scope.nodeId,
    ...(scope.executionId ? { execId: scope.executionId, executionId: scope.executionId } : {}),
    workspaceId: scope.tenant,
    tenantId: scope.tenant,
    componentId: scope.componentId,
  };
}

function oihFunction(kind: 'trigger' | 'action', descriptor: FunctionDescriptor, file: string, fx: OihFunctionContext): ComponentFunction {
  return {
    kind,
    descriptor,
    async prepare(fields, env) {
      if (!fs.existsSync(file)) throw new StepError(`${fx.fnName}: main file ${path.basename(file)} not found`, 'user');
      const timeoutMs = env.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const runtime = fx.runtime;
      const flowVariables = (env.flow?.variables ?? {}) as Record<string, unknown>;
      return {
        // Any OIH component may read its snapshot; there is no way to tell from outside.
        usesSnapshot: true,
        async run(ctx) {
          // The engine's time limit runs from here: a run held for late emits must end before it.
          const startedAt = Date.now();
          const missing = credentialProblem(fx.def.credentialFields ?? {}, fields, ctx.credentials, ctx.credentialsType);
          if (missing) throw new StepError(missing, 'user');
          const cfg = toCfg(fields, ctx.credentials, ctx.credentialsType, fx.def.credentialFields ?? {});
          const scope: OihScope = {
            tenant: ctx.tenant,
            flowId: ctx.flowId,
            nodeId: ctx.nodeId,
            executionId: ctx.executionId,
            componentId: fx.componentId,
            fn: fx.fnName,
            credentialsId: ctx.credentialsId,
            credentialsType: ctx.credentialsType,
          };
          const log = ctx.logger.child({ flowId: ctx.flowId, executionId: ctx.executionId, nodeId: ctx.nodeId, componentId: fx.componentId });
          const secrets = new Set<string>();
          collectSecrets(ctx.credentials, secrets);
          const stepEnv = platformEnv(scope, runtime);
          for (const [k, v] of Object.entries(stepEnv)) if (/KEY|TOKEN/.test(k)) secrets.add(v);
          let startupData: unknown;
          if (runtime.startupData) {
            startupData = await runtime.startupData(scope, { fields }, async () => {
              const done = await callOihFunction(runtime, scope, file, 'startup', { cfg }, log);
              if (!done.ok) throw oihStepError(done.error);
              return done.value;
            });
          }
          return runProcess({ ctx, cfg, scope, log, secrets, stepEnv, startupData, flowVariables, timeoutMs, startedAt, file, root: fx.def.dir ?? path.dirname(file), runtime });
        },
      };
    },
  };
}

interface ProcessRun {
  ctx: StepContext;
  cfg: Record<string, unknown>;
  scope: OihScope;
  log: Logger;
  secrets: Set<string>;
  stepEnv: Record<string, string>;
  startupData: unknown;
  flowVariables: Record<string, unknown>;
  timeoutMs: number;
  /** When the engine called run: the time limit counts from there. */
  startedAt: number;
  file: string;
  root: string;
  runtime: OihRuntime;
}

/** One `process` call: collects what it emits until it is over, and turns that into a step result. */
async function runProcess(p: ProcessRun): Promise<StepResult> {
  const { ctx, scope, log } = p;
  const result: StepResult = { messages: [] };
  let snapshot = ctx.snapshot;
  let failure: StepError | undefined;
  let ended = false;
  let done: OihDone | undefined;
  const pendingUpdates: Promise<void>[] = [];
  let wake: (() => void) | undefined;
  let gone: StepError | undefined;
  let quiet = false;
  let holdOver = false;
  let resolvedAt = 0;
  const poke = (): void => wake?.();
  const onEmit = (event: string, payload: unknown): void => {
    switch (event) {
      case 'data':
        result.messages.push({ message: fromOihMessage(ctx.message, payload, ctx.nodeId) });
        break;
      case 'error':
        failure ??= oihStepError(payload as OihErrorInfo);
        break;
      case 'rebound':
        result.rebound ??= { reason: (payload as OihErrorInfo | null)?.message || 'rebound' };
        break;
      case 'snapshot':
        snapshot = payload;
        result.snapshot = { value: payload };
        break;
      case 'updateSnapshot': {
        const base = snapshot && typeof snapshot === 'object' ? (snapshot as Record<string, unknown>) : {};
        snapshot = { ...base, ...(payload && typeof payload === 'object' ? (payload as Record<string, unknown>) : {}) };
        result.snapshot = { value: snapshot };
        break;
      }
      case 'updateKeys':
        if (payload && typeof payload === 'object' && p.runtime.updateKeys) {
          pendingUpdates.push(p.runtime.updateKeys(scope, payload as Record<string, unknown>).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not save the keys a component emitted (updateKeys)')));
        }
        break;
      case 'httpReply':
        result.reply = toReply(payload);
        break;
      case 'end':
        ended = true;
        break;
      default:
        log.debug({ event }, 'component emitted an event Plexus does not use');
    }
    poke();
  };
  const session = await p.runtime.pool.open(
    {
      tenant: ctx.tenant,
      fn: 'process',
      file: p.file,
      root: p.root,
      args: { msg: toOihMessage(ctx.message, ctx.nodeId), cfg: p.cfg, snapshot: ctx.snapshot ?? {}, startupData: p.startupData },
      env: p.stepEnv,
      self: { ids: idsOf(scope), flowVariables: p.flowVariables },
      timeoutMs: p.timeoutMs,
    },
    {
      onEmit,
      onLog: componentLog(log, p.secrets),
      onGone: (err) => {
        gone ??= err;
        poke();
      },
      onQuiet: () => {
        quiet = true;
        poke();
      },
    },
  );
  // A run that is over but still has work pending is held for its late emits until just before
  // the time limit (the pool's timer and the engine's signal both fire at the limit itself).
  const holdUntil = p.startedAt + p.timeoutMs - Math.min(HOLD_MARGIN_MS, Math.floor(p.timeoutMs / 10));
  let over = false;
  // The step's time limit ends the run now, with the limit's error, and kills its runner: the
  // retry never runs beside it. Emits that were still to come are lost with the process. A run
  // that was over and only held for late emits ends as it is.
  const signal = ctx.signal;
  const onAbort = (): void => {
    if (over) {
      holdOver = true;
    } else {
      gone ??= signal?.reason instanceof StepError ? signal.reason : new StepError('component: stopped at the step time limit', 'transient');
      session.abort();
    }
    poke();
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  try {
    session.done.then(
      (d) => {
        done = d;
        // The resolved value comes before what the run emits after it settled.
        resolvedAt = result.messages.length;
        poke();
      },
      () => poke(),
    );
    // Wait until the run is over: its promise settled, or (callback style) it emitted end, error
    // or rebound. Then, as under sailor, what it emits later still counts: the step stays open
    // while the component has work pending that could emit (the runner says `quiet` when it has
    // none, at once in the common case), up to the time limit.
    for (;;) {
      if (gone) throw gone;
      const d: OihDone | undefined = done;
      over = d !== undefined && (!d.ok || d.isAsync || ended || failure !== undefined || result.rebound !== undefined);
      if (over) {
        // A failed or rebounded message keeps nothing it emits later: no reason to hold it past its end.
        if (!d!.ok || quiet || holdOver || ((failure !== undefined || result.rebound !== undefined) && ended)) break;
        const left = holdUntil - Date.now();
        if (left <= 0) {
          log.info({ timeoutMs: p.timeoutMs }, 'OIH component still had work pending at its step time limit; what it emits later is dropped');
          break;
        }
        await sleepOrWake(left, (w) => (wake = w));
        continue;
      }
      // Not over: wait for the next emit (or for done, until it came); the pool's timer ends a call that never is.
      const nextEmit = new Promise<false>((resolve) => (wake = () => resolve(false)));
      const settled = await (d === undefined ? Promise.race([session.done.then(() => false, (err: unknown) => err), nextEmit]) : nextEmit);
      if (settled !== false) throw gone ?? settled;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    session.release();
  }
  await Promise.all(pendingUpdates);
  const d = done as OihDone | undefined;
  if (d && !d.ok) failure ??= oihStepError(d.error);
  if (failure) throw failure;
  if (result.rebound) return result;
  if (d?.ok && d.isAsync && d.value !== undefined && d.value !== null && !ended) result.messages.splice(resolvedAt, 0, { message: fromOihMessage(ctx.message, d.value, ctx.nodeId) });
  return result;
}

function sleepOrWake(ms: number, setWake: (w: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, Math.max(1, ms));
    setWake(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** A component object over a checked OIH directory; `runtime`: the hub's pool and services. */
export function oihComponent(def: OihDefinition, source: ComponentSource, runtime?: OihRuntime, logger?: Logger): Component {
  const rt = runtime ?? defaultRuntime(def.dir, logger ?? createLogger('silent'));
  const fns = new Map<string, ComponentFunction>();
  for (const [name, { kind, file }] of Object.entries(def.mains)) {
    const d = kind === 'trigger' ? def.descriptor.triggers[name] : def.descriptor.actions[name];
    if (d) fns.set(name, oihFunction(kind, d, file, { def, runtime: rt, componentId: def.descriptor.name, fnName: name }));
  }
  return { descriptor: def.descriptor, source, fn: (name) => fns.get(name) };
}


function runtimeFor(def: OihDefinition, runtime: OihRuntime | undefined, logger: Logger): OihRuntime {
  return runtime ?? defaultRuntime(def.dir, logger);
}

function editorScope(def: OihDefinition, tenant: string, fn: string): OihScope {
  return { tenant, flowId: '', nodeId: '', componentId: def.descriptor.name, fn };
}

/** Loads every main file in a runner of the tenant: refuses one that does not load or exports no process. */
export async function checkOihComponent(def: OihDefinition, tenant: string, runtime: OihRuntime | undefined, logger: Logger): Promise<void> {
  const rt = runtimeFor(def, runtime, logger);
  for (const [fnName, { file }] of Object.entries(def.mains)) {
    let done: OihDone;
    try {
      done = await callOihFunction(rt, editorScope(def, tenant, fnName), file, 'check', { cfg: {} }, logger);
    } catch (err) {
      throw AppError.invalid(`${fnName}: cannot be loaded: ${(err as Error).message}`);
    }
    if (!done.ok) throw AppError.invalid(`${fnName}: cannot be loaded: ${done.error.message}`);
    const exports = (done.value as { exports?: string[] } | null)?.exports ?? [];
    if (!exports.includes('process')) throw AppError.invalid(`${fnName}: cannot be loaded: ${path.basename(file)} exports no process(msg, cfg, snapshot) function`);
  }
}

/** The outcome of verifyCredentials, as elastic.io's UI reads it. */
export interface VerifyOutcome {
  verified: boolean;
  reason?: string;
}

/**
 * Runs the component's verifyCredentials(cfg) in a runner of the tenant. A component without
 * one is verified (as on elastic.io); a thrown error or `{verified: false}` is not.
 */
export async function verifyOihCredentials(def: OihDefinition, tenant: string, cfg: Record<string, unknown>, runtime: OihRuntime | undefined, logger: Logger): Promise<VerifyOutcome> {
  if (!def.verifier) return { verified: true, reason: 'the component has no verifyCredentials' };
  const done = await callOihFunction(runtimeFor(def, runtime, logger), editorScope(def, tenant, 'verifyCredentials'), def.verifier, 'verifyCredentials', { cfg }, logger);
  if (!done.ok) return { verified: false, reason: done.error.message };
  if (done.missing) return { verified: true, reason: 'the component has no verifyCredentials' };
  const v = done.value;
  if (typeof v === 'boolean') return { verified: v };
  if (v && typeof v === 'object' && 'verified' in v) {
    const o = v as { verified?: unknown; reason?: unknown };
    return { verified: o.verified === true, ...(typeof o.reason === 'string' ? { reason: o.reason } : {}) };
  }
  // Old verifiers call back with nothing and throw on failure.
  return { verified: true };
}

/**
 * Runs a metadata or select-model function (`getMetaModel`, or a field's `model`) of one of the
 * component's triggers or actions: the one named, else the first whose file exports it.
 */
export async function callOihDynamic(
  def: OihDefinition,
  tenant: string,
  functionName: string,
  of: string | undefined,
  cfg: Record<string, unknown>,
  runtime: OihRuntime | undefined,
  logger: Logger,
): Promise<unknown> {
  const rt = runtimeFor(def, runtime, logger);
  const candidates = of !== undefined ? Object.entries(def.mains).filter(([n]) => n === of) : Object.entries(def.mains);
  if (of !== undefined && candidates.length === 0) throw AppError.invalid(`the component has no trigger or action ${of}`);
  for (const [name, { file }] of candidates) {
    const done = await callOihFunction(rt, editorScope(def, tenant, name), file, 'dynamic', { cfg }, logger, functionName);
    if (!done.ok) throw new AppError('VALIDATION_FAILED', `${name}.${functionName} failed: ${done.error.message}`, 'user');
    if (!done.missing) return done.value;
  }
  throw AppError.notFound(`function ${functionName} in ${of ?? 'any trigger or action of the component'}`);
}
