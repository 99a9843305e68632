/**
 * Flow files: YAML or JSON, one flow per document (a YAML file may hold several, separated by
 * `---`), each keyed by its `name`. They are parsed with positions kept, so every problem — the
 * file's own or one the hub lists (`graph.nodes[0].componentId: unknown component`) — is
 * reported as `file:line:col: field: problem`, like a compiler would.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { FlowBody } from './client.js';
import { CliError } from './errors.js';

/** Fields the server sets; dropped from files so the output of `flows get -o yaml` applies back. */
export const SERVER_OWNED_FIELDS = ['id', 'tenant', 'status', 'statusReason', 'version', 'createdAt', 'updatedAt', 'links'] as const;

const FLOW_FILE = /\.(ya?ml|json)$/i;

export interface FlowDocument {
  /** The file, and `#n` for the n-th document of a multi-document file. */
  source: string;
  name: string;
  /** What is sent to the hub: the document without server-owned fields. */
  body: FlowBody;
  /** `file:line:col` of the deepest part of `fieldPath` the document has. */
  locate(fieldPath: ReadonlyArray<string | number>): string;
}

/** Reads every flow document under `paths` (files, or directories of *.yaml / *.yml / *.json). */
export function loadFlowDocuments(paths: readonly string[], opts: { recursive?: boolean } = {}): FlowDocument[] {
  const files = paths.flatMap((p) => expandPath(p, opts.recursive ?? false));
  const problems: string[] = [];
  const docs: FlowDocument[] = [];
  const byName = new Map<string, string>();
  for (const file of files) {
    for (const doc of parseFile(file, problems)) {
      const seen = byName.get(doc.name);
      if (seen) {
        problems.push(`${doc.locate(['name'])}: name: ${JSON.stringify(doc.name)} is also the name of the flow in ${seen}; names identify flows`);
        continue;
      }
      byName.set(doc.name, doc.source);
      docs.push(doc);
    }
  }
  if (problems.length > 0) throw new CliError(`${problems.length === 1 ? 'a flow file is' : `${problems.length} problems in flow files`} invalid`, undefined, problems);
  return docs;
}

function expandPath(p: string, recursive: boolean): string[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    throw new CliError(`${p}: no such file or directory`);
  }
  if (!stat.isDirectory()) return [p];
  const out: string[] = [];
  for (const entry of fs.readdirSync(p, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(p, entry.name);
    if (entry.isDirectory()) {
      if (recursive) out.push(...expandPath(full, true));
    } else if (FLOW_FILE.test(entry.name)) {
      out.push(full);
    }
  }
  return out;
}

function parseFile(file: string, problems: string[]): FlowDocument[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return [];
  }
  const lines = new YAML.LineCounter();
  // JSON is YAML too, so one parser gives positions for both.
  const nonEmpty = YAML.parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true }).filter((d) => d.contents !== null);
  if (nonEmpty.length === 0) {
    problems.push(`${file}: holds no flow`);
    return [];
  }
  const out: FlowDocument[] = [];
  nonEmpty.forEach((doc, i) => {
    const source = nonEmpty.length > 1 ? `${file}#${i + 1}` : file;
    const at = (offset: number | undefined): string => {
      if (offset === undefined) return source;
      const { line, col } = lines.linePos(offset);
      return `${file}:${line}:${col}`;
    };
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push(`${at(e.pos[0])}: ${e.message.split('\n')[0]}`);
      return;
    }
    const value: unknown = doc.toJS();
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push(`${at(doc.contents?.range[0])}: a flow must be a mapping (name, graph, …), not ${Array.isArray(value) ? 'a list' : typeof value}`);
      return;
    }
    // A field points at its key (`componentId:`), a list item at the item; a field the
    // document lacks points at the nearest part it has.
    const locate = (fieldPath: ReadonlyArray<string | number>): string => {
      for (let n = fieldPath.length; n > 0; n--) {
        const parent: unknown = n === 1 ? doc.contents : doc.getIn(fieldPath.slice(0, n - 1), true);
        const last = fieldPath[n - 1];
        if (YAML.isMap(parent)) {
          const pair = parent.items.find((p) => (YAML.isScalar(p.key) ? p.key.value : p.key) === last);
          if (pair && YAML.isNode(pair.key) && pair.key.range) return at(pair.key.range[0]);
        } else if (YAML.isSeq(parent) && typeof last === 'number') {
          const item: unknown = parent.items[last];
          if (YAML.isNode(item) && item.range) return at(item.range[0]);
        }
      }
      return at(doc.contents?.range?.[0]);
    };
    const body: FlowBody = { ...(value as Record<string, unknown>) };
    for (const key of SERVER_OWNED_FIELDS) delete body[key];
    const name = body.name;
    if (typeof name !== 'string' || name.trim() === '') {
      problems.push(`${locate(['name'])}: name: ${name === undefined ? 'is required' : 'must be a non-empty string'}; flows are matched by name`);
      return;
    }
    out.push({ source, name: name.trim(), body, locate });
  });
  return out;
}

/**
 * The problems the hub listed for a document, each prefixed with where it is in the file. A
 * problem starts with the field it concerns (`graph.edges[1].target: …`); one without a field
 * points at the document.
 */
export function locateProblems(doc: FlowDocument, problems: readonly string[]): string[] {
  return problems.map((p) => `${doc.locate(parseFieldPath(p))}: ${p}`);
}

/** `graph.nodes[0].componentId: …` → ['graph', 'nodes', 0, 'componentId']. */
export function parseFieldPath(problem: string): Array<string | number> {
  const m = /^([A-Za-z_$][\w$-]*(?:\.[A-Za-z_$][\w$-]*|\[\d+\])*)[\s:(]/.exec(problem);
  if (!m) return [];
  const out: Array<string | number> = [];
  for (const part of m[1]!.matchAll(/([A-Za-z_$][\w$-]*)|\[(\d+)\]/g)) out.push(part[2] !== undefined ? Number(part[2]) : part[1]!);
  return out;
}
