/**
 * Components in the format of the Open Integration Hub / elastic.io, run unmodified.
 *
 * A component is a directory with `component.json` (title, description, credentials fields,
 * `triggers` and `actions` each naming its `main` file, `fields`, `metadata.in|out`) and those
 * files exporting `process(msg, cfg, snapshot)`. As the OIH runner (ferryman) does, we call it
 * with `this.emit(event, payload)` (async) and `this.logger` (trace … error), and translate:
 * - `data`: a message to the next steps (their `msg.data` is our `body`; `msg.body` too, for
 *   older elastic.io code);
 * - `error`: the step fails (classified user/transient like any error);
 * - `snapshot` / `updateSnapshot`: the node's saved state, replaced / merged;
 * - `rebound`: run this message again later without counting as a failure;
 * - `httpReply`: the answer to a sync webhook call;
 * - `end`: the run is over. A `process` that returns a promise is over when it settles (a
 *   resolved value is emitted as data first).
 * `cfg` is the node's `fields` merged with its credential.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { z } from 'zod';
import type { FlowMessage, WebhookReply } from '../../contracts/flows.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import {
  ComponentName,
  StepError,
  classifyStepError,
  deriveMessage,
  type Component,
  type ComponentDescriptor,
  type ComponentFunction,
  type ComponentSource,
  type FunctionDescriptor,
  type JsonSchema,
  type StepResult,
} from './components.descriptor.js';

/** How long a `process` that neither returns a promise nor emits `end` may run. */
const DEFAULT_TIMEOUT_MS = 60_000;

const OihField = z
  .object({
    label: z.string().optional(),
    required: z.boolean().optional(),
    viewClass: z.string().optional(),
    note: z.string().optional(),
    placeholder: z.string().optional(),
    model: z.union([z.record(z.string(), z.unknown()), z.array(z.unknown())]).optional(),
  })
  .loose();

const OihFunction = z
  .object({
    main: z.string().min(1),
    title: z.string().optional(),
    description: z.string().optional(),
    type: z.string().optional(),
    fields: z.record(z.string(), OihField).optional(),
    metadata: z.object({ in: z.record(z.string(), z.unknown()).optional(), out: z.record(z.string(), z.unknown()).optional() }).loose().optional(),
  })
  .loose();

const OihComponentJson = z
  .object({
    name: z.string().optional(),
    title: z.string().optional(),
    description: z.string().optional(),
    version: z.string().optional(),
    credentials: z.object({ fields: z.record(z.string(), OihField).optional() }).loose().optional(),
    triggers: z.record(z.string(), OihFunction).optional(),
    actions: z.record(z.string(), OihFunction).optional(),
  })
  .loose();
type OihComponentJson = z.infer<typeof OihComponentJson>;
type OihFunction = z.infer<typeof OihFunction>;

/** OIH describes fields by view class; we publish them as a JSON schema. */
function fieldsToJsonSchema(fields: Record<string, z.infer<typeof OihField>> | undefined): JsonSchema {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, f] of Object.entries(fields ?? {})) {
    const prop: Record<string, unknown> = { type: /checkbox/i.test(f.viewClass ?? '') ? 'boolean' : 'string' };
    if (f.label) prop.title = f.label;
    if (f.note ?? f.placeholder) prop.description = f.note ?? f.placeholder;
    if (f.model && !Array.isArray(f.model)) prop.enum = Object.keys(f.model);
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

/** The `main` of a function, which must stay inside the component directory. */
function resolveMain(dir: string, main: string, fnName: string): string {
  const file = path.resolve(dir, main);
  if (file !== dir && !file.startsWith(dir + path.sep)) throw AppError.invalid(`component.json: ${fnName}.main points outside the component directory`);
  const candidates = [file, `${file}.js`, `${file}.cjs`, `${file}.mjs`, path.join(file, 'index.js')];
  const found = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
  if (!found) throw AppError.invalid(`component.json: ${fnName}.main ${main} not found`);
  return found;
}

export interface OihDefinition {
  descriptor: ComponentDescriptor;
  /** function name → absolute path of its main file */
  mains: Record<string, { kind: 'trigger' | 'action'; file: string }>;
}

/** Reads and checks a component directory; throws AppError VALIDATION_FAILED saying what is wrong. */
export function readOihComponent(dir: string): OihDefinition {
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
      mains[fnName] = { kind, file: resolveMain(dir, def.main, fnName) };
      out[fnName] = {
        ...(def.title ? { title: def.title } : {}),
        ...(def.description ? { description: def.description } : {}),
        fields: fieldsToJsonSchema(def.fields),
        ...(def.metadata?.in ? { inputSchema: def.metadata.in } : {}),
        ...(def.metadata?.out ? { outputSchema: def.metadata.out } : {}),
      };
    }
    return out;
  };
  const triggers = describe('trigger', json.triggers);
  const actions = describe('action', json.actions);
  if (Object.keys(mains).length === 0) throw AppError.invalid('component.json declares no triggers and no actions');
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
  };
}

