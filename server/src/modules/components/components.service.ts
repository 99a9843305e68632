/**
 * The component registry: the built-ins, plus the components each tenant registered from a
 * directory or an npm package installed on the hub (in the OIH / elastic.io format). It answers
 * the flows module's `ComponentCatalog` and hands the execution engine runnable functions.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ComponentCatalog, Flow } from '../../contracts/flows.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { StepError, type Component, type ComponentDescriptor, type ComponentFunction } from './components.descriptor.js';
import { ExpressionInvalidError, ExpressionRefusedError, expressionRefusal } from './components.expressions.js';
import { Ajv, type ValidateFunction } from 'ajv';
import type { SecretValue } from '../../contracts/secrets.js';
import { toCfg } from './components.oih-cfg.js';
import {
  callOihDynamic,
  callOihFunction,
  checkOihComponent,
  installOihComponent,
  oihComponent,
  readOihComponent,
  verifyOihCredentials,
  type OihDefinition,
  type OihRuntime,
  type VerifyOutcome,
} from './components.oih.js';
import * as repo from './components.repo.js';

export interface ComponentsServiceOptions {
  /** Folders under which component directories may be registered (operators install code there). */
  allowedRoots: readonly string[];
  /** Install a component's npm dependencies at registration when node_modules is missing. */
  installDependencies?: boolean;
  /** Where OIH components run (the module's pool and platform services); without: a pool of their own. */
  oihRuntime?: OihRuntime;
  /** Resolves a credential for an editor call (verify-credentials, dynamic metadata), audited by the secrets module. */
  resolveCredential?: (tenant: string, secretId: string) => Promise<SecretValue>;
}

/** What an editor sends to verify a credential or fill a dropdown: a credential and/or the node's fields. */
export interface EditorInput {
  credentialsId?: string | undefined;
  fields?: Record<string, unknown> | undefined;
  /** dynamic: the trigger or action whose file holds the function. */
  of?: string | undefined;
}

export interface ComponentView extends ComponentDescriptor {
  id: string;
  builtin: boolean;
  /** Present when the operator switched the component off: why. */
  disabled?: string;
  source: { kind: 'builtin' } | { kind: 'directory'; path: string } | { kind: 'package'; name: string };
  createdAt?: string;
}

export type RegisterSource = { directory: string } | { package: string };

const PACKAGE_NAME = /^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/;

