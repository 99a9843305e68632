/**
 * JSONata, the one expression language of flows: edge conditions and mappers, `transform`,
 * `filter`, `split`, `webhook-reply` and `http-request` templates. Expressions are compiled once
 * (when a flow starts) and evaluated per message under guardrails, because they are written by
 * tenants: a runaway expression must fail its step, not stall the process.
 */
import jsonata from 'jsonata';
import { StepError } from './components.descriptor.js';

/** Guardrails: a step's expression may run this long, recurse this deep, build sequences this long. */
const GUARDRAILS = { timeout: 2_000, stack: 500, sequence: 1_000_000 } as const;

export interface CompiledExpression {
  readonly source: string;
  /** Evaluates against `input` with `$name` bindings; a failure is a user StepError naming `where`. */
  evaluate(input: unknown, bindings?: Record<string, unknown>): Promise<unknown>;
}

interface JsonataFailure {
  message?: string;
  code?: string;
  position?: number;
  token?: string;
}

function describe(err: unknown): string {
  const e = err as JsonataFailure;
  const message = typeof e?.message === 'string' && e.message ? e.message : String(err);
  return typeof e?.position === 'number' ? `${message} (at position ${e.position})` : message;
}

/** Compiles `source`; throws a user StepError `where: …` when it does not parse. */
export function compileExpression(source: string, where: string): CompiledExpression {
  let expr: jsonata.Expression;
  try {
    expr = jsonata(source, { ...GUARDRAILS });
  } catch (err) {
    throw new StepError(`${where}: invalid JSONata: ${describe(err)}`, 'user');
  }
  return {
    source,
    async evaluate(input, bindings) {
      try {
        return toPlain(await expr.evaluate(input, bindings));
      } catch (err) {
        throw new StepError(`${where}: ${describe(err)}`, 'user');
      }
    },
  };
}

/**
 * JSONata marks its result sequences with extra properties; hand on plain arrays so a body looks
 * the same whether a step or the store produced it.
 */
function toPlain(value: unknown): unknown {
  if (Array.isArray(value) && 'sequence' in value) return Array.from(value as unknown[]);
  return value;
}

/** JSONata's truthiness (`$boolean`): empty strings, zero, empty arrays and objects, null are false. */
export function isTruthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false) return false;
  if (typeof value === 'string') return value.length > 0;
  if (typeof value === 'number') return value !== 0 && !Number.isNaN(value);
  if (Array.isArray(value)) return value.some(isTruthy);
  if (typeof value === 'function') return false;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return Boolean(value);
}

/**
 * A string with `{{ expression }}` parts, as used in a URL or a header value. A string without
 * any is a constant and costs nothing per message.
 */
export interface CompiledTemplate {
  readonly isConstant: boolean;
  render(input: unknown, bindings?: Record<string, unknown>): Promise<string>;
}

const TEMPLATE_PART = /\{\{([\s\S]+?)\}\}/g;

export function compileTemplate(source: string, where: string): CompiledTemplate {
  const parts: Array<string | CompiledExpression> = [];
  let last = 0;
  for (const m of source.matchAll(TEMPLATE_PART)) {
    if (m.index > last) parts.push(source.slice(last, m.index));
    parts.push(compileExpression(m[1]!.trim(), where));
    last = m.index + m[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  if (parts.every((p) => typeof p === 'string')) {
    return { isConstant: true, render: async () => source };
  }
  return {
    isConstant: false,
    async render(input, bindings) {
      let out = '';
      for (const p of parts) {
        if (typeof p === 'string') out += p;
        else {
          const v = await p.evaluate(input, bindings);
          out += v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
        }
      }
      return out;
    },
  };
}
