/**
 * What the database can keep. PostgreSQL text cannot hold U+0000, and its JSON parser refuses the
 * escape `\u0000` and unpaired UTF-16 surrogates (`"\ud800"`, which JSON.stringify writes for a
 * lone surrogate): a value holding either fails to store (SQLSTATE 22021, 22P05, 22P02) wherever
 * it meets a text or JSON column — after the caller was told it was accepted, unless something
 * checked first. JSON nested very deep fails too, on the way (JSON.stringify, PostgreSQL and
 * JSONata all recurse). The edges (HTTP requests, webhook messages, step outputs) check values
 * here and name the place, so the caller hears about it instead of the write failing later.
 */

/** Deepest nesting of arrays and objects accepted from outside (request bodies, step outputs). */
export const MAX_JSON_DEPTH = 256;

export interface Unstorable {
  /** Where, e.g. `body.items[2].name` or `headers["x-a"]`. */
  path: string;
  problem: string;
}

const NUL = 'contains a NUL character (U+0000), which cannot be stored';
const SURROGATE = 'contains an unpaired UTF-16 surrogate (not valid Unicode text), which cannot be stored';

function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return NUL;
  if (!s.isWellFormed()) return SURROGATE;
  return undefined;
}

/** Why a string cannot be stored, or undefined when it can. */
export function unstorableText(s: string): string | undefined {
  return textProblem(s);
}

interface Frame {
  value: unknown;
  parent: number;
  key: string | number;
  depth: number;
}

/** Segments of paths longer than this are elided: a path 256 levels deep names nothing better. */
const MAX_PATH_SEGMENTS = 12;

function pathOf(frames: readonly Frame[], index: number, root: string): string {
  const keys: Array<string | number> = [];
  for (let i = index; i > 0; i = frames[i]!.parent) keys.push(frames[i]!.key);
  keys.reverse();
  const shown = keys.length > MAX_PATH_SEGMENTS ? keys.slice(0, MAX_PATH_SEGMENTS) : keys;
  let out = root;
  for (const k of shown) {
    if (typeof k === 'number') out += `[${k}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(k)) out += out ? `.${k}` : k;
    else out += `[${JSON.stringify(k)}]`;
  }
  return keys.length > shown.length ? `${out}…` : out;
}

/**
 * Whether anything in `value` cannot be stored. The common case, on every webhook body and step
 * output: two flat stacks, no allocation per node (a walk that kept each node's path took twice
 * as long as JSON.parse of the same body).
 */
function hasUnstorable(value: unknown, maxDepth: number): boolean {
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    if (typeof v === 'string') {
      if (textProblem(v)) return true;
      continue;
    }
    if (typeof v !== 'object' || v === null || Buffer.isBuffer(v)) continue;
    if (depth >= maxDepth) return true;
    if (Array.isArray(v)) {
      for (const item of v) {
        if (typeof item === 'string') {
          if (textProblem(item)) return true;
        } else if (typeof item === 'object' && item !== null) {
          values.push(item);
          depths.push(depth + 1);
        }
      }
      continue;
    }
    for (const key in v) {
      if (textProblem(key)) return true;
      const item = (v as Record<string, unknown>)[key];
      if (typeof item === 'string') {
        if (textProblem(item)) return true;
      } else if (typeof item === 'object' && item !== null) {
        values.push(item);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/**
 * The first place in a JSON-like value (`root` names it: `body`, `query`) that cannot be stored:
 * a string or key with NUL or an unpaired surrogate, or nesting deeper than `maxDepth`.
 * Iterative, so no input can overflow the stack; a second pass names the place when there is one.
 */
export function findUnstorable(value: unknown, root: string, maxDepth: number = MAX_JSON_DEPTH): Unstorable | undefined {
  if (!hasUnstorable(value, maxDepth)) return undefined;
  const frames: Frame[] = [{ value, parent: -1, key: '', depth: 0 }];
  const todo: number[] = [0];
  while (todo.length > 0) {
    const index = todo.pop()!;
    const { value: v, depth } = frames[index]!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) return { path: pathOf(frames, index, root), problem };
      continue;
    }
    if (typeof v !== 'object' || v === null || Buffer.isBuffer(v)) continue;
    if (depth >= maxDepth) return { path: pathOf(frames, index, root), problem: `nests deeper than ${maxDepth} levels of arrays and objects` };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        frames.push({ value: v[i], parent: index, key: i, depth: depth + 1 });
        todo.push(frames.length - 1);
      }
      continue;
    }
    // Pushed last to first, so the first problem in document order is the one named.
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const problem = textProblem(key);
      if (problem) return { path: pathOf(frames, index, root) + `[${JSON.stringify(key)}]`, problem: problem.replace('contains', 'has a key that contains') };
      frames.push({ value: (v as Record<string, unknown>)[key], parent: index, key, depth: depth + 1 });
      todo.push(frames.length - 1);
    }
  }
  return undefined;
}

/**
 * Our own text (an error message, which may quote a value) made storable: NUL and unpaired
 * surrogates become U+FFFD. For records about data, never for the data itself.
 */
export function toStorableText(s: string): string {
  const wellFormed = s.toWellFormed();
  return wellFormed.includes('\u0000') ? wellFormed.replaceAll('\u0000', '\uFFFD') : wellFormed;
}

/** `\u0000` and lone-surrogate escapes in JSON text, after an even number of backslashes. */
const UNSTORABLE_ESCAPE = /(?<!\\)((?:\\\\)*)\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})/g;

/**
 * JSON text from JSON.stringify made storable in a JSON column: the escapes PostgreSQL refuses
 * become `\ufffd`. For records about data (a step run's input preview), never for the data itself.
 */
export function toStorableJson(json: string): string {
  if (!json.includes('\\u0000') && !/\\u[dD][89a-fA-F]/.test(json)) return json;
  return json.replace(UNSTORABLE_ESCAPE, '$1\\ufffd');
}
