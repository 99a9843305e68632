/**
 * What a stored API / event spec says, in a form a page can render without a spec viewer:
 * OpenAPI 2/3 → its operations (method, path, summary), AsyncAPI 2/3 → its channels and what
 * happens on them, OData EDMX → its entity sets and types. The raw document is shown beside it,
 * so nothing the summary leaves out is hidden. Parsing never throws: a document that does not
 * parse says why.
 */
import { parse as parseYaml } from 'yaml';

export interface SpecOperation {
  method: string;
  path: string;
  summary: string;
}

export interface SpecSummary {
  /** What the document calls itself (`info.title` + version), when it says. */
  title?: string;
  /** Endpoints (OpenAPI), channels (AsyncAPI) or entity sets (OData). */
  operations: SpecOperation[];
  /** Why no summary could be made (the raw document is still shown). */
  problem?: string;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function asObject(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** JSON or YAML (YAML is a superset, but JSON.parse is faster and its errors are clearer for JSON). */
function parseDocument(data: string, format: string): { doc?: Record<string, unknown>; problem?: string } {
  try {
    const value: unknown = format === 'JSON' ? JSON.parse(data) : parseYaml(data, { maxAliasCount: 100 });
    const doc = asObject(value);
    return doc ? { doc } : { problem: 'the document is not an object' };
  } catch (err) {
    return { problem: `the document does not parse as ${format}: ${(err as Error).message.split('\n')[0]}` };
  }
}

function titleOf(doc: Record<string, unknown>): string | undefined {
  const info = asObject(doc.info);
  const title = text(info?.title);
  const version = text(info?.version);
  return title ? (version ? `${title} ${version}` : title) : undefined;
}

function openApi(doc: Record<string, unknown>): SpecSummary {
  const operations: SpecOperation[] = [];
  for (const [path, item] of Object.entries(asObject(doc.paths) ?? {})) {
    const ops = asObject(item) ?? {};
    for (const method of HTTP_METHODS) {
      const o = asObject(ops[method]);
      if (o) operations.push({ method: method.toUpperCase(), path, summary: text(o.summary) || text(o.operationId) || text(o.description) });
    }
  }
  return { title: titleOf(doc), operations };
}

function asyncApi(doc: Record<string, unknown>): SpecSummary {
  const operations: SpecOperation[] = [];
  const channels = asObject(doc.channels) ?? {};
  const v3Operations = asObject(doc.operations);
  if (v3Operations) {
    // AsyncAPI 3: operations name their channel by $ref; the channel's address is the topic.
    for (const [name, raw] of Object.entries(v3Operations)) {
      const o = asObject(raw) ?? {};
      const ref = text(asObject(o.channel)?.$ref).split('/').pop() ?? '';
      const channel = asObject(channels[ref]);
      operations.push({ method: text(o.action) || 'operation', path: text(channel?.address) || ref || name, summary: text(o.summary) || name });
    }
  } else {
    for (const [name, raw] of Object.entries(channels)) {
      const c = asObject(raw) ?? {};
      for (const action of ['publish', 'subscribe']) {
        const o = asObject(c[action]);
        if (o) operations.push({ method: action, path: name, summary: text(o.summary) || text(o.operationId) || text(asObject(o.message)?.name) });
      }
      if (!c.publish && !c.subscribe) operations.push({ method: 'channel', path: name, summary: text(c.description) });
    }
  }
  return { title: titleOf(doc), operations };
}

function odata(data: string): SpecSummary {
  const trimmed = data.trim();
  if (trimmed.startsWith('{')) {
    // JSON CSDL: containers hold entity sets; everything else at a namespace's top is a type.
    const { doc, problem } = parseDocument(trimmed, 'JSON');
    if (!doc) return { operations: [], problem };
    const operations: SpecOperation[] = [];
    for (const [ns, raw] of Object.entries(doc)) {
      for (const [name, el] of Object.entries(asObject(raw) ?? {})) {
        const e = asObject(el);
        if (e?.$Kind === 'EntityContainer') {
          for (const [set, s] of Object.entries(e)) {
            if (!set.startsWith('$')) operations.push({ method: 'entity set', path: set, summary: text(asObject(s)?.$Type) });
          }
        } else if (e?.$Kind === 'EntityType') operations.push({ method: 'entity type', path: `${ns}.${name}`, summary: '' });
      }
    }
    return { title: text(doc.$Version) ? `OData ${text(doc.$Version)}` : undefined, operations };
  }
  const xml = new DOMParser().parseFromString(trimmed, 'application/xml');
  if (xml.getElementsByTagName('parsererror').length > 0) return { operations: [], problem: 'the document is not well-formed XML' };
  const operations: SpecOperation[] = [];
  for (const el of Array.from(xml.getElementsByTagNameNS('*', 'EntitySet'))) {
    operations.push({ method: 'entity set', path: el.getAttribute('Name') ?? '', summary: el.getAttribute('EntityType') ?? '' });
  }
  for (const el of Array.from(xml.getElementsByTagNameNS('*', 'EntityType'))) {
    const keys = Array.from(el.getElementsByTagNameNS('*', 'PropertyRef')).map((k) => k.getAttribute('Name'));
    operations.push({ method: 'entity type', path: el.getAttribute('Name') ?? '', summary: keys.length ? `key ${keys.join(', ')}` : '' });
  }
  const version = xml.documentElement.getAttribute('Version');
  return { title: version ? `OData EDMX ${version}` : undefined, operations };
}

/** A summary of `data` as a spec of `type` (OPEN_API, ASYNC_API, ODATA) in `format`. */
export function summarizeSpec(type: string, format: string, data: string): SpecSummary {
  if (type === 'ODATA') return odata(data);
  const { doc, problem } = parseDocument(data, format);
  if (!doc) return { operations: [], problem };
  if (type === 'ASYNC_API') return asyncApi(doc);
  return openApi(doc);
}
