/**
 * Regular expressions in tenants' JSONata, run by RE2 (re2js, a pure-JavaScript port): time
 * linear in the input whatever the pattern. V8's own engine backtracks: `$contains(s, /^(a+)+$/)`
 * on 30 characters held the main thread for 12-16 s, and JSONata's time guard cannot interrupt a
 * native match. RE2 has no backreferences and no lookaround; such patterns are refused when the
 * expression is compiled (flow save and start), by name.
 *
 * `LinearRegExp` has the part of the RegExp surface JSONata uses: `new X(regexp)` (its
 * `RegexEngine` option, once per evaluation of a regex literal), `new X(pattern, flags)` (see
 * withLinearRegExp), `exec` with `lastIndex` and global semantics, `test`, `source`, `flags`.
 */
import { RE2JS, type Matcher } from 're2js';

/** Compiled patterns by flags and source; JSONata constructs an engine per evaluation. */
const compiled = new Map<string, RE2JS>();
const MAX_COMPILED = 1_000;

/** Flags JSONata writes (`g` always, `i`, `m`) and their RE2 form; others are refused. */
const FLAG_BITS: Record<string, number> = { g: 0, i: RE2JS.CASE_INSENSITIVE, m: RE2JS.MULTILINE, s: RE2JS.DOTALL };

/** A pattern RE2 cannot run; the message names it and says why. */
export class UnsupportedRegexError extends Error {
  override readonly name = 'UnsupportedRegexError';
}

function describePattern(source: string, flags: string): string {
  const shown = source.length > 200 ? `${source.slice(0, 200)}…` : source;
  return `/${shown}/${flags.replace('g', '')}`;
}

function compile(source: string, flags: string): RE2JS {
  const key = `${flags}\u0000${source}`;
  let re = compiled.get(key);
  if (re) return re;
  let bits = 0;
  for (const f of flags) {
    const bit = FLAG_BITS[f];
    if (bit === undefined) throw new UnsupportedRegexError(`regular expression ${describePattern(source, flags)}: flag "${f}" is not supported`);
    bits |= bit;
  }
  try {
    re = RE2JS.compile(RE2JS.translateRegExp(source), bits);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new UnsupportedRegexError(
      `regular expression ${describePattern(source, flags)} cannot run: ${why} (regular expressions run in linear time, without backreferences or lookaround)`,
    );
  }
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(key, re);
  return re;
}

/** Why RE2 cannot run `regexp`, or undefined when it can (it is then compiled and cached). */
export function regexProblem(regexp: { source: string; flags: string }): string | undefined {
  try {
    compile(regexp.source, regexp.flags);
    return undefined;
  } catch (err) {
    if (err instanceof UnsupportedRegexError) return err.message;
    throw err;
  }
}

export class LinearRegExp {
  readonly source: string;
  readonly flags: string;
  readonly global: boolean;
  lastIndex = 0;
  private readonly re: RE2JS;
  // JSONata calls exec repeatedly on one string (from lastIndex): one matcher serves them all.
  private matcher: Matcher | undefined;
  private input: string | undefined;

  constructor(pattern: string | { source: string; flags: string }, flags?: string) {
    this.source = typeof pattern === 'string' ? pattern : pattern.source;
    this.flags = flags ?? (typeof pattern === 'string' ? '' : pattern.flags);
    this.global = this.flags.includes('g');
    this.re = compile(this.source, this.flags);
  }

  exec(input: string): RegExpExecArray | null {
    const from = this.global ? this.lastIndex : 0;
    if (from > input.length) {
      this.lastIndex = 0;
      return null;
    }
    if (this.matcher === undefined || this.input !== input) {
      this.matcher = this.re.matcher(input);
      this.input = input;
    }
    const m = this.matcher;
    if (!m.find(from)) {
      if (this.global) this.lastIndex = 0;
      return null;
    }
    const groups: Array<string | undefined> = [];
    for (let g = 0; g <= m.groupCount(); g++) groups.push(m.group(g) ?? undefined);
    // Like RegExp#exec: an empty match leaves lastIndex where it is (JSONata detects that).
    if (this.global) this.lastIndex = m.end();
    return Object.assign(groups, { index: m.start(), input, groups: undefined }) as RegExpExecArray;
  }

  test(input: string): boolean {
    return this.exec(input) !== null;
  }

  toString(): string {
    return `/${this.source}/${this.flags}`;
  }
}

/**
 * JSONata's option type wants the RegExp constructor; it only ever calls `new X(regexp)` and
 * the methods above.
 */
export const LinearRegexEngine = LinearRegExp as unknown as RegExpConstructor;

/**
 * Runs `fn` with the global `RegExp` replaced by LinearRegExp. For JSONata built-ins that build a
 * regular expression from tenant input with `new RegExp(…)` rather than through the RegexEngine
 * option (`$toMillis` with a picture: adjacent variable-width components backtrack
 * exponentially). `fn` must be synchronous: nothing else runs while the global is replaced, and
 * it is put back before this returns. See docs/adr/0008-linear-time-expressions.md.
 */
export function withLinearRegExp<T>(fn: () => T): T {
  const native = globalThis.RegExp;
  globalThis.RegExp = LinearRegexEngine;
  try {
    return fn();
  } finally {
    globalThis.RegExp = native;
  }
}
