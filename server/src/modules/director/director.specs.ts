/**
 * Specs are checked with the parsers made for them: OpenAPI 2/3 with @apidevtools/swagger-parser,
 * AsyncAPI with @asyncapi/parser, OData as well-formed EDMX XML (or JSON CSDL) with
 * fast-xml-parser. The outcome is `{valid, problems:[{message, path}]}`.
 *
 * The parsers are costly: @asyncapi/parser compiles its JSON Schemas anew for every document
 * (180–340 ms of CPU for a two-line document, measured on this project's 2-core machine) and
 * swagger-parser takes 25–45 ms. So `SpecValidator` runs them on a worker thread, one document
 * at a time, never on the event loop that serves requests, and remembers the outcome per
 * document (sha256) so a spec registered again costs nothing.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import YAML from 'yaml';
import type { Logger } from '../../platform/logger.js';

export type SpecType = 'OPEN_API' | 'ODATA' | 'ASYNC_API';
export type SpecFormat = 'JSON' | 'YAML' | 'XML';

export interface SpecProblem {
  message: string;
  path: string;
}

export interface SpecValidation {
  valid: boolean;
  problems: SpecProblem[];
}

export interface SpecInput {
  type: SpecType;
  format: SpecFormat;
  data: string;
}

const MAX_PROBLEMS = 50;

function problem(message: string, path = ''): SpecProblem {
  return { message: message.slice(0, 1_000), path };
}

function pointer(segments: ReadonlyArray<string | number>): string {
  return segments.length === 0 ? '' : '/' + segments.map((s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

/** Parses JSON or YAML text; a syntax error is the one problem. */
function parseDocument(data: string, format: SpecFormat): { doc?: unknown; problems: SpecProblem[] } {
  try {
    if (format === 'JSON') return { doc: JSON.parse(data) as unknown, problems: [] };
    const parsed = YAML.parseDocument(data);
    if (parsed.errors.length > 0) return { problems: parsed.errors.slice(0, MAX_PROBLEMS).map((e) => problem(`YAML: ${e.message}`)) };
    // Alias expansion is bounded: a billion-laughs document fails instead of filling memory.
    return { doc: parsed.toJS({ maxAliasCount: 100 }) as unknown, problems: [] };
  } catch (err) {
    return { problems: [problem(`${format === 'JSON' ? 'JSON' : 'YAML'}: ${(err as Error).message}`)] };
  }
}

async function validateOpenApi(data: string, format: SpecFormat): Promise<SpecValidation> {
  const { doc, problems } = parseDocument(data, format);
  if (problems.length > 0) return { valid: false, problems };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { valid: false, problems: [problem('an OpenAPI document must be an object')] };
  const { default: SwaggerParser } = await import('@apidevtools/swagger-parser');
  try {
    // External $refs are never followed: a spec must not make the hub fetch anything.
    await SwaggerParser.validate(doc as never, { resolve: { external: false }, dereference: { circular: 'ignore' } });
    return { valid: true, problems: [] };
  } catch (err) {
    const details = (err as { details?: Array<{ instancePath?: string; message?: string }> }).details;
    if (Array.isArray(details) && details.length > 0) {
      return { valid: false, problems: details.slice(0, MAX_PROBLEMS).map((d) => problem(d.message ?? 'is invalid', d.instancePath ?? '')) };
    }
    return { valid: false, problems: [problem((err as Error).message.replace(/\[object Object\]/, 'the document'))] };
  }
}

async function validateAsyncApi(data: string, format: SpecFormat): Promise<SpecValidation> {
  const { problems } = parseDocument(data, format);
  if (problems.length > 0) return { valid: false, problems };
  const { Parser } = await import('@asyncapi/parser');
  // Only the core rules: the recommended ones are style advice, not validity.
  const parser = new Parser({ ruleset: { recommended: false }, __unstable: { resolver: { resolvers: [] } } });
  const out = await parser.parse(data);
  const errors = out.diagnostics.filter((d) => d.severity === 0);
  return { valid: errors.length === 0, problems: errors.slice(0, MAX_PROBLEMS).map((d) => problem(d.message, pointer(d.path))) };
}

