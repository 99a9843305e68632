/**
 * Labels, label definitions and the `scenarios` label (Compass semantics).
 *
 * - A label is any JSON value under a key; an object's labels are one JSON object.
 * - A label definition gives a key an optional JSON Schema; setting a label whose key has no
 *   definition creates one without a schema. Values are checked against the schema on write.
 * - `scenarios` is defined in every tenant, as a list of strings from an enum that always holds
 *   `DEFAULT`; applications and runtimes that share a scenario see each other.
 * - A label filter is a key, optionally with a query: a JSON value the label must contain, or
 *   Compass's SQL/JSON path subset `$[*] ? (@ == "A" || @ == "B")` (any of the values).
 */
import { createHash } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import { AppError } from '../../platform/errors.js';
import type { LabelFilterInput } from './director.inputs.js';

export const SCENARIOS_KEY = 'scenarios';
export const DEFAULT_SCENARIO = 'DEFAULT';
/** The label Compass keeps equal to an application's name. */
export const NAME_KEY = 'name';

export function scenariosSchema(values: readonly string[] = [DEFAULT_SCENARIO]): Record<string, unknown> {
  return { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9]([-_A-Za-z0-9 ]{0,126}[A-Za-z0-9])?$', enum: [...values] } };
}

/** A label filter after parsing: what the repo turns into SQL. */
export type LabelMatch =
  | { key: string; kind: 'exists' }
  | { key: string; kind: 'anyOf'; values: string[] }
  | { key: string; kind: 'contains'; json: string };

const PATH_QUERY = /^\$\[\*\]\s*\?\s*\((.*)\)\s*$/s;
const PATH_TERM = /^\s*@\s*==\s*"((?:[^"\\]|\\.)*)"\s*$/;

/** Parses Compass label filters; an unsupported query is a 22 naming the filter. */
export function parseLabelFilters(filters: LabelFilterInput | null | undefined): LabelMatch[] {
  return (filters ?? []).map((f, i) => {
    if (f.query == null || f.query === '') return { key: f.key, kind: 'exists' };
    const q = f.query.trim();
    const path = PATH_QUERY.exec(q);
    if (path) {
      const values = path[1]!.split('||').map((term) => {
        const m = PATH_TERM.exec(term);
        if (!m) throw AppError.invalid(`filter.${i}.query: only $[*] ? (@ == "X" || @ == "Y") is supported, got ${JSON.stringify(q.slice(0, 100))}`);
        return JSON.parse(`"${m[1]}"`) as string;
      });
      return { key: f.key, kind: 'anyOf', values };
    }
    if (q.startsWith('$')) throw AppError.invalid(`filter.${i}.query: only $[*] ? (@ == "X" || @ == "Y") is supported, got ${JSON.stringify(q.slice(0, 100))}`);
    // A JSON value (`"val"`, `5`, `["a"]`); anything else is taken as a plain string.
    let json: string;
    try {
      json = JSON.stringify(JSON.parse(q));
    } catch {
      json = JSON.stringify(q);
    }
    return { key: f.key, kind: 'contains', json };
  });
}

/** Compiles label definition schemas once per distinct schema (they are small and few). */
export class LabelSchemas {
  private readonly ajv = new Ajv({ allErrors: true, strict: false });
  private readonly compiled = new Map<string, ValidateFunction>();

  /** Throws 22 when `schema` is not a usable JSON Schema. */
  compile(schema: unknown, where: string): ValidateFunction {
    const text = JSON.stringify(schema);
    const id = createHash('sha256').update(text).digest('hex');
    const hit = this.compiled.get(id);
    if (hit) return hit;
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
      throw AppError.invalid(`${where}: must be a JSON Schema object`);
    }
    let fn: ValidateFunction;
    try {
      fn = this.ajv.compile(schema);
    } catch (err) {
      throw AppError.invalid(`${where}: is not a valid JSON Schema: ${(err as Error).message}`);
    }
    if (this.compiled.size > 1_000) this.compiled.clear();
    this.compiled.set(id, fn);
    return fn;
  }

  /** Throws 22 when `value` does not match `schema` (null schema: anything goes). */
  check(key: string, value: unknown, schema: unknown, what: string): void {
    if (schema === null || schema === undefined) return;
    if (key === SCENARIOS_KEY) return checkScenarios(value, schema, what);
    const fn = this.compile(schema, `label definition ${key}`);
    if (!fn(value)) {
      const problems = (fn.errors ?? []).map((e) => `${e.instancePath || '(value)'} ${e.message ?? 'is invalid'}`);
      throw AppError.invalid(`label ${key} of ${what}: value ${JSON.stringify(value)?.slice(0, 200)} does not match its label definition: ${problems.join('; ')}`);
    }
  }
}

export function allowedScenarios(schema: unknown): string[] {
  const items = (schema as { items?: { enum?: unknown } } | null)?.items;
  return Array.isArray(items?.enum) ? items.enum.filter((v): v is string => typeof v === 'string') : [DEFAULT_SCENARIO];
}

function checkScenarios(value: unknown, schema: unknown, what: string): void {
  const allowed = allowedScenarios(schema);
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw AppError.invalid(`label scenarios of ${what}: must name at least one scenario; the allowed ones are ${allowed.map((s) => JSON.stringify(s)).join(', ')}`);
  const bad = list.filter((v) => typeof v !== 'string' || !allowed.includes(v));
  if (bad.length > 0 || !Array.isArray(value)) {
    throw AppError.invalid(
      `label scenarios of ${what}: ${bad.length ? bad.map((b) => JSON.stringify(b)).join(', ') + ' is not' : 'must be a list and each value'} one of the allowed scenarios; it must be one of the following: ${allowed.map((s) => JSON.stringify(s)).join(', ')}`,
    );
  }
  if (new Set(list).size !== list.length) throw AppError.invalid(`label scenarios of ${what}: must not name a scenario twice`);
}

/** A new scenarios definition must stay a list of strings from an enum that keeps DEFAULT. */
export function checkScenariosDefinition(schema: unknown): void {
  const s = schema as { type?: unknown; items?: { type?: unknown; enum?: unknown } } | null;
  const values = s?.items?.enum;
  if (s?.type !== 'array' || s.items?.type !== 'string' || !Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
    throw AppError.invalid('in.schema: the scenarios definition must be {type: "array", items: {type: "string", enum: [...]}}');
  }
  if (!values.includes(DEFAULT_SCENARIO)) throw AppError.invalid(`in.schema: the scenarios enum must keep ${JSON.stringify(DEFAULT_SCENARIO)}`);
}

export function scenariosOf(labels: Record<string, unknown>): string[] {
  const v = labels[SCENARIOS_KEY];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** JSONSchema scalar: Compass sends a JSON-encoded string; a plain object works too. */
export function parseJsonSchemaScalar(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw AppError.invalid('in.schema: is not valid JSON');
  }
}
