/**
 * Components for `plexus worker --component <dir|package|builtin:name>`: an OIH-format
 * directory (or an npm package holding one) through the components module's OIH adapter, or a
 * built-in component, each wrapped as a WorkerComponent of the SDK. A node's fields are
 * prepared (validated, compiled) once per distinct set of fields and reused.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FlowMessage } from '../contracts/flows.js';
import type { Logger } from '../platform/logger.js';
import { createOutbound } from '../platform/outbound/index.js';
import {
  classifyStepError,
  createBuiltinComponents,
  installOihDependencies,
  oihComponent,
  readOihComponent,
  type Component,
  type PreparedStep,
} from '../modules/components/index.js';
import { WorkerStepError, type StepHandler, type StepOutput, type WorkerComponent } from './index.js';

/** Prepared steps kept per function (distinct field sets), oldest dropped first. */
const PREPARED_PER_FUNCTION = 100;

/** Resolves one `--component` argument to a component. */
export async function loadComponent(spec: string, logger: Logger): Promise<Component> {
  if (spec.startsWith('builtin:')) {
    const name = spec.slice('builtin:'.length);
    // Built-ins that call out follow the default outbound policy (no private networks).
    const all = createBuiltinComponents({ outbound: createOutbound({ allowPrivateNetwork: false, allowedHosts: [] }, { logger }), sandbox: undefined });
    const found = all.find((c) => c.descriptor.name === name);
    if (!found) throw new Error(`--component ${spec}: no built-in component ${name} (known: ${all.map((c) => c.descriptor.name).join(', ')})`);
    return found;
  }
  let dir = path.resolve(spec);
  let source: Component['source'] = { kind: 'directory', path: dir };
  if (!fs.existsSync(dir)) {
    // An npm package installed where the worker runs.
    try {
      dir = path.dirname(createRequire(path.join(process.cwd(), 'noop.js')).resolve(`${spec}/package.json`));
      source = { kind: 'package', name: spec, path: dir };
    } catch {
      throw new Error(`--component ${spec}: neither a directory nor an installed npm package`);
    }
  }
  const def = readOihComponent(dir);
  await installOihDependencies(dir, logger);
  return oihComponent(def, source);
}

/** The component as the SDK serves it: each function prepares the node's fields and runs. */
export function toWorkerComponent(component: Component, logger: Logger): WorkerComponent {
  const d = component.descriptor;
  const functions: Record<string, StepHandler> = {};
  for (const name of [...Object.keys(d.actions), ...Object.keys(d.triggers)]) {
    const fn = component.fn(name);
    if (!fn) continue;
    const prepared = new Map<string, Promise<PreparedStep>>();
    functions[name] = async (input) => {
      const key = JSON.stringify(input.fields);
      let step = prepared.get(key);
      if (!step) {
        step = fn.prepare(input.fields, { logger });
        // A failed preparation is not cached: the next delivery tries again.
        step.catch(() => prepared.delete(key));
        if (prepared.size >= PREPARED_PER_FUNCTION) prepared.delete(prepared.keys().next().value!);
        prepared.set(key, step);
      }
      try {
        const result = await (await step).run({
          tenant: input.tenant,
          flowId: input.flowId,
          nodeId: input.nodeId,
          executionId: input.executionId,
          idempotencyKey: input.idempotencyKey,
          attempt: input.attempt,
          message: input.message as FlowMessage,
          credentials: input.credentials,
          credentialsType: input.credentialsType,
          snapshot: input.snapshot,
          logger,
        });
        const out: StepOutput = {
          emit: result.messages.map((m) => ({ body: m.message.body, headers: m.message.headers, metadata: m.message.metadata, attachments: m.message.attachments, ...(m.delayMs !== undefined ? { delayMs: m.delayMs } : {}) })),
        };
        if (result.snapshot) out.snapshot = result.snapshot.value;
        if (result.rebound) out.rebound = result.rebound.reason;
        if (result.reply) out.reply = result.reply;
        return out;
      } catch (err) {
        const e = classifyStepError(err);
        throw new WorkerStepError(e.message, e.kind === 'user' ? 'user' : 'transient', e.retryAfterMs);
      }
    };
  }
  return { name: d.name, version: d.version, functions };
}
