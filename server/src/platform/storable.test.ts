import { describe, expect, it } from 'vitest';
import { findUnstorable, toStorableJson, toStorableText } from './storable.js';

describe('what the database can store', () => {
  it('names the first NUL, unpaired surrogate or too-deep nesting, in document order', () => {
    expect(findUnstorable({ a: ['x', { 'b c': 'y\u0000' }], z: '\ud800' }, 'body')).toEqual({ path: 'body.a[1]["b c"]', problem: expect.stringMatching(/NUL character/) });
    expect(findUnstorable({ a: 'fine 😀', b: '\udc00x' }, 'body')?.path).toBe('body.b');
    expect(findUnstorable({ a: [[[1]]] }, 'body', 3)).toEqual({ path: 'body.a[0][0]', problem: 'nests deeper than 3 levels of arrays and objects' });
    expect(findUnstorable({ a: [[[1]]] }, 'body', 4)).toBeUndefined();
    expect(findUnstorable('\\u0000 as text', 'body')).toBeUndefined();
    expect(findUnstorable(Buffer.from([0]), 'body')).toBeUndefined();
  });

  it('walks a million levels without overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 1_000_000; i++) deep = [deep];
    expect(findUnstorable(deep, 'body')?.problem).toMatch(/deeper than 256/);
  });

  it('makes records about data storable, leaving escaped backslashes and paired surrogates alone', () => {
    expect(toStorableText('a\u0000b\ud800')).toBe('a\uFFFDb\uFFFD');
    const json = JSON.stringify({ nul: 'a\u0000', lone: 'b\udfff', text: '\\u0000', pair: '😀' });
    expect(JSON.parse(toStorableJson(json))).toEqual({ nul: 'a\uFFFD', lone: 'b\uFFFD', text: '\\u0000', pair: '😀' });
    expect(toStorableJson('{"a":1}')).toBe('{"a":1}');
  });
});
