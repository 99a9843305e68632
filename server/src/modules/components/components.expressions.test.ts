import { describe, expect, it } from 'vitest';
import { ExpressionRefusedError, compileExpression, compileTemplate, expressionRefusal } from './components.expressions.js';
import { LinearRegExp, withLinearRegExp } from './components.regex.js';

const evaluate = (source: string, input: unknown = {}): Promise<unknown> => compileExpression(source, 'fields.expression').evaluate(input);

/** Elapsed milliseconds of `fn`. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const startedAt = performance.now();
  await fn().catch(() => undefined);
  return performance.now() - startedAt;
}

// V8's backtracking took 12-16 s for the first of these on 30 characters; the bounds below are
// generous for a busy machine and still far below what backtracking takes.
describe('regular expressions in JSONata run in linear time (RE2)', () => {
  it('answers a catastrophic pattern on a long input at once', async () => {
    const s = 'a'.repeat(100_000) + 'b';
    let result: unknown;
    expect(await timed(async () => (result = await evaluate('$contains(s, /^(a+)+$/)', { s })))).toBeLessThan(1_500);
    expect(result).toBe(false);
    expect(await evaluate('$contains(s, /^(a+)+$/)', { s: 'aaaa' })).toBe(true);
  });

  it('keeps the semantics JSONata documents: matches, groups, flags, replace, split, paths', async () => {
    expect(await evaluate('$match("ab12cd345", /[0-9]+/)')).toEqual([
      { match: '12', index: 2, groups: [] },
      { match: '345', index: 6, groups: [] },
    ]);
    expect(await evaluate('$match("John Smith", /(\\w+) (x)?(\\w+)/).groups')).toEqual(['John', undefined, 'Smith']);
    expect(await evaluate('$replace("John Smith", /(\\w+)\\s(\\w+)/, "$2, $1")')).toBe('Smith, John');
    expect(await evaluate('$split("a, b,c", /,\\s*/)')).toEqual(['a', 'b', 'c']);
    expect(await evaluate('$contains("HELLO", /hello/i)')).toBe(true);
    expect(await evaluate('$count($match("a\\nb", /^b$/m))')).toBe(1);
    expect(await evaluate('$match("é😀é", /é/)')).toEqual([
      { match: 'é', index: 0, groups: [] },
      { match: 'é', index: 3, groups: [] },
    ]);
    expect(await evaluate('items[name ~> /^a/].name', { items: [{ name: 'ab' }, { name: 'b' }] })).toBe('ab');
    await expect(evaluate('$match("abc", /x*/)')).rejects.toThrow(/zero length/);
  });

  it('refuses backreferences and lookaround when compiled, naming the field, the pattern and why', () => {
    for (const source of ['$contains(s, /(a)\\1/)', '$contains(s, /a(?=b)/)', '$contains(s, /(?<!a)b/)']) {
      expect(() => compileExpression(source, 'fields.expression')).toThrow(ExpressionRefusedError);
      expect(expressionRefusal(source)).toMatch(/^regular expression \/.*\/ cannot run: .*without backreferences or lookaround/);
    }
    expect(() => compileExpression('$contains(s, /(a)\\1/)', 'fields.expression')).toThrow(/^fields\.expression: regular expression \/\(a\)\\1\/ cannot run/);
    expect(() => compileTemplate('http://x/{{ $replace(id, /(?=x)/, "") }}', 'fields.url')).toThrow(/^fields\.url: regular expression/);
    expect(expressionRefusal('$contains(s, /a+/)')).toBeUndefined();
    // A syntax error is refused when the flow is saved, not found when it starts.
    expect(expressionRefusal('{ "a": ')).toMatch(/^invalid JSONata: /);
  });

  it('refuses function signatures whose argument check would backtrack, and keeps ordinary ones', async () => {
    expect(await evaluate('( $f := function($a, $b)<n-n?:n>{ $a + ($b ? $b : 0) }; $f(1) )')).toBe(1);
    const costly = `( $f := function($a)<${'x+'.repeat(8)}s>{1}; $f(${Array(40).fill(1).join(',')}) )`;
    expect(() => compileExpression(costly, 'fields.expression')).toThrow(/function signature <x\+x\+.*at most one "\+"/);
  });

  it('parses $toMillis pictures without backtracking, and still parses dates', async () => {
    expect(await evaluate('$toMillis("2024-01-31", "[Y0001]-[M01]-[D01]")')).toBe(Date.UTC(2024, 0, 31));
    expect(await evaluate('$toMillis("31 January 2024", "[D1] [MNn] [Y0001]")')).toBe(Date.UTC(2024, 0, 31));
    // Twelve adjacent name components against 61 letters: V8 backtracks for hours.
    const picture = '[MNn][FNn]'.repeat(6);
    expect(await timed(() => evaluate(`$toMillis("${'a'.repeat(60)}1", "${picture}")`))).toBeLessThan(1_500);
    expect(globalThis.RegExp).not.toBe(LinearRegExp); // put back
  });

  it('checks what $eval parses at run time like a compiled expression', async () => {
    expect(await evaluate('$eval("$contains(\\"ab\\", /b/)")')).toBe(true);
    await expect(evaluate('$eval("$contains(\\"aa\\", /(a)\\\\1/)")')).rejects.toThrow(/\$eval: regular expression \/\(a\)\\1\/ cannot run/);
  });

  it('LinearRegExp follows RegExp#exec: lastIndex for global patterns, index, input, unmatched groups', () => {
    const re = new LinearRegExp(/b(x)?/g);
    const first = re.exec('abab');
    expect([first?.[0], first?.[1], first?.index, re.lastIndex]).toEqual(['b', undefined, 1, 2]);
    expect(re.exec('abab')?.index).toBe(3);
    expect(re.exec('abab')).toBeNull();
    expect(re.lastIndex).toBe(0);
    const once = new LinearRegExp('^([0-9]+)-', 'i');
    expect(once.exec('12-3')?.[1]).toBe('12');
    expect(once.lastIndex).toBe(0);
    expect(withLinearRegExp(() => new RegExp('a+$'))).toBeInstanceOf(LinearRegExp);
    expect(new RegExp('a')).toBeInstanceOf(RegExp);
  });
});