function validateOData(data: string, format: SpecFormat): SpecValidation {
  if (format === 'JSON') {
    const { doc, problems } = parseDocument(data, 'JSON');
    if (problems.length > 0) return { valid: false, problems };
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !('$Version' in doc)) {
      return { valid: false, problems: [problem('an OData JSON CSDL document is an object with $Version')] };
    }
    return { valid: true, problems: [] };
  }
  const wellFormed = XMLValidator.validate(data);
  if (wellFormed !== true) {
    const e = wellFormed.err;
    return { valid: false, problems: [problem(`XML: ${e.msg} (line ${e.line}, column ${e.col})`)] };
  }
  const root = Object.keys(new XMLParser({ ignoreAttributes: true }).parse(data) as Record<string, unknown>).find((k) => k !== '?xml');
  if (!root || root.replace(/^.*:/, '') !== 'Edmx') return { valid: false, problems: [problem(`the root element must be edmx:Edmx, not ${root ?? 'missing'}`, '')] };
  return { valid: true, problems: [] };
}

/** Runs the parser for `spec` in this thread (the worker calls it). */
export async function validateSpecHere(spec: SpecInput): Promise<SpecValidation> {
  switch (spec.type) {
    case 'OPEN_API':
      return validateOpenApi(spec.data, spec.format);
    case 'ASYNC_API':
      return validateAsyncApi(spec.data, spec.format);
    case 'ODATA':
      return validateOData(spec.data, spec.format);
  }
}

interface Pending {
  spec: SpecInput;
  key: string;
  resolve: (v: SpecValidation) => void;
}

/** Validates specs on one worker thread, in order, with a cache and a time limit per document. */
export class SpecValidator {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private current: Pending | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly cache = new Map<string, SpecValidation>();
  private closed = false;

  constructor(
    private readonly logger: Logger,
    private readonly timeoutMs = 30_000,
  ) {}

  validate(spec: SpecInput): Promise<SpecValidation> {
    const key = createHash('sha256').update(`${spec.type}\n${spec.format}\n${spec.data}`).digest('hex');
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => {
      this.queue.push({ spec, key, resolve });
      this.next();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const p of this.queue.splice(0)) p.resolve({ valid: false, problems: [problem('the hub is shutting down; validation did not run')] });
    this.current?.resolve({ valid: false, problems: [problem('the hub is shutting down; validation did not run')] });
    this.current = undefined;
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private next(): void {
    if (this.current || this.closed) return;
    const p = this.queue.shift();
    if (!p) return;
    this.current = p;
    const worker = this.ensureWorker();
    this.timer = setTimeout(() => {
      this.finish({ valid: false, problems: [problem(`validation took longer than ${this.timeoutMs} ms and was stopped`)] }, false);
      void worker.terminate();
      this.worker = undefined;
    }, this.timeoutMs);
    worker.postMessage(p.spec);
  }

  private finish(result: SpecValidation, cache: boolean): void {
    const p = this.current;
    if (!p) return;
    clearTimeout(this.timer);
    this.current = undefined;
    if (cache) {
      if (this.cache.size >= 500) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(p.key, result);
    }
    p.resolve(result);
    this.next();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // Run from the sources (tests, tsx) this file is `.ts`, and so is the worker's sibling.
    const fromSources = import.meta.url.endsWith('.ts');
    const worker = new Worker(new URL('./director.spec-worker.mjs', import.meta.url), { execArgv: [], workerData: { fromSources } });
    worker.unref();
    worker.on('message', (result: SpecValidation) => this.finish(result, true));
    worker.on('error', (err) => {
      this.logger.error({ err }, 'spec validation worker failed');
      this.worker = undefined;
      this.finish({ valid: false, problems: [problem(`the validator failed: ${err.message}`)] }, false);
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }
}