const run = promisify(execFile);

/**
 * Installs the component's own npm dependencies when it has some and no node_modules yet
 * (`npm install --omit=dev`), as its author's package.json asks.
 */
export async function installOihDependencies(dir: string, logger: Logger): Promise<boolean> {
  const pkgFile = path.join(dir, 'package.json');
  if (!fs.existsSync(pkgFile)) return false;
  const pkg = readJson(pkgFile, 'package.json') as { dependencies?: Record<string, string> };
  if (!pkg.dependencies || Object.keys(pkg.dependencies).length === 0) return false;
  if (fs.existsSync(path.join(dir, 'node_modules'))) return false;
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  try {
    await run(npm, ['install', '--omit=dev', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'], { cwd: dir, timeout: 300_000, maxBuffer: 10 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new AppError('VALIDATION_FAILED', `installing the component's dependencies failed: ${(e.stderr || e.message).slice(0, 500)}`, 'user');
  }
  logger.info({ dir }, 'installed component dependencies');
  return true;
}

type ProcessFn = (this: OihThis, msg: OihMessage, cfg: Record<string, unknown>, snapshot: unknown) => unknown;
interface OihModule {
  process: ProcessFn;
  init?: (cfg: Record<string, unknown>) => unknown;
}
interface OihThis {
  emit(event: string, payload?: unknown): Promise<void>;
  logger: Record<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', (...args: unknown[]) => void>;
  /** Plexus's addition: aborted when the step's time limit is up. */
  signal?: AbortSignal;
}
interface OihMessage {
  id: string;
  data: unknown;
  body: unknown;
  attachments: Record<string, unknown>;
  metadata: Record<string, unknown>;
  headers: Record<string, unknown>;
  query?: Record<string, unknown>;
}

async function loadModule(file: string): Promise<OihModule> {
  let mod: unknown;
  try {
    mod = createRequire(file)(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_REQUIRE_ESM') throw err;
    mod = await import(pathToFileURL(file).href);
  }
  const m = mod as Partial<OihModule> & { default?: Partial<OihModule> };
  const candidate = typeof m.process === 'function' ? m : m.default && typeof m.default.process === 'function' ? m.default : undefined;
  if (!candidate) throw new StepError(`${path.basename(file)} exports no process(msg, cfg, snapshot) function`, 'user');
  return candidate as OihModule;
}

/** A copy: components may change what they are given, and our messages are shared between branches. */
function toOihMessage(m: FlowMessage): OihMessage {
  const data = structuredClone(m.body);
  const out: OihMessage = { id: m.id, data, body: data, attachments: structuredClone(m.attachments), metadata: structuredClone(m.metadata), headers: structuredClone(m.headers) };
  if (m.query) out.query = structuredClone(m.query);
  return out;
}

/** What a component emitted as data, as our message: `data`, else `body`, else the object itself. */
function fromOihMessage(input: FlowMessage, emitted: unknown): FlowMessage {
  const e = emitted as { data?: unknown; body?: unknown; attachments?: unknown; metadata?: unknown } | null;
  const isObject = e !== null && typeof e === 'object' && !Array.isArray(e);
  const body = isObject && 'data' in e ? e.data : isObject && 'body' in e ? e.body : emitted;
  const out = deriveMessage(input, body === undefined ? null : body, randomUUID());
  if (isObject && e.attachments && typeof e.attachments === 'object') out.attachments = e.attachments as Record<string, unknown>;
  if (isObject && e.metadata && typeof e.metadata === 'object') out.metadata = { ...input.metadata, ...(e.metadata as Record<string, unknown>) };
  return out;
}

function toReply(payload: unknown): WebhookReply {
  const p = (payload ?? {}) as { statusCode?: unknown; status?: unknown; headers?: unknown; body?: unknown };
  const status = typeof p.statusCode === 'number' ? p.statusCode : typeof p.status === 'number' ? p.status : 200;
  const headers: Record<string, string> = {};
  if (p.headers && typeof p.headers === 'object') for (const [k, v] of Object.entries(p.headers)) headers[k.toLowerCase()] = String(v);
  return { status, headers, body: p.body ?? null };
}

function oihFunction(kind: 'trigger' | 'action', descriptor: FunctionDescriptor, file: string): ComponentFunction {
  return {
    kind,
    descriptor,
    async prepare(fields, env) {
      const mod = await loadModule(file);
      const timeoutMs = env.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      let initialised: Promise<unknown> | undefined;
      return {
        // Any OIH component may read its snapshot; there is no way to tell from outside.
        usesSnapshot: true,
        async run(ctx) {
          const cfg = { ...fields, ...(ctx.credentials ?? {}) };
          if (mod.init) {
            initialised ??= Promise.resolve(mod.init(cfg)).catch((err: unknown) => {
              initialised = undefined;
              throw err;
            });
            await initialised;
          }
          const log = ctx.logger.child({ flowId: ctx.flowId, executionId: ctx.executionId, nodeId: ctx.nodeId });
          const logger = {
            trace: (...a: unknown[]) => log.trace(...(a as [string])),
            debug: (...a: unknown[]) => log.debug(...(a as [string])),
            info: (...a: unknown[]) => log.info(...(a as [string])),
            warn: (...a: unknown[]) => log.warn(...(a as [string])),
            error: (...a: unknown[]) => log.error(...(a as [string])),
            fatal: (...a: unknown[]) => log.fatal(...(a as [string])),
          };
          return new Promise<StepResult>((resolve, reject) => {
            const result: StepResult = { messages: [] };
            let snapshot = ctx.snapshot;
            let settled = false;
            let timer: NodeJS.Timeout | undefined;
            const finish = (): void => {
              if (settled) return;
              settled = true;
              clearTimeout(timer);
              resolve(result);
            };
            const fail = (err: unknown): void => {
              if (settled) return;
              settled = true;
              clearTimeout(timer);
              reject(classifyStepError(err));
            };
            const self: OihThis = {
              logger,
              async emit(event, payload) {
                if (settled) {
                  log.warn({ event }, 'component emitted after its run ended; ignored');
                  return;
                }
                switch (event) {
                  case 'data':
                    result.messages.push({ message: fromOihMessage(ctx.message, payload) });
                    break;
                  case 'error':
                    fail(payload instanceof Error ? payload : new Error(typeof payload === 'string' ? payload : JSON.stringify(payload)));
                    break;
                  case 'snapshot':
                    snapshot = payload;
                    result.snapshot = { value: payload };
                    break;
                  case 'updateSnapshot': {
                    const base = snapshot && typeof snapshot === 'object' ? (snapshot as Record<string, unknown>) : {};
                    snapshot = { ...base, ...(payload as Record<string, unknown>) };
                    result.snapshot = { value: snapshot };
                    break;
                  }
                  case 'rebound':
                    result.rebound = { reason: payload instanceof Error ? payload.message : typeof payload === 'string' ? payload : 'rebound' };
                    finish();
                    break;
                  case 'httpReply':
                    result.reply = toReply(payload);
                    break;
                  case 'end':
                    finish();
                    break;
                  default:
                    log.debug({ event }, 'component emitted an event Plexus does not use');
                }
              },
            };
            // The step's time limit: the run ends here, and whatever the component emits later is
            // refused (logged); a component that reads `this.signal` can stop its own work.
            const signal = ctx.signal;
            if (signal) {
              if (signal.aborted) return fail(signal.reason);
              signal.addEventListener('abort', () => fail(signal.reason), { once: true });
              self.signal = signal;
            }
            let returned: unknown;
            try {
              returned = mod.process.call(self, toOihMessage(ctx.message), cfg, ctx.snapshot ?? {});
            } catch (err) {
              fail(err);
              return;
            }
            if (returned && typeof (returned as PromiseLike<unknown>).then === 'function') {
              (returned as PromiseLike<unknown>).then(
                (value) => {
                  if (value !== undefined && value !== null && !settled) result.messages.push({ message: fromOihMessage(ctx.message, value) });
                  finish();
                },
                fail,
              );
            } else if (!settled) {
              timer = setTimeout(() => fail(new StepError(`the component did not emit end within ${timeoutMs} ms`, 'transient')), timeoutMs);
            }
          });
        },
      };
    },
  };
}

/** A component object over a checked OIH directory. */
export function oihComponent(def: OihDefinition, source: ComponentSource): Component {
  const fns = new Map<string, ComponentFunction>();
  for (const [name, { kind, file }] of Object.entries(def.mains)) {
    const d = kind === 'trigger' ? def.descriptor.triggers[name] : def.descriptor.actions[name];
    if (d) fns.set(name, oihFunction(kind, d, file));
  }
  return { descriptor: def.descriptor, source, fn: (name) => fns.get(name) };
}
