/**
 * JSONata, the one expression language of flows: edge conditions and mappers, `transform`,
 * `filter`, `split`, `webhook-reply` and `http-request` templates. Expressions are compiled once
 * (when a flow starts) and evaluated per message under guardrails, because they are written by
 * tenants: a runaway expression must fail its step, not stall the process. The time guard is
 * checked between evaluation steps, so nothing inside one step may take long: regular expressions
 * run on RE2 in linear time (components.regex.ts), and the constructs that would make V8's
 * backtracking engine run anyway (function signatures, `$toMillis` pictures, `$eval`) are
 * checked or rerouted here.
 */
import jsonata from 'jsonata';
import { StepError } from './components.descriptor.js';
import { LinearRegexEngine, regexProblem, withLinearRegExp } from './components.regex.js';

/** Guardrails: a step's expression may run this long, recurse this deep, build sequences this long. */
const GUARDRAILS = { timeout: 2_000, stack: 500, sequence: 1_000_000, RegexEngine: LinearRegexEngine } as const;

/**
 * An expression Plexus will not run (a regular expression RE2 cannot run, a function signature
 * too costly to check). Found when the expression is compiled, so the flows API refuses it when a
 * flow is saved (ComponentCatalog.checkFields), not when a message arrives.
 */
export class ExpressionRefusedError extends StepError {
  constructor(message: string) {
    super(message, 'user');
  }
}

/**
 * An expression that does not parse. Also found when it is compiled, so a flow holding one is
 * refused when it is saved (400 naming the node and field), not when it is started.
 */
export class ExpressionInvalidError extends StepError {
  constructor(message: string) {
    super(message, 'user');
  }
}

/**
 * JSONata checks a function's arguments against its signature with a V8 regular expression built
 * from it, `^(p1)(p2)…$`, one group per parameter: with several `+` (one or more) parameters, or
 * many optional ones, a call that does not fit backtracks exponentially (eight `x+` parameters
 * and 40 arguments took 3.9 s). One `+` and eight optional parameters stay cheap.
 */
const MAX_SIGNATURE_OPTIONAL = 8;

function signatureProblem(definition: string): string | undefined {
  let depth = 0;
  let oneOrMore = 0;
  let optional = 0;
  for (const ch of definition) {
    if (ch === '<') depth++;
    else if (ch === '>') depth--;
    else if (depth === 1) {
      if (ch === ':') break;
      if (ch === '+') oneOrMore++;
      else if (ch === '?' || ch === '-') optional++;
    }
  }
  if (oneOrMore <= 1 && optional <= MAX_SIGNATURE_OPTIONAL) return undefined;
  return `function signature ${definition.slice(0, 100)}: at most one "+" and ${MAX_SIGNATURE_OPTIONAL} optional ("?", "-") parameters are allowed (checking arguments against more can take exponential time)`;
}

interface AstNode {
  type?: unknown;
  value?: unknown;
  position?: unknown;
  signature?: { definition?: unknown };
}

/** Regular expressions and signatures of a parsed expression that Plexus refuses to run. */
function astProblem(ast: unknown): string | undefined {
  const seen = new Set<object>();
  const todo: unknown[] = [ast];
  while (todo.length > 0) {
    const node = todo.pop();
    if (typeof node !== 'object' || node === null || seen.has(node)) continue;
    seen.add(node);
    const n = node as AstNode;
    if (n.type === 'regex' && n.value instanceof RegExp) {
      const problem = regexProblem(n.value);
      if (problem) return typeof n.position === 'number' ? `${problem} (at position ${n.position})` : problem;
      continue;
    }
    if (n.type === 'lambda' && typeof n.signature?.definition === 'string') {
      const problem = signatureProblem(n.signature.definition);
      if (problem) return typeof n.position === 'number' ? `${problem} (at position ${n.position})` : problem;
    }
    for (const v of Object.values(node)) if (typeof v === 'object' && v !== null) todo.push(v);
  }
  return undefined;
}

interface JsonataBuiltin {
  implementation: (...args: unknown[]) => unknown;
  signature?: { definition?: string };
}

let builtins: Promise<{ toMillis: JsonataBuiltin; eval: JsonataBuiltin }> | undefined;

/** JSONata's own `$toMillis` and `$eval`, which the expressions below wrap. */
function nativeBuiltins(): Promise<{ toMillis: JsonataBuiltin; eval: JsonataBuiltin }> {
  builtins ??= (async () => ({
    toMillis: (await jsonata('$toMillis').evaluate(undefined)) as JsonataBuiltin,
    eval: (await jsonata('$eval').evaluate(undefined)) as JsonataBuiltin,
  }))();
  return builtins;
}

/**
 * `$toMillis(timestamp, picture)` builds a V8 regular expression from the picture: adjacent
 * name components (`[MNn][FNn]…`) backtrack exponentially on a timestamp that does not fit (1.6 s
 * for eight of them on 41 characters). The built-in runs with RegExp standing for RE2 instead.
 * `$eval(source)` parses at run time: its source gets the checks of a compiled expression.
 */
function registerSafeBuiltins(expr: jsonata.Expression): void {
  expr.registerFunction(
    'toMillis',
    async function (this: unknown, ...args: unknown[]) {
      const { toMillis } = await nativeBuiltins();
      return withLinearRegExp(() => toMillis.implementation.apply(this, args));
    },
    '<s-s?:n>',
  );
  expr.registerFunction(
    'eval',
    async function (this: unknown, ...args: unknown[]) {
      const source = args[0];
      if (typeof source === 'string') {
        let ast: unknown;
        try {
          ast = jsonata(source).ast();
        } catch {
          ast = undefined; // JSONata's $eval reports the syntax error itself
        }
        const problem = ast === undefined ? undefined : astProblem(ast);
        if (problem) throw new ExpressionRefusedError(`$eval: ${problem}`);
      }
      return (await nativeBuiltins()).eval.implementation.apply(this, args);
    },
    '<sx?:x>',
  );
}

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

/** Why Plexus cannot run `source` (it does not parse, or holds what Plexus refuses), or undefined. */
export function expressionRefusal(source: string): string | undefined {
  let ast: unknown;
  try {
    ast = jsonata(source).ast();
  } catch (err) {
    return `invalid JSONata: ${describe(err)}`;
  }
  return astProblem(ast);
}

/**
 * Compiles `source`; throws a user StepError `where: …` when it does not parse, and an
 * ExpressionRefusedError when it holds what Plexus will not run (see astProblem).
 */
export function compileExpression(source: string, where: string): CompiledExpression {
  let expr: jsonata.Expression;
  try {
    expr = jsonata(source, { ...GUARDRAILS });
  } catch (err) {
    throw new ExpressionInvalidError(`${where}: invalid JSONata: ${describe(err)}`);
  }
  const refused = astProblem(expr.ast());
  if (refused) throw new ExpressionRefusedError(`${where}: ${refused}`);
  registerSafeBuiltins(expr);
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
