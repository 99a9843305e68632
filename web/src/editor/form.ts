/**
 * How a component function's `fields` JSON schema becomes a form (@rjsf/core): which fields get
 * a multi-line editor, labels from field names, and the schema cleaned of what the form library
 * cannot show. Kept apart from the React component so it is tested on its own.
 */
import type { RJSFSchema, UiSchema } from '@rjsf/utils';

/** Fields holding code or expressions, edited as several lines. */
const MULTILINE_NAMES = new Set(['expression', 'code', 'body', 'condition', 'mapper', 'snapshot', 'text']);

function isMultiline(name: string, prop: RJSFSchema): boolean {
  if (prop.type !== 'string') return false;
  if (MULTILINE_NAMES.has(name)) return true;
  return typeof prop.description === 'string' && /^JSONata/.test(prop.description) && prop.enum === undefined;
}

/** `timeoutMs` → "Timeout ms", `allowPrivateNetwork` → "Allow private network". */
export function labelOf(name: string): string {
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The schema as the form shows it: every property titled. */
export function formSchemaFor(fields: Record<string, unknown>): RJSFSchema {
  const schema = structuredClone(fields) as RJSFSchema;
  if (schema.type === undefined) schema.type = 'object';
  const props = (schema.properties ?? {}) as Record<string, RJSFSchema>;
  for (const [name, prop] of Object.entries(props)) {
    if (typeof prop === 'object' && prop.title === undefined) prop.title = labelOf(name);
  }
  // The form library's validator does not know the draft-2020 `propertyNames`: the hub checks it.
  const strip = (s: unknown): void => {
    if (typeof s !== 'object' || s === null) return;
    delete (s as Record<string, unknown>).propertyNames;
    delete (s as Record<string, unknown>).$schema;
    for (const v of Object.values(s as Record<string, unknown>)) strip(v);
  };
  strip(schema);
  return schema;
}

/** Text areas for code and expressions; no submit button (the editor saves the whole flow). */
export function uiSchemaFor(fields: Record<string, unknown>): UiSchema {
  const ui: UiSchema = { 'ui:submitButtonOptions': { norender: true } };
  const props = ((fields as RJSFSchema).properties ?? {}) as Record<string, RJSFSchema>;
  for (const [name, prop] of Object.entries(props)) {
    if (typeof prop === 'object' && isMultiline(name, prop)) ui[name] = { 'ui:widget': 'textarea', 'ui:options': { rows: name === 'code' ? 10 : 3 } };
  }
  return ui;
}

/** Drops empty strings the form leaves behind, so optional fields left blank are not sent. */
export function cleanFields(value: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value ?? {})) if (v !== undefined && v !== '') out[k] = v;
  return out;
}
