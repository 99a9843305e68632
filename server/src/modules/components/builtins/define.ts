/** How a built-in component is declared: zod schemas for its fields, published as JSON schema. */
import { z } from 'zod';
import type { Component, ComponentDescriptor, ComponentFunction, FunctionDescriptor, PrepareEnv, PreparedStep } from '../components.descriptor.js';
import { StepError } from '../components.descriptor.js';

export const BUILTIN_VERSION = '1.0.0';

interface BuiltinFunctionSpec<F extends z.ZodType> {
  kind?: 'trigger' | 'action';
  title: string;
  description: string;
  fields: F;
  inputSchema?: FunctionDescriptor['inputSchema'];
  outputSchema?: FunctionDescriptor['outputSchema'];
  prepare(fields: z.infer<F>, env: PrepareEnv): PreparedStep | Promise<PreparedStep>;
  /** See ComponentFunction.checkPolicy; gets the fields as the node has them, before validation. */
  checkPolicy?(fields: Record<string, unknown>): string | undefined;
  /** See ComponentFunction.checkReferences; gets the fields as the node has them. */
  checkReferences?(tenant: string, fields: Record<string, unknown>): Promise<string | undefined>;
}

function toJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

/** Names the first bad field the way the API names request fields: `fields.url: …`. */
export function describeFieldIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${['fields', ...i.path.map(String)].join('.')}: ${i.message}`)
    .join('; ');
}

export function builtinFunction<F extends z.ZodType>(spec: BuiltinFunctionSpec<F>): ComponentFunction {
  const descriptor: FunctionDescriptor = {
    title: spec.title,
    description: spec.description,
    fields: toJsonSchema(spec.fields),
    ...(spec.inputSchema ? { inputSchema: spec.inputSchema } : {}),
    ...(spec.outputSchema ? { outputSchema: spec.outputSchema } : {}),
  };
  return {
    kind: spec.kind ?? 'action',
    descriptor,
    ...(spec.checkPolicy ? { checkPolicy: spec.checkPolicy } : {}),
    ...(spec.checkReferences ? { checkReferences: spec.checkReferences } : {}),
    async prepare(fields, env) {
      const refused = spec.checkPolicy?.(fields);
      if (refused) throw new StepError(refused, 'user');
      const parsed = spec.fields.safeParse(fields);
      if (!parsed.success) throw new StepError(describeFieldIssues(parsed.error), 'user');
      return spec.prepare(parsed.data, env);
    },
  };
}

export function builtinComponent(spec: {
  name: string;
  title: string;
  description: string;
  credentials?: ComponentDescriptor['credentials'];
  functions: Record<string, ComponentFunction>;
}): Component {
  const triggers: Record<string, FunctionDescriptor> = {};
  const actions: Record<string, FunctionDescriptor> = {};
  for (const [name, fn] of Object.entries(spec.functions)) (fn.kind === 'trigger' ? triggers : actions)[name] = fn.descriptor;
  const descriptor: ComponentDescriptor = {
    name: spec.name,
    version: BUILTIN_VERSION,
    title: spec.title,
    description: spec.description,
    ...(spec.credentials ? { credentials: spec.credentials } : {}),
    triggers,
    actions,
  };
  return {
    descriptor,
    source: { kind: 'builtin' },
    fn: (name) => (Object.hasOwn(spec.functions, name) ? spec.functions[name] : undefined),
  };
}

/**
 * The component as the catalogue still shows it, switched off: its description says why, the
 * flows module refuses nodes that use it, and preparing one fails with the same reason.
 */
export function switchedOff(component: Component, reason: string): Component {
  return {
    descriptor: { ...component.descriptor, description: `Switched off on this hub: ${reason}. ${component.descriptor.description}` },
    source: component.source,
    disabled: reason,
    fn(name) {
      const fn = component.fn(name);
      if (!fn) return undefined;
      return {
        kind: fn.kind,
        descriptor: fn.descriptor,
        prepare: () => Promise.reject(new StepError(`component ${component.descriptor.name} is switched off on this hub: ${reason}`, 'user')),
      };
    },
  };
}