function view(c: Component, createdAt?: Date): ComponentView {
  const s = c.source;
  return {
    id: c.descriptor.name,
    ...c.descriptor,
    builtin: s.kind === 'builtin',
    ...(c.disabled ? { disabled: c.disabled } : {}),
    source: s.kind === 'builtin' ? { kind: 'builtin' } : s.kind === 'directory' ? { kind: 'directory', path: s.path } : { kind: 'package', name: s.name },
    ...(createdAt ? { createdAt: createdAt.toISOString() } : {}),
  };
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

export class ComponentsService implements ComponentCatalog {
  private readonly builtins = new Map<string, Component>();
  /** Registered components already read from disk, by tenant and name, keyed by what they were read from. */
  private readonly loaded = new Map<string, { stamp: string; component: Component }>();
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  /** Compiled field schemas of registered components' functions. */
  private readonly fieldValidators = new WeakMap<object, ValidateFunction>();

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    builtins: readonly Component[],
    private readonly options: ComponentsServiceOptions,
  ) {
    for (const c of builtins) this.builtins.set(c.descriptor.name, c);
  }

  /** The component a node names, built-in first; undefined when the tenant has none of that name. */
  async findComponent(tenant: string, componentId: string): Promise<Component | undefined> {
    const builtin = this.builtins.get(componentId);
    if (builtin) return builtin;
    const row = await repo.findComponent(this.db, tenant, componentId);
    return row ? this.fromRow(row) : undefined;
  }

  async checkFunction(tenant: string, componentId: string, fn: string): Promise<string | undefined> {
    const component = await this.findComponent(tenant, componentId);
    if (!component) return `unknown component ${componentId}`;
    if (!component.fn(fn)) return `component ${componentId} has no function ${fn}`;
    if (component.disabled) return `component ${componentId} is switched off on this hub: ${component.disabled}`;
    return undefined;
  }

  /**
   * Asks a built-in function what the operator's configuration refuses in the node's fields
   * (`checkPolicy`), then prepares it to find expressions that do not parse or that Plexus
   * refuses to run (preparing compiles them; it does no I/O). Components of tenants compile no JSONata of ours.
   */
  async checkFields(tenant: string, componentId: string, fn: string, fields: Record<string, unknown>): Promise<string | undefined> {
    const component = this.builtins.get(componentId);
    if (!component) return this.checkRegisteredFields(tenant, componentId, fn, fields);
    const f = component.fn(fn);
    if (!f) return undefined;
    const refused = f.checkPolicy?.(fields);
    if (refused) return refused;
    try {
      await f.prepare(fields, { logger: this.logger });
    } catch (err) {
      if (err instanceof ExpressionRefusedError || err instanceof ExpressionInvalidError) return err.message;
    }
    return f.checkReferences?.(tenant, fields);
  }

  /** A registered component's node fields against the function's field schema (required fields, types). */
  private async checkRegisteredFields(tenant: string, componentId: string, fn: string, fields: Record<string, unknown>): Promise<string | undefined> {
    const f = (await this.findComponent(tenant, componentId))?.fn(fn);
    if (!f) return undefined;
    const schema = f.descriptor.fields;
    let validate = this.fieldValidators.get(schema);
    if (!validate) {
      try {
        validate = this.ajv.compile(schema);
      } catch {
        return undefined;
      }
      this.fieldValidators.set(schema, validate);
    }
    if (validate(fields)) return undefined;
    const problems = (validate.errors ?? []).map((e) => {
      const missing = (e.params as { missingProperty?: string }).missingProperty;
      const at = `fields${e.instancePath.replace(/\//g, '.')}`;
      return missing !== undefined ? `${at}.${missing}: is required` : `${at}: ${e.message ?? 'is invalid'}`;
    });
    return problems.join('; ');
  }

  checkExpression(source: string): string | undefined {
    return expressionRefusal(source);
  }

  /** The runnable function a node names; a user StepError when it does not exist. */
  async getFunction(tenant: string, componentId: string, fn: string): Promise<ComponentFunction> {
    const component = await this.findComponent(tenant, componentId);
    if (!component) throw new StepError(`unknown component ${componentId}`, 'user');
    const f = component.fn(fn);
    if (!f) throw new StepError(`component ${componentId} has no function ${fn}`, 'user');
    return f;
  }

  async list(tenant: string): Promise<ComponentView[]> {
    const own = await repo.listComponents(this.db, tenant);
    const views = [...this.builtins.values()].map((c) => view(c));
    for (const row of own) views.push(this.viewOfRow(row));
    return views;
  }

  async get(tenant: string, name: string): Promise<ComponentView> {
    const builtin = this.builtins.get(name);
    if (builtin) return view(builtin);
    const row = await repo.findComponent(this.db, tenant, name);
    if (!row) throw AppError.notFound(`component ${name}`);
    return this.viewOfRow(row);
  }

  /** Registers a component for `tenant` from a directory under an allowed root or an installed package. */
  async register(tenant: string, source: RegisterSource, createdBy: string | undefined): Promise<ComponentView> {
    const { dir, kind, given } = 'directory' in source ? { dir: this.resolveDirectory(source.directory), kind: 'directory' as const, given: source.directory } : { dir: this.resolvePackage(source.package), kind: 'package' as const, given: source.package };
    // Main files may not exist before the component's build, which runs with the install.
    const name = readOihComponent(dir, { requireMains: false }).descriptor.name;
    if (this.builtins.has(name)) throw new AppError('ALREADY_EXISTS', `${name} is the name of a built-in component`);
    if (await repo.findComponent(this.db, tenant, name)) throw new AppError('ALREADY_EXISTS', `component ${name} is already registered`);
    if (this.options.installDependencies !== false) await installOihComponent(dir, this.logger);
    const def = readOihComponent(dir);
    const component = oihComponent(def, kind === 'directory' ? { kind, path: dir } : { kind, name: given, path: dir }, this.options.oihRuntime, this.logger);
    // Load every function now (in a runner of the tenant), so a broken main file is refused here rather than at flow start.
    await checkOihComponent(def, tenant, this.options.oihRuntime, this.logger);
    const row = await repo.insertComponent(this.db, { tenantId: tenant, name, version: def.descriptor.version, descriptor: def.descriptor, sourceKind: kind, source: given, sourcePath: dir, createdBy });
    if (!row) throw new AppError('ALREADY_EXISTS', `component ${name} is already registered`);
    this.loaded.set(`${tenant}\u0000${name}`, { stamp: `${row.source_path}\u0000${row.version}`, component });
    return view(component, row.created_at);
  }

  /** A registered component's definition; 404 when the tenant has none of that name, 400 for a built-in. */
  private async definition(tenant: string, name: string): Promise<OihDefinition> {
    if (this.builtins.has(name)) throw AppError.invalid(`${name} is a built-in component: it has no OIH lifecycle functions`);
    const row = await repo.findComponent(this.db, tenant, name);
    if (!row) throw AppError.notFound(`component ${name}`);
    return readOihComponent(row.source_path);
  }

  private async editorCfg(tenant: string, def: OihDefinition, input: EditorInput): Promise<Record<string, unknown>> {
    let credential: SecretValue | undefined;
    if (input.credentialsId) {
      if (!this.options.resolveCredential) throw new AppError('UNAVAILABLE', 'no secrets service in this process');
      credential = await this.options.resolveCredential(tenant, input.credentialsId);
    }
    return toCfg(input.fields ?? {}, credential?.value as Record<string, unknown> | undefined, credential?.type, def.credentialFields ?? {});
  }

  /** verifyCredentials(cfg) of a registered component, with a stored credential and/or fields. */
  async verifyCredentials(tenant: string, name: string, input: EditorInput): Promise<VerifyOutcome> {
    const def = await this.definition(tenant, name);
    return verifyOihCredentials(def, tenant, await this.editorCfg(tenant, def, input), this.options.oihRuntime, this.logger);
  }

  /** getMetaModel(cfg) or a select-model function of a registered component. */
  async dynamic(tenant: string, name: string, fn: string, input: EditorInput): Promise<unknown> {
    const def = await this.definition(tenant, name);
    return callOihDynamic(def, tenant, fn, input.of, await this.editorCfg(tenant, def, input), this.options.oihRuntime, this.logger);
  }

  /**
   * sailor's startup hook: `startup(cfg)` of every OIH node of a flow that is starting, before it is
   * active (so no message runs before it), its data stored for each `process` call and for
   * `shutdown`. Startup states a crashed hub left are shut down first. When one fails, the nodes
   * already started are shut down again and this throws VALIDATION_FAILED naming the node: the
   * flow's start fails with that reason, as with a broken expression.
   */
  async startFlow(flow: Flow): Promise<void> {
    const runtime = this.options.oihRuntime;
    if (!runtime?.startupData) return;
    const nodes: Array<{ node: Flow['graph']['nodes'][number]; def: OihDefinition; file: string }> = [];
    const flowRuntime = (flow.flowSettings as { runtime?: unknown } | undefined)?.runtime;
    for (const node of flow.graph.nodes) {
      if (this.builtins.has(node.componentId)) continue;
      // A step on a plexus worker runs the worker's copy of the component, not this hub's.
      if ((node.nodeSettings?.runtime ?? flowRuntime) === 'workers') continue;
      const row = await repo.findComponent(this.db, flow.tenant, node.componentId);
      if (!row) continue;
      const def = readOihComponent(row.source_path);
      const main = def.mains[node.function];
      if (main) nodes.push({ node, def, file: main.file });
    }
    if (nodes.length === 0) return;
    await this.stopFlow(flow.id);
    for (const { node, def, file } of nodes) {
      const fields = node.fields ?? {};
      const scope = { tenant: flow.tenant, flowId: flow.id, nodeId: node.id, componentId: node.componentId, fn: node.function, credentialsId: node.credentialsId };
      try {
        const cfg = await this.editorCfg(flow.tenant, def, { credentialsId: node.credentialsId, fields });
        await runtime.startupData(scope, { fields }, async () => {
          const done = await callOihFunction(runtime, scope, file, 'startup', { cfg }, this.logger);
          if (!done.ok) throw new AppError('VALIDATION_FAILED', done.error.message, 'user');
          return done.missing ? null : done.value;
        });
      } catch (err) {
        await this.stopFlow(flow.id);
        throw new AppError('VALIDATION_FAILED', `node ${node.id} (${node.componentId}/${node.function}): startup failed: ${(err as Error).message}`, 'user');
      }
    }
  }

  /** shutdown(cfg, startupData) of every OIH node of the flow whose startup ran; its states removed. Failures are logged. */
  async stopFlow(flowId: string): Promise<void> {
    for (const row of await repo.deleteStartupStates(this.db, flowId)) {
      await this.shutdownNode({ tenant: row.tenant_id, flowId, nodeId: row.node_id, componentId: row.component_id, fn: row.function, fields: row.fields, credentialsId: row.credentials_id, data: row.data });
    }
  }

  /** shutdown(cfg, startupData) of a node whose flow stopped (its startup ran); failures are logged. */
  async shutdownNode(s: { tenant: string; flowId: string; nodeId: string; componentId: string; fn: string; fields: Record<string, unknown>; credentialsId: string | null; data: unknown }): Promise<void> {
    try {
      const def = await this.definition(s.tenant, s.componentId);
      const main = def.mains[s.fn];
      if (!main || !this.options.oihRuntime) return;
      const cfg = await this.editorCfg(s.tenant, def, { credentialsId: s.credentialsId ?? undefined, fields: s.fields });
      const scope = { tenant: s.tenant, flowId: s.flowId, nodeId: s.nodeId, componentId: s.componentId, fn: s.fn };
      const done = await callOihFunction(this.options.oihRuntime, scope, main.file, 'shutdown', { cfg, startupData: s.data }, this.logger);
      if (!done.ok) this.logger.warn({ flowId: s.flowId, nodeId: s.nodeId, error: done.error.message }, 'OIH component shutdown failed');
    } catch (err) {
      this.logger.warn({ flowId: s.flowId, nodeId: s.nodeId, err: (err as Error).message }, 'OIH component shutdown could not run');
    }
  }

  async remove(tenant: string, name: string): Promise<void> {
    if (this.builtins.has(name)) throw AppError.conflict(`${name} is a built-in component and cannot be removed`);
    if (!(await repo.deleteComponent(this.db, tenant, name))) throw AppError.notFound(`component ${name}`);
    this.loaded.delete(`${tenant}\u0000${name}`);
  }

  private viewOfRow(row: repo.RegisteredComponentRow): ComponentView {
    const source = row.source_kind === 'directory' ? ({ kind: 'directory', path: row.source_path } as const) : ({ kind: 'package', name: row.source, path: row.source_path } as const);
    return view({ descriptor: row.descriptor, source, fn: () => undefined }, row.created_at);
  }

  private fromRow(row: repo.RegisteredComponentRow): Component {
    const key = `${row.tenant_id}\u0000${row.name}`;
    const stamp = `${row.source_path}\u0000${row.version}`;
    const cached = this.loaded.get(key);
    if (cached && cached.stamp === stamp) return cached.component;
    const def = readOihComponent(row.source_path);
    const component = oihComponent(def, row.source_kind === 'directory' ? { kind: 'directory', path: row.source_path } : { kind: 'package', name: row.source, path: row.source_path }, this.options.oihRuntime, this.logger);
    this.loaded.set(key, { stamp, component });
    return component;
  }

  private resolveDirectory(given: string): string {
    const roots = this.options.allowedRoots.map((r) => (fs.existsSync(r) ? fs.realpathSync(r) : path.resolve(r)));
    const candidate = path.isAbsolute(given) ? given : path.resolve(roots[0] ?? '.', given);
    let real: string;
    try {
      real = fs.realpathSync(candidate);
    } catch {
      throw AppError.invalid(`directory: ${given} does not exist on the hub`);
    }
    // Tenants name code the operator installed; they cannot point the hub at any folder it can read.
    if (!roots.some((root) => isInside(real, root))) {
      throw AppError.invalid(`directory: ${given} is not under an allowed component folder (PLEXUS_COMPONENT_PATHS)`);
    }
    if (!fs.statSync(real).isDirectory()) throw AppError.invalid(`directory: ${given} is not a directory`);
    return real;
  }

  private resolvePackage(name: string): string {
    if (!PACKAGE_NAME.test(name)) throw AppError.invalid(`package: ${JSON.stringify(name)} is not an npm package name`);
    const require = createRequire(import.meta.url);
    for (const base of require.resolve.paths(name) ?? []) {
      const dir = path.join(base, name);
      if (fs.existsSync(path.join(dir, 'component.json'))) return fs.realpathSync(dir);
    }
    throw AppError.invalid(`package: ${name} is not installed on the hub as a component (no component.json found)`);
  }
}
